/**
 * Direct conv3d kernels for software adapters (lavapipe, SwiftShader), which run a workgroup's invocations
 * as the SIMD lanes of one CPU thread: there every workgroupBarrier and workgroup-memory round trip is costly,
 * a load whose address differs between lanes is a per-lane gather, and a load whose address is the same in all
 * lanes (derived only from the workgroup id, constants and uniform loop counters) is one scalar load.
 *
 * So these kernels use no workgroup memory and no barriers, and arrange the loops so that weights (or, in
 * the weight gradient, the output gradient) are lane-uniform while the other operand is read once per lane
 * and reused from registers across several taps and channels:
 *
 *   conv:    one invocation owns CT destination channels x VW consecutive voxels along W; it loops over source
 *            channels and (kd, kh), loads the (VW - 1) * s + k source values of its row once and applies them
 *            to all k taps along W and all CT channels (weights uniform). The forward pass is this kernel;
 *            the stride-1 data gradient is the same kernel on gradOut with the kernel flipped and the channel
 *            roles of the weight swapped (padding k - 1 - p).
 *   weight:  one invocation owns one (ci, kd, kh) and CT output channels x k taps along W; it walks a chunk of
 *            output rows (n, od, oh) along W, reading gradOut uniformly; chunks write partial sums that a
 *            second kernel adds up in order (deterministic, no atomics).
 */
import type { Binding, Gpu } from './runtime/gpu.js';
import { alignedWindow } from './runtime/windows.js';

/** The geometry the direct kernels need (a subset of conv3d's). */
export interface DirectGeom {
  N: number; Cin: number; D: number; H: number; W: number;
  Cout: number; k: number; s: number; p: number;
  Do: number; Ho: number; Wo: number;
}

/** Register blocking of the direct kernels (tests override it to cover remainders). */
export interface DirectBlocking {
  /** Destination channels per invocation (conv) / output channels per invocation (weight gradient). */
  ct: number;
  /** Consecutive voxels along W per invocation (conv) / output voxels along W per step (weight gradient). */
  vw: number;
}

/**
 * Workgroups over `items` lanes of work (SIMD vectors of eight lanes): `target` invocations each, or a power of
 * two from 8 up when there is less work, so that small layers run no idle vectors and the number of pipelines
 * (each takes seconds to compile on lavapipe) stays small.
 */
function laneBlocks(items: number, target: number): { wg: number; blocks: number } {
  let wg = 8;
  while (wg < target && wg < items) wg *= 2;
  wg = Math.min(wg, target);
  return { wg, blocks: Math.ceil(items / wg) };
}

/**
 * Up to 4 channels x 4 voxels per invocation: measured on lavapipe (2-core EPYC, AVX2), 8 x 4 and 4 x 8 spill
 * and compile 5-10 times slower, 2 x 4 and 4 x 2 reload the operands too often.
 */
export function directBlocking(channels: number): DirectBlocking {
  return { ct: channels >= 4 ? 4 : channels >= 2 ? 2 : 1, vw: 4 };
}

function packU32(values: number[], what: string): Uint32Array {
  const a = new Uint32Array(Math.max(4, Math.ceil(values.length / 4) * 4));
  values.forEach((v, i) => {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${what}: param ${i} = ${v} is not a u32`);
    a[i] = v;
  });
  return a;
}

const params = (fields: string[]) => `struct Params { ${fields.map((f) => `${f}: u32`).join(', ')} }
@group(0) @binding(0) var<uniform> p: Params;`;

/** Batch groups that each fit one binding on both sides: the whole batch, else one sample at a time; null if a sample does not fit. */
function batchGroups(N: number, aSample: number, bSample: number, budget: number): [number, number][] | null {
  if (N * aSample <= budget && N * bSample <= budget) return [[0, N]];
  if (aSample > budget || bSample > budget) return null;
  return Array.from({ length: N }, (_, n) => [n, 1] as [number, number]);
}

// ---------------------------------------------------------------------------------------------------------
// Convolution (forward; stride-1 data gradient)

const CONV_FIELDS = [
  'total', 'nVB', 'nCB', 'nGroups', 'nWg', 'Cs', 'Cd', 'D', 'H', 'W', 'Do', 'Ho', 'Wo',
  'sDst', 'sSrc', 'srcBase', 'dstBase', 'srcNS', 'dstNS', 'pad', 'wLast',
];

/** One convolution as the direct kernel sees it: src [N, Cs, D, H, W] -> dst [N, Cd, Do, Ho, Wo]. */
interface ConvJob {
  N: number; Cs: number; Cd: number; D: number; H: number; W: number; Do: number; Ho: number; Wo: number;
  k: number; s: number; p: number;
  /** Weight element of (dst channel d, src channel c, tap t): d * sDst + c * sSrc + (flip ? k^3 - 1 - t : t). */
  sDst: number; sSrc: number; flip: boolean;
}

function convShader(j: ConvJob, b: DirectBlocking, hasBias: boolean, wg: number): string {
  const { k, s } = j;
  const { ct, vw } = b;
  const L = (vw - 1) * s + k;
  const K3 = k ** 3;
  const lines: string[] = [];
  for (let i = 0; i < L; i++) {
    lines.push(`let ok${i} = rowOk && u32(iw0 + ${i}) < p.W; let x${i} = select(0.0, src[select(0u, u32(rowBase + ${i}), ok${i})], ok${i});`);
  }
  for (let kw = 0; kw < k; kw++) {
    const tap = j.flip ? `${K3 - 1 - kw}u - tapRow` : `tapRow + ${kw}u`;
    for (let c = 0; c < ct; c++) {
      lines.push(`let w${c}_${kw} = ws[min(wBase + ${c}u * p.sDst + ${tap}, p.wLast)];`);
      for (let v = 0; v < vw; v++) lines.push(`a${c}_${v} = fma(w${c}_${kw}, x${v * s + kw}, a${c}_${v});`);
    }
  }
  const acc: string[] = [];
  for (let c = 0; c < ct; c++) acc.push(Array.from({ length: vw }, (_, v) => `var a${c}_${v} = 0.0;`).join(' '));
  const stores: string[] = [];
  for (let c = 0; c < ct; c++) {
    stores.push(`if (c0 + ${c}u < p.Cd) {`);
    const bias = hasBias ? ` + bs[c0 + ${c}u]` : '';
    for (let v = 0; v < vw; v++) {
      stores.push(`  if (ow0 + ${v}u < p.Wo) { dst[oRow + ${c}u * DHWO + ${v}u] = a${c}_${v}${bias}; }`);
    }
    stores.push('}');
  }
  return /* wgsl */ `
${params(CONV_FIELDS)}
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> ws: array<f32>;
${hasBias ? '@group(0) @binding(3) var<storage, read> bs: array<f32>;' : ''}
@group(0) @binding(${hasBias ? 4 : 3}) var<storage, read_write> dst: array<f32>;
const K = ${k}u;

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let lin = wid.x + nwg.x * (wid.y + nwg.y * wid.z);
  if (lin >= p.total) { return; }
  let vb = lin % p.nVB; let rest = lin / p.nVB; let cb = rest % p.nCB; let n = rest / p.nCB;
  let c0 = cb * ${ct}u;
  let gi = vb * ${wg}u + lid;
  let valid = gi < p.nGroups;
  let g = min(gi, p.nGroups - 1u);
  let owg = g % p.nWg; let t = g / p.nWg; let oh = t % p.Ho; let od = t / p.Ho;
  let ow0 = owg * ${vw}u;
  let PAD = i32(p.pad);
  let id0 = i32(od * ${s}u) - PAD; let ih0 = i32(oh * ${s}u) - PAD; let iw0 = i32(ow0 * ${s}u) - PAD;
  let HW = p.H * p.W; let DHW = p.D * HW; let DHWO = p.Do * p.Ho * p.Wo;
  ${acc.join('\n  ')}
  for (var ci = 0u; ci < p.Cs; ci++) {
    let cBase = i32(p.srcBase + n * p.srcNS + ci * DHW);
    let wBase = c0 * p.sDst + ci * p.sSrc;
    for (var kd = 0u; kd < K; kd++) {
      let id = id0 + i32(kd);
      for (var kh = 0u; kh < K; kh++) {
        let ih = ih0 + i32(kh);
        let rowOk = valid && u32(id) < p.D && u32(ih) < p.H;
        let rowBase = cBase + id * i32(HW) + ih * i32(p.W) + iw0;
        let tapRow = (kd * K + kh) * K;
        ${lines.join('\n        ')}
      }
    }
  }
  if (!valid) { return; }
  let oRow = p.dstBase + n * p.dstNS + c0 * DHWO + (od * p.Ho + oh) * p.Wo + ow0;
  ${stores.join('\n  ')}
}`;
}

function runConv(
  gpu: Gpu, src: GPUBuffer, w: GPUBuffer, bias: GPUBuffer | null, dst: GPUBuffer, j: ConvJob, budget: number,
  blocking: DirectBlocking | undefined, label: string,
): boolean {
  const srcSample = j.Cs * j.D * j.H * j.W;
  const dstSample = j.Cd * j.Do * j.Ho * j.Wo;
  const slack = gpu.limits.minStorageBufferOffsetAlignment / 4;
  const groups = batchGroups(j.N, srcSample + slack, dstSample + slack, budget);
  if (!groups) return false;
  const b = blocking ?? directBlocking(j.Cd);
  const hasBias = bias !== null;
  const nWg = Math.ceil(j.Wo / b.vw);
  const nGroups = j.Do * j.Ho * nWg;
  const { wg, blocks: nVB } = laneBlocks(nGroups, 64);
  const key = `conv3d:direct:k${j.k}s${j.s}:${b.ct}x${b.vw}:${wg}:${j.flip ? 'f' : ''}${hasBias ? 'b' : ''}`;
  const pipeline = gpu.pipeline(key, () => convShader(j, b, hasBias, wg));
  const nCB = Math.ceil(j.Cd / b.ct);
  const wSize = j.Cd * j.Cs * j.k ** 3;
  for (const [n0, nc] of groups) {
    const sw = alignedWindow(gpu, src, n0 * srcSample, nc * srcSample);
    const dw = alignedWindow(gpu, dst, n0 * dstSample, nc * dstSample);
    const total = nVB * nCB * nc;
    const wBinding: Binding = { buffer: w, offset: 0, size: wSize * 4 };
    gpu.dispatch({
      pipeline, label, workgroups: total,
      params: packU32([
        total, nVB, nCB, nGroups, nWg, j.Cs, j.Cd, j.D, j.H, j.W, j.Do, j.Ho, j.Wo,
        j.sDst, j.sSrc, sw.base, dw.base, srcSample, dstSample, j.p, wSize - 1,
      ], label),
      bindings: hasBias && bias
        ? [sw.binding, wBinding, { buffer: bias, offset: 0, size: j.Cd * 4 }, dw.binding]
        : [sw.binding, wBinding, dw.binding],
    });
  }
  return true;
}

/** out = conv3d(x, w) + bias by the direct kernel; false (nothing recorded) when one sample does not fit a binding. */
export function directConvForward(
  gpu: Gpu, x: GPUBuffer, w: GPUBuffer, bias: GPUBuffer | null, out: GPUBuffer, g: DirectGeom, budget: number,
  blocking?: DirectBlocking,
): boolean {
  const K3 = g.k ** 3;
  return runConv(gpu, x, w, bias, out, {
    N: g.N, Cs: g.Cin, Cd: g.Cout, D: g.D, H: g.H, W: g.W, Do: g.Do, Ho: g.Ho, Wo: g.Wo, k: g.k, s: g.s, p: g.p,
    sDst: g.Cin * K3, sSrc: K3, flip: false,
  }, budget, blocking, 'conv3d:fwd');
}

/**
 * gradX of a stride-1 conv3d as the direct kernel on gradOut (flipped kernel, padding k - 1 - p); false
 * (nothing recorded) for strides above 1, padding above k - 1, or when one sample does not fit a binding.
 */
export function directConvBackwardData(
  gpu: Gpu, gradOut: GPUBuffer, w: GPUBuffer, gradX: GPUBuffer, g: DirectGeom, budget: number,
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

const STRIDED_FIELDS = [
  'total', 'nVB', 'nCB', 'nGroups', 'nWg', 'nJh', 'Cin', 'Cout', 'D', 'H', 'W', 'Do', 'Ho', 'Wo',
  'gBase', 'xBase', 'gNS', 'xNS', 'pad', 'wLast',
];

/**
 * gradX for any stride as a gather over the taps that reach each input voxel. A workgroup covers one phase
 * (id mod s, ih mod s) of the input, so the taps along D and H that reach it are uniform; along W an
 * invocation owns VW (a multiple of s) voxels starting at a multiple of s, so which kw reach which of them is
 * known when the shader is generated. No zero taps are multiplied.
 */
function stridedShader(g: DirectGeom, b: DirectBlocking, wg: number): string {
  const { k, s, p: pad } = g;
  const { ct, vw } = b;
  const K3 = k ** 3;
  // Along W: voxel v (iw = iw0 + v, iw0 = s * q0) receives tap kw from ow = q0 + (v + pad - kw) / s.
  const pairs: { v: number; kw: number; o: number }[] = [];
  for (let v = 0; v < vw; v++) {
    for (let kw = 0; kw < k; kw++) {
      if ((v + pad - kw) % s === 0) pairs.push({ v, kw, o: Math.floor((v + pad - kw) / s) });
    }
  }
  const offs = [...new Set(pairs.map((q) => q.o))].sort((a, c) => a - c);
  const body: string[] = [];
  for (const o of offs) {
    const name = `y${o < 0 ? 'm' + -o : o}`;
    body.push(`let ok_${name} = rowOk && u32(q0 + ${o}) < p.Wo; let ${name} = select(0.0, gs[select(0u, u32(rowBase + ${o}), ok_${name})], ok_${name});`);
  }
  for (let kw = 0; kw < k; kw++) {
    const uses = pairs.filter((q) => q.kw === kw);
    if (uses.length === 0) continue;
    for (let c = 0; c < ct; c++) {
      body.push(`let w${c}_${kw} = ws[min(wBase + ${c}u * ${K3}u + tapRow + ${kw}u, p.wLast)];`);
      for (const q of uses) body.push(`a${c}_${q.v} = fma(w${c}_${kw}, y${q.o < 0 ? 'm' + -q.o : q.o}, a${c}_${q.v});`);
    }
  }
  const acc: string[] = [];
  for (let c = 0; c < ct; c++) acc.push(Array.from({ length: vw }, (_, v) => `var a${c}_${v} = 0.0;`).join(' '));
  const stores: string[] = [];
  for (let c = 0; c < ct; c++) {
    stores.push(`if (c0 + ${c}u < p.Cin) {`);
    for (let v = 0; v < vw; v++) stores.push(`  if (iw0 + ${v}u < p.W) { gxs[xRow + ${c}u * DHW + ${v}u] = a${c}_${v}; }`);
    stores.push('}');
  }
  return /* wgsl */ `
${params(STRIDED_FIELDS)}
@group(0) @binding(1) var<storage, read> gs: array<f32>;
@group(0) @binding(2) var<storage, read> ws: array<f32>;
@group(0) @binding(3) var<storage, read_write> gxs: array<f32>;
const K = ${k}u;
const S = ${s}u;

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let lin = wid.x + nwg.x * (wid.y + nwg.y * wid.z);
  if (lin >= p.total) { return; }
  let vb = lin % p.nVB; var rest = lin / p.nVB; let cb = rest % p.nCB; rest = rest / p.nCB;
  let ah = rest % S; rest = rest / S; let ad = rest % S; let n = rest / S;
  let c0 = cb * ${ct}u;
  let gi = vb * ${wg}u + lid;
  let g = min(gi, p.nGroups - 1u);
  let owg = g % p.nWg; let t = g / p.nWg; let jh = t % p.nJh; let jd = t / p.nJh;
  let id = ad + S * jd; let ih = ah + S * jh; let iw0 = owg * ${vw}u;
  let valid = gi < p.nGroups && id < p.D && ih < p.H;
  let q0 = i32(iw0 / S);
  let PAD = p.pad;
  // Taps along D and H that reach this phase: k = r + S * t, output index = j + q - t.
  let rd = (ad + PAD) % S; let qd = i32((ad + PAD - rd) / S);
  let rh = (ah + PAD) % S; let qh = i32((ah + PAD - rh) / S);
  let HWO = p.Ho * p.Wo; let DHWO = p.Do * HWO; let DHW = p.D * p.H * p.W;
  ${acc.join('\n  ')}
  for (var co = 0u; co < p.Cout; co++) {
    let cBase = i32(p.gBase + n * p.gNS + co * DHWO);
    let wBase = co * p.Cin * ${K3}u + c0 * ${K3}u;
    for (var kd = rd; kd < K; kd += S) {
      let od = i32(jd) + qd - i32((kd - rd) / S);
      for (var kh = rh; kh < K; kh += S) {
        let oh = i32(jh) + qh - i32((kh - rh) / S);
        let rowOk = valid && u32(od) < p.Do && u32(oh) < p.Ho;
        let rowBase = cBase + od * i32(HWO) + oh * i32(p.Wo) + q0;
        let tapRow = (kd * K + kh) * K;
        ${body.join('\n        ')}
      }
    }
  }
  if (!valid) { return; }
  let xRow = p.xBase + n * p.xNS + c0 * DHW + (id * p.H + ih) * p.W + iw0;
  ${stores.join('\n  ')}
}`;
}

function directStridedBackwardData(
  gpu: Gpu, gradOut: GPUBuffer, w: GPUBuffer, gradX: GPUBuffer, g: DirectGeom, budget: number,
  blocking?: DirectBlocking,
): boolean {
  const xSample = g.Cin * g.D * g.H * g.W;
  const gSample = g.Cout * g.Do * g.Ho * g.Wo;
  const slack = gpu.limits.minStorageBufferOffsetAlignment / 4;
  const groups = batchGroups(g.N, gSample + slack, xSample + slack, budget);
  if (!groups) return false;
  const base = blocking ?? directBlocking(g.Cin);
  const b = { ct: base.ct, vw: Math.ceil(base.vw / g.s) * g.s };
  const nWg = Math.ceil(g.W / b.vw);
  const nJd = Math.ceil(g.D / g.s);
  const nJh = Math.ceil(g.H / g.s);
  const nGroups = nJd * nJh * nWg;
  const { wg, blocks: nVB } = laneBlocks(nGroups, 64);
  const pipeline = gpu.pipeline(`conv3d:direct:dgradS:k${g.k}s${g.s}p${g.p}:${b.ct}x${b.vw}:${wg}`, () => stridedShader(g, b, wg));
  const nCB = Math.ceil(g.Cin / b.ct);
  const wSize = g.Cout * g.Cin * g.k ** 3;
  for (const [n0, nc] of groups) {
    const gw = alignedWindow(gpu, gradOut, n0 * gSample, nc * gSample);
    const xw = alignedWindow(gpu, gradX, n0 * xSample, nc * xSample);
    const total = nVB * nCB * g.s * g.s * nc;
    gpu.dispatch({
      pipeline, label: 'conv3d:dgrad', workgroups: total,
      params: packU32([
        total, nVB, nCB, nGroups, nWg, nJh, g.Cin, g.Cout, g.D, g.H, g.W, g.Do, g.Ho, g.Wo,
        gw.base, xw.base, gSample, xSample, g.p, wSize - 1,
      ], 'conv3d backward data'),
      bindings: [gw.binding, { buffer: w, offset: 0, size: wSize * 4 }, xw.binding],
    });
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// Weight gradient

const WGRAD_FIELDS = [
  'total', 'nLB', 'nCB', 'lanes', 'Cin', 'Cout', 'D', 'H', 'W', 'Do', 'Ho', 'Wo', 'rows', 'chunk',
  'xBase', 'gBase', 'xNS', 'gNS', 'pad', 'slot0', 'gLast',
];

/** Target workgroups per weight-gradient dispatch (a few per CPU thread, for load balance). */
const WGRAD_TARGET_WORKGROUPS = 48;

function wgradShader(g: DirectGeom, b: DirectBlocking, wg: number): string {
  const { k, s } = g;
  const { ct, vw } = b;
  const L = (vw - 1) * s + k;
  const K3 = k ** 3;
  const acc: string[] = [];
  for (let c = 0; c < ct; c++) acc.push(Array.from({ length: k }, (_, kw) => `var a${c}_${kw} = 0.0;`).join(' '));
  const body: string[] = [];
  for (let i = 0; i < L; i++) {
    body.push(`let ok${i} = rowOk && u32(iw0 + ${i}) < p.W; let x${i} = select(0.0, xs[select(0u, u32(rowBase + ${i}), ok${i})], ok${i});`);
  }
  for (let v = 0; v < vw; v++) {
    body.push(`let vOk${v} = ow0 + ${v}u < p.Wo;`);
    for (let c = 0; c < ct; c++) {
      body.push(`let g${c}_${v} = select(0.0, gs[min(gRow + ${c}u * DHWO + ${v}u, p.gLast)], vOk${v} && c0 + ${c}u < p.Cout);`);
      for (let kw = 0; kw < k; kw++) body.push(`a${c}_${kw} = fma(g${c}_${v}, x${v * s + kw}, a${c}_${kw});`);
    }
  }
  const stores: string[] = [];
  for (let c = 0; c < ct; c++) {
    stores.push(`if (c0 + ${c}u < p.Cout) {`);
    for (let kw = 0; kw < k; kw++) stores.push(`  parts[out + ${c}u * WROW + ${kw}u] = a${c}_${kw};`);
    stores.push('}');
  }
  return /* wgsl */ `
${params(WGRAD_FIELDS)}
@group(0) @binding(1) var<storage, read> xs: array<f32>;
@group(0) @binding(2) var<storage, read> gs: array<f32>;
@group(0) @binding(3) var<storage, read_write> parts: array<f32>;

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let lin = wid.x + nwg.x * (wid.y + nwg.y * wid.z);
  if (lin >= p.total) { return; }
  let lb = lin % p.nLB; let rest = lin / p.nLB; let cb = rest % p.nCB; let sp = rest / p.nCB;
  let c0 = cb * ${ct}u;
  let li = lb * ${wg}u + lid;
  let valid = li < p.lanes;
  let lane = min(li, p.lanes - 1u);
  let kh = lane % ${k}u; let t = lane / ${k}u; let kd = t % ${k}u; let ci = t / ${k}u;
  let PAD = i32(p.pad);
  let HW = p.H * p.W; let DHW = p.D * HW; let HWO = p.Ho * p.Wo; let DHWO = p.Do * HWO;
  let WROW = p.Cin * ${K3}u;
  ${acc.join('\n  ')}
  let r1 = min(sp * p.chunk + p.chunk, p.rows);
  for (var r = sp * p.chunk; r < r1; r++) {
    let n = r / (p.Do * p.Ho); let rr = r % (p.Do * p.Ho); let od = rr / p.Ho; let oh = rr % p.Ho;
    let id = i32(od * ${s}u + kd) - PAD; let ih = i32(oh * ${s}u + kh) - PAD;
    let rowOk = valid && u32(id) < p.D && u32(ih) < p.H;
    let xRow = i32(p.xBase + n * p.xNS + ci * DHW) + id * i32(HW) + ih * i32(p.W);
    let gRow0 = p.gBase + n * p.gNS + c0 * DHWO + od * HWO + oh * p.Wo;
    for (var ow0 = 0u; ow0 < p.Wo; ow0 += ${vw}u) {
      let iw0 = i32(ow0 * ${s}u) - PAD;
      let rowBase = xRow + iw0;
      let gRow = gRow0 + ow0;
      ${body.join('\n      ')}
    }
  }
  if (!valid) { return; }
  let out = (p.slot0 + sp) * p.Cout * WROW + c0 * WROW + ci * ${K3}u + (kd * ${k}u + kh) * ${k}u;
  ${stores.join('\n  ')}
}`;
}

/** Partial-slot layout of a direct weight gradient: `slots` partial gradients, summed afterwards when more than one. */
export interface DirectWgradPlan {
  slots: number;
  run: (partial: GPUBuffer) => void;
}

/**
 * Plans gradW by the direct kernel: `run(partial)` records the dispatches writing `slots` partial weight
 * gradients ([slots, Cout, Cin, k^3]) to `partial`. Null when one sample does not fit a binding or the
 * partial buffer would not.
 */
export function planDirectWeightGrad(
  gpu: Gpu, x: GPUBuffer, gradOut: GPUBuffer, g: DirectGeom, budget: number, options: { blocking?: DirectBlocking; chunks?: number } = {},
): DirectWgradPlan | null {
  const xSample = g.Cin * g.D * g.H * g.W;
  const gSample = g.Cout * g.Do * g.Ho * g.Wo;
  const slack = gpu.limits.minStorageBufferOffsetAlignment / 4;
  const groups = batchGroups(g.N, xSample + slack, gSample + slack, budget);
  if (!groups) return null;
  const b = options.blocking ?? directBlocking(g.Cout);
  const lanes = g.Cin * g.k * g.k;
  const { wg, blocks: nLB } = laneBlocks(lanes, 72);
  const nCB = Math.ceil(g.Cout / b.ct);
  const rowsPerGroup = groups[0][1] * g.Do * g.Ho;
  let chunks = options.chunks ?? Math.max(1, Math.ceil(WGRAD_TARGET_WORKGROUPS / (nLB * nCB)));
  if (!Number.isInteger(chunks) || chunks < 1) throw new RangeError(`conv3d backward weight: chunks must be a positive integer, got ${chunks}`);
  chunks = Math.min(chunks, rowsPerGroup);
  const chunk = Math.ceil(rowsPerGroup / chunks);
  chunks = Math.ceil(rowsPerGroup / chunk);
  const wSize = g.Cout * g.Cin * g.k ** 3;
  const slots = groups.length * chunks;
  if (slots * wSize > budget) return null;
  const pipeline = gpu.pipeline(`conv3d:direct:wgrad:k${g.k}s${g.s}:${b.ct}x${b.vw}:${wg}`, () => wgradShader(g, b, wg));
  return {
    slots,
    run: (partial) => {
      groups.forEach(([n0, nc], gi) => {
        const xw = alignedWindow(gpu, x, n0 * xSample, nc * xSample);
        const gw = alignedWindow(gpu, gradOut, n0 * gSample, nc * gSample);
        const total = nLB * nCB * chunks;
        gpu.dispatch({
          pipeline, label: 'conv3d:wgrad', workgroups: total,
          params: packU32([
            total, nLB, nCB, lanes, g.Cin, g.Cout, g.D, g.H, g.W, g.Do, g.Ho, g.Wo, nc * g.Do * g.Ho, chunk,
            xw.base, gw.base, xSample, gSample, g.p, gi * chunks, gw.base + nc * gSample - 1,
          ], 'conv3d backward weight'),
          bindings: [xw.binding, gw.binding, { buffer: partial, offset: 0, size: slots * wSize * 4 }],
        });
      });
    },
  };
}

/** out[e] = sum_{s < slots} parts[s * n + e] for e < n, summed in slot order. */
export function sumSlots(gpu: Gpu, parts: GPUBuffer, out: GPUBuffer, slots: number, n: number, label: string): void {
  const wg = Math.min(256, gpu.limits.maxComputeInvocationsPerWorkgroup);
  const pipeline = gpu.pipeline(`conv3d:sumSlots:${wg}`, () => /* wgsl */ `
${params(['n', 'slots'])}
@group(0) @binding(1) var<storage, read> parts: array<f32>;
@group(0) @binding(2) var<storage, read_write> ys: array<f32>;
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = (wid.x + nwg.x * (wid.y + nwg.y * wid.z)) * ${wg}u + lid;
  if (e >= p.n) { return; }
  var s = 0.0;
  for (var i = 0u; i < p.slots; i++) { s += parts[i * p.n + e]; }
  ys[e] = s;
}`);
  gpu.dispatch({
    pipeline, label, params: packU32([n, slots], label), workgroups: Math.ceil(n / wg),
    bindings: [{ buffer: parts, offset: 0, size: slots * n * 4 }, { buffer: out, offset: 0, size: n * 4 }],
  });
}
