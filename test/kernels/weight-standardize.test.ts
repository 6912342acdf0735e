import { describe, expect, it } from 'vitest';
import { weightStandardize, weightStandardizeBackward } from '../../src/kernels/weight-standardize.js';
import { weightStandardizeBackwardRef, weightStandardizeRef } from '../../src/kernels/reference/weight-standardize.js';
import { dot, maxRelativeError, numericGradient } from '../../src/kernels/reference/gradcheck.js';
import { download, empty, expectClose, randomArray, size, upload, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

// narrow: one 8-lane workgroup per filter, vec4 where K % 4 == 0 (software adapters' default); wide: 256 lanes.
describe.each([['narrow', true], ['wide', false]] as const)('weight standardisation (%s): GPU vs CPU twin, forward and backward', (_, narrow) => {
  const cases: number[][] = [
    [6, 5, 3, 3, 3], // k3
    [7, 3, 1, 1, 1], // 1x1x1, K = 3
    [5, 4, 1, 1, 1], // K = 4: one vec4 per filter
    [4, 40, 3, 3, 3], // K = 1080 > workgroup size (vec4)
    [32, 1, 3, 3, 3], // the stem conv
  ];
  for (const shape of cases) {
    it(`[${shape}]`, async () => {
      const g = gpu();
      const n = size(shape);
      const cout = shape[0];
      const w = randomArray(n, 1, -0.2, 0.3);
      const dwhat = randomArray(n, 2);
      const [wb, whb, mb, rb, dwb] = [upload(g, w), empty(g, n), empty(g, cout), empty(g, cout), empty(g, n)];
      weightStandardize(g, wb, shape, whb, mb, rb, { narrow });
      weightStandardizeBackward(g, upload(g, dwhat), wb, shape, mb, rb, dwb, { narrow });
      const ref = weightStandardizeRef(w, shape);
      expectClose(await download(g, whb, n), ref.what);
      expectClose(await download(g, mb, cout), ref.mean, 1e-6, 1e-4);
      expectClose(await download(g, rb, cout), ref.rstd, 1e-4, 1e-4);
      expectClose(await download(g, dwb, n), weightStandardizeBackwardRef(dwhat, w, shape));
    });
  }

  it('uses the unbiased variance (torch.var) and matches PyTorch 1.13 values', async () => {
    const g = gpu();
    const wb = upload(g, new Float32Array([1, 2, 3, 4, 0, 0, 1, 5]));
    const whb = empty(g, 8);
    weightStandardize(g, wb, [2, 4], whb, empty(g, 2), empty(g, 2));
    // [1, 2, 3, 4]: mean 2.5, unbiased variance 5/3 (biased would be 1.25): (1 - 2.5) / sqrt(5/3) = -1.161895
    expectClose(await download(g, whb, 8), [
      -1.1618950038618763, -0.38729833462062546, 0.38729833462062546, 1.1618950038618763,
      -0.6301260378125488, -0.6301260378125488, -0.21004201260418293, 1.4702940882292805,
    ], 1e-6, 1e-5);
  });

  it('rejects filters of a single element and too-small buffers', () => {
    const g = gpu();
    const b = empty(g, 64);
    expect(() => weightStandardize(g, b, [4, 1, 1, 1, 1], b, b, b)).toThrow(/weightStandardize: each filter of \[4, 1, 1, 1, 1\] has 1 element/);
    expect(() => weightStandardize(g, b, [8, 4, 3, 3, 3], b, b, b)).toThrow(/weightStandardize weight: buffer of 256 bytes is too small for 864/);
  });
});

describe('weight standardisation CPU twin gradcheck', () => {
  it('central differences agree with the backward twin', () => {
    const shape = [3, 2, 2, 2, 1];
    const w = Float64Array.from(randomArray(24, 3));
    const v = Float64Array.from(randomArray(24, 4));
    const num = numericGradient((t) => dot(weightStandardizeRef(t, shape).what, v), w);
    expect(maxRelativeError(num, weightStandardizeBackwardRef(v, w, shape))).toBeLessThanOrEqual(1);
  });
});
