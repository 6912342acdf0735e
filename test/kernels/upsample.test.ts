import { describe, expect, it } from 'vitest';
import { upsampleTrilinear2x, upsampleTrilinear2xBackward, upsampleTrilinear2xShape } from '../../src/kernels/upsample.js';
import { upsampleTrilinear2xBackwardRef, upsampleTrilinear2xRef } from '../../src/kernels/reference/upsample.js';
import { dot, maxRelativeError, numericGradient } from '../../src/kernels/reference/gradcheck.js';
import { download, empty, expectClose, randomArray, size, upload, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

describe('trilinear x2 upsampling: GPU vs CPU twin, forward and backward', () => {
  const cases: [number[], number | undefined][] = [
    [[2, 3, 3, 5, 7], undefined], // odd sizes: every border case
    [[1, 2, 1, 1, 1], undefined], // size-1 dims (i1 clamps to i0)
    [[1, 1, 2, 1, 4], undefined],
    [[2, 3, 3, 5, 7], 2600], // slab path: windows of a few depth planes (the backward needs 4 output planes)
    [[1, 2, 4, 6, 6], 3072], // slab path
  ];
  for (const [shape, maxBindingBytes] of cases) {
    it(`[${shape}]${maxBindingBytes ? ` in windows of ${maxBindingBytes} bytes` : ''}`, async () => {
      const g = gpu();
      const n = size(shape);
      const x = randomArray(n, 1);
      const dy = randomArray(8 * n, 2);
      const yb = empty(g, 8 * n);
      const dxb = empty(g, n);
      upsampleTrilinear2x(g, upload(g, x), shape, yb, { maxBindingBytes });
      upsampleTrilinear2xBackward(g, upload(g, dy), shape, dxb, { maxBindingBytes });
      expectClose(await download(g, yb, 8 * n), upsampleTrilinear2xRef(x, shape));
      expectClose(await download(g, dxb, n), upsampleTrilinear2xBackwardRef(dy, shape));
    });
  }

  it('forward in windows of one output depth plane', async () => {
    const g = gpu();
    const shape = [1, 2, 4, 6, 6];
    const x = randomArray(288, 5);
    const yb = empty(g, 288 * 8);
    upsampleTrilinear2x(g, upload(g, x), shape, yb, { maxBindingBytes: 1100 });
    expectClose(await download(g, yb, 288 * 8), upsampleTrilinear2xRef(x, shape));
    expect(() => upsampleTrilinear2xBackward(g, yb, shape, empty(g, 288), { maxBindingBytes: 1100 }))
      .toThrow(/upsampleTrilinear2xBackward: one depth plane of \[1, 2, 4, 6, 6\] needs windows of/);
  });

  it('matches PyTorch on a 1-D ramp [0, 1, 2] -> [0, 0.25, 0.75, 1.25, 1.75, 2]', async () => {
    const g = gpu();
    const yb = empty(g, 24);
    upsampleTrilinear2x(g, upload(g, new Float32Array([0, 1, 2])), [1, 1, 1, 1, 3], yb);
    const y = await download(g, yb, 24);
    const row = [0, 0.25, 0.75, 1.25, 1.75, 2];
    expectClose(y, [...row, ...row, ...row, ...row], 0, 1e-7);
    // Adjoint of the ramp's weights: input 0 gets 1 + 0.75 + 0.25 from outputs 0, 1, 2 of a ones gradient, etc.
    const dxb = empty(g, 3);
    upsampleTrilinear2xBackward(g, upload(g, new Float32Array(24).fill(1)), [1, 1, 1, 1, 3], dxb);
    expectClose(await download(g, dxb, 3), [2 * 4, 2 * 4, 2 * 4], 0, 1e-7);
  });

  it('matches values from PyTorch 1.13 F.interpolate on a 3x5x7 volume (borders included)', async () => {
    const g = gpu();
    const x = Float32Array.from({ length: 105 }, (_, i) => i ** 1.5 / 100);
    const yb = empty(g, 840);
    upsampleTrilinear2x(g, upload(g, x), [1, 1, 3, 5, 7], yb);
    const y = await download(g, yb, 840);
    const at = (d: number, h: number, w: number) => y[(d * 10 + h) * 14 + w];
    // torch: x = arange(105).reshape(1,1,3,5,7) ** 1.5 / 100; F.interpolate(x, scale_factor=2, mode='trilinear')
    const pinned: [number, number, number, number][] = [
      [0, 0, 0, 0], [5, 9, 13, 10.6059605883], [1, 2, 3, 0.8059070949], [4, 7, 0, 7.8002859067],
      [2, 0, 13, 2.0057030492], [3, 5, 8, 5.1387941804],
    ];
    for (const [d, h, w, v] of pinned) expect(at(d, h, w)).toBeCloseTo(v, 4);
  });

  it('rejects an upsampled tensor beyond maxBufferSize, naming the shape, bytes and limit', () => {
    const g = gpu();
    const b = empty(g, 64);
    const limit = g.limits.maxBufferSize;
    expect(() => upsampleTrilinear2x(g, b, [2, 32, 128, 384, 384], b)).toThrow(
      new RegExp(`upsampleTrilinear2x: upsampling \\[2, 32, 128, 384, 384\\] gives \\[2, 32, 256, 768, 768\\], which needs ${2 * 32 * 256 * 768 * 768 * 4} bytes, more than this device's maxBufferSize of ${limit} bytes`),
    );
    expect(() => upsampleTrilinear2xBackward(g, b, [2, 32, 128, 384, 384], b)).toThrow(/upsampleTrilinear2xBackward: upsampling/);
    expect(() => upsampleTrilinear2xShape([1, 2, 3])).toThrow(/expected an \[N, C, D, H, W\] shape, got \[1, 2, 3\]/);
  });
});

describe('upsampling CPU twin gradcheck', () => {
  it('central differences agree with the backward twin', () => {
    const shape = [1, 2, 2, 3, 3];
    const x = Float64Array.from(randomArray(36, 3));
    const v = Float64Array.from(randomArray(36 * 8, 4));
    const num = numericGradient((t) => dot(upsampleTrilinear2xRef(t, shape), v), x);
    expect(maxRelativeError(num, upsampleTrilinear2xBackwardRef(v, shape))).toBeLessThanOrEqual(1);
  });
});
