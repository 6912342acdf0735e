/**
 * conv3d with f16 activations (Conv3dOptions.dtype = 'f16'), on every path (direct kernels, implicit GEMMs in both
 * reduction orders, the phase-split data gradient, slabs over the batch, channels and depth), with the fused input
 * prologue and the residual store, against the float64 CPU twins run on the same f16-rounded inputs.
 *
 * Tolerances: f16 outputs (forward, data gradient) round once at the store, an error of at most 2^-12 of the
 * result's magnitude (results here are below 4), within `tolerance('f16')` (1.1e-3 + 3e-3 |expected|); in the
 * channel-slab case each chunk's partial sum is stored, rounding it too (three chunks of sums below 3: at most
 * 2.2e-3 more, still within it for results of magnitude 0.4 and up, and these partial sums are smaller where the
 * result is). The weight and bias gradients are f32 and accumulate in f32, so they are held to the f32 tolerance:
 * an f16 accumulation anywhere would miss it by orders of magnitude.
 *
 * On an adapter without 'shader-f16' (SwiftShader) every case instead checks that the launch is refused naming it.
 */
import { describe, expect, it } from 'vitest';
import {
  conv3dBackwardBias, conv3dBackwardData, conv3dBackwardWeight, conv3dForward, conv3dOutputShape,
  type Conv3dOptions, type Conv3dShape,
} from '../../src/kernels/conv3d/index.js';
import {
  TUNING_FORMAT_VERSION, adapterKey, conv3dShapeKey, disableConv3dTuning, enableConv3dTuning, memoryTuningStore,
  recordConv3dShapes, tuneConv3d, tunedConv3dOptions, type TuningFile,
} from '../../src/kernels/conv3d/autotune.js';
import {
  conv3dBackwardBiasRef, conv3dBackwardDataRef, conv3dBackwardWeightRef, conv3dRef, normReluInputRef,
} from '../../src/kernels/reference/conv3d.js';
import type { Gpu } from '../../src/kernels/runtime/gpu.js';
import {
  asStored, download, downloadAs, empty, emptyAs, expectClose, randomArray, runsF16, size, tolerance, upload, uploadAs, useGpu,
} from '../helpers/gpu.js';

const gpu = useGpu();
const F16 = 'f16' as const;

interface Case {
  n: number; cin: number; cout: number; dhw: [number, number, number]; k: number; s: number; p: number; bias: boolean;
  options: Conv3dOptions;
  /** Forward and weight gradient read relu(GN(x)) (Conv3dOptions.inputNormRelu). */
  prologue?: boolean;
  /** The forward store adds a residual, gated per (sample, output channel) or not. */
  residual?: 'add' | 'gated';
}

/** Coefficients whose scale has both signs and whose shift moves the ReLU's cut (as conv3d-fusion.test.ts). */
function randomCoefficients(nc: number, seed: number): Float32Array {
  const r = randomArray(3 * nc, seed, -1, 1);
  const coef = new Float32Array(4 * nc);
  for (let i = 0; i < nc; i++) coef.set([0.3 * r[3 * i], 0.5 + r[3 * i + 1], 0.4 * r[3 * i + 2], 0], 4 * i);
  return coef;
}

/**
 * Runs the four launchers in f16 on one case and checks each against its CPU twin; returns the dispatches recorded
 * (0 when the adapter has no f16 and the refusal was checked instead).
 */
async function check(c: Case, seed: number): Promise<number> {
  const g = gpu();
  const shape: Conv3dShape = { x: [c.n, c.cin, ...c.dhw], w: [c.cout, c.cin, c.k, c.k, c.k], stride: c.s, padding: c.p };
  const ny = size(conv3dOutputShape(shape.x, shape.w, shape));
  const [nx, nw] = [size(shape.x), size(shape.w)];
  const wScale = 1 / Math.sqrt(c.cin * c.k ** 3);
  const gScale = 1 / Math.sqrt(ny / (c.n * c.cout));
  // The activations as f16 stores them; parameters, coefficients and the gate stay f32.
  const x = asStored(randomArray(nx, seed, -1, 1), F16);
  const gy = asStored(randomArray(ny, seed + 1, -gScale, gScale), F16);
  const w = randomArray(nw, seed + 2, -wScale, wScale);
  const bias = c.bias ? randomArray(c.cout, seed + 3, -1, 1) : null;
  const coef = c.prologue ? randomCoefficients(c.n * c.cin, seed + 4) : null;
  const res = c.residual ? asStored(randomArray(ny, seed + 5, -1, 1), F16) : null;
  const gate = c.residual === 'gated' ? randomArray(c.n * c.cout, seed + 6, 0, 1) : null;
  const [xb, gyb, rb] = [uploadAs(g, x, F16), uploadAs(g, gy, F16), res ? uploadAs(g, res, F16) : null];
  const [wb, bb, cb, gb] = [upload(g, w), bias ? upload(g, bias) : null, coef ? upload(g, coef) : null, gate ? upload(g, gate) : null];
  const [yb, gxb] = [emptyAs(g, ny, F16), emptyAs(g, nx, F16)];
  const [gwb, gbb] = [empty(g, nw), empty(g, c.cout)];
  const release = () => { for (const b of [xb, gyb, rb, wb, bb, cb, gb, yb, gxb, gwb, gbb]) if (b) g.pool.release(b); };
  const plain: Conv3dOptions = { ...c.options, dtype: F16 };
  const fused: Conv3dOptions = {
    ...plain, ...(cb ? { inputNormRelu: cb } : {}), ...(rb ? { residual: { buffer: rb, ...(gb ? { gate: gb } : {}) } } : {}),
  };
  try {
    if (!runsF16(g, F16, () => conv3dForward(g, xb, wb, bb, yb, shape, fused))) return 0;
    const before = g.dispatchCount;
    conv3dForward(g, xb, wb, bb, yb, shape, fused);
    conv3dBackwardData(g, gyb, wb, gxb, shape, plain);
    conv3dBackwardWeight(g, xb, gyb, gwb, shape, fused);
    conv3dBackwardBias(g, gyb, gbb, shape, plain);
    const dispatches = g.dispatchCount - before;
    const input = coef ? normReluInputRef(x, coef, shape.x) : x;
    const expected = conv3dRef(input, w, bias, shape).data;
    if (res) {
      const vox = ny / (c.n * c.cout);
      for (let i = 0; i < ny; i++) expected[i] += res[i] * (gate ? gate[Math.floor(i / vox)] : 1);
    }
    expectClose(await downloadAs(g, yb, ny, F16), expected, ...tolerance(F16));
    expectClose(await downloadAs(g, gxb, nx, F16), conv3dBackwardDataRef(gy, w, shape), ...tolerance(F16));
    expectClose(await download(g, gwb, nw), conv3dBackwardWeightRef(input, gy, shape), ...tolerance('f32'));
    expectClose(await download(g, gbb, c.cout), conv3dBackwardBiasRef(gy, shape), ...tolerance('f32'));
    return dispatches;
  } finally {
    release();
  }
}

const label = (c: Case) =>
  `N${c.n} ${c.cin}->${c.cout} ${c.dhw.join('x')} k${c.k} s${c.s} p${c.p}${c.bias ? ' bias' : ''} ${JSON.stringify(c.options)}` +
  `${c.prologue ? ' + relu(GN) prologue' : ''}${c.residual ? ` + ${c.residual} residual` : ''}`;

describe('conv3d with f16 activations against the CPU twin', () => {
  const cases: Case[] = [
    // The direct kernels: stride 1 (the data gradient is the flipped convolution), stride 2 (the strided gather),
    // k = 1, k = 5 with stride 3.
    { n: 2, cin: 3, cout: 5, dhw: [4, 5, 7], k: 3, s: 1, p: 1, bias: true, options: { direct: true } },
    { n: 2, cin: 4, cout: 6, dhw: [5, 6, 7], k: 3, s: 2, p: 1, bias: false, options: { direct: true } },
    { n: 2, cin: 5, cout: 3, dhw: [3, 4, 5], k: 1, s: 1, p: 0, bias: true, options: { direct: true } },
    { n: 1, cin: 2, cout: 3, dhw: [7, 6, 8], k: 5, s: 3, p: 2, bias: true, options: { direct: true } },
    // The implicit GEMMs: channel-inner reduction, k = 1 with stride 2, kernel-offset-major (16 channels) with the
    // phase-split data gradient.
    { n: 2, cin: 3, cout: 5, dhw: [4, 5, 7], k: 3, s: 1, p: 1, bias: true, options: { direct: false } },
    { n: 2, cin: 5, cout: 7, dhw: [5, 6, 7], k: 1, s: 2, p: 0, bias: false, options: { direct: false } },
    { n: 2, cin: 16, cout: 4, dhw: [3, 4, 5], k: 3, s: 2, p: 1, bias: true, options: { direct: false, splitK: 2 } },
    // The hardware configuration: sizes compiled in, register prefetch of the next tile's operands.
    { n: 1, cin: 3, cout: 4, dhw: [5, 6, 7], k: 3, s: 2, p: 1, bias: true, options: { direct: false, specialize: true, prefetch: true } },
    // The fused prologue and residual store on both families.
    { n: 2, cin: 3, cout: 5, dhw: [4, 5, 7], k: 3, s: 1, p: 1, bias: true, options: { direct: true }, prologue: true, residual: 'gated' },
    { n: 2, cin: 5, cout: 3, dhw: [3, 4, 5], k: 1, s: 1, p: 0, bias: false, options: { direct: true }, residual: 'add' },
    { n: 2, cin: 16, cout: 4, dhw: [3, 4, 5], k: 3, s: 2, p: 1, bias: true, options: { direct: false, splitK: 2 }, prologue: true, residual: 'add' },
    { n: 2, cin: 3, cout: 5, dhw: [4, 5, 7], k: 3, s: 1, p: 1, bias: true, options: { direct: false }, residual: 'gated' },
  ];
  cases.forEach((c, i) => {
    it(label(c), async () => {
      await check(c, 700 + 10 * i);
    });
  });
});

describe('conv3d with f16 activations in slabs (binding windows counted in f16 elements)', () => {
  // x per sample: 3 * 5*7*9 = 945 f16 elements (1890 bytes, not a multiple of the offset alignment).
  const base = { n: 3, cin: 3, cout: 5, dhw: [5, 7, 9] as [number, number, number], k: 3, s: 1, p: 1, bias: true };
  it('one sample per slab: the direct kernels and the GEMMs, with the gated residual', async () => {
    for (const direct of [true, false]) {
      const all = await check({ ...base, options: { direct } }, 31);
      if (all === 0) return;
      // 4096 bytes hold one sample's output (1575 f16 elements) but not two.
      const slabbed = await check({ ...base, options: { direct, maxBindingBytes: 4096 }, residual: 'gated' }, 32);
      expect(slabbed).toBeGreaterThan(all);
    }
  });
  it('channel chunks accumulating into the f16 output, then depth ranges', async () => {
    // (Binding sizes chosen for offset alignments of 16 (lavapipe) and 256 bytes alike.) Stride 2, 3 -> 3 channels:
    // one sample's input (945 elements) does not fit 1280 bytes, the f32 weight (243) does. The direct kernels take
    // whole samples only, so this is their fall-back to the GEMMs.
    const strided = { ...base, cout: 3, s: 2 };
    const all = await check({ ...strided, options: { direct: false } }, 33);
    if (all === 0) return;
    expect(await check({ ...strided, options: { direct: true, maxBindingBytes: 1280 }, prologue: true, residual: 'gated' }, 34)).toBeGreaterThan(all + 6);
    // 1 -> 2 channels: one channel (315 elements) does not fit 512 bytes, the weight (54) does.
    const small = { ...base, cin: 1, cout: 2 };
    const whole = await check({ ...small, options: { direct: false } }, 35);
    expect(await check({ ...small, options: { direct: false, maxBindingBytes: 512 } }, 36)).toBeGreaterThan(whole + 10);
  });
});

/** `g` as an adapter without 'shader-f16' (everything else the same). */
function withoutF16(g: Gpu): Gpu {
  const features = new Set([...g.features].filter((f) => f !== 'shader-f16'));
  return new Proxy(g, {
    get(target, key) {
      if (key === 'features') return features;
      const v = Reflect.get(target, key, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

describe('conv3d f16 requirements and tuning', () => {
  const SHAPE: Conv3dShape = { x: [2, 3, 4, 5, 7], w: [5, 3, 3, 3, 3], stride: 1, padding: 1 };

  it('every launcher refuses f16 without shader-f16, naming the launcher and the feature, and rejects unknown dtypes', () => {
    const g = gpu();
    const b = empty(g, 4096);
    const none = withoutF16(g);
    const options: Conv3dOptions = { dtype: F16 };
    expect(() => conv3dForward(none, b, b, null, b, SHAPE, options)).toThrow(/conv3d forward: dtype 'f16' needs the WebGPU feature 'shader-f16'/);
    expect(() => conv3dBackwardData(none, b, b, b, SHAPE, options)).toThrow(/conv3d backward data: .*'shader-f16'/);
    expect(() => conv3dBackwardWeight(none, b, b, b, SHAPE, options)).toThrow(/conv3d backward weight: .*'shader-f16'/);
    expect(() => conv3dBackwardBias(none, b, b, SHAPE, options)).toThrow(/conv3d backward bias: .*'shader-f16'/);
    const bad = { dtype: 'bf16' } as unknown as Conv3dOptions;
    expect(() => conv3dForward(g, b, b, null, b, SHAPE, bad)).toThrow(/conv3d forward: dtype "bf16" is not supported; expected 'f32' or 'f16'/);
    g.pool.release(b);
  });

  it('checks buffer sizes in f16 elements', () => {
    const g = gpu();
    // x has 840 elements: 1680 bytes as f16 (a 2048-byte buffer holds them), 3360 as f32 (it does not).
    const [x, w, y, tiny] = [empty(g, 512), empty(g, 512), empty(g, 1024), empty(g, 64)];
    try {
      expect(() => conv3dForward(g, x, w, null, y, SHAPE)).toThrow(/conv3d forward input: buffer of 2048 bytes is too small for 840 f32 elements/);
      if (!runsF16(g, F16, () => conv3dForward(g, x, w, null, y, SHAPE, { dtype: F16 }))) return;
      expect(() => conv3dForward(g, x, w, null, y, SHAPE, { dtype: F16 })).not.toThrow();
      expect(() => conv3dForward(g, tiny, w, null, y, SHAPE, { dtype: F16 })).toThrow(/conv3d forward input: buffer of 256 bytes is too small for 840 f16 elements \(1680 bytes\)/);
    } finally {
      for (const b of [x, w, y, tiny]) g.pool.release(b);
    }
  });

  it('records, tunes and looks up f16 choices under their own key, never an f32 one', async () => {
    const g = gpu();
    expect(conv3dShapeKey(SHAPE, 'forward', F16)).toBe(`${conv3dShapeKey(SHAPE, 'forward')} f16`);
    // A cache holding an f32 choice for the shape only.
    const f32Key = conv3dShapeKey(SHAPE, 'forward');
    const store = memoryTuningStore(JSON.stringify({
      format: 'tgnet-conv3d-tuning', version: TUNING_FORMAT_VERSION,
      adapters: { [adapterKey(g)]: { adapter: g.adapter, shapes: { [f32Key]: { options: { direct: false }, choice: 'gemm', ms: 1, defaultMs: 1, timing: 'gpu', tunedAt: '' } } } },
    }));
    const [x, w, y] = [empty(g, 1024), empty(g, 1024), empty(g, 2048)];
    try {
      if (!runsF16(g, F16, () => conv3dForward(g, x, w, null, y, SHAPE, { dtype: F16 }))) {
        await expect(tuneConv3d(g, SHAPE, 'forward', { store, dtype: F16 })).rejects.toThrow(/conv3d tuning: dtype 'f16' needs .*'shader-f16'/);
        return;
      }
      const shapes = recordConv3dShapes(() => {
        conv3dForward(g, x, w, null, y, SHAPE, { dtype: F16 });
        conv3dForward(g, x, w, null, y, SHAPE, { dtype: F16 });
      });
      expect(shapes).toEqual([{ shape: SHAPE, pass: 'forward', dtype: F16 }]);
      await enableConv3dTuning(g, { store });
      expect(tunedConv3dOptions(g, SHAPE, 'forward')).toEqual({ direct: false });
      expect(tunedConv3dOptions(g, SHAPE, 'forward', F16)).toBeNull();
      const candidates = [{ label: 'direct', options: { direct: true } }, { label: 'gemm', options: { direct: false } }];
      const r = await tuneConv3d(g, SHAPE, 'forward', { store, candidates, repetitions: 1, dtype: F16 });
      expect(r.key).toBe(`${f32Key} f16`);
      // Both candidates ran in f16 and agreed with the first within the tuner's tolerance.
      expect(r.candidates.map((c) => c.rejected)).toEqual([undefined, undefined]);
      expect(tunedConv3dOptions(g, SHAPE, 'forward', F16)).toEqual(r.entry.options);
      const file = JSON.parse(store.text!) as TuningFile;
      expect(Object.keys(file.adapters[adapterKey(g)].shapes)).toEqual([f32Key, `${f32Key} f16`]);
      expect(tunedConv3dOptions(g, SHAPE, 'forward')).toEqual({ direct: false });
    } finally {
      disableConv3dTuning(g);
      for (const b of [x, w, y]) g.pool.release(b);
    }
  });
});
