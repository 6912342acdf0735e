import { describe, expect, it } from 'vitest';
import { groupNormBackward, groupNormCoefficients, groupNormForward } from '../../src/kernels/group-norm.js';
import { groupNormBackwardRef, groupNormRef } from '../../src/kernels/reference/group-norm.js';
import { dot, maxRelativeError, numericGradient } from '../../src/kernels/reference/gradcheck.js';
import type { DType } from '../../src/kernels/runtime/precision.js';
import {
  asStored, download, downloadAs, empty, emptyAs, expectClose, randomArray, runsF16, size, tolerance, upload, uploadAs, useGpu,
} from '../helpers/gpu.js';

const gpu = useGpu();

/**
 * Forward and backward against the float64 twin on the same (for f16: rounded) inputs. x, y, dy, dx are of
 * `dtype`; the statistics, dweight and dbias are f32 sums either way, so they keep f32's tolerance, while y and
 * dx carry one f16 rounding each (tolerance('f16')).
 */
async function runBoth(
  shape: number[], groups: number, relu: boolean, seed: number, maxBindingBytes?: number, offset = 0, atol = 1e-4, fused?: boolean,
  dtype: DType = 'f32',
) {
  const g = gpu();
  const C = shape[1];
  const n = size(shape);
  const x = asStored(randomArray(n, seed, -1 + offset, 1 + offset), dtype);
  const w = randomArray(C, seed + 1, 0.5, 1.5);
  const b = randomArray(C, seed + 2, -0.3, 0.3);
  const dy = asStored(randomArray(n, seed + 3), dtype);
  const NG = shape[0] * groups;
  const [xb, wb, bb, dyb] = [uploadAs(g, x, dtype), upload(g, w), upload(g, b), uploadAs(g, dy, dtype)];
  const [yb, mb, rb, dxb, dwb, dbb] = [emptyAs(g, n, dtype), empty(g, NG), empty(g, NG), emptyAs(g, n, dtype), empty(g, C), empty(g, C)];
  groupNormForward(g, xb, shape, groups, wb, bb, yb, mb, rb, { relu, maxBindingBytes, fused, dtype });
  groupNormBackward(g, dyb, xb, shape, groups, wb, bb, mb, rb, dxb, dwb, dbb, { relu, maxBindingBytes, fused, dtype });
  const ref = groupNormRef(x, shape, groups, w, b, 1e-5, relu);
  const gref = groupNormBackwardRef(dy, x, shape, groups, w, b, 1e-5, relu);
  const gotY = await downloadAs(g, yb, n, dtype);
  const [atolT, rtolT] = tolerance(dtype, atol);
  expectClose(await download(g, mb, NG), ref.mean, 1e-4, 1e-4);
  expectClose(await download(g, rb, NG), ref.rstd, 1e-4, 1e-3);
  expectClose(gotY, ref.y, atolT, rtolT);
  expectClose(await downloadAs(g, dxb, n, dtype), gref.dx, atolT, rtolT);
  expectClose(await download(g, dwb, C), gref.dweight, atol);
  expectClose(await download(g, dbb, C), gref.dbias, atol);
  return { gotY, ref };
}

// fused: one workgroup per (n, g) (software adapters' default); chunked: the hardware path.
describe.each([['fused', true], ['chunked', false]] as const)('group norm (%s): GPU vs CPU twin, forward and backward', (_, fused) => {
  const cases: [number[], number][] = [
    [[2, 6, 3, 5, 7], 3], // odd spatial (scalar path)
    [[2, 6, 3, 5, 7], 6], // one channel per group
    [[2, 6, 3, 5, 7], 1], // one group
    [[2, 1, 4, 5, 3], 1], // C = 1
    [[2, 8, 4, 4, 6], 4], // spatial % 4 == 0 (vec4 path)
    [[1, 4, 6, 7, 9], 2], // channel reductions of one workgroup-sized chunk
  ];
  for (const [shape, G] of cases) {
    for (const relu of [false, true]) {
      it(`[${shape}] G=${G}${relu ? ' + ReLU' : ''}`, async () => {
        await runBoth(shape, G, relu, 10 + G, undefined, 0, 1e-4, fused);
      });
    }
  }

  it('reduces a large group (chunked: several chunks per group; fused: 5120 elements per invocation)', async () => {
    await runBoth([1, 2, 16, 32, 40], 1, true, 5, undefined, 0, 1e-4, fused); // 40960 per group, 20480 per channel
  });

  it('covers tiny groups (fewer elements than invocations) and many groups', async () => {
    await runBoth([3, 32, 1, 1, 2], 16, true, 9, undefined, 0, 1e-4, fused);
    await runBoth([2, 64, 1, 2, 2], 16, false, 11, undefined, 0, 1e-4, fused);
  });

  it('keeps the statistics stable with a large mean (1000 +- 1)', async () => {
    // rstd is checked to rtol 1e-3 inside runBoth; E[x^2] - E[x]^2 in f32 would be off by ~10% here. The outputs
    // carry the f32 rounding of the mean itself (1000 * 6e-8 * rstd ~ 1e-4), hence atol 1e-3.
    const { gotY, ref } = await runBoth([1, 2, 8, 16, 17], 1, false, 7, undefined, 1000, 1e-3, fused);
    expect(maxRelativeError(gotY, ref.y, 1e-3, 1e-3)).toBeLessThanOrEqual(1);
  });
});

describe('group norm slab path (binding windows)', () => {
  for (const [shape, G, bytes] of [[[2, 6, 3, 5, 7], 3, 1000], [[2, 8, 4, 4, 6], 2, 512], [[1, 4, 8, 32, 40], 1, 40000]] as [number[], number, number][]) {
    for (const relu of [false, true]) {
      it(`[${shape}] G=${G} in windows of ${bytes} bytes${relu ? ' + ReLU' : ''}`, async () => {
        // fused is asked for and declined: the tensor does not fit one window.
        await runBoth(shape, G, relu, 20, bytes, 0, 1e-4, true);
      });
    }
  }
});

describe('group norm in f16 (x, y, dy, dx half; statistics and parameter gradients f32)', () => {
  // Each case is also a cold compile of its own pipelines, so few: the scalar and vec4 paths of both kernels,
  // binding windows (the chunked kernels; f16 windows hold twice the elements), and chunks + merge in windows.
  const cases: [string, number[], number, boolean, boolean, number | undefined][] = [
    ['fused, scalar', [2, 6, 3, 5, 7], 3, false, true, undefined],
    ['fused, vec4 + ReLU', [2, 8, 4, 4, 6], 4, true, true, undefined],
    ['chunked, scalar + ReLU', [2, 6, 3, 5, 7], 3, true, false, undefined],
    ['chunked, vec4', [2, 8, 4, 4, 6], 4, false, false, undefined],
    ['windows of 1000 bytes', [2, 6, 3, 5, 7], 3, false, true, 1000],
    ['windows of 512 bytes, vec4 + ReLU', [2, 8, 4, 4, 6], 2, true, true, 512],
    ['windows of 40000 bytes, chunks + merge, ReLU', [1, 4, 8, 32, 40], 1, true, true, 40000],
  ];
  for (const [what, shape, G, relu, fused, bytes] of cases) {
    it(`[${shape}] G=${G} ${what}`, async () => {
      const g = gpu();
      const b = emptyAs(g, size(shape), 'f16');
      if (!runsF16(g, 'f16', () => groupNormForward(g, b, shape, G, b, b, b, b, b, { dtype: 'f16' }))) return;
      if (!runsF16(g, 'f16', () => groupNormBackward(g, b, b, shape, G, b, b, b, b, b, b, b, { dtype: 'f16' }))) return;
      await runBoth(shape, G, relu, 30 + G, bytes, 0, 1e-4, fused, 'f16');
    });
  }

  for (const fused of [true, false]) {
    it(`computes f32 coefficients from an f16 input (${fused ? 'fused' : 'chunked'})`, async () => {
      const g = gpu();
      const shape = [2, 8, 4, 4, 6];
      const [N, C, G] = [2, 8, 4];
      const x = asStored(randomArray(size(shape), 40, -2, 2), 'f16');
      const w = randomArray(C, 41, 0.5, 1.5);
      const bias = randomArray(C, 42, -0.3, 0.3);
      const xb = uploadAs(g, x, 'f16');
      const [mb, rb, cb] = [empty(g, N * G), empty(g, N * G), empty(g, 4 * N * C)];
      const run = () => groupNormCoefficients(g, xb, shape, G, upload(g, w), upload(g, bias), mb, rb, cb, { fused, dtype: 'f16' });
      if (!runsF16(g, 'f16', run)) return;
      run();
      const ref = groupNormRef(x, shape, G, w, bias);
      const coef = Array.from({ length: N * C }, (_, i) => {
        const s = Math.floor(i / C) * G + Math.floor((i % C) / (C / G));
        return [ref.mean[s], ref.rstd[s] * w[i % C], bias[i % C], 0];
      }).flat();
      expectClose(await download(g, cb, 4 * N * C), coef, 1e-4, 1e-3);
    });
  }
});

describe('group norm semantics and errors', () => {
  it('uses the biased variance (PyTorch nn.GroupNorm)', async () => {
    const g = gpu();
    const x = new Float32Array([1, 2, 3, 4]);
    const [yb, mb, rb] = [empty(g, 4), empty(g, 1), empty(g, 1)];
    groupNormForward(g, upload(g, x), [1, 1, 4], 1, upload(g, new Float32Array([1])), upload(g, new Float32Array([0])), yb, mb, rb);
    const y = await download(g, yb, 4);
    // mean 2.5, biased variance 1.25 (unbiased would be 1.6667)
    expect(y[0]).toBeCloseTo(-1.5 / Math.sqrt(1.25 + 1e-5), 5);
    expect(y[3]).toBeCloseTo(1.5 / Math.sqrt(1.25 + 1e-5), 5);
    expect((await download(g, mb, 1))[0]).toBeCloseTo(2.5, 6);
    expect((await download(g, rb, 1))[0]).toBeCloseTo(1 / Math.sqrt(1.25 + 1e-5), 5);
  });

  it('matches PyTorch 1.13 nn.GroupNorm(1, 2) on a pinned input', async () => {
    const g = gpu();
    const yb = empty(g, 8);
    groupNormForward(g, upload(g, new Float32Array([1, 2, 3, 4, 0.5, -1, 2, 7])), [1, 2, 4], 1,
      upload(g, new Float32Array([1, 1])), upload(g, new Float32Array([0, 0])), yb, empty(g, 1), empty(g, 1));
    expectClose(await download(g, yb, 8), [
      -0.5764788977475661, -0.1372568804160872, 0.30196513691539173, 0.7411871542468706,
      -0.7960899064133056, -1.454922932410524, -0.1372568804160872, 2.0588532062413076,
    ], 1e-6, 1e-5);
  });

  it('applies eps and the fused ReLU', async () => {
    const g = gpu();
    const x = new Float32Array([0, 0, 2, 2]);
    const yb = empty(g, 4);
    groupNormForward(g, upload(g, x), [1, 2, 2], 1, upload(g, new Float32Array([2, 2])), upload(g, new Float32Array([0, 1])),
      yb, empty(g, 1), empty(g, 1), { eps: 0.01, relu: true });
    const r = 1 / Math.sqrt(1 + 0.01);
    expectClose(await download(g, yb, 4), [0, 0, 2 * r + 1, 2 * r + 1], 1e-6, 1e-6);
  });

  it('names the op, G and C when G does not divide C', () => {
    const g = gpu();
    const b = empty(g, 1024);
    expect(() => groupNormForward(g, b, [2, 6, 4], 4, b, b, b, b, b)).toThrow(/groupNorm: groups G=4 .*channels C=6/);
    expect(() => groupNormBackward(g, b, b, [2, 6, 4], 0, b, b, b, b, b, b, b)).toThrow(/groupNormBackward: groups G=0/);
  });
});

describe('group norm CPU twin gradcheck', () => {
  for (const relu of [false, true]) {
    it(`central differences agree with the analytic backward${relu ? ' (ReLU fused)' : ''}`, () => {
      const shape = [2, 4, 3];
      const G = 2;
      const x = Float64Array.from(randomArray(24, 1, -2, 2));
      const w = Float64Array.from(randomArray(4, 2, 0.5, 1.5));
      const b = Float64Array.from(randomArray(4, 3, -0.5, 0.5));
      const v = Float64Array.from(randomArray(24, 4));
      const loss = (xx: Float64Array, ww: Float64Array, bb: Float64Array) => dot(groupNormRef(xx, shape, G, ww, bb, 1e-5, relu).y, v);
      const an = groupNormBackwardRef(v, x, shape, G, w, b, 1e-5, relu);
      expect(maxRelativeError(numericGradient((t) => loss(t, w, b), x), an.dx)).toBeLessThanOrEqual(1);
      expect(maxRelativeError(numericGradient((t) => loss(x, t, b), w), an.dweight)).toBeLessThanOrEqual(1);
      expect(maxRelativeError(numericGradient((t) => loss(x, w, t), b), an.dbias)).toBeLessThanOrEqual(1);
    });
  }
});
