/** Shared test fixtures: one GPU per test file, seeded random data, GPU<->host transfers, closeness checks. */
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { abandonOpenScopes } from '../../src/autograd/scope.js';
import { initGpu, type Gpu } from '../../src/kernels/runtime/gpu.js';
import { mulberry32 } from '../../src/autograd/random.js';
import { fromHalfBits, roundToHalf, supportsF16, toHalfBits, type DType } from '../../src/kernels/runtime/precision.js';

/**
 * Initialises the GPU for a test file. Fails (never skips) when no adapter exists. A test that timed out with an
 * async tidy pending leaves its scope open; it is dropped after each test so it cannot take the next test's
 * tensors. The device is destroyed at the end even when it was lost or its last work failed.
 */
export function useGpu(): () => Gpu {
  let gpu: Gpu | null = null;
  beforeAll(async () => {
    gpu = await initGpu();
  });
  afterEach(() => {
    const open = abandonOpenScopes();
    if (open > 0) console.warn(`useGpu: dropped ${open} tidy scope(s) left open by the test that just ended (timed out?)`);
  });
  afterAll(async () => {
    if (gpu) {
      try {
        if (!gpu.isLost) await gpu.sync();
      } finally {
        gpu.destroy();
        gpu = null;
      }
    }
  });
  return () => {
    if (!gpu) throw new Error('GPU not initialised');
    return gpu;
  };
}

/**
 * Timeout for tests that build a model's whole training graph: their first step compiles every pipeline it uses
 * (85 for a width-2 TGNet step), about 35 s on an idle 2-core machine with a cold shader cache
 * (MESA_SHADER_CACHE_DISABLE=true) and 120 s with the cores shared three ways and more. A hang guard, not a speed
 * check: the default 120 s would fail such a test on a busy machine, and the test it abandons keeps running beside
 * the next one.
 */
export const COLD_COMPILE_TIMEOUT_MS = 600_000;

/** A seeded uniform [0, 1) generator (mulberry32). */
export const rng = mulberry32;

/** n uniform values in [lo, hi). */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

export function upload(gpu: Gpu, data: Float32Array): GPUBuffer {
  const b = gpu.pool.acquire(data.byteLength, 'test upload');
  gpu.write(b, data);
  return b;
}

export function empty(gpu: Gpu, n: number): GPUBuffer {
  return gpu.pool.acquire(n * 4, 'test output');
}

export async function download(gpu: Gpu, b: GPUBuffer, n: number): Promise<Float32Array> {
  return new Float32Array(await gpu.read(b, n * 4));
}

/**
 * Whether an f16 case can run on `gpu`. On an adapter without 'shader-f16' (SwiftShader) the case instead checks
 * that `attempt` (the f16 launch) is refused with an error naming the feature, and the caller returns.
 */
export function runsF16(gpu: Gpu, dtype: DType, attempt: () => unknown): boolean {
  if (dtype === 'f32' || supportsF16(gpu)) return true;
  expect(attempt).toThrow(/shader-f16/);
  return false;
}

/** Uploads `data` as `dtype` (f16: rounded to nearest even, padded to whole words). */
export function uploadAs(gpu: Gpu, data: Float32Array, dtype: DType): GPUBuffer {
  if (dtype === 'f32') return upload(gpu, data);
  const bits = new Uint16Array(data.length + (data.length % 2));
  bits.set(toHalfBits(data));
  const b = gpu.pool.acquire(Math.max(4, bits.byteLength), 'test upload');
  gpu.write(b, bits);
  return b;
}

/** An uninitialised buffer of n `dtype` elements. */
export function emptyAs(gpu: Gpu, n: number, dtype: DType): GPUBuffer {
  return gpu.pool.acquire(Math.max(4, Math.ceil((n * (dtype === 'f16' ? 2 : 4)) / 4) * 4), 'test output');
}

/** n `dtype` elements read back as f32. */
export async function downloadAs(gpu: Gpu, b: GPUBuffer, n: number, dtype: DType): Promise<Float32Array> {
  if (dtype === 'f32') return download(gpu, b, n);
  return fromHalfBits(new Uint16Array(await gpu.read(b, Math.ceil(n / 2) * 4), 0, n));
}

/** `data` as the kernel sees it after an upload as `dtype` (f16: each value rounded). */
export function asStored(data: Float32Array, dtype: DType): Float32Array {
  return dtype === 'f32' ? data : data.map(roundToHalf);
}

/**
 * Tolerances for comparing a kernel's `dtype` output with its float64 twin run on the same (rounded) inputs:
 * an f16 store rounds once (relative 2^-11), so f16 allows 1e-3 absolute and 2e-3 relative beyond f32's.
 */
export function tolerance(dtype: DType, atol = 1e-4, rtol = 1e-3): [number, number] {
  return dtype === 'f16' ? [atol + 1e-3, rtol + 2e-3] : [atol, rtol];
}

/** Element-wise |a - e| <= atol + rtol * |e|, reporting the worst element. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, atol = 1e-4, rtol = 1e-3): void {
  expect(actual.length).toBe(expected.length);
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) - (atol + rtol * Math.abs(expected[i]));
    if (!(err <= 0) && (worst < 0 || err > worstErr || Number.isNaN(err))) {
      worst = i;
      worstErr = err;
    }
  }
  if (worst >= 0) {
    expect.fail(`element ${worst}: got ${actual[worst]}, expected ${expected[worst]} (atol ${atol}, rtol ${rtol})`);
  }
}

/** The same GPU with a smaller storage-binding limit, to exercise slab/window paths on small tensors. */
export function withBindingLimit(g: Gpu, bytes: number): Gpu {
  const limits = { ...g.limits, maxStorageBufferBindingSize: bytes };
  return new Proxy(g, {
    get(target, key) {
      if (key === 'limits') return limits;
      const v = Reflect.get(target, key, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** Number of elements of a shape. */
export const size = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
