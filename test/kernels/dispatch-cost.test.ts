import { describe, expect, it } from 'vitest';
import { conv3dBackwardData, conv3dBackwardWeight, conv3dForward, conv3dOutputShape, type Conv3dOptions } from '../../src/kernels/conv3d/index.js';
import { binary, unary } from '../../src/kernels/elementwise.js';
import { matmul } from '../../src/kernels/matmul.js';
import type { DispatchCost } from '../../src/kernels/runtime/dispatch-counter.js';
import { randomArray, upload, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

function counted(record: () => void): DispatchCost {
  gpu().startCounting();
  try {
    record();
  } catch (e) {
    // A failing launcher must not leave counting on for the next test.
    gpu().stopCounting();
    throw e;
  }
  return gpu().stopCounting();
}

const conv = (n: number, cin: number, cout: number, dhw: [number, number, number], k: number, s: number, p: number) => {
  const x = [n, cin, ...dhw];
  const w = [cout, cin, k, k, k];
  const out = conv3dOutputShape(x, w, { stride: s, padding: p });
  const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  const flops = 2 * n * cout * cin * k ** 3 * out[2] * out[3] * out[4];
  return { shape: { x, w, stride: s, padding: p }, xSize: size(x), wSize: size(w), outSize: size(out), flops };
};

describe('dispatch cost counter', () => {
  it('counts an element-wise op: bytes of its windows, and a broadcast operand at its logical size', () => {
    const n = 1000;
    const x = upload(gpu(), randomArray(n, 1));
    const y = gpu().pool.acquire(n * 4, 'y');
    const relu = counted(() => unary(gpu(), 'relu', x, y, n));
    expect(relu.dispatches).toBe(1);
    expect(relu.kernels).toEqual([{ label: 'unary:relu', dispatches: 1, bytesRead: 4 * n, bytesWritten: 4 * n, flops: 0 }]);
    expect(relu.bytesRead).toBe(4 * n);
    expect(relu.bytesWritten).toBe(4 * n);
    expect(relu.flops).toBe(0);
    // b ([1, 3, 1], 12 bytes) is bound as a whole buffer of its 256-byte size class: counted as 12.
    const a = upload(gpu(), randomArray(48, 2));
    const b = upload(gpu(), randomArray(3, 3));
    expect(b.size).toBe(256);
    expect(gpu().pool.requestedBytes(b)).toBe(12);
    const out = gpu().pool.acquire(48 * 4, 'out');
    const add = counted(() => binary(gpu(), 'add', a, [2, 3, 8], b, [1, 3, 1], out));
    expect(add.kernels).toEqual([{ label: 'binary:add', dispatches: 1, bytesRead: 192 + 12, bytesWritten: 192, flops: 0 }]);
    for (const buf of [x, y, a, b, out]) gpu().pool.release(buf);
  });

  it('counts a conv3d forward exactly: input + weight read, output written, 2*N*Cout*Cin*k^3*Do*Ho*Wo FLOPs', () => {
    const c = conv(2, 3, 4, [4, 5, 6], 3, 1, 1);
    const x = upload(gpu(), randomArray(c.xSize, 4));
    const w = upload(gpu(), randomArray(c.wSize, 5));
    const y = gpu().pool.acquire(c.outSize * 4, 'y');
    for (const options of [{ direct: true }, { direct: false, tile: { bm: 8, bn: 32, bk: 4, tm: 2, tn: 2 } }] as Conv3dOptions[]) {
      const cost = counted(() => conv3dForward(gpu(), x, w, null, y, c.shape, options));
      expect(cost.dispatches).toBe(1);
      expect(cost.kernels.map((k) => k.label)).toEqual(['conv3d:fwd']);
      expect(cost.bytesRead).toBe(4 * (c.xSize + c.wSize));
      expect(cost.bytesWritten).toBe(4 * c.outSize);
      expect(cost.flops).toBe(c.flops);
    }
    // In slabs (a 2 KiB binding forces per-sample channel slabs): the FLOPs still add up to the pass's.
    const slabbed = counted(() => conv3dForward(gpu(), x, w, null, y, c.shape, {
      direct: false, tile: { bm: 8, bn: 32, bk: 4, tm: 2, tn: 2 }, maxBindingBytes: 2048,
    }));
    expect(slabbed.dispatches).toBeGreaterThan(1);
    expect(slabbed.flops).toBeCloseTo(c.flops, 6);
    expect(slabbed.bytesWritten).toBeGreaterThanOrEqual(4 * c.outSize);
    for (const buf of [x, w, y]) gpu().pool.release(buf);
  });

  it('gives both conv3d gradients the forward pass FLOPs on every path, strided included', () => {
    for (const [s, direct] of [[1, true], [1, false], [2, true], [2, false]] as const) {
      const c = conv(2, 3, 4, [4, 5, 6], 3, s, 1);
      const options: Conv3dOptions = direct ? { direct } : { direct, tile: { bm: 8, bn: 32, bk: 4, tm: 2, tn: 2 } };
      const x = upload(gpu(), randomArray(c.xSize, 6));
      const w = upload(gpu(), randomArray(c.wSize, 7));
      const gy = upload(gpu(), randomArray(c.outSize, 8));
      const gx = gpu().pool.acquire(c.xSize * 4, 'gx');
      const gw = gpu().pool.acquire(c.wSize * 4, 'gw');
      const data = counted(() => conv3dBackwardData(gpu(), gy, w, gx, c.shape, options));
      expect(data.flops, `dgrad stride ${s} direct ${direct}`).toBeCloseTo(c.flops, 6);
      expect(data.kernels.find((k) => k.label === 'conv3d:dgrad')?.flops).toBeCloseTo(c.flops, 6);
      const weight = counted(() => conv3dBackwardWeight(gpu(), x, gy, gw, c.shape, options));
      expect(weight.flops, `wgrad stride ${s} direct ${direct}`).toBeCloseTo(c.flops, 6);
      // The split-K partial sums are summed by a second kernel: it reads the partials, writes gradW.
      const wgrad = weight.kernels.find((k) => k.label === 'conv3d:wgrad');
      expect(wgrad?.bytesRead).toBe(4 * (c.xSize + c.outSize));
      for (const buf of [x, w, gy, gx, gw]) gpu().pool.release(buf);
    }
  });

  it('counts matmul FLOPs as 2*batch*m*n*k', () => {
    const [m, n, k, batch] = [5, 6, 7, 3];
    const a = upload(gpu(), randomArray(batch * m * k, 9));
    const b = upload(gpu(), randomArray(k * n, 10));
    const out = gpu().pool.acquire(batch * m * n * 4, 'out');
    const cost = counted(() => matmul(gpu(), a, b, out, { m, n, k, batch, batchStrideB: 0 }));
    expect(cost.flops).toBe(2 * batch * m * n * k);
    expect(cost.bytesRead).toBe(4 * (batch * m * k + k * n));
    expect(cost.bytesWritten).toBe(4 * batch * m * n);
    for (const buf of [a, b, out]) gpu().pool.release(buf);
  });

  it('costs nothing when off: dispatches outside a count leave its counters untouched', async () => {
    const n = 64;
    const x = upload(gpu(), randomArray(n, 11));
    const y = gpu().pool.acquire(n * 4, 'y');
    expect(gpu().isCounting).toBe(false);
    unary(gpu(), 'relu', x, y, n);
    gpu().copy(x, 0, y, 0, n * 4);
    const empty = counted(() => undefined);
    expect(empty).toEqual({ dispatches: 0, submits: 0, bytesRead: 0, bytesWritten: 0, flops: 0, copies: 0, copyBytes: 0, kernels: [] });
    const one = counted(() => {
      unary(gpu(), 'neg', x, y, n);
      gpu().copy(x, 0, y, 0, n * 4);
    });
    expect(one.kernels.map((k) => k.label)).toEqual(['unary:neg']);
    expect([one.copies, one.copyBytes]).toEqual([1, n * 4]);
    expect(gpu().isCounting).toBe(false);
    unary(gpu(), 'relu', x, y, n);
    expect(counted(() => undefined).dispatches).toBe(0);
    await gpu().sync();
    gpu().pool.release(x);
    gpu().pool.release(y);
  });
});
