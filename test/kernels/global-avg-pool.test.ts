import { describe, expect, it } from 'vitest';
import { globalAvgPool, globalAvgPoolBackward } from '../../src/kernels/global-avg-pool.js';
import { planChunks } from '../../src/kernels/runtime/reduction.js';
import { globalAvgPoolBackwardRef, globalAvgPoolRef } from '../../src/kernels/reference/global-avg-pool.js';
import { dot, maxRelativeError, numericGradient } from '../../src/kernels/reference/gradcheck.js';
import type { DType } from '../../src/kernels/runtime/precision.js';
import {
  asStored, download, downloadAs, empty, emptyAs, expectClose, randomArray, runsF16, size, tolerance, upload, uploadAs, useGpu,
} from '../helpers/gpu.js';

const gpu = useGpu();

describe('global average pool: GPU vs CPU twin', () => {
  // f16: x and dx half, the pooled [N, C] values and their gradient f32.
  const cases: [number[], number | undefined, DType][] = [
    [[2, 6, 3, 5, 7], undefined, 'f32'],
    [[2, 4, 4, 4, 4], undefined, 'f32'], // vec4 backward
    [[1, 2, 16, 32, 40], undefined, 'f32'], // several chunks per channel
    [[2, 3, 7, 8, 9], undefined, 'f32'], // one workgroup-sized chunk per channel
    [[2, 6, 3, 5, 7], 256, 'f32'], // slab path
    [[1, 2, 16, 32, 40], 40000, 'f32'], // slab path, chunks + merge
    [[3, 2], undefined, 'f32'], // no spatial dims: identity
    [[2, 6, 3, 5, 7], 256, 'f16'],
    [[2, 4, 4, 4, 4], undefined, 'f16'],
    [[1, 2, 16, 32, 40], 40000, 'f16'],
  ];
  for (const [shape, maxBindingBytes, dtype] of cases) {
    it(`[${shape}] ${dtype}${maxBindingBytes ? ` in windows of ${maxBindingBytes} bytes` : ''}`, async () => {
      const g = gpu();
      const n = size(shape);
      const NC = shape[0] * shape[1];
      if (!runsF16(g, dtype, () => globalAvgPool(g, emptyAs(g, n, dtype), shape, empty(g, NC), { dtype }))) return;
      const x = asStored(randomArray(n, 1), dtype);
      const gr = randomArray(NC, 2);
      const ob = empty(g, NC);
      const dxb = emptyAs(g, n, dtype);
      globalAvgPool(g, uploadAs(g, x, dtype), shape, ob, { maxBindingBytes, dtype });
      globalAvgPoolBackward(g, upload(g, gr), shape, dxb, { maxBindingBytes, dtype });
      // The mean is an f32 sum of the stored values; dx is rounded once when stored.
      expectClose(await download(g, ob, NC), globalAvgPoolRef(x, shape), 1e-5, 1e-4);
      expectClose(await downloadAs(g, dxb, n, dtype), globalAvgPoolBackwardRef(gr, shape), ...tolerance(dtype, 1e-7, 1e-6));
    });
  }

  it('computes a hand-checked mean', async () => {
    const g = gpu();
    const ob = empty(g, 2);
    globalAvgPool(g, upload(g, new Float32Array([1, 2, 3, 4, 10, 20, 30, 40])), [1, 2, 2, 2], ob);
    expectClose(await download(g, ob, 2), [2.5, 25], 0, 1e-7);
  });

  it('rejects a too-small buffer and a 1-D shape', () => {
    const g = gpu();
    const b = empty(g, 4);
    expect(() => globalAvgPool(g, b, [2, 3, 40], b)).toThrow(/globalAvgPool input: buffer of 256 bytes is too small for 240 f32/);
    expect(() => globalAvgPool(g, b, [4], b)).toThrow(/globalAvgPool: expected an \[N, C, \.\.\.spatial\] shape/);
    expect(() => globalAvgPool(g, b, [1, 1, 4], b, { maxBindingBytes: 8 })).toThrow(/maxBindingBytes of 8 is below/);
  });

  it('plans chunks that never straddle a window', () => {
    const plan = planChunks(1000, 7, 300, 4);
    let next = 0;
    for (const w of plan.windows) {
      expect(w.chunk0).toBe(next);
      expect(w.base % 4).toBe(0);
      expect(w.count).toBeLessThanOrEqual(300);
      next += w.chunks;
    }
    expect(next).toBe(plan.chunksPerSeg * 7);
  });
});

describe('global average pool CPU twin gradcheck', () => {
  it('central differences agree with the backward twin', () => {
    const shape = [2, 3, 2, 3];
    const x = Float64Array.from(randomArray(36, 5));
    const v = Float64Array.from(randomArray(6, 6));
    const num = numericGradient((t) => dot(globalAvgPoolRef(t, shape), v), x);
    expect(maxRelativeError(num, globalAvgPoolBackwardRef(v, shape))).toBeLessThanOrEqual(1);
  });
});
