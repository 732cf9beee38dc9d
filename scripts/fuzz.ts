// The long fuzz run: `npm run fuzz -- --cases 10000 --seed 1 --masks-per-spec 5`. Prints progress,
// shrinks every failure to a minimal case and saves it under test/fuzz/regressions (replayed by
// npm test). --masks-per-spec K draws K mask/data sets per compiled spec (compiles dominate).
import { parseArgs } from 'node:util';
import { drawCases, runCases, saveRegression, shrink } from '../test/fuzz/fuzzer.js';

const { values } = parseArgs({
  options: {
    cases: { type: 'string', default: '1000' },
    seed: { type: 'string', default: '1' },
    batch: { type: 'string', default: '200' },
    'masks-per-spec': { type: 'string', default: '1' },
  },
});
const total = Number(values.cases),
  seed = Number(values.seed),
  batch = Number(values.batch),
  perSpec = Number(values['masks-per-spec']);
const t0 = performance.now();
let failed = 0;
for (let done = 0; done < total; done += batch) {
  const cases = drawCases(seed * 7919 + done, Math.min(batch, total - done), perSpec);
  for (const { c, reason } of await runCases(cases)) {
    failed++;
    console.log(`FAIL ${reason}\n  ${JSON.stringify(c)}`);
    const small = await shrink(c, (s) => console.log(`  ${s}`));
    console.log(`  saved ${saveRegression(small, reason)}`);
  }
  console.error(
    `fuzz: ${Math.min(done + batch, total)}/${total} cases, ${failed} failed, ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  );
}
console.log(`${total - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
