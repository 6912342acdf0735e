/**
 * Element types of tensors. Activations and their gradients may be stored as IEEE half floats ('f16') when the
 * device has WGSL's `shader-f16`; kernels then load f16, compute and accumulate in f32 and round once when they
 * store. Parameters, their gradients, optimiser state, GN statistics and losses stay f32 (mixed precision).
 */
import type { Gpu } from './gpu.js';

export type DType = 'f32' | 'f16';

export const DTYPES: readonly DType[] = ['f32', 'f16'];

/** Bytes of one element of `dtype`. */
export function bytesPerElement(dtype: DType): number {
  return dtype === 'f16' ? 2 : 4;
}

/** WGSL scalar type of `dtype`'s storage ('f32' or 'f16'). */
export function wgslScalar(dtype: DType): 'f32' | 'f16' {
  return dtype;
}

/** WGSL 4-vector type of `dtype`'s storage ('vec4f' or 'vec4h'). */
export function wgslVec4(dtype: DType): 'vec4f' | 'vec4h' {
  return dtype === 'f16' ? 'vec4h' : 'vec4f';
}

/** Throws unless `dtype` is one of DTYPES; `what` names the caller. */
export function checkDType(dtype: unknown, what: string): asserts dtype is DType {
  if (dtype !== 'f32' && dtype !== 'f16') {
    throw new TypeError(`${what}: dtype ${JSON.stringify(dtype)} is not supported; expected 'f32' or 'f16'`);
  }
}

/** Whether kernels on `gpu` may store f16 (the device was given the 'shader-f16' feature). */
export function supportsF16(gpu: Gpu): boolean {
  return gpu.features.has('shader-f16');
}

/** Throws, naming the caller and the adapter, when `dtype` is 'f16' and `gpu` lacks 'shader-f16'. */
export function requireDType(gpu: Gpu, dtype: DType, what: string): void {
  checkDType(dtype, what);
  if (dtype === 'f16' && !supportsF16(gpu)) {
    throw new RangeError(
      `${what}: dtype 'f16' needs the WebGPU feature 'shader-f16', which this adapter (${gpu.name}) does not offer; ` +
      "use 'f32' (--precision f32)",
    );
  }
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** The binary16 bits of `v` rounded to nearest even (overflow to infinity, NaN kept, subnormals exact). */
export function halfBits(v: number): number {
  f32Scratch[0] = v;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    // Subnormal half: shift the full significand (with its implicit 1) into place, rounding to nearest even.
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let h = m >>> shift;
    if (rest > half || (rest === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
  return sign | h;
}

/** The value of binary16 bits `h`. */
export function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** `values` rounded to binary16, as bits. */
export function toHalfBits(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = halfBits(values[i]);
  return out;
}

/** The values of binary16 `bits` as f32. */
export function fromHalfBits(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfValue(bits[i]);
  return out;
}

/** `v` rounded to the nearest binary16 value (the CPU twins' model of an f16 store). */
export function roundToHalf(v: number): number {
  return halfValue(halfBits(v));
}

/** Largest finite binary16 value. */
export const HALF_MAX = 65504;

/** WGSL storage element type of `dtype` with `lanes` components (f32/f16, vec2f/vec2h, vec4f/vec4h). */
export function storageType(dtype: DType, lanes: 1 | 2 | 4 = 1): 'f32' | 'f16' | 'vec2f' | 'vec2h' | 'vec4f' | 'vec4h' {
  if (lanes === 1) return dtype;
  return `vec${lanes}${dtype === 'f16' ? 'h' : 'f'}`;
}

/** WGSL computing type (f32 lanes) matching `storageType(_, lanes)`. */
export function computeType(lanes: 1 | 2 | 4 = 1): 'f32' | 'vec2f' | 'vec4f' {
  return lanes === 1 ? 'f32' : `vec${lanes}f`;
}
