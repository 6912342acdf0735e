import { describe, expect, it } from 'vitest';
import { dot, maxRelativeError, numericGradient } from '../../src/kernels/reference/gradcheck.js';
import { spatialGateBackwardRef, spatialGateRef } from '../../src/kernels/reference/spatial-gate.js';
import type { DType } from '../../src/kernels/runtime/precision.js';
import { spatialGate, spatialGateBackward } from '../../src/kernels/spatial-gate.js';
import {
  asStored, download, downloadAs, empty, emptyAs, expectClose, randomArray, runsF16, size, tolerance, upload, uploadAs, useGpu,
} from '../helpers/gpu.js';

const gpu = useGpu();

describe('spatial gate: GPU vs CPU twin, forward and backward', () => {
  // f16: every tensor half (the gate and its gradient are volumes too); f16 windows hold twice the elements.
  const cases: [number[], number | undefined, DType][] = [
    [[2, 6, 3, 5, 7], undefined, 'f32'],
    [[1, 3, 4, 4, 4], undefined, 'f32'],
    [[3, 5, 2, 3, 9], 1024, 'f32'], // one window per sample, channels in chunks accumulated for dg
    [[2, 6, 3, 5, 7], 3000, 'f32'], // one window per sample, the second not on an alignment boundary
    [[2, 4, 4, 4, 4], 2048, 'f32'], // a whole sample per window
    [[2, 6, 3, 5, 7], undefined, 'f16'],
    [[3, 5, 2, 3, 9], 512, 'f16'], // channels in chunks: dg summed in an f32 scratch, rounded once
    [[2, 6, 3, 5, 7], 1500, 'f16'], // one window per sample, the second not on an alignment boundary
  ];
  for (const [shape, maxBindingBytes, dtype] of cases) {
    it(`[${shape}] ${dtype}${maxBindingBytes ? ` in windows of ${maxBindingBytes} bytes` : ''}`, async () => {
      const g = gpu();
      const n = size(shape);
      const NS = n / shape[1];
      if (!runsF16(g, dtype, () => spatialGate(g, emptyAs(g, n, dtype), shape, emptyAs(g, NS, dtype), emptyAs(g, n, dtype), { dtype }))) return;
      const x = asStored(randomArray(n, 1), dtype);
      const gate = asStored(randomArray(NS, 2, 0, 1), dtype);
      const dy = asStored(randomArray(n, 3), dtype);
      const [xb, gb, dyb] = [uploadAs(g, x, dtype), uploadAs(g, gate, dtype), uploadAs(g, dy, dtype)];
      const [yb, dxb, dgb] = [emptyAs(g, n, dtype), emptyAs(g, n, dtype), emptyAs(g, NS, dtype)];
      spatialGate(g, xb, shape, gb, yb, { maxBindingBytes, dtype });
      spatialGateBackward(g, dyb, xb, shape, gb, dxb, dgb, { maxBindingBytes, dtype });
      const ref = spatialGateBackwardRef(dy, x, shape, gate);
      expectClose(await downloadAs(g, yb, n, dtype), spatialGateRef(x, shape, gate), ...tolerance(dtype));
      expectClose(await downloadAs(g, dxb, n, dtype), ref.dx, ...tolerance(dtype));
      expectClose(await downloadAs(g, dgb, NS, dtype), ref.dg, ...tolerance(dtype));
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
