// The TF.js entry point maskacc uses. The CommonJS bundle of @tensorflow/tfjs registers every
// gradient (tfjs-core alone registers none, and its ESM build does not resolve under Node).
import { createRequire } from 'node:module';
import { ArgumentError, MaskaccError } from '../errors.js';

const require = createRequire(import.meta.url);

/** TF.js is an optional peer dependency: only `maskacc/tfjs` needs it, so say what to install. */
function requirePeer<T>(name: string, use: string): T {
  try {
    return require(name) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND' || !String((e as Error).message).includes(`'${name}'`))
      throw e;
    throw new MaskaccError(
      `${use} needs the optional peer dependency ${name}, which is not installed: run \`npm install ${name}\``,
    );
  }
}

export const tf = requirePeer<typeof import('@tensorflow/tfjs')>('@tensorflow/tfjs', 'maskacc/tfjs');
// Production mode: no per-op debug checks, and no banner recommending tfjs-node (whose
// prebuilt binary cannot install offline; maskacc supplies the heavy kernels instead).
tf.enableProdMode();
export type { Scalar, Tensor, Tensor4D, Variable } from '@tensorflow/tfjs';

export type TfBackend = 'cpu' | 'wasm';

/**
 * Select the backend for the ops maskacc does not replace (dense, loss, optimizer). 'cpu' is pure
 * JS and shares memory with the kernels (no copies); 'wasm' runs XNNPACK but copies every tensor
 * the native kernels read or write.
 */
export async function useBackend(name: TfBackend): Promise<void> {
  if (name !== 'cpu' && name !== 'wasm') throw new ArgumentError('backend', name, "'cpu' or 'wasm'");
  if (name === 'wasm') requirePeer('@tensorflow/tfjs-backend-wasm', "useBackend('wasm')");
  if (!(await tf.setBackend(name))) throw new ArgumentError('backend', name, 'a TF.js backend that initializes here');
  await tf.ready();
}
