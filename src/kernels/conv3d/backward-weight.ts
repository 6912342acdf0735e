/**
 * conv3d weight gradient (split-K implicit GEMM, deterministic two-pass reduction) and bias gradient:
 *
 *   gw[co, ci, kpos] = sum_{n, vox} gy[n, co, vox] * x[n, ci, vox*s - p + kpos]
 *   gb[co]           = sum_{n, vox} gy[n, co, vox]
 */
import type { Gpu } from '../runtime/gpu.js';
import { cachedSignature, kernelSignature, readOnly, readWrite } from '../runtime/kernel-signature.js';
import { storageType, type DType } from '../runtime/precision.js';
import { checkBuffer } from '../runtime/wgsl.js';
import { segmentedReduce } from '../runtime/reduction.js';
import { slabElements } from '../runtime/windows.js';
import { reduce } from '../reduce.js';
import { planDirectWeightGrad } from './direct/weight.js';
import {
  SIZE_UNIFORMS, checkWeightFits, geometry, geometryKey, sizeConstants, sizeValues, splitKernelOffset, type Conv3dShape,
} from './geometry.js';
import { gemmShader } from '../gemm/skeleton.js';
import {
  NORM_RELU_WGSL, activationDType, dtypeKey, gemmChoices, inputCoefficients, loadF32, useDirect, type Conv3dOptions,
} from './options.js';
import {
  bindingBudget, forwardDepthMap, inputVol, outputVol, planSlabs, slabs, volWindow, whole,
} from './slabs.js';
import { checkTile, chooseConv3dTile, tileKey } from './tiles.js';
import { withTunedConv3dOptions } from './tuned-options.js';

/** `dtype`: the storage of x and gradOut; the coefficients and the partial weight gradients are f32. */
const weightGradSignature = (normRelu: boolean, dtype: DType) => cachedSignature(`conv3d backward weight:${normRelu}:${dtype}`, () => kernelSignature('conv3d backward weight', {
  uniforms: {
    total: 'u32', nT: 'u32', mT: 'u32', sps: 'u32', chunk: 'u32', M: 'u32', N: 'u32', R: 'u32',
    xBase: 'u32', gBase: 'u32', pBase: 'u32', od0: 'u32', id0: 'u32', accumulate: 'u32', cfBase: 'u32', cfStride: 'u32',
    ...SIZE_UNIFORMS,
  },
  storage: {
    xs: readOnly(storageType(dtype)), gs: readOnly(storageType(dtype)), ...(normRelu ? { cfs: readOnly('vec4f') } : {}), parts: readWrite('f32'),
  },
}));

/** Target workgroups in flight for split-K (enough to fill a large GPU several times). */
const SPLIT_TARGET_WORKGROUPS = 1024;
/** Shortest split-K chunk of the reduction, in voxels. */
const MIN_CHUNK = 512;
/** Cap on the split-K partial buffer. */
const MAX_PARTIAL_BYTES = 256 * 1024 * 1024;

/** out[e] = sum over the `slots` partial results parts[s * n + e], by the deterministic `reduce` kernel. */
function sumSlots(gpu: Gpu, parts: GPUBuffer, out: GPUBuffer, slots: number, n: number): void {
  reduce(gpu, 'sum', parts, [slots, n], [0], out);
}

/**
 * gradW = d(sum(gradOut * conv3d(x, w)))/dw: a [Cout] x [Cin*k^3] GEMM reducing over (N, Do, Ho, Wo). The
 * reduction is split into chunks whose partial sums go to a pooled buffer (accumulated across slabs in stream
 * order) and are then summed by `reduce`: deterministic, no float atomics.
 */
export function conv3dBackwardWeight(
  gpu: Gpu, x: GPUBuffer, gradOut: GPUBuffer, gradW: GPUBuffer, shape: Conv3dShape, options: Conv3dOptions = {},
): void {
  const what = 'conv3d backward weight';
  options = withTunedConv3dOptions(gpu, shape, 'weight', options);
  const g = geometry(shape, what);
  const dtype = activationDType(gpu, options, what);
  const K3 = g.k ** 3;
  const wSize = g.Cout * g.Cin * K3;
  checkBuffer(x, g.N * g.Cin * g.D * g.H * g.W, `${what} input`, dtype);
  checkBuffer(gradOut, g.N * g.Cout * g.Do * g.Ho * g.Wo, `${what} gradOut`, dtype);
  checkBuffer(gradW, wSize, `${what} gradW`);
  const coef = inputCoefficients(options, g.N, g.Cin, what);
  // Activation windows are counted in their own elements; the weight gradient and its partial sums are f32.
  const budget = bindingBudget(gpu, options.maxBindingBytes, what, dtype);
  const wBudget = bindingBudget(gpu, options.maxBindingBytes, what);
  checkWeightFits(g, wBudget, what);
  const direct = useDirect(gpu, options)
    ? planDirectWeightGrad(gpu, x, gradOut, g, budget, { blocking: options.directBlocking, chunks: options.splitK, coef, dtype, partialBudget: wBudget })
    : null;
  if (direct) {
    const parts = direct.slots > 1 ? gpu.pool.acquire(direct.slots * wSize * 4, `${what} partials`) : gradW;
    direct.run(parts);
    if (parts !== gradW) {
      sumSlots(gpu, parts, gradW, direct.slots, wSize);
      gpu.pool.release(parts);
    }
    return;
  }
  const tile = options.tile ?? chooseConv3dTile(gpu, g.Cout, g.Cin * K3);
  const threads = checkTile(gpu, tile, what);
  const { specialize, prefetch } = gemmChoices(gpu, options);
  const sizes = sizeConstants(g, specialize);
  const X = inputVol(g);
  const O = outputVol(g);
  const map = forwardDepthMap(g);
  const plan = planSlabs(g.N, O, X, map, budget, what);

  // Split-K from the first (largest) slab: every later slab touches a subset of its partial slots.
  const R0 = plan.dc * O.hw;
  const tiles0 = Math.ceil(plan.ac / tile.bm) * Math.ceil(plan.bc * K3 / tile.bn) * plan.nc;
  let sps = options.splitK ?? Math.max(1, Math.min(Math.ceil(SPLIT_TARGET_WORKGROUPS / tiles0), Math.ceil(R0 / MIN_CHUNK)));
  if (!Number.isInteger(sps) || sps < 1) throw new RangeError(`${what}: splitK must be a positive integer, got ${sps}`);
  const maxSlots = Math.max(1, Math.floor(Math.min(wBudget, MAX_PARTIAL_BYTES / 4) / wSize));
  sps = Math.max(1, Math.min(sps, Math.floor(maxSlots / plan.nc), Math.ceil(R0 / tile.bk)));
  const chunk = Math.ceil(Math.ceil(R0 / sps) / tile.bk) * tile.bk;
  sps = Math.ceil(R0 / chunk);
  const slots = plan.nc * sps;
  if (slots > maxSlots) throw new RangeError(`${what}: ${plan.nc} samples per slab need ${slots} partial weight gradients, more than fit a binding`);
  const partial = slots > 1 ? gpu.pool.acquire(slots * wSize * 4, `${what} partials`) : gradW;

  const BK = `${tile.bk}u`;
  const sig = weightGradSignature(coef !== null, dtype);
  const key = `conv3d:wgrad:${geometryKey(g, specialize)}:${tileKey(tile)}:${prefetch ? 'pf' : ''}${coef ? ':n' : ''}${dtypeKey(dtype)}`;
  const xValue = loadF32(dtype, 'xs[select(0u, xRow + (u32(id) - p.id0) * HW + u32(ih) * W + u32(iw), ok)]');
  const pipeline = sig.pipeline(gpu, key, () => gemmShader({
    tile, threads, prefetch,
    init: sizes.init,
    decls: coef ? `${sizes.decl}\n${NORM_RELU_WGSL}` : sizes.decl,
    privates: `var<private> colOk: bool; var<private> ckd: u32; var<private> ckh: u32; var<private> ckw: u32; var<private> xRow: u32;
var<private> gRow: u32; var<private> k0: u32; var<private> kLim: u32;${coef ? ' var<private> cf: vec4f;' : ''}`,
    decode: `let tn = lin % p.nT; var rest = lin / p.nT; let tm = rest % p.mT; rest = rest / p.mT;
  let sp = rest % p.sps; let nl = rest / p.sps;`,
    setup: `
  let c = n0 + bcol;
  colOk = c < p.N;
  let ci = c / K3; let r = c - ci * K3;
  ${splitKernelOffset(g, 'r')}
  ckd = kd; ckh = kh; ckw = kw;
  xRow = p.xBase + nl * XS + ci * DHW;
  gRow = p.gBase + nl * OS;
  ${coef ? 'cf = cfs[p.cfBase + nl * p.cfStride + min(ci, p.N / K3 - 1u)];' : ''}
  kLim = min(sp * p.chunk + p.chunk, p.R);`,
    tBegin: `sp * p.chunk / ${BK}`,
    tEnd: `(min(sp * p.chunk + p.chunk, p.R) + ${tile.bk - 1}u) / ${BK}`,
    tileSetup: `k0 = t * ${BK};`,
    loadA: `let k = k0 + kc; let ok = (row < p.M) & (k < kLim); return select(0.0, ${loadF32(dtype, 'gs[select(0u, gRow + row * DHWO + k, ok)]')}, ok);`,
    loadB: `
  let k = k0 + kr;
  let od = k / HWO + p.od0; let rem = k % HWO; let oh = rem / WO; let ow = rem % WO;
  let id = i32(od * S + ckd) - P; let ih = i32(oh * S + ckh) - P; let iw = i32(ow * S + ckw) - P;
  let ok = colOk & (k < kLim) & (u32(id) < D) & (u32(ih) < H) & (u32(iw) < W);
  return select(0.0, ${coef ? `normRelu(${xValue}, cf)` : xValue}, ok);`,
    store: `let idx = (nl * p.sps + sp) * WSIZE + p.pBase + row * WROW + col;
    if (p.accumulate != 0u) { parts[idx] = parts[idx] + v; } else { parts[idx] = v; }`,
  }));
  const sizeUniforms = sizeValues(g);
  const parts = whole(partial, slots * wSize);
  for (const sl of slabs(g.N, O, X, map, plan)) {
    const xw = volWindow(gpu, x, X, sl.n0, sl.nc, sl.b0, sl.bc, sl.lo, sl.hi - sl.lo, dtype);
    const gw = volWindow(gpu, gradOut, O, sl.n0, sl.nc, sl.a0, sl.ac, sl.d0, sl.dc, dtype);
    const R = sl.dc * O.hw;
    const nT = Math.ceil(sl.bc * K3 / tile.bn);
    const mT = Math.ceil(sl.ac / tile.bm);
    const spsHere = Math.ceil(R / chunk);
    const total = nT * mT * spsHere * sl.nc;
    // Slots are numbered nl * sps + sp with this slab's sps; the first slab's numbering must cover them all.
    if (spsHere !== sps && sl.nc > 1) throw new Error(`${what}: internal slab plan error`);
    const uniforms = {
      total, nT, mT, sps: spsHere, chunk, M: sl.ac, N: sl.bc * K3, R, xBase: xw.base, gBase: gw.base,
      pBase: sl.a0 * g.Cin * K3 + sl.b0 * K3, od0: sl.d0, id0: sl.lo, accumulate: sl.firstReduction ? 0 : 1,
      cfBase: sl.n0 * g.Cin + sl.b0, cfStride: g.Cin, ...sizeUniforms,
    };
    const buffers = { xs: xw.binding, gs: gw.binding, parts, ...(coef ? { cfs: whole(coef, 4 * g.N * g.Cin) } : {}) };
    const flops = 2 * sl.nc * sl.ac * sl.bc * K3 * R;
    gpu.dispatch({
      pipeline, label: 'conv3d:wgrad', workgroups: total, flops,
      ...sig.bind(uniforms, buffers),
    });
  }
  if (partial !== gradW) {
    sumSlots(gpu, partial, gradW, slots, wSize);
    gpu.pool.release(partial);
  }
}

/**
 * gradB[co] = sum over the batch and all output voxels of gradOut[n, co], by the deterministic `reduce` kernel
 * (which slabs past a binding on its own). Of `options` only `dtype` (gradOut's; gradB is f32) applies.
 */
export function conv3dBackwardBias(
  gpu: Gpu, gradOut: GPUBuffer, gradB: GPUBuffer, shape: Conv3dShape, options: Conv3dOptions = {},
): void {
  const what = 'conv3d backward bias';
  const g = geometry(shape, what);
  const dtype = activationDType(gpu, options, what);
  const n = g.N * g.Cout * g.Do * g.Ho * g.Wo;
  checkBuffer(gradOut, n, `${what} gradOut`, dtype);
  checkBuffer(gradB, g.Cout, `${what} gradB`);
  const dims = [g.N, g.Cout, g.Do * g.Ho * g.Wo];
  if (dtype === 'f32') {
    reduce(gpu, 'sum', gradOut, dims, [0, 2], gradB);
    return;
  }
  // f16: f32 sums per (sample, channel) straight from the f16 gradient (segmentedReduce converts as it loads; no
  // f32 copy of an activation-sized tensor), then the small [N, Cout] sum over the samples.
  const perSample = gpu.pool.acquire(g.N * g.Cout * 4, `${what} per-sample sums`);
  try {
    segmentedReduce(gpu, {
      label: what, key: 'conv3d-bias', segLen: dims[2], numSegs: g.N * g.Cout, inputs: [gradOut], dtype, value: 'v0', width: 1,
      out: perSample, scale: 1, maxElems: slabElements(gpu, what, options, dtype),
    });
    reduce(gpu, 'sum', perSample, [g.N, g.Cout], [0], gradB);
  } finally {
    gpu.pool.release(perSample);
  }
}
