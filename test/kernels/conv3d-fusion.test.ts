/**
 * The fused conv3d paths, on every path (direct kernels, implicit GEMMs in both reduction orders, slabs), against
 * the CPU twins: the input prologue (Conv3dOptions.inputNormRelu: forward and weight gradient read relu(GN(x)) from
 * x and per-(sample, channel) coefficients), the store epilogue (Conv3dOptions.residual: + residual, optionally
 * gated per (sample, channel)), and the coefficients kernel against the group-norm CPU twin.
 */
import { describe, expect, it } from 'vitest';
import { conv3dBackwardWeight, conv3dForward, conv3dOutputShape, type Conv3dOptions, type Conv3dShape } from '../../src/kernels/conv3d/index.js';
import { groupNormCoefficients } from '../../src/kernels/group-norm.js';
import { conv3dBackwardWeightRef, conv3dRef, normReluInputRef } from '../../src/kernels/reference/conv3d.js';
import { groupNormStatsRef } from '../../src/kernels/reference/group-norm.js';
import { download, empty, expectClose, randomArray, size, upload, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

interface Case {
  n: number; cin: number; cout: number; dhw: [number, number, number]; k: number; s: number; p: number;
  options: Conv3dOptions;
  /** Store epilogue: add a residual, gated per (sample, output channel) or not. */
  residual?: 'add' | 'gated';
}

/** Coefficients whose scale has both signs and whose shift moves the ReLU's cut, so both sides of it are hit. */
function randomCoefficients(nc: number, seed: number): Float32Array {
  const r = randomArray(3 * nc, seed, -1, 1);
  const coef = new Float32Array(4 * nc);
  for (let i = 0; i < nc; i++) {
    coef[4 * i] = 0.3 * r[3 * i];
    coef[4 * i + 1] = 0.5 + r[3 * i + 1];
    coef[4 * i + 2] = 0.4 * r[3 * i + 2];
  }
  return coef;
}

async function check(c: Case, seed: number): Promise<void> {
  const g = gpu();
  const shape: Conv3dShape = { x: [c.n, c.cin, ...c.dhw], w: [c.cout, c.cin, c.k, c.k, c.k], stride: c.s, padding: c.p };
  const ny = size(conv3dOutputShape(shape.x, shape.w, shape));
  const [nx, nw] = [size(shape.x), size(shape.w)];
  const x = randomArray(nx, seed, -1, 1);
  const w = randomArray(nw, seed + 1, -0.3, 0.3);
  const bias = randomArray(c.cout, seed + 2, -1, 1);
  const gy = randomArray(ny, seed + 3, -0.2, 0.2);
  const coef = randomCoefficients(c.n * c.cin, seed + 4);
  const [xb, wb, bb, gyb, cb] = [upload(g, x), upload(g, w), upload(g, bias), upload(g, gy), upload(g, coef)];
  const [yb, gwb] = [empty(g, ny), empty(g, nw)];
  const res = c.residual ? randomArray(ny, seed + 5, -1, 1) : null;
  const gate = c.residual === 'gated' ? randomArray(c.n * c.cout, seed + 6, 0, 1) : null;
  const [rb, gb] = [res ? upload(g, res) : null, gate ? upload(g, gate) : null];
  const options: Conv3dOptions = { ...c.options, inputNormRelu: cb, ...(rb ? { residual: { buffer: rb, ...(gb ? { gate: gb } : {}) } } : {}) };
  conv3dForward(g, xb, wb, bb, yb, shape, options);
  conv3dBackwardWeight(g, xb, gyb, gwb, shape, options);
  const input = normReluInputRef(x, coef, shape.x);
  // The prologue must hit both sides of the ReLU, or the test would not tell it from a plain affine map.
  const zeros = input.filter((v) => v === 0).length;
  expect(zeros).toBeGreaterThan(nx / 10);
  expect(zeros).toBeLessThan(nx * 0.9);
  const expected = conv3dRef(input, w, bias, shape).data;
  if (res) {
    const vox = ny / (c.n * c.cout);
    for (let i = 0; i < ny; i++) expected[i] += res[i] * (gate ? gate[Math.floor(i / vox)] : 1);
  }
  expectClose(await download(g, yb, ny), expected, 1e-4, 1e-3);
  expectClose(await download(g, gwb, nw), conv3dBackwardWeightRef(input, gy, shape), 1e-4, 1e-3);
  for (const b of [xb, wb, bb, gyb, cb, yb, gwb, rb, gb]) if (b) g.pool.release(b);
}

const label = (c: Case) => `N${c.n} ${c.cin}->${c.cout} ${c.dhw.join('x')} k${c.k} s${c.s} ${JSON.stringify(c.options)}${c.residual ? ` + ${c.residual} residual` : ''}`;

describe('conv3d with the relu(GN(x)) input prologue and the residual store against the CPU twin', () => {
  const cases: Case[] = [
    { n: 2, cin: 3, cout: 5, dhw: [4, 5, 7], k: 3, s: 1, p: 1, options: { direct: true }, residual: 'gated' },
    { n: 2, cin: 4, cout: 3, dhw: [5, 6, 7], k: 3, s: 2, p: 1, options: { direct: true, splitK: 2 } },
    { n: 2, cin: 5, cout: 6, dhw: [3, 4, 5], k: 1, s: 1, p: 0, options: { direct: true }, residual: 'add' },
    // The GEMMs: channel-inner reduction (5 channels), kernel-offset-major (16 channels, a multiple of BK).
    { n: 2, cin: 5, cout: 6, dhw: [4, 5, 7], k: 3, s: 1, p: 1, options: { direct: false }, residual: 'gated' },
    { n: 2, cin: 16, cout: 4, dhw: [3, 4, 5], k: 3, s: 2, p: 1, options: { direct: false, splitK: 2 }, residual: 'add' },
    // Batch slabs (one sample per binding), then channel slabs (one sample does not fit: the residual is added
    // by the first channel slab only).
    { n: 3, cin: 3, cout: 5, dhw: [5, 7, 9], k: 3, s: 1, p: 1, options: { direct: false, maxBindingBytes: 6400 }, residual: 'gated' },
    { n: 2, cin: 3, cout: 5, dhw: [5, 7, 9], k: 3, s: 2, p: 1, options: { direct: false, maxBindingBytes: 2048 }, residual: 'gated' },
    { n: 3, cin: 3, cout: 5, dhw: [5, 7, 9], k: 3, s: 1, p: 1, options: { direct: true, maxBindingBytes: 6400 }, residual: 'gated' },
    // Lanes over channel blocks (3 output voxel groups), with a remainder block.
    { n: 2, cin: 5, cout: 9, dhw: [1, 2, 3], k: 3, s: 1, p: 1, options: { direct: true }, residual: 'gated' },
  ];
  cases.forEach((c, i) => {
    it(label(c), async () => {
      await check(c, 500 + 10 * i);
    });
  });

  it('refuses coefficients of the wrong size, naming them', () => {
    const g = gpu();
    // 40 channels need 4 * 2 * 40 coefficients; the buffer (a 256-byte pool class) holds 64.
    const shape: Conv3dShape = { x: [2, 40, 4, 4, 4], w: [2, 40, 3, 3, 3], padding: 1 };
    const [x, w, y, coef] = [empty(g, 5120), empty(g, 2160), empty(g, 256), empty(g, 64)];
    expect(() => conv3dForward(g, x, w, null, y, shape, { inputNormRelu: coef })).toThrow(/conv3d forward input coefficients/);
    expect(() => conv3dBackwardWeight(g, x, y, w, shape, { inputNormRelu: coef })).toThrow(/conv3d backward weight input coefficients/);
    for (const b of [x, w, y, coef]) g.pool.release(b);
  });
});

describe('groupNormCoefficients', () => {
  it('writes mean and rstd per (n, g) and (mean, rstd * weight, bias, 0) per (n, c), as the CPU twin', async () => {
    const g = gpu();
    const shape = [2, 6, 3, 4, 5];
    const groups = 3;
    const x = randomArray(size(shape), 41, -2, 3);
    const weight = randomArray(6, 42, 0.5, 1.5);
    const bias = randomArray(6, 43, -1, 1);
    const [xb, wb, bb] = [upload(g, x), upload(g, weight), upload(g, bias)];
    const [mb, rb, cb] = [empty(g, 2 * groups), empty(g, 2 * groups), empty(g, 4 * 12)];
    const ref = groupNormStatsRef(x, shape, groups);
    const expected = new Float64Array(48);
    for (let n = 0; n < 2; n++) {
      for (let c = 0; c < 6; c++) {
        const s = n * groups + Math.floor(c / 2);
        expected.set([ref.mean[s], ref.rstd[s] * weight[c], bias[c], 0], 4 * (n * 6 + c));
      }
    }
    // Both paths: one workgroup per group (software adapters' default) and the chunked statistics, each
    // writing over NaNs so that neither can pass on the other's results.
    for (const fused of [true, false]) {
      for (const [b, n] of [[mb, 6], [rb, 6], [cb, 48]] as const) g.write(b, new Float32Array(n).fill(NaN));
      groupNormCoefficients(g, xb, shape, groups, wb, bb, mb, rb, cb, { fused });
      expectClose(await download(g, mb, 6), ref.mean, 1e-5, 1e-5);
      expectClose(await download(g, rb, 6), ref.rstd, 1e-5, 1e-4);
      expectClose(await download(g, cb, 48), expected, 1e-5, 1e-4);
    }
    for (const b of [xb, wb, bb, mb, rb, cb]) g.pool.release(b);
  });
});
