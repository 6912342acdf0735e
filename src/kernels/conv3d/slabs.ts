/**
 * Slabs: tensors larger than one storage binding are processed in windows over the batch, then over channel
 * chunks (accumulating partial sums in stream order), then over depth. See `planSlabs`.
 */
import type { Binding, Gpu } from '../runtime/gpu.js';
import { bytesPerElement, type DType } from '../runtime/precision.js';
import { alignedWindow, type AlignedWindow } from '../runtime/windows.js';
import type { Conv3dGeometry } from './geometry.js';

/** One tensor as [N, C, D, HW] for windowing. */
export interface Vol { c: number; d: number; hw: number }

export const inputVol = (g: Conv3dGeometry): Vol => ({ c: g.Cin, d: g.D, hw: g.H * g.W });
export const outputVol = (g: Conv3dGeometry): Vol => ({ c: g.Cout, d: g.Do, hw: g.Ho * g.Wo });

/** A slab: the batch range, the depth range of the 'driving' tensor, and channel chunks of both sides. */
export interface Slab {
  n0: number; nc: number;
  /** Depth range of the driving tensor (the GEMM's voxel axis, or the reduction axis of the weight gradient). */
  d0: number; dc: number;
  /** Depth range [lo, hi) of the gathered tensor that the driving range needs. */
  lo: number; hi: number;
  /** Channel chunk of the driving tensor. */
  a0: number; ac: number;
  /** Channel chunk of the gathered tensor. */
  b0: number; bc: number;
  firstB: boolean;
  firstReduction: boolean;
}

export interface SlabPlan { nc: number; dc: number; ac: number; bc: number }

/** Depth range [lo, hi) of the gathered tensor needed by depths [d0, d0 + dc) of the driving one. */
export type DepthMap = (d0: number, dc: number) => [number, number];

/**
 * Largest binding in elements of `dtype` (f32 unless given), leaving room to align the window's start down; whole
 * 4-byte words, so an f16 window rounded up to a word still fits.
 */
export function bindingBudget(gpu: Gpu, maxBindingBytes: number | undefined, what: string, dtype: DType = 'f32'): number {
  const limit = gpu.limits.maxStorageBufferBindingSize;
  const max = Math.min(limit, maxBindingBytes ?? limit);
  const align = gpu.limits.minStorageBufferOffsetAlignment;
  const budget = Math.floor(Math.floor((max - align) / 4) * 4 / bytesPerElement(dtype));
  if (!(budget >= 1)) throw new RangeError(`${what}: maxBindingBytes ${max} must exceed the offset alignment ${align}`);
  return budget;
}

/**
 * Chooses slab sizes so that the driving tensor `A` (depth range d0..d0+dc) and the gathered tensor `B`
 * (depth range map(d0, dc)) each fit `budget` elements: the whole batch if possible, else one sample at a time
 * with channel chunks, else one channel at a time over depth ranges.
 */
export function planSlabs(N: number, A: Vol, B: Vol, map: DepthMap, budget: number, what: string): SlabPlan {
  const need = (dc: number) => {
    let m = 0;
    for (let d0 = 0; d0 < A.d; d0 += dc) {
      const [lo, hi] = map(d0, Math.min(dc, A.d - d0));
      m = Math.max(m, hi - lo);
    }
    return m;
  };
  const spanA = (nc: number, cc: number, dc: number) => (nc - 1) * A.c * A.d * A.hw + (cc - 1) * A.d * A.hw + dc * A.hw;
  const spanB = (nc: number, cc: number, dn: number) => (nc - 1) * B.c * B.d * B.hw + (cc - 1) * B.d * B.hw + dn * B.hw;
  const fullNeed = need(A.d);
  for (let nc = N; nc >= 1; nc--) {
    if (spanA(nc, A.c, A.d) <= budget && spanB(nc, B.c, fullNeed) <= budget) return { nc, dc: A.d, ac: A.c, bc: B.c };
  }
  const ac = Math.min(A.c, Math.floor(budget / (A.d * A.hw)));
  const bc = fullNeed * B.hw > budget ? 0 : Math.min(B.c, Math.floor((budget - fullNeed * B.hw) / (B.d * B.hw)) + 1);
  if (ac >= 1 && bc >= 1) return { nc: 1, dc: A.d, ac, bc };
  for (let dc = Math.min(A.d, Math.floor(budget / A.hw)); dc >= 1; dc--) {
    if (need(dc) * B.hw <= budget) return { nc: 1, dc, ac: 1, bc: 1 };
  }
  throw new RangeError(
    `${what}: one depth plane does not fit a storage binding of ${budget * 4} bytes (planes of ${A.hw} and ${B.hw} elements)`,
  );
}

export function* slabs(N: number, A: Vol, B: Vol, map: DepthMap, plan: SlabPlan): Generator<Slab> {
  for (let n0 = 0; n0 < N; n0 += plan.nc) {
    for (let d0 = 0; d0 < A.d; d0 += plan.dc) {
      const dc = Math.min(plan.dc, A.d - d0);
      const [lo, hi] = map(d0, dc);
      for (let a0 = 0; a0 < A.c; a0 += plan.ac) {
        for (let b0 = 0; b0 < B.c; b0 += plan.bc) {
          yield {
            n0, nc: Math.min(plan.nc, N - n0), d0, dc, lo, hi,
            a0, ac: Math.min(plan.ac, A.c - a0), b0, bc: Math.min(plan.bc, B.c - b0),
            firstB: b0 === 0, firstReduction: n0 === 0 && d0 === 0,
          };
        }
      }
    }
  }
}

/**
 * Window into an [N, C, D, HW] tensor of `dtype` elements for batch, channel and depth ranges; a start past the
 * end is clamped (empty slabs).
 */
export function volWindow(
  gpu: Gpu, buffer: GPUBuffer, v: Vol, n0: number, nc: number, c0: number, cc: number, d0: number, dn: number,
  dtype: DType = 'f32',
): AlignedWindow {
  const start = ((n0 * v.c + c0) * v.d + d0) * v.hw;
  const span = (nc - 1) * v.c * v.d * v.hw + (cc - 1) * v.d * v.hw + dn * v.hw;
  return alignedWindow(gpu, buffer, Math.min(start, Math.floor(buffer.size / bytesPerElement(dtype)) - 1), span, dtype);
}

/** The first n f32 elements of a buffer as a binding (pooled buffers may be larger than one binding). */
export function whole(buffer: GPUBuffer, n: number): Binding {
  return { buffer, offset: 0, size: n * 4 };
}

/** Gathered input depth range [lo, hi) for output depths [d0, d0 + dc). */
export function forwardDepthMap(g: Conv3dGeometry): DepthMap {
  return (d0, dc) => {
    const lo = Math.max(0, d0 * g.s - g.p);
    const hi = Math.min(g.D, (d0 + dc - 1) * g.s - g.p + g.k);
    return hi > lo ? [lo, hi] : [lo, lo];
  };
}

/** Output depth range [lo, hi) that input depths [d0, d0 + dc) receive gradient from. */
export function backwardDepthMap(g: Conv3dGeometry): DepthMap {
  return (d0, dc) => {
    const lo = Math.max(0, Math.ceil((d0 + g.p - (g.k - 1)) / g.s));
    const hi = Math.min(g.Do, Math.floor((d0 + dc - 1 + g.p) / g.s) + 1);
    return hi > lo ? [lo, hi] : [Math.min(lo, g.Do - 1), Math.min(lo, g.Do - 1)];
  };
}
