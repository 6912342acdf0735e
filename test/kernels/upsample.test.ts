import { describe, expect, it } from 'vitest';
import { upsampleTrilinear2x, upsampleTrilinear2xBackward, upsampleTrilinear2xShape } from '../../src/kernels/upsample.js';
import { upsampleTrilinear2xBackwardRef, upsampleTrilinear2xRef } from '../../src/kernels/reference/upsample.js';
import { dot, maxRelativeError, numericGradient } from '../../src/kernels/reference/gradcheck.js';
import type { DType } from '../../src/kernels/runtime/precision.js';
import {
  asStored, download, downloadAs, empty, emptyAs, expectClose, randomArray, runsF16, size, tolerance, upload, uploadAs, useGpu,
} from '../helpers/gpu.js';

const gpu = useGpu();

describe('trilinear x2 upsampling: GPU vs CPU twin, forward and backward', () => {
  // f16: both tensors half; the byte windows are halved so that they hold as many elements as f32's.
  const cases: [number[], number | undefined, DType][] = [
    [[2, 3, 3, 5, 7], undefined, 'f32'], // odd sizes: every border case
    [[1, 2, 1, 1, 1], undefined, 'f32'], // size-1 dims (i1 clamps to i0)
    [[1, 1, 2, 1, 4], undefined, 'f32'],
    [[2, 3, 3, 5, 7], 2600, 'f32'], // slab path: windows of a few depth planes (the backward needs 4 output planes)
    [[1, 2, 4, 6, 6], 3072, 'f32'], // slab path
    [[2, 3, 3, 5, 7], undefined, 'f16'],
    [[2, 3, 3, 5, 7], 1300, 'f16'],
    [[1, 2, 4, 6, 6], 1536, 'f16'],
  ];
  for (const [shape, maxBindingBytes, dtype] of cases) {
    it(`[${shape}] ${dtype}${maxBindingBytes ? ` in windows of ${maxBindingBytes} bytes` : ''}`, async () => {
      const g = gpu();
      const n = size(shape);
      if (!runsF16(g, dtype, () => upsampleTrilinear2x(g, emptyAs(g, n, dtype), shape, emptyAs(g, 8 * n, dtype), { dtype }))) return;
      const x = asStored(randomArray(n, 1), dtype);
      const dy = asStored(randomArray(8 * n, 2), dtype);
      const yb = emptyAs(g, 8 * n, dtype);
      const dxb = emptyAs(g, n, dtype);
      upsampleTrilinear2x(g, uploadAs(g, x, dtype), shape, yb, { maxBindingBytes, dtype });
      upsampleTrilinear2xBackward(g, uploadAs(g, dy, dtype), shape, dxb, { maxBindingBytes, dtype });
      expectClose(await downloadAs(g, yb, 8 * n, dtype), upsampleTrilinear2xRef(x, shape), ...tolerance(dtype));
      expectClose(await downloadAs(g, dxb, n, dtype), upsampleTrilinear2xBackwardRef(dy, shape), ...tolerance(dtype));
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
