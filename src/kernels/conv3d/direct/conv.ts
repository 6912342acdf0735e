/**
 * The direct convolution kernel (see common.ts): the forward pass, and the stride-1 data gradient as the same
 * kernel on gradOut with the kernel flipped.
 */
import type { Gpu } from '../../runtime/gpu.js';
import { cachedSignature, kernelSignature, readOnly, readWrite } from '../../runtime/kernel-signature.js';
import { alignedWindow } from '../../runtime/windows.js';
import { linearMain } from '../../runtime/wgsl.js';
import type { Conv3dGeometry } from '../geometry.js';
import { NORM_RELU_WGSL, residualKind, residualTerm, type Conv3dOptions, type ResidualKind } from '../options.js';
import { whole } from '../slabs.js';
import { accumulators, batchGroups, broadcastBlocking, DIRECT_MAX_KERNEL, type DirectBlocking, directMain, laneBlocks } from './common.js';
import { directStridedBackwardData } from './strided.js';

/** The largest kernel side that takes the subgroup-broadcast form of the weights (see convShader). */
const BROADCAST_MAX_KERNEL = 3;

/** Voxel groups below which lanes also run over channel blocks: one SIMD vector of lavapipe (8 lanes). */
const FOLD_BELOW = 8;

const convSignature = (hasBias: boolean, normRelu: boolean, residual: ResidualKind) => cachedSignature(`conv3d direct convolution:${hasBias}:${normRelu}:${residual}`, () => kernelSignature('conv3d direct convolution', {
  uniforms: {
    total: 'u32', nVB: 'u32', nCB: 'u32', nGroups: 'u32', nWg: 'u32', Cs: 'u32', Cd: 'u32',
    D: 'u32', H: 'u32', W: 'u32', Do: 'u32', Ho: 'u32', Wo: 'u32',
    srcBase: 'u32', dstBase: 'u32', srcNS: 'u32', dstNS: 'u32', pad: 'u32', wLast: 'u32', cfBase: 'u32', gateBase: 'u32',
  },
  storage: {
    src: readOnly('f32'), ws: readOnly('vec4f'), ...(hasBias ? { bs: readOnly('f32') } : {}),
    ...(normRelu ? { cfs: readOnly('vec4f') } : {}),
    ...(residual !== 'none' ? { rs: readOnly('f32') } : {}), ...(residual === 'gated' ? { gts: readOnly('f32') } : {}),
    dst: readWrite('f32'),
  },
}));

/** One convolution as the direct kernel sees it: src [N, Cs, D, H, W] -> dst [N, Cd, Do, Ho, Wo]. */
interface ConvJob {
  N: number; Cs: number; Cd: number; D: number; H: number; W: number; Do: number; Ho: number; Wo: number;
  k: number; s: number; p: number;
  /** Weight element of (dst channel d, src channel c, tap t): d * sDst + c * sSrc + (flip ? k^3 - 1 - t : t). */
  sDst: number; sSrc: number; flip: boolean;
}

/**
 * `foldChannels`: lanes run over (voxel group, channel block) pairs instead of voxel groups only, for outputs with
 * fewer voxel groups than a SIMD vector has lanes (the deepest layers: 1x3x3 outputs left 5 of 8 lanes idle). The
 * weights then differ per lane (gathers instead of uniform loads), which costs less than idle lanes.
 */
function convShader(
  j: ConvJob, b: DirectBlocking, hasBias: boolean, normRelu: boolean, residual: ResidualKind, wg: number, foldChannels: boolean,
  sg: number,
): string {
  const { k, s } = j;
  const { ct, vw } = b;
  const L = (vw - 1) * s + k;
  const K3 = k ** 3;
  const NV = packedVectors(ct);
  /** One source row's loads and FMAs; `weight(kw, jv)` is the WGSL of the vec4 of taps kw, channels 4jv.. of this row. */
  const row = (weight: (kw: number, jv: number) => string): string[] => {
    const lines: string[] = [];
    for (let i = 0; i < L; i++) {
      const value = `src[select(0u, u32(rowBase + ${i}), ok${i})]`;
      lines.push(`let ok${i} = rowOk & (u32(iw0 + ${i}) < p.W); let x${i} = select(0.0, ${normRelu ? `normRelu(${value}, cf)` : value}, ok${i});`);
    }
    for (let kw = 0; kw < k; kw++) {
      for (let jv = 0; jv < NV; jv++) lines.push(`let wv${jv}_${kw} = ${weight(kw, jv)};`);
      for (let c = 0; c < ct; c++) {
        const w = `wv${c >> 2}_${kw}.${'xyzw'[c & 3]}`;
        for (let v = 0; v < vw; v++) lines.push(`a${c}_${v} = fma(${w}, x${v * s + kw}, a${c}_${v});`);
      }
    }
    return lines;
  };
  // With subgroups (channel blocks uniform per workgroup, one vec4 per tap): each lane loads distinct taps of this
  // (kd) slice of this source channel's filter and the taps reach every lane by constant-index broadcasts, so a
  // lane issues ceil(k^2 / sg) weight loads per slice instead of k^2; the kh loop is unrolled for the constant lane
  // indices (unrolling kd too made the code outgrow the instruction cache: slower). Same FMAs in the same order.
  const broadcast = sg > 0 && !foldChannels;
  let taps: string;
  if (broadcast) {
    const K2 = k * k;
    const regs = Math.ceil(K2 * NV / sg);
    const loads = Array.from({ length: regs }, (_, m) => `let wr${m} = ws[min(wSlice + min(sgl + ${m * sg}u, ${K2 * NV - 1}u), p.wLast)];`);
    const blocks: string[] = [];
    for (let kh = 0; kh < k; kh++) {
      blocks.push(`{
        let ih = ih0 + ${kh};
        let rowOk = valid & (u32(id) < p.D) & (u32(ih) < p.H);
        let rowBase = cBase + id * i32(HW) + ih * i32(p.W) + iw0;
        ${row((kw, jv) => { const q = (kh * k + kw) * NV + jv; return `subgroupBroadcast(wr${Math.floor(q / sg)}, ${q % sg}u)`; }).join('\n        ')}
      }`);
    }
    taps = `for (var kd = 0u; kd < K; kd++) {
      let id = id0 + i32(kd);
      let wSlice = (wRow + kd * ${K2}u) * ${NV}u;
      ${loads.join('\n      ')}
      ${blocks.join('\n      ')}
    }`;
  } else {
    taps = `for (var kd = 0u; kd < K; kd++) {
      let id = id0 + i32(kd);
      for (var kh = 0u; kh < K; kh++) {
        let ih = ih0 + i32(kh);
        let rowOk = valid & (u32(id) < p.D) & (u32(ih) < p.H);
        let rowBase = cBase + id * i32(HW) + ih * i32(p.W) + iw0;
        let tapRow = (kd * K + kh) * K;
        ${row((kw, jv) => `ws[min((wRow + tapRow + ${kw}u) * ${NV}u + ${jv}u, p.wLast)]`).join('\n        ')}
      }
    }`;
  }
  const stores: string[] = [];
  for (let c = 0; c < ct; c++) {
    stores.push(`if (c0 + ${c}u < p.Cd) {`);
    const bias = hasBias ? ` + bs[c0 + ${c}u]` : '';
    for (let v = 0; v < vw; v++) {
      const at = `oRow + ${c}u * DHWO + ${v}u`;
      stores.push(`  if (ow0 + ${v}u < p.Wo) { dst[${at}] = a${c}_${v}${bias}${residualTerm(residual, at, `p.gateBase + n * p.Cd + c0 + ${c}u`)}; }`);
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
    let wRow = ((c0 / ${ct}u) * p.Cs + ci) * K3;
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
  const slack = gpu.limits.minStorageBufferOffsetAlignment / 4;
  const groups = batchGroups(j.N, srcSample + slack, dstSample + slack, budget);
  if (!groups) return false;
  const canBroadcast = gpu.subgroupSize !== null && j.k <= BROADCAST_MAX_KERNEL && j.Do * j.Ho * Math.ceil(j.Wo / 4) >= FOLD_BELOW;
  const b = blocking ?? broadcastBlocking(j.Cd, canBroadcast);
  const hasBias = bias !== null;
  const nWg = Math.ceil(j.Wo / b.vw);
  const nGroups = j.Do * j.Ho * nWg;
  const nCB = Math.ceil(j.Cd / b.ct);
  const foldChannels = nGroups < FOLD_BELOW && nCB > 1;
  const { wg, blocks: nVB } = laneBlocks(foldChannels ? nGroups * nCB : nGroups, 64);
  const kind = residualKind(residual);
  const sig = convSignature(hasBias, coef !== null, kind);
  // Subgroups must not straddle workgroups, and the broadcast form is only for uniform channel blocks and kernels up
  // to 3 (its kh loop is unrolled: k = 5 and 7 would pass the WGSL size budget, and no model uses them).
  const sg = !foldChannels && j.k <= BROADCAST_MAX_KERNEL && gpu.subgroupSize !== null && wg % gpu.subgroupSize === 0
    ? gpu.subgroupSize : 0;
  const key = `conv3d:direct:k${j.k}s${j.s}:${b.ct}x${b.vw}:${wg}:${j.flip ? 'f' : ''}${hasBias ? 'b' : ''}${coef ? 'n' : ''}${kind === 'none' ? '' : kind}${foldChannels ? 'x' : ''}${sg ? `:sg${sg}` : ''}`;
  const pipeline = sg
    ? gpu.pipeline(key, () => `enable subgroups;\n${sig.wgsl}\n${convShader(j, b, hasBias, coef !== null, kind, wg, foldChannels, sg)}`, sig.access)
    : sig.pipeline(gpu, key, () => convShader(j, b, hasBias, coef !== null, kind, wg, foldChannels, 0));
  const packedSize = nCB * packedVectors(b.ct) * 4 * j.Cs * j.k ** 3;
  if (packedSize > budget) return false;
  const packed = gpu.pool.acquire(packedSize * 4, `${label} packed weights`);
  packWeights(gpu, w, packed, j, b.ct, nCB);
  const weights = whole(packed, packedSize);
  for (const [n0, nc] of groups) {
    const sw = alignedWindow(gpu, src, n0 * srcSample, nc * srcSample);
    const dw = alignedWindow(gpu, dst, n0 * dstSample, nc * dstSample);
    // Same element range and size class as the output: the same base, so one index serves both.
    const rw = residual ? alignedWindow(gpu, residual.buffer, n0 * dstSample, nc * dstSample) : null;
    if (rw && rw.base !== dw.base) throw new Error(`${label}: the residual buffer's window does not line up with the output's`);
    const total = foldChannels ? nVB * nc : nVB * nCB * nc;
    const uniforms = {
      total, nVB, nCB, nGroups, nWg, Cs: j.Cs, Cd: j.Cd, D: j.D, H: j.H, W: j.W, Do: j.Do, Ho: j.Ho, Wo: j.Wo,
      srcBase: sw.base, dstBase: dw.base, srcNS: srcSample, dstNS: dstSample, pad: j.p, wLast: packedSize / 4 - 1,
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
  // Pooled buffers are reused in stream order: the next user's dispatches run after these.
  gpu.pool.release(packed);
  return true;
}

/** vec4s per (channel block, source channel, tap) of the packed weights: CT channels, four to a vec4. */
function packedVectors(ct: number): number {
  return Math.ceil(ct / 4);
}

const packSignature = () => cachedSignature('conv3d direct weight packing', () => kernelSignature('conv3d direct weight packing', {
  uniforms: { total: 'u32', Cs: 'u32', Cd: 'u32', K3: 'u32', ct: 'u32', nv: 'u32', sDst: 'u32', sSrc: 'u32', flip: 'u32', wLast: 'u32' },
  storage: { ws: readOnly('f32'), packed: readWrite('vec4f') },
}));

const PACK_WG = 64;

/**
 * The weights in the order the conv kernel reads them: vec4 ((cb * Cs + ci) * k^3 + t) * nv + jv holds taps t (in
 * loop order, flipped for the data gradient) of destination channels cb * CT + 4 * jv + (0..3) (zero past CT or Cd).
 * lavapipe's Mesa 25.0 loads a storage element with an address computed from anything but constants lane by lane
 * (a loop over the eight SIMD lanes with a bounds branch each), even when all lanes read the same weight: one vec4
 * load brings four channels' weights for the cost of one scalar weight load, which was two thirds of the kernel's time.
 */
function packWeights(gpu: Gpu, w: GPUBuffer, packed: GPUBuffer, j: ConvJob, ct: number, nCB: number): void {
  const K3 = j.k ** 3;
  const nv = packedVectors(ct);
  const total = nCB * j.Cs * K3 * nv;
  const sig = packSignature();
  const loads: string[] = [];
  for (let c = 0; c < 4; c++) {
    loads.push(`let d${c} = cb * p.ct + jv * 4u + ${c}u; let ok${c} = (jv * 4u + ${c}u < p.ct) & (d${c} < p.Cd);`);
    loads.push(`let v${c} = select(0.0, ws[min(select(0u, d${c} * p.sDst + src, ok${c}), p.wLast)], ok${c});`);
  }
  const pipeline = sig.pipeline(gpu, `conv3d:direct:pack:${PACK_WG}`, () => /* wgsl */ `
${linearMain(PACK_WG)}
  if (gid >= p.total) { return; }
  let jv = gid % p.nv; let r = gid / p.nv; let t = r % p.K3; let r2 = r / p.K3; let ci = r2 % p.Cs; let cb = r2 / p.Cs;
  let src = ci * p.sSrc + select(t, p.K3 - 1u - t, p.flip == 1u);
  ${loads.join('\n  ')}
  packed[gid] = vec4f(v0, v1, v2, v3);
}`);
  const wSize = j.Cd * j.Cs * K3;
  gpu.dispatch({
    pipeline, label: 'conv3d:pack', workgroups: Math.ceil(total / PACK_WG),
    ...sig.bind(
      { total, Cs: j.Cs, Cd: j.Cd, K3, ct, nv, sDst: j.sDst, sSrc: j.sSrc, flip: j.flip ? 1 : 0, wLast: wSize - 1 },
      { ws: whole(w, wSize), packed: whole(packed, total * 4) },
    ),
  });
}

/**
 * out = conv3d(x, w) + bias by the direct kernel (of relu(GN(x)) when `coef` holds the input's GN coefficients,
 * see Conv3dOptions.inputNormRelu; plus the residual, see Conv3dOptions.residual); false (nothing recorded) when
 * one sample does not fit a binding.
 */
export function directConvForward(
  gpu: Gpu, x: GPUBuffer, w: GPUBuffer, bias: GPUBuffer | null, out: GPUBuffer, g: Conv3dGeometry, budget: number,
  blocking?: DirectBlocking, coef: GPUBuffer | null = null, residual?: Conv3dOptions['residual'],
): boolean {
  const K3 = g.k ** 3;
  return runConv(gpu, x, w, bias, out, {
    N: g.N, Cs: g.Cin, Cd: g.Cout, D: g.D, H: g.H, W: g.W, Do: g.Do, Ho: g.Ho, Wo: g.Wo, k: g.k, s: g.s, p: g.p,
    sDst: g.Cin * K3, sSrc: K3, flip: false,
  }, budget, blocking, 'conv3d:fwd', coef, residual);
}

/**
 * gradX by the direct kernels: for stride 1 (and padding up to k - 1) the convolution kernel on gradOut
 * (flipped kernel, padding k - 1 - p), otherwise the strided gather; false (nothing recorded) when one sample
 * does not fit a binding.
 */
export function directConvBackwardData(
  gpu: Gpu, gradOut: GPUBuffer, w: GPUBuffer, gradX: GPUBuffer, g: Conv3dGeometry, budget: number,
  blocking?: DirectBlocking,
): boolean {
  if (g.s !== 1 || g.p > g.k - 1) return directStridedBackwardData(gpu, gradOut, w, gradX, g, budget, blocking);
  const K3 = g.k ** 3;
  return runConv(gpu, gradOut, w, null, gradX, {
    N: g.N, Cs: g.Cout, Cd: g.Cin, D: g.Do, H: g.Ho, W: g.Wo, Do: g.D, Ho: g.H, Wo: g.W, k: g.k, s: 1, p: g.k - 1 - g.p,
    // A 1x1x1 kernel flipped is itself: the forward pipeline serves, one shader fewer to compile.
    sDst: K3, sSrc: g.Cin * K3, flip: g.k !== 1,
  }, budget, blocking, 'conv3d:dgrad');
}
