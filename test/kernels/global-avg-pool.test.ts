import { describe, expect, it } from 'vitest';
import { globalAvgPool, globalAvgPoolBackward } from '../../src/kernels/global-avg-pool.js';
import { planChunks } from '../../src/kernels/runtime/reduction.js';
import { globalAvgPoolBackwardRef, globalAvgPoolRef } from '../../src/kernels/reference/global-avg-pool.js';
import { dot, maxRelativeError, numericGradient } from '../../src/kernels/reference/gradcheck.js';
import { download, empty, expectClose, randomArray, size, upload, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

describe('global average pool: GPU vs CPU twin', () => {
  const cases: [number[], number | undefined][] = [
    [[2, 6, 3, 5, 7], undefined],
    [[2, 4, 4, 4, 4], undefined], // vec4 backward
    [[1, 2, 16, 32, 40], undefined], // several chunks per channel
    [[2, 3, 7, 8, 9], undefined], // one workgroup-sized chunk per channel
    [[2, 6, 3, 5, 7], 256], // slab path
    [[1, 2, 16, 32, 40], 40000], // slab path, chunks + merge
    [[3, 2], undefined], // no spatial dims: identity
  ];
  for (const [shape, maxBindingBytes] of cases) {
    it(`[${shape}]${maxBindingBytes ? ` in windows of ${maxBindingBytes} bytes` : ''}`, async () => {
      const g = gpu();
      const n = size(shape);
      const NC = shape[0] * shape[1];
      const x = randomArray(n, 1);
      const gr = randomArray(NC, 2);
      const ob = empty(g, NC);
      const dxb = empty(g, n);
      globalAvgPool(g, upload(g, x), shape, ob, { maxBindingBytes });
      globalAvgPoolBackward(g, upload(g, gr), shape, dxb, { maxBindingBytes });
      expectClose(await download(g, ob, NC), globalAvgPoolRef(x, shape), 1e-5, 1e-4);
      expectClose(await download(g, dxb, n), globalAvgPoolBackwardRef(gr, shape), 1e-7, 1e-6);
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
