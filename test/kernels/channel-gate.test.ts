import { describe, expect, it } from 'vitest';
import { channelGate, channelGateBackward } from '../../src/kernels/channel-gate.js';
import { channelGateBackwardRef, channelGateRef } from '../../src/kernels/reference/channel-gate.js';
import { dot, maxRelativeError, numericGradient } from '../../src/kernels/reference/gradcheck.js';
import type { DType } from '../../src/kernels/runtime/precision.js';
import {
  asStored, download, downloadAs, empty, emptyAs, expectClose, randomArray, runsF16, size, tolerance, upload, uploadAs, useGpu,
} from '../helpers/gpu.js';

const gpu = useGpu();

describe('channel gate: GPU vs CPU twin, forward and backward', () => {
  // f16 (x, y, dy, dx half; the gate and dg f32): the scalar path, vec4 windows, and chunks + merge in windows.
  const cases: [number[], number | undefined, DType][] = [
    [[2, 6, 3, 5, 7], undefined, 'f32'],
    [[2, 4, 4, 4, 6], undefined, 'f32'], // vec4 path
    [[1, 2, 16, 32, 40], undefined, 'f32'], // several chunks per channel for dg
    [[2, 6, 3, 5, 7], 400, 'f32'], // slab path
    [[2, 4, 4, 4, 6], 256, 'f32'], // slab path, vec4
    [[1, 2, 16, 32, 40], 40000, 'f32'], // slab path, chunks + merge
    [[2, 6, 3, 5, 7], undefined, 'f16'],
    [[2, 4, 4, 4, 6], 256, 'f16'],
    [[1, 2, 16, 32, 40], 40000, 'f16'],
  ];
  for (const [shape, maxBindingBytes, dtype] of cases) {
    it(`[${shape}] ${dtype}${maxBindingBytes ? ` in windows of ${maxBindingBytes} bytes` : ''}`, async () => {
      const g = gpu();
      const n = size(shape);
      const NC = shape[0] * shape[1];
      if (!runsF16(g, dtype, () => channelGate(g, emptyAs(g, n, dtype), shape, empty(g, NC), emptyAs(g, n, dtype), { dtype }))) return;
      const x = asStored(randomArray(n, 1), dtype);
      const gate = randomArray(NC, 2, 0, 1);
      const dy = asStored(randomArray(n, 3), dtype);
      const [xb, gb, dyb] = [uploadAs(g, x, dtype), upload(g, gate), uploadAs(g, dy, dtype)];
      const [yb, dxb, dgb] = [emptyAs(g, n, dtype), emptyAs(g, n, dtype), empty(g, NC)];
      channelGate(g, xb, shape, gb, yb, { maxBindingBytes, dtype });
      channelGateBackward(g, dyb, xb, shape, gb, dxb, dgb, { maxBindingBytes, dtype });
      const ref = channelGateBackwardRef(dy, x, shape, gate);
      expectClose(await downloadAs(g, yb, n, dtype), channelGateRef(x, shape, gate), ...tolerance(dtype));
      expectClose(await downloadAs(g, dxb, n, dtype), ref.dx, ...tolerance(dtype));
      // dg is an f32 sum of the stored values: f32's tolerance either way.
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
