import { describe, expect, it } from 'vitest';
import { channelGate, channelGateBackward } from '../../src/kernels/channel-gate.js';
import { channelGateBackwardRef, channelGateRef } from '../../src/kernels/reference/channel-gate.js';
import { dot, maxRelativeError, numericGradient } from '../../src/kernels/reference/gradcheck.js';
import { download, empty, expectClose, randomArray, size, upload, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

describe('channel gate: GPU vs CPU twin, forward and backward', () => {
  const cases: [number[], number | undefined][] = [
    [[2, 6, 3, 5, 7], undefined],
    [[2, 4, 4, 4, 6], undefined], // vec4 path
    [[1, 2, 16, 32, 40], undefined], // several chunks per channel for dg
    [[2, 6, 3, 5, 7], 400], // slab path
    [[2, 4, 4, 4, 6], 256], // slab path, vec4
    [[1, 2, 16, 32, 40], 40000], // slab path, chunks + merge
  ];
  for (const [shape, maxBindingBytes] of cases) {
    it(`[${shape}]${maxBindingBytes ? ` in windows of ${maxBindingBytes} bytes` : ''}`, async () => {
      const g = gpu();
      const n = size(shape);
      const NC = shape[0] * shape[1];
      const x = randomArray(n, 1);
      const gate = randomArray(NC, 2, 0, 1);
      const dy = randomArray(n, 3);
      const [xb, gb, dyb] = [upload(g, x), upload(g, gate), upload(g, dy)];
      const [yb, dxb, dgb] = [empty(g, n), empty(g, n), empty(g, NC)];
      channelGate(g, xb, shape, gb, yb, { maxBindingBytes });
      channelGateBackward(g, dyb, xb, shape, gb, dxb, dgb, { maxBindingBytes });
      const ref = channelGateBackwardRef(dy, x, shape, gate);
      expectClose(await download(g, yb, n), channelGateRef(x, shape, gate));
      expectClose(await download(g, dxb, n), ref.dx);
      expectClose(await download(g, dgb, NC), ref.dg);
    });
  }

  it('computes hand-checked values', async () => {
    const g = gpu();
    const yb = empty(g, 4);
    const dgb = empty(g, 2);
    const xb = upload(g, new Float32Array([1, 2, 3, 4]));
    const gb = upload(g, new Float32Array([0.5, -2]));
    channelGate(g, xb, [1, 2, 2], gb, yb);
    channelGateBackward(g, upload(g, new Float32Array([1, 1, 1, -1])), xb, [1, 2, 2], gb, empty(g, 4), dgb);
    expectClose(await download(g, yb, 4), [0.5, 1, -6, -8], 0, 1e-7);
    expectClose(await download(g, dgb, 2), [3, -1], 0, 1e-7);
  });

  it('rejects a gate buffer that is too small', () => {
    const g = gpu();
    const b = empty(g, 1000);
    const small = empty(g, 4);
    expect(() => channelGate(g, b, [2, 100, 4], small, b)).toThrow(/channelGate gate: buffer of 256 bytes is too small for 200 f32/);
  });
});

describe('channel gate CPU twin gradcheck', () => {
  it('central differences agree with the backward twin', () => {
    const shape = [2, 3, 2, 2];
    const x = Float64Array.from(randomArray(24, 4));
    const gate = Float64Array.from(randomArray(6, 5));
    const v = Float64Array.from(randomArray(24, 6));
    const an = channelGateBackwardRef(v, x, shape, gate);
    expect(maxRelativeError(numericGradient((t) => dot(channelGateRef(t, shape, gate), v), x), an.dx)).toBeLessThanOrEqual(1);
    expect(maxRelativeError(numericGradient((t) => dot(channelGateRef(x, shape, t), v), gate), an.dg)).toBeLessThanOrEqual(1);
  });
});
