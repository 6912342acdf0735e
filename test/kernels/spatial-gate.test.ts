import { describe, expect, it } from 'vitest';
import { dot, maxRelativeError, numericGradient } from '../../src/kernels/reference/gradcheck.js';
import { spatialGateBackwardRef, spatialGateRef } from '../../src/kernels/reference/spatial-gate.js';
import { spatialGate, spatialGateBackward } from '../../src/kernels/spatial-gate.js';
import { download, empty, expectClose, randomArray, size, upload, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

describe('spatial gate: GPU vs CPU twin, forward and backward', () => {
  const cases: [number[], number | undefined][] = [
    [[2, 6, 3, 5, 7], undefined],
    [[1, 3, 4, 4, 4], undefined],
    [[3, 5, 2, 3, 9], 1024], // one window per sample, channels in chunks accumulated for dg
    [[2, 6, 3, 5, 7], 3000], // one window per sample, the second not on an alignment boundary
    [[2, 4, 4, 4, 4], 2048], // a whole sample per window
  ];
  for (const [shape, maxBindingBytes] of cases) {
    it(`[${shape}]${maxBindingBytes ? ` in windows of ${maxBindingBytes} bytes` : ''}`, async () => {
      const g = gpu();
      const n = size(shape);
      const NS = n / shape[1];
      const x = randomArray(n, 1);
      const gate = randomArray(NS, 2, 0, 1);
      const dy = randomArray(n, 3);
      const [xb, gb, dyb] = [upload(g, x), upload(g, gate), upload(g, dy)];
      const [yb, dxb, dgb] = [empty(g, n), empty(g, n), empty(g, NS)];
      spatialGate(g, xb, shape, gb, yb, { maxBindingBytes });
      spatialGateBackward(g, dyb, xb, shape, gb, dxb, dgb, { maxBindingBytes });
      const ref = spatialGateBackwardRef(dy, x, shape, gate);
      expectClose(await download(g, yb, n), spatialGateRef(x, shape, gate));
      expectClose(await download(g, dxb, n), ref.dx);
      expectClose(await download(g, dgb, NS), ref.dg);
    });
  }

  it('computes hand-checked values', async () => {
    const g = gpu();
    // x [1, 2, 2]: channel 0 = [1, 2], channel 1 = [3, 4]; gate per voxel [0.5, -2]
    const xb = upload(g, new Float32Array([1, 2, 3, 4]));
    const gb = upload(g, new Float32Array([0.5, -2]));
    const [yb, dxb, dgb] = [empty(g, 4), empty(g, 4), empty(g, 2)];
    spatialGate(g, xb, [1, 2, 2], gb, yb);
    spatialGateBackward(g, upload(g, new Float32Array([1, 1, 1, -1])), xb, [1, 2, 2], gb, dxb, dgb);
    expectClose(await download(g, yb, 4), [0.5, -4, 1.5, -8], 0, 1e-7);
    expectClose(await download(g, dxb, 4), [0.5, -2, 0.5, 2], 0, 1e-7);
    expectClose(await download(g, dgb, 2), [4, -2], 0, 1e-7);
  });

  it('rejects a gate buffer that is too small and a sample too large for a window', () => {
    const g = gpu();
    const b = empty(g, 1000);
    const small = empty(g, 4);
    expect(() => spatialGate(g, b, [2, 2, 100], small, b)).toThrow(/spatialGate gate: buffer of 256 bytes is too small for 200 f32/);
    expect(() => spatialGate(g, b, [1, 2, 500], b, b, { maxBindingBytes: 1024 })).toThrow(/spatialGate: one sample's gate has 500 voxels, more than one storage binding window holds/);
  });
});

describe('spatial gate CPU twin gradcheck', () => {
  it('central differences agree with the backward twin', () => {
    const shape = [2, 3, 2, 2];
    const x = Float64Array.from(randomArray(24, 4));
    const gate = Float64Array.from(randomArray(8, 5));
    const v = Float64Array.from(randomArray(24, 6));
    const an = spatialGateBackwardRef(v, x, shape, gate);
    expect(maxRelativeError(numericGradient((t) => dot(spatialGateRef(t, shape, gate), v), x), an.dx)).toBeLessThanOrEqual(1);
    expect(maxRelativeError(numericGradient((t) => dot(spatialGateRef(x, shape, t), v), gate), an.dg)).toBeLessThanOrEqual(1);
  });
});
