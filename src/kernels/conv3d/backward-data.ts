/**
 * conv3d data gradient (the transposed convolution) as an implicit GEMM:
 *
 *   gx[ci, vox] = sum_{co,kd,kh,kw} w[co, ci, kd, kh, kw] * gy[co, (vox + p - (kd, kh, kw)) / s]
 */
import type { Gpu } from '../runtime/gpu.js';
import { cachedSignature, kernelSignature, readOnly, readWrite } from '../runtime/kernel-signature.js';
import { storageType, type DType } from '../runtime/precision.js';
import { checkBuffer } from '../runtime/wgsl.js';
import { directConvBackwardData } from './direct/conv.js';
import { offsetMajor } from './forward.js';
import {
  SIZE_UNIFORMS, checkWeightFits, geometry, geometryKey, sizeConstants, sizeValues, splitKernelOffset,
  type Conv3dGeometry, type Conv3dShape,
} from './geometry.js';
import { gemmShader, type GemmParts } from '../gemm/skeleton.js';
import { activationDType, dtypeKey, gemmChoices, loadF32, storeAs, useDirect, type Conv3dOptions } from './options.js';
import {
  backwardDepthMap, bindingBudget, inputVol, outputVol, planSlabs, slabs, volWindow, whole,
} from './slabs.js';
import { checkTile, chooseConv3dTile, tileKey } from './tiles.js';
import { withTunedConv3dOptions } from './tuned-options.js';

/** The phase of the phase-split form (see conv3dBackwardData); all zero in the element-wise gather. */
const PHASE_UNIFORMS = {
  // voxel offsets of the phase, its first depth index and H, W extents
  ad: 'u32', ah: 'u32', aw: 'u32', jd0: 'u32', nh: 'u32', nw: 'u32',
  // first taps, tap counts along H and W, output shifts
  rd: 'u32', rh: 'u32', rw: 'u32', th: 'u32', tw: 'u32', qd: 'u32', qh: 'u32', qw: 'u32',
} as const;

type Phase = { [K in keyof typeof PHASE_UNIFORMS]: number };

const NO_PHASE: Phase = { ad: 0, ah: 0, aw: 0, jd0: 0, nh: 0, nw: 0, rd: 0, rh: 0, rw: 0, th: 0, tw: 0, qd: 0, qh: 0, qw: 0 };

/** `dtype`: the storage of gradOut and gradX; the weight is f32. */
const dataGradSignature = (dtype: DType) => cachedSignature(`conv3d backward data:${dtype}`, () => kernelSignature('conv3d backward data', {
  uniforms: {
    total: 'u32', nT: 'u32', mT: 'u32', M: 'u32', N: 'u32', C: 'u32', cT: 'u32', kT: 'u32',
    xBase: 'u32', gBase: 'u32', wBase: 'u32', id0: 'u32', od0: 'u32', accumulate: 'u32',
    ...PHASE_UNIFORMS, ...SIZE_UNIFORMS,
  },
  storage: { gs: readOnly(storageType(dtype)), ws: readOnly('f32'), gxs: readWrite(storageType(dtype)) },
}));

/** The GEMM parts that differ between the element-wise gather and the phase-split form. */
function dataGradParts(
  g: Conv3dGeometry, phased: boolean, BK: string, dtype: DType,
): Pick<GemmParts, 'setup' | 'tileSetup' | 'loadA' | 'loadB' | 'store'> {
  const accumulate = `if (p.accumulate != 0u) { gxs[idx] = ${storeAs(dtype, `${loadF32(dtype, 'gxs[idx]')} + v`)}; } else { gxs[idx] = ${storeAs(dtype, 'v')}; }`;
  if (!phased) {
    return {
      setup: `
  let vox = n0 + bcol;
  colOk = vox < p.N;
  let id = vox / HW + p.id0; let rem = vox % HW; let ih = rem / W; let iw = rem % W;
  bd = i32(id) + P; bh = i32(ih) + P; bw = i32(iw) + P;
  gRow = p.gBase + nl * OS;`,
      tileSetup: `k0 = t * ${BK};`,
      loadA: `let k = k0 + kc;
  let ok = (row < p.M) & (k < p.C * K3);
  let co = k / K3; let r = k - co * K3;
  return select(0.0, ws[select(0u, p.wBase + co * WROW + row * K3 + r, ok)], ok);`,
      loadB: `
  let k = k0 + kr;
  let co = k / K3; let r = k - co * K3;
  ${splitKernelOffset(g, 'r')}
  let od = u32(bd - i32(kd)); let oh = u32(bh - i32(kh)); let ow = u32(bw - i32(kw));
  let ok = colOk & (k < p.C * K3) & (od < DO) & (oh < HO) & (ow < WO);
  return select(0.0, ${loadF32(dtype, 'gs[select(0u, gRow + co * DHWO + (od - p.od0) * HWO + oh * WO + ow, ok)]')}, ok);`,
      store: `let idx = p.xBase + nl * XS + row * DHW + col;
    ${accumulate}`,
    };
  }
  return {
    setup: `
  let vox = n0 + bcol;
  colOk = vox < p.N;
  let jd = vox / (p.nh * p.nw) + p.jd0; let rem = vox % (p.nh * p.nw); let jh = rem / p.nw; let jw = rem % p.nw;
  bd = i32(jd + p.qd); bh = i32(jh + p.qh); bw = i32(jw + p.qw);
  gRow = p.gBase + nl * OS;`,
    tileSetup: `
  let kp = t / p.cT; k0 = (t - kp * p.cT) * ${BK};
  let td = kp / (p.th * p.tw); let tr = kp % (p.th * p.tw); let th = tr / p.tw; let tw = tr % p.tw;
  kpos = ((p.rd + S * td) * KS + p.rh + S * th) * KS + p.rw + S * tw;
  let od = u32(bd - i32(td)); let oh = u32(bh - i32(th)); let ow = u32(bw - i32(tw));
  tapOk = colOk & (od < DO) & (oh < HO) & (ow < WO);
  colOff = gRow + (od - p.od0) * HWO + oh * WO + ow;`,
    loadA: 'let c = k0 + kc; let ok = (row < p.M) & (c < p.C); return select(0.0, ws[select(0u, p.wBase + c * WROW + row * K3 + kpos, ok)], ok);',
    loadB: `let c = k0 + kr; let ok = tapOk & (c < p.C); return select(0.0, ${loadF32(dtype, 'gs[select(0u, colOff + c * DHWO, ok)]')}, ok);`,
    store: `let jd = col / (p.nh * p.nw) + p.jd0; let rem = col % (p.nh * p.nw);
    let id = p.ad + S * jd; let ih = p.ah + S * (rem / p.nw); let iw = p.aw + S * (rem % p.nw);
    let idx = p.xBase + nl * XS + row * DHW + (id - p.id0) * HW + ih * W + iw;
    ${accumulate}`,
  };
}

/**
 * gradX = d(sum(gradOut * conv3d(x, w)))/dx, the transposed convolution; `gradX` holds shape.x.
 *
 * Input voxels are split into s^3 phases by (coordinate mod s). Within a phase only the taps k with
 * k = (a + p) mod s (mod s) reach an output, and output = j + q - t for phase index j and tap index t: each phase
 * is a dense implicit GEMM over exactly its taps, so a stride-2 gradient does the forward's work, not 8 times it.
 * Small channel counts with stride 1 use the element-wise gather instead (no padding of channel runs to BK).
 */
export function conv3dBackwardData(
  gpu: Gpu, gradOut: GPUBuffer, w: GPUBuffer, gradX: GPUBuffer, shape: Conv3dShape, options: Conv3dOptions = {},
): void {
  const what = 'conv3d backward data';
  options = withTunedConv3dOptions(gpu, shape, 'data', options);
  const g = geometry(shape, what);
  const dtype = activationDType(gpu, options, what);
  const K3 = g.k ** 3;
  checkBuffer(gradOut, g.N * g.Cout * g.Do * g.Ho * g.Wo, `${what} gradOut`, dtype);
  checkBuffer(w, g.Cout * g.Cin * K3, `${what} weight`);
  checkBuffer(gradX, g.N * g.Cin * g.D * g.H * g.W, `${what} gradX`, dtype);
  const budget = bindingBudget(gpu, options.maxBindingBytes, what, dtype);
  checkWeightFits(g, bindingBudget(gpu, options.maxBindingBytes, what), what);
  if (useDirect(gpu, options) && directConvBackwardData(gpu, gradOut, w, gradX, g, budget, options.directBlocking, dtype)) return;
  const tile = options.tile ?? chooseConv3dTile(gpu, g.Cin, g.D * g.H * g.W);
  const threads = checkTile(gpu, tile, what);
  const { specialize, prefetch } = gemmChoices(gpu, options);
  const sizes = sizeConstants(g, specialize);
  const phased = g.s > 1 || offsetMajor(g.Cout, g.k, tile);
  const key = `conv3d:dgrad:${geometryKey(g, specialize)}:${tileKey(tile)}:${prefetch ? 'pf' : ''}:${phased ? 'ph' : ''}${dtypeKey(dtype)}`;
  const sig = dataGradSignature(dtype);
  const pipeline = sig.pipeline(gpu, key, () => gemmShader({
    tile, threads, prefetch,
    init: sizes.init,
    decls: sizes.decl,
    privates: `var<private> colOk: bool; var<private> bd: i32; var<private> bh: i32; var<private> bw: i32; var<private> gRow: u32;
var<private> k0: u32; var<private> kpos: u32; var<private> tapOk: bool; var<private> colOff: u32;`,
    decode: 'let tn = lin % p.nT; let rest = lin / p.nT; let tm = rest % p.mT; let nl = rest / p.mT;',
    tBegin: '0u',
    tEnd: 'p.kT',
    ...dataGradParts(g, phased, `${tile.bk}u`, dtype),
  }));
  const X = inputVol(g);
  const O = outputVol(g);
  const map = backwardDepthMap(g);
  const plan = planSlabs(g.N, X, O, map, budget, what);
  const s = g.s;
  const ceilDiv = (a: number, b: number) => Math.ceil(a / b);
  /** Phase a of one axis: first tap r, tap count, output shift q (output = j + q - t). */
  const phaseTaps = (a: number): [number, number, number] => {
    const r = (a + g.p) % s;
    return [r, r < g.k ? ceilDiv(g.k - r, s) : 0, (a + g.p - r) / s];
  };
  const phases: number[][] = [];
  if (phased) for (let ad = 0; ad < s; ad++) for (let ah = 0; ah < s; ah++) for (let aw = 0; aw < s; aw++) phases.push([ad, ah, aw]);
  const sizeUniforms = sizeValues(g);
  const weights = whole(w, g.Cout * g.Cin * K3);
  for (const sl of slabs(g.N, X, O, map, plan)) {
    const xw = volWindow(gpu, gradX, X, sl.n0, sl.nc, sl.a0, sl.ac, sl.d0, sl.dc, dtype);
    const gw = volWindow(gpu, gradOut, O, sl.n0, sl.nc, sl.b0, sl.bc, sl.lo, sl.hi - sl.lo, dtype);
    const mT = Math.ceil(sl.ac / tile.bm);
    const cT = Math.ceil(sl.bc / tile.bk);
    const launch = (N: number, kT: number, phase: Phase) => {
      const nT = Math.ceil(N / tile.bn);
      const total = nT * mT * sl.nc;
      const uniforms = {
        total, nT, mT, M: sl.ac, N, C: sl.bc, cT, kT, xBase: xw.base, gBase: gw.base,
        wBase: sl.b0 * g.Cin * K3 + sl.a0 * K3, id0: sl.d0, od0: sl.lo, accumulate: sl.firstB ? 0 : 1,
        ...phase, ...sizeUniforms,
      };
      // This launch's share (batch, channel chunks, input voxels) of the pass's 2*N*Cout*Cin*k^3*Do*Ho*Wo.
      const flops = (2 * K3 * g.Do * g.Ho * g.Wo * sl.nc * sl.ac * sl.bc * N) / (g.D * g.H * g.W);
      gpu.dispatch({
        pipeline, label: 'conv3d:dgrad', workgroups: total, flops,
        ...sig.bind(uniforms, { gs: gw.binding, ws: weights, gxs: xw.binding }),
      });
    };
    if (!phased) {
      launch(sl.dc * X.hw, Math.ceil((sl.bc * K3) / tile.bk), NO_PHASE);
      continue;
    }
    for (const [ad, ah, aw] of phases) {
      const jd0 = Math.max(0, ceilDiv(sl.d0 - ad, s));
      const jd1 = Math.max(jd0, ceilDiv(sl.d0 + sl.dc - ad, s));
      const nh = Math.max(0, ceilDiv(g.H - ah, s));
      const nw = Math.max(0, ceilDiv(g.W - aw, s));
      const N = (jd1 - jd0) * nh * nw;
      if (N === 0) continue;
      const [rd, td, qd] = phaseTaps(ad);
      const [rh, th, qh] = phaseTaps(ah);
      const [rw, tw, qw] = phaseTaps(aw);
      // A phase without taps gets no gradient: it still runs (zero tiles) to write its zeros.
      launch(N, td * th * tw * cT, { ad, ah, aw, jd0, nh, nw, rd, rh, rw, th, tw, qd, qh, qw });
    }
  }
}
