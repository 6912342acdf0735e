import { describe, expect, it } from 'vitest';
import {
  chooseConv3dTile, conv3dBackwardBias, conv3dBackwardData, conv3dBackwardWeight, conv3dForward, conv3dOutputShape,
  type Conv3dOptions, type Conv3dShape,
} from '../../src/kernels/conv3d/index.js';
import {
  conv3dBackwardBiasRef, conv3dBackwardDataRef, conv3dBackwardWeightRef, conv3dRef,
} from '../../src/kernels/reference/conv3d.js';
import { setStraightLineTaps } from '../../src/kernels/conv3d/direct/common.js';
import { dot, maxRelativeError, numericGradient } from '../../src/kernels/reference/gradcheck.js';
import { observePipelines } from '../../src/kernels/runtime/gpu.js';
import { download, empty, expectClose, randomArray, upload, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();
const ATOL = 1e-4;
const RTOL = 1e-3;

interface Case {
  n: number; cin: number; cout: number; dhw: [number, number, number];
  k: number; s: number; p: number; bias: boolean;
  options?: Conv3dOptions;
  /** Only the forward pass (for a tile that is costly to compile on lavapipe). */
  forwardOnly?: boolean;
}

const prod = (a: readonly number[]) => a.reduce((x, y) => x * y, 1);

/** Runs the four GPU kernels on one case and checks each against its CPU twin; returns the dispatches recorded. */
async function check(c: Case, seed: number): Promise<number> {
  const g = gpu();
  const shape: Conv3dShape = { x: [c.n, c.cin, ...c.dhw], w: [c.cout, c.cin, c.k, c.k, c.k], stride: c.s, padding: c.p };
  const outShape = conv3dOutputShape(shape.x, shape.w, shape);
  const nx = prod(shape.x);
  const nw = prod(shape.w);
  const ny = prod(outShape);
  const wScale = 1 / Math.sqrt(c.cin * c.k ** 3);
  const x = randomArray(nx, seed, -1, 1);
  const w = randomArray(nw, seed + 1, -wScale, wScale);
  const b = c.bias ? randomArray(c.cout, seed + 2, -1, 1) : null;
  const gScale = 1 / Math.sqrt(ny / c.cout);
  const gy = randomArray(ny, seed + 3, -gScale, gScale);
  const [xb, wb, gyb] = [upload(g, x), upload(g, w), upload(g, gy)];
  const bb = b ? upload(g, b) : null;
  const [yb, gxb, gwb, gbb] = [empty(g, ny), empty(g, nx), empty(g, nw), empty(g, c.cout)];
  const before = g.dispatchCount;
  conv3dForward(g, xb, wb, bb, yb, shape, c.options);
  if (!c.forwardOnly) {
    conv3dBackwardData(g, gyb, wb, gxb, shape, c.options);
    conv3dBackwardWeight(g, xb, gyb, gwb, shape, c.options);
    conv3dBackwardBias(g, gyb, gbb, shape, c.options);
  }
  const dispatches = g.dispatchCount - before;
  const ref = conv3dRef(x, w, b, shape);
  expect(ref.shape).toEqual(outShape);
  expectClose(await download(g, yb, ny), ref.data, ATOL, RTOL);
  if (c.forwardOnly) {
    for (const buf of [xb, wb, gyb, yb, gxb, gwb, gbb]) g.pool.release(buf);
    if (bb) g.pool.release(bb);
    return dispatches;
  }
  expectClose(await download(g, gxb, nx), conv3dBackwardDataRef(gy, w, shape), ATOL, RTOL);
  expectClose(await download(g, gwb, nw), conv3dBackwardWeightRef(x, gy, shape), ATOL, RTOL);
  expectClose(await download(g, gbb, c.cout), conv3dBackwardBiasRef(gy, shape), ATOL, RTOL);
  for (const buf of [xb, wb, gyb, yb, gxb, gwb, gbb]) g.pool.release(buf);
  if (bb) g.pool.release(bb);
  return dispatches;
}

const label = (c: Case) =>
  `N${c.n} ${c.cin}->${c.cout} ${c.dhw.join('x')} k${c.k} s${c.s} p${c.p}${c.bias ? ' bias' : ''}` +
  `${c.options?.tile ? ' tile ' + JSON.stringify(c.options.tile) : ''}` +
  `${c.options?.direct !== undefined ? (c.options.direct ? ' direct' : ' gemm') : ''}` +
  `${c.options?.directBlocking ? ' blocking ' + JSON.stringify(c.options.directBlocking) : ''}`;

describe('conv3d GPU kernels against the CPU twin', () => {
  const cases: Case[] = [
    { n: 2, cin: 3, cout: 5, dhw: [5, 7, 9], k: 3, s: 1, p: 1, bias: true },
    { n: 2, cin: 4, cout: 17, dhw: [5, 7, 9], k: 3, s: 2, p: 1, bias: false },
    { n: 2, cin: 6, cout: 3, dhw: [5, 7, 9], k: 1, s: 1, p: 0, bias: true },
    { n: 2, cin: 5, cout: 17, dhw: [5, 7, 9], k: 1, s: 2, p: 0, bias: false },
    { n: 2, cin: 1, cout: 17, dhw: [5, 7, 9], k: 3, s: 1, p: 1, bias: true },
    { n: 1, cin: 1, cout: 1, dhw: [3, 4, 5], k: 1, s: 1, p: 0, bias: true },
    { n: 1, cin: 33, cout: 130, dhw: [3, 5, 6], k: 3, s: 1, p: 1, bias: true },
    { n: 2, cin: 64, cout: 40, dhw: [6, 5, 7], k: 3, s: 2, p: 1, bias: false },
    { n: 2, cin: 7, cout: 70, dhw: [4, 6, 5], k: 3, s: 1, p: 0, bias: true },
    { n: 1, cin: 3, cout: 4, dhw: [7, 6, 8], k: 5, s: 3, p: 2, bias: true },
    { n: 2, cin: 3, cout: 5, dhw: [5, 6, 7], k: 2, s: 2, p: 1, bias: false },
    { n: 2, cin: 9, cout: 10, dhw: [5, 7, 9], k: 3, s: 2, p: 1, bias: true, options: { tile: { bm: 8, bn: 32, bk: 4, tm: 2, tn: 2 }, splitK: 3 } },
    // The hardware configuration: sizes compiled in, 8 x 8 outputs per invocation (BK 2 keeps lavapipe's compile
    // short; the register-tile mapping is shared by all three passes, so the forward pass checks it).
    { n: 2, cin: 16, cout: 40, dhw: [5, 7, 9], k: 3, s: 2, p: 1, bias: true, forwardOnly: true, options: { specialize: true, prefetch: true, tile: { bm: 128, bn: 128, bk: 2, tm: 8, tn: 8 } } },
    { n: 1, cin: 3, cout: 4, dhw: [5, 6, 7], k: 3, s: 1, p: 1, bias: false, options: { specialize: true, prefetch: true } },
    { n: 2, cin: 8, cout: 6, dhw: [5, 6, 7], k: 3, s: 2, p: 1, bias: true, options: { direct: false, prefetch: true, splitK: 2 } },
    // The implicit GEMMs with the software defaults (the direct kernels are the default on lavapipe).
    { n: 2, cin: 3, cout: 5, dhw: [5, 7, 9], k: 3, s: 1, p: 1, bias: true, options: { direct: false } },
    { n: 2, cin: 5, cout: 17, dhw: [5, 7, 9], k: 1, s: 2, p: 0, bias: false, options: { direct: false } },
  ];
  cases.forEach((c, i) => {
    it(label(c), async () => {
      await check(c, 100 + 10 * i);
    });
  });
});

describe('conv3d direct kernels (software adapters) against the CPU twin', () => {
  // Channel and W remainders of the register blocks, odd sizes, strides 1-3, padding past k - 1 (the data
  // gradient's strided kernel), Cin = 1, more weight-gradient chunks than rows, and small blocks.
  const cases: Case[] = [
    { n: 2, cin: 5, cout: 6, dhw: [4, 5, 7], k: 3, s: 1, p: 1, bias: true, options: { direct: true } },
    { n: 1, cin: 1, cout: 3, dhw: [3, 6, 9], k: 3, s: 2, p: 1, bias: true, options: { direct: true } },
    { n: 2, cin: 6, cout: 1, dhw: [5, 4, 6], k: 1, s: 1, p: 1, bias: false, options: { direct: true, splitK: 50 } },
    { n: 1, cin: 2, cout: 3, dhw: [7, 6, 8], k: 5, s: 3, p: 2, bias: false, options: { direct: true, splitK: 1 } },
    { n: 2, cin: 3, cout: 7, dhw: [3, 5, 6], k: 3, s: 1, p: 0, bias: false, options: { direct: true, directBlocking: { ct: 2, vw: 3 } } },
    // Fewer output voxel groups than a SIMD vector has lanes: lanes also run over channel blocks (a remainder block too).
    { n: 2, cin: 6, cout: 10, dhw: [1, 3, 3], k: 3, s: 1, p: 1, bias: true, options: { direct: true } },
  ];
  cases.forEach((c, i) => {
    it(label(c), async () => {
      await check(c, 300 + 10 * i);
    });
  });
  it('processes one sample per slab when the batch does not fit a binding, and falls back to the GEMMs when a sample does not', async () => {
    // x per sample: 3 * 5*7*9 * 4 = 3780 bytes; gradOut of the stride-2 conv: 5 * 3*4*5 * 4 = 1200 bytes.
    const base = { n: 3, cin: 3, cout: 5, dhw: [5, 7, 9] as [number, number, number], k: 3, s: 1, p: 1, bias: true };
    const whole = await check({ ...base, options: { direct: true } }, 21);
    const perSample = await check({ ...base, options: { direct: true, maxBindingBytes: 6400 } }, 21);
    expect(perSample).toBeGreaterThan(whole);
    await check({ ...base, s: 2, options: { direct: true, maxBindingBytes: 6400 } }, 22);
    // One sample does not fit: the GEMMs slab over channels and depth instead.
    await check({ ...base, s: 2, options: { direct: true, maxBindingBytes: 2048 } }, 23);
  });
});

describe('the direct convolution\'s straight-line taps (SwiftShader\'s form) on any adapter', () => {
  // Enough voxel groups for the subgroup-broadcast kernel, with tap ranges cut by the volume: one plane (kd 1 only),
  // one row (kh 1 only), no padding (every tap range whole), and a channel remainder of the 8-wide block.
  const cases: Case[] = [
    { n: 2, cin: 3, cout: 10, dhw: [1, 8, 16], k: 3, s: 1, p: 1, bias: true, options: { direct: true } },
    { n: 1, cin: 9, cout: 8, dhw: [4, 1, 16], k: 3, s: 1, p: 1, bias: false, options: { direct: true } },
    { n: 2, cin: 4, cout: 5, dhw: [5, 6, 20], k: 3, s: 1, p: 0, bias: true, options: { direct: true } },
    { n: 1, cin: 2, cout: 12, dhw: [3, 9, 12], k: 3, s: 2, p: 1, bias: false, options: { direct: true } },
  ];
  cases.forEach((c, i) => {
    it(label(c), async () => {
      const g = gpu();
      const keys: string[] = [];
      const stop = observePipelines((r) => keys.push(r.key));
      setStraightLineTaps(g, true);
      try {
        await check(c, 500 + 10 * i);
      } finally {
        setStraightLineTaps(g, null);
        stop();
      }
      // Where the adapter has subgroups the broadcast kernels took the straight form (new pipelines only are seen).
      if (g.subgroupSize !== null) expect(keys.filter((k) => k.startsWith('conv3d:direct:k3') && k.includes(':sg')).every((k) => k.includes(':sl'))).toBe(true);
    });
  });
});

describe('conv3d slabs past the storage binding limit', () => {
  // x per sample: 3 * 5*7*9 * 4 = 3780 bytes (not a multiple of the 256-byte alignment).
  const base = { n: 3, cin: 3, cout: 5, dhw: [5, 7, 9] as [number, number, number], k: 3, s: 1, p: 1, bias: true };
  it('slabs over the batch with unaligned sample offsets', async () => {
    const all = await check(base, 7);
    const slabbed = await check({ ...base, options: { maxBindingBytes: 6400 } }, 7);
    expect(slabbed).toBeGreaterThan(all);
    // Split-K partial slots accumulated across batch slabs (one and two samples per slab).
    await check({ ...base, options: { maxBindingBytes: 6400, splitK: 2 } }, 13);
    await check({ ...base, cout: 2, options: { maxBindingBytes: 8192 } }, 14);
    await check({ ...base, cout: 2, options: { maxBindingBytes: 8192, splitK: 3 } }, 15);
  });
  it('slabs over channel chunks (accumulating) when one sample does not fit', async () => {
    const all = await check({ ...base, s: 2 }, 8);
    const slabbed = await check({ ...base, s: 2, options: { maxBindingBytes: 2048 } }, 8);
    expect(slabbed).toBeGreaterThan(all + 6);
  });
  it('slabs over depth when one channel does not fit', async () => {
    // One channel: 5*7*9*4 = 1260 bytes; the weight (108 elements) still fits the 1024-byte binding.
    const small = { ...base, cin: 2, cout: 2 };
    const all = await check(small, 9);
    const slabbed = await check({ ...small, options: { maxBindingBytes: 1024 } }, 9);
    expect(slabbed).toBeGreaterThan(all + 20);
    await check({ ...small, s: 2, options: { maxBindingBytes: 1024 } }, 10);
    await check({ ...base, k: 1, p: 0, options: { maxBindingBytes: 768 } }, 12);
  });
  it('rejects a binding limit that cannot hold one plane', () => {
    const g = gpu();
    const b = empty(g, 4096);
    expect(() => conv3dForward(g, b, b, null, b, { x: [1, 1, 4, 16, 16], w: [1, 1, 1, 1, 1] }, { maxBindingBytes: 1024 }))
      .toThrow(/conv3d forward: one depth plane does not fit a storage binding/);
    g.pool.release(b);
  });
});

describe('conv3d CPU twin gradients by central differences', () => {
  const shape: Conv3dShape = { x: [2, 2, 3, 4, 3], w: [3, 2, 3, 3, 3], stride: 2, padding: 1 };
  const x = Float64Array.from(randomArray(prod(shape.x), 51));
  const w = Float64Array.from(randomArray(prod(shape.w), 52));
  const b = Float64Array.from(randomArray(3, 53));
  const outN = prod(conv3dOutputShape(shape.x, shape.w, shape));
  const v = Float64Array.from(randomArray(outN, 54));
  it('data gradient', () => {
    const num = numericGradient((xx) => dot(conv3dRef(xx, w, b, shape).data, v), x);
    expect(maxRelativeError(conv3dBackwardDataRef(v, w, shape), num, 1e-6, 1e-5)).toBeLessThanOrEqual(1);
  });
  it('weight gradient', () => {
    const num = numericGradient((ww) => dot(conv3dRef(x, ww, b, shape).data, v), w);
    expect(maxRelativeError(conv3dBackwardWeightRef(x, v, shape), num, 1e-6, 1e-5)).toBeLessThanOrEqual(1);
  });
  it('bias gradient', () => {
    const num = numericGradient((bb) => dot(conv3dRef(x, w, bb, shape).data, v), b);
    expect(maxRelativeError(conv3dBackwardBiasRef(v, shape), num, 1e-6, 1e-5)).toBeLessThanOrEqual(1);
  });
});

describe('conv3d shapes and errors', () => {
  it('computes the output shape as PyTorch', () => {
    expect(conv3dOutputShape([2, 32, 64, 192, 192], [64, 32, 3, 3, 3], { stride: 2, padding: 1 })).toEqual([2, 64, 32, 96, 96]);
    expect(conv3dOutputShape([1, 1, 5, 7, 9], [4, 1, 3, 3, 3], { stride: 2, padding: 1 })).toEqual([1, 4, 3, 4, 5]);
    expect(conv3dOutputShape([1, 3, 5, 7, 9], [4, 3, 1, 1, 1])).toEqual([1, 4, 5, 7, 9]);
  });
  it('names conv3d and both shapes when channels differ', () => {
    expect(() => conv3dOutputShape([2, 3, 5, 5, 5], [4, 2, 3, 3, 3]))
      .toThrow(/conv3d: weight \[4, 2, 3, 3, 3\] expects 2 input channels but input \[2, 3, 5, 5, 5\] has 3/);
    const g = gpu();
    const b = empty(g, 4096);
    expect(() => conv3dForward(g, b, b, null, b, { x: [2, 3, 5, 5, 5], w: [4, 2, 3, 3, 3], padding: 1 }))
      .toThrow(/conv3d forward: weight \[4, 2, 3, 3, 3\].*input \[2, 3, 5, 5, 5\]/);
    g.pool.release(b);
  });
  it('rejects non-cubic kernels, bad strides and padding, and empty outputs', () => {
    expect(() => conv3dOutputShape([1, 1, 5, 5, 5], [1, 1, 3, 3, 1])).toThrow(/kernel must be cubic/);
    expect(() => conv3dOutputShape([1, 1, 5, 5, 5], [1, 1, 3, 3, 3], { stride: 0 })).toThrow(/stride must be a positive integer, got 0/);
    expect(() => conv3dOutputShape([1, 1, 5, 5, 5], [1, 1, 3, 3, 3], { padding: -1 })).toThrow(/padding must be a non-negative integer/);
    expect(() => conv3dOutputShape([1, 1, 2, 5, 5], [1, 1, 3, 3, 3])).toThrow(/output would be empty: input \[1, 1, 2, 5, 5\] with kernel 3, stride 1, padding 0 gives \[1, 1, 0, 3, 3\]/);
    expect(() => conv3dOutputShape([1, 1, 5, 5], [1, 1, 3, 3, 3])).toThrow(/input must be \[N, Cin, D, H, W\]/);
  });
  it('rejects buffers that are too small and invalid tiles', () => {
    const g = gpu();
    const small = empty(g, 64);
    const [big, big2, big3] = [empty(g, 100_000), empty(g, 100_000), empty(g, 100_000)];
    const shape: Conv3dShape = { x: [1, 2, 8, 8, 8], w: [4, 2, 3, 3, 3], padding: 1 };
    expect(() => conv3dForward(g, small, big, null, big, shape)).toThrow(/conv3d forward input: buffer of 256 bytes is too small for 1024 f32/);
    expect(() => conv3dForward(g, big, big2, small, big3, shape)).not.toThrow();
    expect(() => conv3dForward(g, big, big, null, small, shape)).toThrow(/conv3d forward output: buffer/);
    expect(() => conv3dBackwardData(g, big, small, big, shape)).toThrow(/conv3d backward data weight: buffer/);
    expect(() => conv3dBackwardWeight(g, big, big, small, shape)).toThrow(/conv3d backward weight gradW: buffer/);
    expect(() => conv3dBackwardBias(g, small, big, shape)).toThrow(/conv3d backward bias gradOut: buffer/);
    expect(() => conv3dForward(g, big, big, null, big, shape, { tile: { bm: 64, bn: 64, bk: 8, tm: 3, tn: 4 } })).toThrow(/tile .* is invalid/);
    for (const b of [small, big, big2, big3]) g.pool.release(b);
  });
  it('chooses tiles within the device limits', () => {
    const g = gpu();
    for (const software of [false, true]) {
      for (const [m, n] of [[1, 1e6], [3, 100], [17, 5000], [32, 27], [64, 1e6], [128, 1], [256, 6912], [130, 90]]) {
        const t = chooseConv3dTile(g, m, n, { software });
        const threads = (t.bm / t.tm) * (t.bn / t.tn);
        expect(threads).toBeLessThanOrEqual(g.limits.maxComputeInvocationsPerWorkgroup);
        expect(threads % t.bn).toBe(0);
        expect((t.bk * t.bn) % threads).toBe(0);
      }
    }
    expect(chooseConv3dTile(g, 256, 1e6, { software: false })).toEqual({ bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 });
  });
});
