/**
 * Seeded parameter initialisation with PyTorch's defaults, so a fresh model starts from the same
 * distribution as the reference (not the same numbers: the generators differ).
 */
import { mulberry32 } from '../autograd/random.js';

/** A uniform [0, 1) generator; one is threaded through a model's construction so that a seed fixes every weight. */
export type Rng = () => number;

export function createRng(seed: number): Rng {
  if (!Number.isFinite(seed)) throw new RangeError(`createRng: seed must be a finite number, got ${seed}`);
  return mulberry32(seed);
}

/** n values uniform in [-bound, bound). */
export function uniformInit(n: number, bound: number, rng: Rng): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * rng() - 1) * bound;
  return out;
}

/** Inputs feeding one output of a conv weight [cout, cin, ...kernel]: cin times the kernel volume. */
export function fanIn(shape: readonly number[]): number {
  if (shape.length < 2) throw new RangeError(`fanIn: weight shape [${shape.join(', ')}] needs at least [cout, cin]`);
  return shape.slice(1).reduce((a, b) => a * b, 1);
}

/**
 * PyTorch's default conv/linear weight init, kaiming_uniform_(a = sqrt(5)): gain sqrt(2 / (1 + 5)) times
 * sqrt(3 / fan_in) gives the bound 1 / sqrt(fan_in).
 */
export function kaimingUniformDefault(shape: readonly number[], rng: Rng): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  return uniformInit(n, 1 / Math.sqrt(fanIn(shape)), rng);
}

/** PyTorch's default conv bias init: uniform in +-1 / sqrt(fan_in of the weight). */
export function defaultBiasInit(weightShape: readonly number[], rng: Rng): Float32Array {
  return uniformInit(weightShape[0], 1 / Math.sqrt(fanIn(weightShape)), rng);
}
