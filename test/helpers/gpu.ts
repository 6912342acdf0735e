/** Shared test fixtures: one GPU per test file, seeded random data, GPU<->host transfers, closeness checks. */
import { afterAll, beforeAll, expect } from 'vitest';
import { initGpu, type Gpu } from '../../src/kernels/runtime/gpu.js';

/** Initialises the GPU for a test file. Fails (never skips) when no adapter exists. */
export function useGpu(): () => Gpu {
  let gpu: Gpu | null = null;
  beforeAll(async () => {
    gpu = await initGpu();
  });
  afterAll(async () => {
    if (gpu) {
      await gpu.sync();
      gpu.destroy();
    }
  });
  return () => {
    if (!gpu) throw new Error('GPU not initialised');
    return gpu;
  };
}

/** mulberry32: small, fast, good enough for test data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
