// How far apart the two cores running the kernels are right now: the round trip of a cache line
// between two spinning threads. A VM's vCPUs move between cores that share an L3 (here ~120-200
// ns) and cores on different CCDs (~330-420 ns on a Zen 4 EPYC) every few seconds; kernels whose
// threads read what the other wrote run up to 1.5x slower in the far phases, single-threaded ones
// not at all. The A/B tools tag each round with it (AB_PHASE=1) to compare like with like.
import { Worker } from 'node:worker_threads';

const WORKER = `
const { workerData } = require('node:worker_threads');
const f = new Int32Array(workerData.sab);
const lead = workerData.role === 0;
let seen = 0;
for (;;) {
  Atomics.wait(f, 0, seen);
  seen = Atomics.load(f, 0);
  if (seen < 0) break;
  const n = Atomics.load(f, 4);
  let ball = Atomics.load(f, 1);
  Atomics.add(f, 2, 1);
  while (Atomics.load(f, 2) < 2 * seen);
  if (lead) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++, ball += 2) { Atomics.store(f, 1, ball + 1); while (Atomics.load(f, 1) !== ball + 2); }
    Atomics.store(f, 5, Number(process.hrtime.bigint() - t) / n);
    Atomics.store(f, 3, seen);
    Atomics.notify(f, 3);
  } else {
    for (let i = 0; i < n; i++, ball += 2) { while (Atomics.load(f, 1) !== ball + 1); Atomics.store(f, 1, ball + 2); }
  }
}`;

export class CoreDistance {
  private readonly f = new Int32Array(new SharedArrayBuffer(64));
  private readonly workers = [0, 1].map(
    (role) => new Worker(WORKER, { eval: true, workerData: { sab: this.f.buffer, role } }),
  );
  private seq = 0;

  /**
   * Round trip in ns: the least mean of three runs of `n` exchanges (a few ms in all; the calling
   * thread sleeps meanwhile). A run during which the OS ran something else on either core reads
   * several times too long; so does one right after other threads' work, while their pools
   * (OpenMP's, OpenBLAS's) still spin: `settleMs` waits first.
   */
  roundTripNs(n = 3000, settleMs = 0): number {
    if (settleMs > 0) Atomics.wait(this.f, 6, 0, settleMs);
    return Math.min(this.run(n), this.run(n), this.run(n));
  }

  private run(n: number): number {
    const cmd = ++this.seq;
    Atomics.store(this.f, 4, n);
    Atomics.store(this.f, 0, cmd);
    Atomics.notify(this.f, 0);
    while (Atomics.load(this.f, 3) !== cmd) Atomics.wait(this.f, 3, Atomics.load(this.f, 3), 1000);
    return Atomics.load(this.f, 5);
  }

  async close(): Promise<void> {
    Atomics.store(this.f, 0, -1);
    Atomics.notify(this.f, 0);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Round trips above this many ns: the cores are on different CCDs (see above). */
export const FAR_NS = 260;
