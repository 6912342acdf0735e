/**
 * conv3d forward as an implicit GEMM (no im2col buffer):
 *
 *   out[co, vox] = sum_{ci,kd,kh,kw} w[co, ci, kd, kh, kw] * x[ci, vox*s - p + (kd, kh, kw)]
 *
 * The voxel operand (B) is gathered on the fly from the NCDHW input, the padding handled by bounds checks.
 */
import type { Gpu } from '../runtime/gpu.js';
import { storageType, type DType } from '../runtime/precision.js';
import { cachedSignature, kernelSignature, readOnly, readWrite } from '../runtime/kernel-signature.js';
import { checkBuffer } from '../runtime/wgsl.js';
import { directConvForward } from './direct/conv.js';
import {
  SIZE_UNIFORMS, checkWeightFits, geometry, geometryKey, sizeConstants, sizeValues, splitKernelOffset, type Conv3dShape,
} from './geometry.js';
import { gemmShader } from '../gemm/skeleton.js';
import {
  NORM_RELU_WGSL, activationDType, dtypeKey, gemmChoices, inputCoefficients, loadF32, residualKind, residualTerm, storeAs, useDirect,
  type Conv3dOptions, type ResidualKind,
} from './options.js';
import {
  bindingBudget, forwardDepthMap, inputVol, outputVol, planSlabs, slabs, volWindow, whole,
} from './slabs.js';
import { checkTile, chooseConv3dTile, tileKey, type Conv3dTile } from './tiles.js';
import { withTunedConv3dOptions } from './tuned-options.js';

const FORWARD_UNIFORMS = {
  total: 'u32', nT: 'u32', mT: 'u32', M: 'u32', N: 'u32', C: 'u32', cT: 'u32', kT: 'u32',
  xBase: 'u32', oBase: 'u32', wBase: 'u32', co0: 'u32', od0: 'u32', id0: 'u32', accumulate: 'u32',
  cfBase: 'u32', cfStride: 'u32', gateBase: 'u32', gateStride: 'u32',
  ...SIZE_UNIFORMS,
} as const;

/** `dtype`: the activations' storage (x, residual, out); weights, bias, coefficients and gate are f32. */
const forwardSignature = (hasBias: boolean, normRelu: boolean, residual: ResidualKind, dtype: DType) => cachedSignature(`conv3d forward:${hasBias}:${normRelu}:${residual}:${dtype}`, () => kernelSignature('conv3d forward', {
  uniforms: FORWARD_UNIFORMS,
  storage: {
    xs: readOnly(storageType(dtype)), ws: readOnly('f32'), ...(hasBias ? { bs: readOnly('f32') } : {}),
    ...(normRelu ? { cfs: readOnly('vec4f') } : {}),
    ...(residual !== 'none' ? { rs: readOnly(storageType(dtype)) } : {}), ...(residual === 'gated' ? { gts: readOnly('f32') } : {}),
    ys: readWrite(storageType(dtype)),
  },
}));

/**
 * Whether the reduction runs kernel-offset-major ((kd, kh, kw) outer, channels inner in BK chunks): the tap's
 * bounds check and offset are then computed once per tile instead of per element, at the price of padding
 * each offset's channel run to a multiple of BK. Used when the gathered channel count is a multiple of BK or large.
 */
export function offsetMajor(channels: number, k: number, tile: Conv3dTile): boolean {
  return k > 1 && (channels % tile.bk === 0 || channels >= 4 * tile.bk);
}

/**
 * out = conv3d(x, w) + bias on NCDHW buffers (x, out and the residual of `options.dtype`, f32 unless given);
 * `out` holds conv3dOutputShape(shape.x, shape.w, shape).
 */
export function conv3dForward(
  gpu: Gpu, x: GPUBuffer, w: GPUBuffer, bias: GPUBuffer | null, out: GPUBuffer, shape: Conv3dShape,
  options: Conv3dOptions = {},
): void {
  const what = 'conv3d forward';
  options = withTunedConv3dOptions(gpu, shape, 'forward', options);
  const g = geometry(shape, what);
  const dtype = activationDType(gpu, options, what);
  const K3 = g.k ** 3;
  checkBuffer(x, g.N * g.Cin * g.D * g.H * g.W, `${what} input`, dtype);
  checkBuffer(w, g.Cout * g.Cin * K3, `${what} weight`);
  if (bias) checkBuffer(bias, g.Cout, `${what} bias`);
  checkBuffer(out, g.N * g.Cout * g.Do * g.Ho * g.Wo, `${what} output`, dtype);
  const coef = inputCoefficients(options, g.N, g.Cin, what);
  const residual = residualKind(options.residual);
  if (options.residual) checkBuffer(options.residual.buffer, g.N * g.Cout * g.Do * g.Ho * g.Wo, `${what} residual`, dtype);
  if (options.residual?.gate) checkBuffer(options.residual.gate, g.N * g.Cout, `${what} residual gate`);
  // Activation windows are counted in their own elements; the weight (f32) must fit a binding too.
  const budget = bindingBudget(gpu, options.maxBindingBytes, what, dtype);
  checkWeightFits(g, bindingBudget(gpu, options.maxBindingBytes, what), what);
  if (useDirect(gpu, options) && directConvForward(gpu, x, w, bias, out, g, budget, options.directBlocking, coef, options.residual, dtype)) return;
  const tile = options.tile ?? chooseConv3dTile(gpu, g.Cout, g.Do * g.Ho * g.Wo);
  const threads = checkTile(gpu, tile, what);
  const { specialize, prefetch } = gemmChoices(gpu, options);
  const sizes = sizeConstants(g, specialize);
  const major = offsetMajor(g.Cin, g.k, tile);
  const BK = `${tile.bk}u`;
  const sig = forwardSignature(bias !== null, coef !== null, residual, dtype);
  const key = `conv3d:fwd:${geometryKey(g, specialize)}:${tileKey(tile)}:${prefetch ? 'pf' : ''}:${bias ? 'b' : ''}${major ? 'o' : ''}${coef ? 'n' : ''}${residual === 'none' ? '' : residual}${dtypeKey(dtype)}`;
  // With the prologue, a loaded input element becomes relu(GN(x)) from its (sample, channel) coefficients.
  const load = (index: string, channel: string) => {
    const value = loadF32(dtype, `xs[${index}]`);
    return coef ? `normRelu(${value}, cfs[cfRow + ${channel}])` : value;
  };
  const pipeline = sig.pipeline(gpu, key, () => gemmShader({
    tile, threads, prefetch,
    init: sizes.init,
    decls: coef ? `${sizes.decl}\n${NORM_RELU_WGSL}` : sizes.decl,
    privates: `var<private> colOk: bool; var<private> bd: i32; var<private> bh: i32; var<private> bw: i32; var<private> xRow: u32;
var<private> k0: u32; var<private> kp: u32; var<private> tapOk: bool; var<private> colOff: u32; var<private> cfRow: u32;`,
    decode: 'let tn = lin % p.nT; let rest = lin / p.nT; let tm = rest % p.mT; let nl = rest / p.mT;',
    setup: `
  let vox = n0 + bcol;
  colOk = vox < p.N;
  let od = vox / HWO + p.od0; let rem = vox % HWO; let oh = rem / WO; let ow = rem % WO;
  bd = i32(od * S) - P; bh = i32(oh * S) - P; bw = i32(ow * S) - P;
  xRow = p.xBase + nl * XS;
  cfRow = p.cfBase + nl * p.cfStride;`,
    tBegin: '0u',
    tEnd: 'p.kT',
    tileSetup: major ? `
  kp = t / p.cT; k0 = (t - kp * p.cT) * ${BK};
  ${splitKernelOffset(g, 'kp')}
  let id = bd + i32(kd); let ih = bh + i32(kh); let iw = bw + i32(kw);
  tapOk = colOk & (u32(id) < D) & (u32(ih) < H) & (u32(iw) < W);
  colOff = xRow + (u32(id) - p.id0) * HW + u32(ih) * W + u32(iw);` : `k0 = t * ${BK};`,
    loadA: major
      ? 'let c = k0 + kc; let ok = (row < p.M) & (c < p.C); return select(0.0, ws[select(0u, p.wBase + row * WROW + c * K3 + kp, ok)], ok);'
      : 'let k = k0 + kc; let ok = (row < p.M) & (k < p.C * K3); return select(0.0, ws[select(0u, p.wBase + row * WROW + k, ok)], ok);',
    loadB: major ? `let c = k0 + kr; let ok = tapOk & (c < p.C); return select(0.0, ${load('select(0u, colOff + c * DHW, ok)', 'c')}, ok);` : `
  let k = k0 + kr;
  let ci = k / K3; let r = k - ci * K3;
  ${splitKernelOffset(g, 'r')}
  let id = bd + i32(kd); let ih = bh + i32(kh); let iw = bw + i32(kw);
  let ok = colOk & (k < p.C * K3) & (u32(id) < D) & (u32(ih) < H) & (u32(iw) < W);
  return select(0.0, ${load('select(0u, xRow + ci * DHW + (u32(id) - p.id0) * HW + u32(ih) * W + u32(iw), ok)', 'ci')}, ok);`,
    store: `let idx = p.oBase + nl * OS + row * DHWO + col;
    if (p.accumulate != 0u) { ys[idx] = ${storeAs(dtype, `${loadF32(dtype, 'ys[idx]')} + v`)}; } else { ys[idx] = ${storeAs(dtype, `v${bias ? ' + bs[p.co0 + row]' : ''}${residualTerm(residual, 'idx', 'p.gateBase + nl * p.gateStride + row', dtype)}`)}; }`,
  }));
  const X = inputVol(g);
  const O = outputVol(g);
  const map = forwardDepthMap(g);
  const plan = planSlabs(g.N, O, X, map, budget, what);
  const sizeUniforms = sizeValues(g);
  const weights = whole(w, g.Cout * g.Cin * K3);
  for (const sl of slabs(g.N, O, X, map, plan)) {
    const xw = volWindow(gpu, x, X, sl.n0, sl.nc, sl.b0, sl.bc, sl.lo, sl.hi - sl.lo, dtype);
    const ow = volWindow(gpu, out, O, sl.n0, sl.nc, sl.a0, sl.ac, sl.d0, sl.dc, dtype);
    // The residual has the output's shape, dtype and size class, so its window has the same base: one index serves both.
    const rw = options.residual ? volWindow(gpu, options.residual.buffer, O, sl.n0, sl.nc, sl.a0, sl.ac, sl.d0, sl.dc, dtype) : null;
    if (rw && rw.base !== ow.base) throw new Error(`${what}: the residual buffer's window does not line up with the output's (sizes ${options.residual!.buffer.size} and ${out.size} bytes)`);
    const N = sl.dc * O.hw;
    const nT = Math.ceil(N / tile.bn);
    const mT = Math.ceil(sl.ac / tile.bm);
    const total = nT * mT * sl.nc;
    const cT = Math.ceil(sl.bc / tile.bk);
    const uniforms = {
      total, nT, mT, M: sl.ac, N, C: sl.bc, cT, kT: major ? K3 * cT : Math.ceil((sl.bc * K3) / tile.bk),
      xBase: xw.base, oBase: ow.base, wBase: sl.a0 * g.Cin * K3 + sl.b0 * K3, co0: sl.a0, od0: sl.d0, id0: sl.lo,
      accumulate: sl.firstB ? 0 : 1, cfBase: sl.n0 * g.Cin + sl.b0, cfStride: g.Cin, gateBase: sl.n0 * g.Cout + sl.a0, gateStride: g.Cout, ...sizeUniforms,
    };
    const buffers = {
      xs: xw.binding, ws: weights, ys: ow.binding, ...(bias ? { bs: whole(bias, g.Cout) } : {}),
      ...(coef ? { cfs: whole(coef, 4 * g.N * g.Cin) } : {}),
      ...(rw ? { rs: rw.binding } : {}), ...(options.residual?.gate ? { gts: whole(options.residual.gate, g.N * g.Cout) } : {}),
    };
    const flops = 2 * sl.nc * sl.ac * sl.bc * K3 * N;
    gpu.dispatch({ pipeline, label: 'conv3d:fwd', workgroups: total, flops, ...sig.bind(uniforms, buffers) });
  }
}
