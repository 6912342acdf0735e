/**
 * The direct convolution kernel (see common.ts): the forward pass, and the stride-1 data gradient as the same
 * kernel on gradOut with the kernel flipped.
 */
import type { Gpu } from '../../runtime/gpu.js';
import { cachedSignature, kernelSignature, readOnly, readWrite } from '../../runtime/kernel-signature.js';
import { storageType, type DType } from '../../runtime/precision.js';
import { alignedWindow, windowSlack } from '../../runtime/windows.js';
import type { Conv3dGeometry } from '../geometry.js';
import {
  NORM_RELU_WGSL, dtypeKey, loadF32, residualKind, residualTerm, storeAs, type Conv3dOptions, type ResidualKind,
} from '../options.js';
import { whole } from '../slabs.js';
import {
  accumulators, batchGroups, broadcastBlocking, DIRECT_MAX_KERNEL, type DirectBlocking, directMain, laneBlocks, straightLineTaps,
} from './common.js';
import { directStridedBackwardData } from './strided.js';

/** The largest kernel side that takes the subgroup-broadcast form of the weights (see convShader). */
const BROADCAST_MAX_KERNEL = 3;

/** Voxel groups below which lanes also run over channel blocks: one SIMD vector of lavapipe (8 lanes). */
const FOLD_BELOW = 8;

/** `dtype`: the storage of src, dst and the residual; weights, bias, coefficients and gate are f32. */
const convSignature = (hasBias: boolean, normRelu: boolean, residual: ResidualKind, dtype: DType) => cachedSignature(`conv3d direct convolution:${hasBias}:${normRelu}:${residual}:${dtype}`, () => kernelSignature('conv3d direct convolution', {
  uniforms: {
    total: 'u32', nVB: 'u32', nCB: 'u32', nGroups: 'u32', nWg: 'u32', Cs: 'u32', Cd: 'u32', kdLo: 'u32', kdHi: 'u32', khLo: 'u32', khHi: 'u32',
    D: 'u32', H: 'u32', W: 'u32', Do: 'u32', Ho: 'u32', Wo: 'u32',
    sDst: 'u32', sSrc: 'u32', srcBase: 'u32', dstBase: 'u32', srcNS: 'u32', dstNS: 'u32', pad: 'u32', wLast: 'u32', cfBase: 'u32', gateBase: 'u32',
  },
  storage: {
    src: readOnly(storageType(dtype)), ws: readOnly('f32'), ...(hasBias ? { bs: readOnly('f32') } : {}),
    ...(normRelu ? { cfs: readOnly('vec4f') } : {}),
    ...(residual !== 'none' ? { rs: readOnly(storageType(dtype)) } : {}), ...(residual === 'gated' ? { gts: readOnly('f32') } : {}),
    dst: readWrite(storageType(dtype)),
  },
}));

/** One convolution as the direct kernel sees it: src [N, Cs, D, H, W] -> dst [N, Cd, Do, Ho, Wo]. */
interface ConvJob {
  N: number; Cs: number; Cd: number; D: number; H: number; W: number; Do: number; Ho: number; Wo: number;
  k: number; s: number; p: number;
  /** Weight element of (dst channel d, src channel c, tap t): d * sDst + c * sSrc + (flip ? k^3 - 1 - t : t). */
  sDst: number; sSrc: number; flip: boolean;
  /** Element type of src, dst and the residual. */
  dtype: DType;
}

/**
 * `foldChannels`: lanes run over (voxel group, channel block) pairs instead of voxel groups only, for outputs with
 * fewer voxel groups than a SIMD vector has lanes (the deepest layers: 1x3x3 outputs left 5 of 8 lanes idle). The
 * weights then differ per lane (gathers instead of uniform loads), which costs less than idle lanes.
 */
function convShader(
  j: ConvJob, b: DirectBlocking, hasBias: boolean, normRelu: boolean, residual: ResidualKind, wg: number, foldChannels: boolean,
  sg: number, straight: boolean,
): string {
  const { k, s } = j;
  const { ct, vw } = b;
  const L = (vw - 1) * s + k;
  const K3 = k ** 3;
  /** One source row's loads and FMAs; `weight(kw, c)` is the WGSL of the weight of tap kw of this row, channel c0 + c. */
  const row = (weight: (kw: number, c: number) => string): string[] => {
    const lines: string[] = [];
    for (let i = 0; i < L; i++) {
      const value = loadF32(j.dtype, `src[select(0u, u32(rowBase + ${i}), ok${i})]`);
      lines.push(`let ok${i} = rowOk & (u32(iw0 + ${i}) < p.W); let x${i} = select(0.0, ${normRelu ? `normRelu(${value}, cf)` : value}, ok${i});`);
    }
    for (let kw = 0; kw < k; kw++) {
      for (let c = 0; c < ct; c++) {
        // One line per weight: its FMAs are straight-line code, no branch.
        const fmas = Array.from({ length: vw }, (_, v) => `a${c}_${v} = fma(w${c}_${kw}, x${v * s + kw}, a${c}_${v});`);
        lines.push(`let w${c}_${kw} = ${weight(kw, c)}; ${fmas.join(' ')}`);
      }
    }
    return lines;
  };
  const tap = (t: string) => (j.flip ? `${K3 - 1}u - (${t})` : t);
  // With subgroups (channel blocks uniform per workgroup): the CT x k^2 weights of a (kd) slice of this source
  // channel's filters are the same for all lanes, and lavapipe loads lane by lane even then, so each lane loads
  // different ones (ceil(CT k^2 / sg) loads instead of CT k^2) and they reach every lane by constant-index
  // broadcasts; the kh loop is unrolled for the constant lane indices (unrolling kd too made the code outgrow the
  // instruction cache: slower). Same FMAs in the same order as the loop form.
  const broadcast = sg > 0 && !foldChannels;
  let taps: string;
  if (broadcast) {
    const K2 = k * k;
    const values = ct * K2;
    const loads: string[] = [];
    for (let m = 0; m < Math.ceil(values / sg); m++) {
      loads.push(`let we${m} = min(sgl + ${m * sg}u, ${values - 1}u); let wc${m} = we${m} / ${K2}u;`);
      loads.push(`let wr${m} = select(0.0, ws[min((c0 + wc${m}) * p.sDst + ci * p.sSrc + ${tap(`kd * ${K2}u + we${m} % ${K2}u`)}, p.wLast)], c0 + wc${m} < p.Cd);`);
    }
    const blocks: string[] = [];
    for (let kh = 0; kh < k; kh++) {
      // A tap outside [khLo, khHi] reads only padding, which rowOk already zeroes: straight code needs no test.
      blocks.push(`${straight ? '' : `if ((${kh}u >= p.khLo) & (${kh}u <= p.khHi)) `}{
        let ih = ih0 + ${kh};
        let rowOk = valid & (u32(id) < p.D) & (u32(ih) < p.H);
        let rowBase = cBase + id * i32(HW) + ih * i32(p.W) + iw0;
        ${row((kw, c) => { const e = c * K2 + kh * k + kw; return `subgroupBroadcast(wr${Math.floor(e / sg)}, ${e % sg}u)`; }).join('\n        ')}
      }`);
    }
    taps = `for (var kd = p.kdLo; kd <= p.kdHi; kd++) {
      let id = id0 + i32(kd);
      ${loads.join('\n      ')}
      ${blocks.join('\n      ')}
    }`;
  } else {
    taps = `for (var kd = p.kdLo; kd <= p.kdHi; kd++) {
      let id = id0 + i32(kd);
      for (var kh = p.khLo; kh <= p.khHi; kh++) {
        let ih = ih0 + i32(kh);
        let rowOk = valid & (u32(id) < p.D) & (u32(ih) < p.H);
        let rowBase = cBase + id * i32(HW) + ih * i32(p.W) + iw0;
        let tapRow = (kd * K + kh) * K;
        ${row((kw, c) => `ws[min(wBase + ${c}u * p.sDst + ${tap(`tapRow + ${kw}u`)}, p.wLast)]`).join('\n        ')}
      }
    }`;
  }
  const stores: string[] = [];
  for (let c = 0; c < ct; c++) {
    stores.push(`if (c0 + ${c}u < p.Cd) {`);
    const bias = hasBias ? ` + bs[c0 + ${c}u]` : '';
    for (let v = 0; v < vw; v++) {
      const at = `oRow + ${c}u * DHWO + ${v}u`;
      const sum = `a${c}_${v}${bias}${residualTerm(residual, at, `p.gateBase + n * p.Cd + c0 + ${c}u`, j.dtype)}`;
      stores.push(`  if (ow0 + ${v}u < p.Wo) { dst[${at}] = ${storeAs(j.dtype, sum)}; }`);
    }
    stores.push('}');
  }
  return /* wgsl */ `
const K = ${k}u;
const K3 = ${K3}u;
${normRelu ? NORM_RELU_WGSL : ''}

${directMain(wg, broadcast)}
  if (lin >= p.total) { return; }
  ${foldChannels ? `let vb = lin % p.nVB; let n = lin / p.nVB;
  let items = p.nGroups * p.nCB;
  let item = vb * ${wg}u + lid;
  let valid = item < items;
  let it = min(item, items - 1u);
  let g = it % p.nGroups;
  let c0 = (it / p.nGroups) * ${ct}u;` : `let vb = lin % p.nVB; let rest = lin / p.nVB; let cb = rest % p.nCB; let n = rest / p.nCB;
  let c0 = cb * ${ct}u;
  let gi = vb * ${wg}u + lid;
  let valid = gi < p.nGroups;
  let g = min(gi, p.nGroups - 1u);`}
  let owg = g % p.nWg; let t = g / p.nWg; let oh = t % p.Ho; let od = t / p.Ho;
  let ow0 = owg * ${vw}u;
  let PAD = i32(p.pad);
  let id0 = i32(od * ${s}u) - PAD; let ih0 = i32(oh * ${s}u) - PAD; let iw0 = i32(ow0 * ${s}u) - PAD;
  let HW = p.H * p.W; let DHW = p.D * HW; let DHWO = p.Do * p.Ho * p.Wo;
  ${accumulators(ct, vw).join('\n  ')}
  for (var ci = 0u; ci < p.Cs; ci++) {
    let cBase = i32(p.srcBase + n * p.srcNS + ci * DHW);
    let wBase = c0 * p.sDst + ci * p.sSrc;
    ${normRelu ? 'let cf = cfs[p.cfBase + n * p.Cs + ci];' : ''}
    ${taps}
  }
  if (!valid) { return; }
  let oRow = p.dstBase + n * p.dstNS + c0 * DHWO + (od * p.Ho + oh) * p.Wo + ow0;
  ${stores.join('\n  ')}
}`;
}

function runConv(
  gpu: Gpu, src: GPUBuffer, w: GPUBuffer, bias: GPUBuffer | null, dst: GPUBuffer, j: ConvJob, budget: number,
  blocking: DirectBlocking | undefined, label: string, coef: GPUBuffer | null = null,
  residual?: Conv3dOptions['residual'],
): boolean {
  if (j.k > DIRECT_MAX_KERNEL) return false;
  const srcSample = j.Cs * j.D * j.H * j.W;
  const dstSample = j.Cd * j.Do * j.Ho * j.Wo;
  const slack = windowSlack(gpu, j.dtype);
  const groups = batchGroups(j.N, srcSample + slack, dstSample + slack, budget);
  if (!groups) return false;
  const canBroadcast = gpu.subgroupSize !== null && j.k <= BROADCAST_MAX_KERNEL && j.Do * j.Ho * Math.ceil(j.Wo / 4) >= FOLD_BELOW;
  // Stride 2 reads (vw - 1) * 2 + k source values a row: 8 channels would pass the WGSL size budget there.
  const b = blocking ?? broadcastBlocking(j.Cd, canBroadcast && j.s === 1);
  const hasBias = bias !== null;
  const nWg = Math.ceil(j.Wo / b.vw);
  const nGroups = j.Do * j.Ho * nWg;
  const nCB = Math.ceil(j.Cd / b.ct);
  const foldChannels = nGroups < FOLD_BELOW && nCB > 1;
  const { wg, blocks: nVB } = laneBlocks(foldChannels ? nGroups * nCB : nGroups, 64);
  const kind = residualKind(residual);
  const sig = convSignature(hasBias, coef !== null, kind, j.dtype);
  // Subgroups must not straddle workgroups, and the broadcast form is only for uniform channel blocks and kernels up
  // to 3 (its kh loop is unrolled: k = 5 and 7 would pass the WGSL size budget, and no model uses them).
  const sg = !foldChannels && j.k <= BROADCAST_MAX_KERNEL && gpu.subgroupSize !== null && wg % gpu.subgroupSize === 0
    ? gpu.subgroupSize : 0;
  const straight = sg > 0 && straightLineTaps(gpu);
  const key = `conv3d:direct:k${j.k}s${j.s}:${b.ct}x${b.vw}:${wg}:${j.flip ? 'f' : ''}${hasBias ? 'b' : ''}${coef ? 'n' : ''}${kind === 'none' ? '' : kind}${foldChannels ? 'x' : ''}${sg ? `:sg${sg}` : ''}${straight ? ':sl' : ''}${dtypeKey(j.dtype)}`;
  const pipeline = sg
    ? gpu.pipeline(key, () => `enable subgroups;\n${sig.wgsl}\n${convShader(j, b, hasBias, coef !== null, kind, wg, foldChannels, sg, straight)}`, sig.access)
    : sig.pipeline(gpu, key, () => convShader(j, b, hasBias, coef !== null, kind, wg, foldChannels, 0, false));
  const wSize = j.Cd * j.Cs * j.k ** 3;
  const weights = whole(w, wSize);
  const kd = tapRange(j.D, j.Do, j);
  const kh = tapRange(j.H, j.Ho, j);
  for (const [n0, nc] of groups) {
    const sw = alignedWindow(gpu, src, n0 * srcSample, nc * srcSample, j.dtype);
    const dw = alignedWindow(gpu, dst, n0 * dstSample, nc * dstSample, j.dtype);
    // Same element range, dtype and size class as the output: the same base, so one index serves both.
    const rw = residual ? alignedWindow(gpu, residual.buffer, n0 * dstSample, nc * dstSample, j.dtype) : null;
    if (rw && rw.base !== dw.base) throw new Error(`${label}: the residual buffer's window does not line up with the output's`);
    const total = foldChannels ? nVB * nc : nVB * nCB * nc;
    const uniforms = {
      total, nVB, nCB, nGroups, nWg, Cs: j.Cs, Cd: j.Cd, kdLo: kd[0], kdHi: kd[1], khLo: kh[0], khHi: kh[1],
      D: j.D, H: j.H, W: j.W, Do: j.Do, Ho: j.Ho, Wo: j.Wo,
      sDst: j.sDst, sSrc: j.sSrc, srcBase: sw.base, dstBase: dw.base, srcNS: srcSample, dstNS: dstSample, pad: j.p, wLast: wSize - 1,
      cfBase: n0 * j.Cs, gateBase: n0 * j.Cd,
    };
    const buffers = {
      src: sw.binding, ws: weights, dst: dw.binding, ...(bias ? { bs: whole(bias, j.Cd) } : {}),
      ...(coef ? { cfs: whole(coef, 4 * j.N * j.Cs) } : {}),
      ...(rw ? { rs: rw.binding } : {}), ...(residual?.gate ? { gts: whole(residual.gate, j.N * j.Cd) } : {}),
    };
    const flops = 2 * nc * j.Cd * j.Cs * j.k ** 3 * j.Do * j.Ho * j.Wo;
    gpu.dispatch({ pipeline, label, workgroups: total, flops, ...sig.bind(uniforms, buffers) });
  }
  return true;
}

/**
 * The taps along one axis (source size `n`, output size `no`) that reach the source for some output: [lo, hi] (empty
 * when lo > hi). Others multiply only padding zeros, so the kd and kh loops skip them for all lanes: on a 1x3x3 grid
 * (TGNet's deepest layers) two of the three kd planes. Skipping fma(w, 0, a) changes no result (finite weights).
 */
function tapRange(n: number, no: number, j: ConvJob): [number, number] {
  const lo = Math.max(0, j.p - (no - 1) * j.s);
  const hi = Math.min(j.k - 1, n - 1 + j.p);
  return lo > hi ? [1, 0] : [lo, hi];
}

/**
 * out = conv3d(x, w) + bias by the direct kernel (of relu(GN(x)) when `coef` holds the input's GN coefficients,
 * see Conv3dOptions.inputNormRelu; plus the residual, see Conv3dOptions.residual); false (nothing recorded) when
 * one sample does not fit a binding.
 */
export function directConvForward(
  gpu: Gpu, x: GPUBuffer, w: GPUBuffer, bias: GPUBuffer | null, out: GPUBuffer, g: Conv3dGeometry, budget: number,
  blocking?: DirectBlocking, coef: GPUBuffer | null = null, residual?: Conv3dOptions['residual'], dtype: DType = 'f32',
): boolean {
  const K3 = g.k ** 3;
  return runConv(gpu, x, w, bias, out, {
    N: g.N, Cs: g.Cin, Cd: g.Cout, D: g.D, H: g.H, W: g.W, Do: g.Do, Ho: g.Ho, Wo: g.Wo, k: g.k, s: g.s, p: g.p,
    sDst: g.Cin * K3, sSrc: K3, flip: false, dtype,
  }, budget, blocking, 'conv3d:fwd', coef, residual);
}

/**
 * gradX by the direct kernels: for stride 1 (and padding up to k - 1) the convolution kernel on gradOut
 * (flipped kernel, padding k - 1 - p), otherwise the strided gather; false (nothing recorded) when one sample
 * does not fit a binding.
 */
export function directConvBackwardData(
  gpu: Gpu, gradOut: GPUBuffer, w: GPUBuffer, gradX: GPUBuffer, g: Conv3dGeometry, budget: number,
  blocking?: DirectBlocking, dtype: DType = 'f32',
): boolean {
  if (g.s !== 1 || g.p > g.k - 1) return directStridedBackwardData(gpu, gradOut, w, gradX, g, budget, blocking, dtype);
  const K3 = g.k ** 3;
  return runConv(gpu, gradOut, w, null, gradX, {
    N: g.N, Cs: g.Cout, Cd: g.Cin, D: g.Do, H: g.Ho, W: g.Wo, Do: g.D, Ho: g.H, Wo: g.W, k: g.k, s: 1, p: g.k - 1 - g.p,
    // A 1x1x1 kernel flipped is itself: the forward pipeline serves, one shader fewer to compile.
    sDst: K3, sSrc: g.Cin * K3, flip: g.k !== 1, dtype,
  }, budget, blocking, 'conv3d:dgrad');
}
