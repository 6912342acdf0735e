import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Tensor } from '../../src/autograd/tensor.js';
import { addInPlace, binary, cast, unary } from '../../src/kernels/elementwise.js';
import { halfBits, halfValue, requireDType, roundToHalf, toHalfBits } from '../../src/kernels/runtime/precision.js';
import { asStored, download, downloadAs, emptyAs, expectClose, randomArray, runsF16, upload, uploadAs, useGpu, withBindingLimit } from '../helpers/gpu.js';

const gpu = useGpu();
const torchHalf = JSON.parse(readFileSync(new URL('../golden/half/torch-half.json', import.meta.url), 'utf8')) as { x: number[]; bits: number[] };

describe('half floats on the host', () => {
  it("round as PyTorch's .half() does (nearest even, overflow to infinity, subnormals)", () => {
    const bits = toHalfBits(torchHalf.x);
    const wrong = torchHalf.x.map((v, i) => [v, bits[i], torchHalf.bits[i]]).filter(([, a, b]) => a !== b);
    expect(wrong).toEqual([]);
  });

  it('decode every finite half exactly (encode(decode(h)) == h)', () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) continue; // NaNs
      expect(halfBits(halfValue(h))).toBe(h);
    }
    expect(Number.isNaN(halfValue(halfBits(NaN)))).toBe(true);
  });
});

describe('f16 storage on the GPU', () => {
  it('names the feature when the adapter lacks it', () => {
    const g = gpu();
    const fake = { ...g, features: new Set<string>(), name: 'test adapter' } as unknown as typeof g;
    expect(() => requireDType(fake, 'f16', 'conv3d')).toThrow(/conv3d: dtype 'f16' needs the WebGPU feature 'shader-f16'.*test adapter/);
  });

  it('casts f32 -> f16 -> f32 as the host rounds (torch values: overflow, subnormals, ties)', async () => {
    const g = gpu();
    const x = Float32Array.from(torchHalf.x);
    const n = x.length;
    const xb = upload(g, x);
    const hb = emptyAs(g, n, 'f16');
    const yb = emptyAs(g, n, 'f32');
    if (!runsF16(g, 'f16', () => cast(g, xb, 'f32', hb, 'f16', n))) return;
    cast(g, xb, 'f32', hb, 'f16', n);
    cast(g, hb, 'f16', yb, 'f32', n);
    const back = await download(g, yb, n);
    const expected = torchHalf.bits.map(halfValue);
    // Subnormal halves may flush to zero on a GPU (WGSL allows it); everything else must match the bits.
    const bad = [...back].map((v, i) => [i, x[i], v, expected[i]]).filter(([, , v, e]) => !(v === e || (Math.abs(e) < 6.1e-5 && v === 0)));
    expect(bad).toEqual([]);
  });

  for (const n of [1, 7, 1024, 4099]) {
    it(`maps, adds and accumulates ${n} f16 values (f32 inside, one rounding per store)`, async () => {
      const g = gpu();
      if (!runsF16(g, 'f16', () => unary(g, 'fill', null, emptyAs(g, n, 'f16'), n, 0, 'f16'))) return;
      const a = asStored(randomArray(n, 1, -4, 4), 'f16');
      const b = asStored(randomArray(n, 2, -4, 4), 'f16');
      const [ab, bb] = [uploadAs(g, a, 'f16'), uploadAs(g, b, 'f16')];
      const out = emptyAs(g, n, 'f16');
      unary(g, 'relu', ab, out, n, 0, 'f16');
      expectClose(await downloadAs(g, out, n, 'f16'), a.map((v) => Math.max(v, 0)), 0, 0);
      binary(g, 'mul', ab, [n], bb, [n], out, 'f16');
      expectClose(await downloadAs(g, out, n, 'f16'), a.map((v, i) => roundToHalf(v * b[i])), 0, 0);
      addInPlace(g, ab, bb, n, 'f16');
      expectClose(await downloadAs(g, ab, n, 'f16'), a.map((v, i) => roundToHalf(v + b[i])), 0, 0);
      unary(g, 'fill', null, out, n, 1 / 3, 'f16', 'f16');
      expectClose(await downloadAs(g, out, n, 'f16'), new Float32Array(n).fill(roundToHalf(1 / 3)), 0, 0);
    });
  }

  it('stores an overflow as infinity (what loss scaling detects)', async () => {
    const g = gpu();
    const ab = uploadAs(g, Float32Array.from([60000, -60000, 1]), 'f16');
    if (!runsF16(g, 'f16', () => unary(g, 'mulScalar', ab, emptyAs(g, 3, 'f16'), 3, 2, 'f16'))) return;
    const out = emptyAs(g, 3, 'f16');
    unary(g, 'mulScalar', ab, out, 3, 2, 'f16');
    expect([...(await downloadAs(g, out, 3, 'f16'))]).toEqual([Infinity, -Infinity, 2]);
  });

  it('tensors keep their dtype through upload, reshape and read-back', async () => {
    if (!runsF16(gpu(), 'f16', () => Tensor.empty([2], gpu(), 'f16'))) return;
    const t = Tensor.fromArray([1, 2.0005, -3, 1e5, 5], [5], { dtype: 'f16' });
    expect(t.dtype).toBe('f16');
    expect([...(await t.toArray())]).toEqual([1, 2, -3, Infinity, 5]);
    const r = t.reshape([1, 5]);
    expect(r.dtype).toBe('f16');
    const z = Tensor.full([3], 0.1, { dtype: 'f16' });
    expect([...(await z.toArray())]).toEqual([roundToHalf(0.1), roundToHalf(0.1), roundToHalf(0.1)]);
    expect(() => Tensor.zeros([2], { dtype: 'f64' as never })).toThrow(/dtype "f64" is not supported; expected 'f32' or 'f16'/);
    t.dispose(); r.dispose(); z.dispose();
  });
});

describe('casts across binding windows', () => {
  it('casts a tensor larger than one binding, both ways, window by window', async () => {
    const g0 = gpu();
    const g = withBindingLimit(g0, 1000);
    const n = 3001;
    const x = randomArray(n, 9, -100, 100);
    const xb = upload(g, x);
    const hb = emptyAs(g, n, 'f16');
    if (!runsF16(g, 'f16', () => cast(g, xb, 'f32', hb, 'f16', n))) return;
    cast(g, xb, 'f32', hb, 'f16', n);
    const yb = emptyAs(g, n, 'f32');
    cast(g, hb, 'f16', yb, 'f32', n);
    expectClose(await download(g, yb, n), x.map(roundToHalf), 0, 0);
  });
});
