/**
 * Group normalisation (PyTorch nn.GroupNorm: biased variance, affine weight and bias per channel) on
 * [N, C, ...spatial] f32, with an optional fused ReLU (y = relu(gn(x))), forward and backward.
 *
 * Forward (3 dispatches per slab set):
 *  1. stats: one workgroup per chunk of a group (shifted sums per thread, Chan merge in the workgroup) writes
 *     (mean, M2) partials, so a group of tens of millions of voxels reduces with thousands of workgroups;
 *  2. merge: one workgroup per (n, g) Chan-merges the partials -> mean, rstd (saved for backward) and the
 *     per-(n, c) coefficients (mean, rstd*w, b);
 *  3. apply: y = (x - mean) * (rstd*w) + b [then max(., 0)], vec4 when the spatial size allows.
 * Backward (dz = dy, masked by z > 0 when ReLU is fused; z recomputed from x, mean, rstd, weight, bias):
 *  1. per-(n, c) sums of dz and dz*(x - mean) (chunked partials + merge, see segmentedReduce);
 *  2. dweight[c] = sum_n rstd * sum(dz*(x-mean)), dbias[c] = sum_n sum(dz); per (n, g) the means
 *     A = mean(dz*w), B = mean(dz*w*xhat) folded into per-(n, c) coefficients;
 *  3. dx = rstd * (dz*w - A - xhat*B) = dz*(rstd*w) + (x - mean)*(-rstd^2 B) - rstd*A.
 * Tensors larger than one storage binding are processed in binding windows (slabs).
 */
import type { Gpu } from './runtime/gpu.js';
import { checkBuffer, linearMain, linearWorkgroupSize, packParams } from './runtime/wgsl.js';
import { splitNC } from './global-avg-pool.js';
import { alignElements, flatWindows, slabElements, type SlabOptions } from './runtime/windows.js';
import { chunkBounds, planChunks, segmentedReduce, workgroupMain } from './runtime/reduction.js';

export interface GroupNormOptions extends SlabOptions {
  /** Added to the variance (default 1e-5, as PyTorch). */
  eps?: number;
  /** Fuse a ReLU into the output: y = relu(gn(x)). */
  relu?: boolean;
}

export interface GroupNormBackwardOptions extends SlabOptions {
  /** The forward fused a ReLU (the backward masks dy where the pre-activation is <= 0). */
  relu?: boolean;
}

function checkGroups(shape: readonly number[], groups: number, op: string): { N: number; C: number; S: number; G: number; cg: number } {
  const { N, C, S } = splitNC(shape, op);
  if (!Number.isInteger(groups) || groups < 1 || C % groups !== 0) {
    throw new RangeError(`${op}: groups G=${groups} must be a positive integer dividing the channels C=${C}`);
  }
  return { N, C, S, G: groups, cg: C / groups };
}

/** Chan's parallel merge of (count, mean, M2) triples. */
const CHAN = /* wgsl */ `
fn chan(a: vec3f, b: vec3f) -> vec3f {
  let n = a.x + b.x;
  if (n == 0.0) { return a; }
  let d = b.y - a.y;
  let t = b.x / n;
  return vec3f(n, a.y + d * t, a.z + b.z + d * d * a.x * t);
}`;

/**
 * y = gn(x) * weight + bias (relu optional); saves mean and rstd per (n, g) (buffers of N*G f32).
 * x, y: [N, C, ...spatial]; weight, bias: [C].
 */
export function groupNormForward(
  gpu: Gpu, x: GPUBuffer, shape: readonly number[], groups: number, weight: GPUBuffer, bias: GPUBuffer,
  y: GPUBuffer, mean: GPUBuffer, rstd: GPUBuffer, options: GroupNormOptions = {},
): void {
  const op = 'groupNorm';
  const { N, C, S, G, cg } = checkGroups(shape, groups, op);
  const eps = options.eps ?? 1e-5;
  if (!(eps >= 0)) throw new RangeError(`${op}: eps must be a non-negative number, got ${eps}`);
  const total = N * C * S;
  checkBuffer(x, total, `${op} input`);
  checkBuffer(y, total, `${op} output`);
  checkBuffer(weight, C, `${op} weight`);
  checkBuffer(bias, C, `${op} bias`);
  checkBuffer(mean, N * G, `${op} mean`);
  checkBuffer(rstd, N * G, `${op} rstd`);
  if (total === 0) return;
  const maxElems = slabElements(gpu, op, options);
  const wg = linearWorkgroupSize(gpu);
  const M = cg * S;
  const NG = N * G;
  const plan = planChunks(M, NG, maxElems, alignElements(gpu));
  const K = plan.chunksPerSeg * NG;
  const part = gpu.pool.acquire(K * 8, `${op} partial statistics`);
  const coef = gpu.pool.acquire(N * C * 16, `${op} coefficients`);

  const stats = gpu.pipeline(`gn-stats:${wg}`, () => `
struct Params { base: u32, chunk0: u32, nchunks: u32, segLen: u32, chunkLen: u32, cps: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> xs: array<f32>;
@group(0) @binding(2) var<storage, read_write> part: array<vec2f>;
var<workgroup> sh: array<vec3f, ${wg}>;
${CHAN}
${workgroupMain(wg)}
  if (w >= p.nchunks) { return; }
  ${chunkBounds()}
  // Per thread: sums shifted by the thread's first element (a sample of the data, so the cancellation in
  // s2 - s1^2/n stays mild), then Chan merges across threads.
  var shift = 0.0;
  if (start + lid < end) { shift = xs[start + lid - p.base]; }
  var cnt = 0u;
  var s1 = 0.0;
  var s2 = 0.0;
  for (var gi = start + lid; gi < end; gi = gi + ${wg}u) {
    let d = xs[gi - p.base] - shift;
    s1 = s1 + d;
    s2 = s2 + d * d;
    cnt = cnt + 1u;
  }
  let n = f32(cnt);
  var m = shift;
  var q = 0.0;
  if (cnt > 0u) {
    m = shift + s1 / n;
    q = max(s2 - s1 * s1 / n, 0.0);
  }
  sh[lid] = vec3f(n, m, q);
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { sh[lid] = chan(sh[lid], sh[lid + s]); }
    workgroupBarrier();
  }
  if (lid == 0u) { part[k] = sh[0].yz; }
}`);
  for (const win of plan.windows) {
    gpu.dispatch({
      pipeline: stats, label: `${op}:stats`,
      bindings: [{ buffer: x, offset: win.base * 4, size: win.count * 4 }, part],
      params: packParams([
        { u: win.base }, { u: win.chunk0 }, { u: win.chunks }, { u: M }, { u: plan.chunkLen }, { u: plan.chunksPerSeg },
      ]),
      workgroups: win.chunks,
    });
  }

  const merge = gpu.pipeline(`gn-merge:${wg}`, () => `
struct Params { cps: u32, nsegs: u32, segLen: u32, chunkLen: u32, groups: u32, cg: u32, channels: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<vec2f>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> coef: array<vec4f>;
var<workgroup> sh: array<vec3f, ${wg}>;
${CHAN}
${workgroupMain(wg)}
  if (w >= p.nsegs) { return; }
  var acc = vec3f(0.0);
  for (var j = lid; j < p.cps; j = j + ${wg}u) {
    let cnt = f32(min(p.chunkLen, p.segLen - j * p.chunkLen));
    let pv = part[w * p.cps + j];
    acc = chan(acc, vec3f(cnt, pv.x, pv.y));
  }
  sh[lid] = acc;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { sh[lid] = chan(sh[lid], sh[lid + s]); }
    workgroupBarrier();
  }
  let m = sh[0].y;
  let r = 1.0 / sqrt(max(sh[0].z, 0.0) / f32(p.segLen) + p.eps);
  if (lid == 0u) {
    mean[w] = m;
    rstd[w] = r;
  }
  let n = w / p.groups;
  let g = w - n * p.groups;
  for (var cl = lid; cl < p.cg; cl = cl + ${wg}u) {
    let c = g * p.cg + cl;
    coef[n * p.channels + c] = vec4f(m, r * weight[c], bias[c], 0.0);
  }
}`);
  gpu.dispatch({
    pipeline: merge, label: `${op}:merge`,
    bindings: [part, weight, bias, mean, rstd, coef],
    params: packParams([
      { u: plan.chunksPerSeg }, { u: NG }, { u: M }, { u: plan.chunkLen }, { u: G }, { u: cg }, { u: C }, { f: eps },
    ]),
    workgroups: NG,
  });
  gpu.pool.release(part);

  const V = S % 4 === 0 ? 4 : 1;
  const T = V === 4 ? 'vec4f' : 'f32';
  const relu = options.relu ?? false;
  const apply = gpu.pipeline(`gn-apply:${V}:${relu}:${wg}`, () => `
struct Params { n: u32, base: u32, sv: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> xs: array<${T}>;
@group(0) @binding(2) var<storage, read> coef: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> ys: array<${T}>;
${linearMain(wg)}
  if (gid >= p.n) { return; }
  let cf = coef[(p.base + gid) / p.sv];
  let z = (xs[gid] - cf.x) * cf.y + cf.z;
  ys[gid] = ${relu ? `max(z, ${T}(0.0))` : 'z'};
}`);
  for (const [start, count] of flatWindows(total, maxElems)) {
    const win = (b: GPUBuffer) => ({ buffer: b, offset: start * 4, size: count * 4 });
    gpu.dispatch({
      pipeline: apply, label: `${op}:apply`,
      bindings: [win(x), coef, win(y)],
      params: packParams([{ u: count / V }, { u: start / V }, { u: S / V }]),
      workgroups: Math.ceil(count / V / wg),
    });
  }
  gpu.pool.release(coef);
}

/**
 * Backward of groupNormForward (with the same `relu` flag): dx [N, C, ...], dweight [C], dbias [C] from
 * dy, the forward input x, weight, bias (used only to recompute the ReLU mask) and the saved mean, rstd.
 */
export function groupNormBackward(
  gpu: Gpu, dy: GPUBuffer, x: GPUBuffer, shape: readonly number[], groups: number, weight: GPUBuffer, bias: GPUBuffer,
  mean: GPUBuffer, rstd: GPUBuffer, dx: GPUBuffer, dweight: GPUBuffer, dbias: GPUBuffer,
  options: GroupNormBackwardOptions = {},
): void {
  const op = 'groupNormBackward';
  const { N, C, S, G, cg } = checkGroups(shape, groups, op);
  const total = N * C * S;
  checkBuffer(dy, total, `${op} output gradient`);
  checkBuffer(x, total, `${op} input`);
  checkBuffer(dx, total, `${op} input gradient`);
  checkBuffer(weight, C, `${op} weight`);
  checkBuffer(bias, C, `${op} bias`);
  checkBuffer(mean, N * G, `${op} mean`);
  checkBuffer(rstd, N * G, `${op} rstd`);
  checkBuffer(dweight, C, `${op} weight gradient`);
  checkBuffer(dbias, C, `${op} bias gradient`);
  if (total === 0) return;
  const relu = options.relu ?? false;
  const maxElems = slabElements(gpu, op, options);
  const wg = linearWorkgroupSize(gpu);
  const NC = N * C;
  const coef = gpu.pool.acquire(NC * 16, `${op} forward coefficients`);
  const sums = gpu.pool.acquire(NC * 8, `${op} channel sums`);
  const coefB = gpu.pool.acquire(NC * 32, `${op} backward coefficients`);

  // Per-(n, c) forward coefficients (mean, rstd*w, b), exactly as the forward merge computed them.
  const prep = gpu.pipeline(`gn-bwd-prep:${wg}`, () => `
struct Params { nc: u32, channels: u32, groups: u32, cg: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> mean: array<f32>;
@group(0) @binding(2) var<storage, read> rstd: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> coef: array<vec4f>;
${linearMain(wg)}
  if (gid >= p.nc) { return; }
  let n = gid / p.channels;
  let c = gid - n * p.channels;
  let s = n * p.groups + c / p.cg;
  coef[gid] = vec4f(mean[s], rstd[s] * weight[c], bias[c], 0.0);
}`);
  gpu.dispatch({
    pipeline: prep, label: `${op}:prep`, bindings: [mean, rstd, weight, bias, coef],
    params: packParams([{ u: NC }, { u: C }, { u: G }, { u: cg }]), workgroups: Math.ceil(NC / wg),
  });

  // sums[n, c] = (sum dz, sum dz * (x - mean)).
  segmentedReduce(gpu, {
    label: op, key: `gn-bwd:${relu}`, segLen: S, numSegs: NC, inputs: [dy, x],
    extras: [{ buffer: coef, type: 'vec4f' }],
    prelude: 'let cf = e0[seg];',
    value: relu
      ? 'select(vec2f(0.0), vec2f(v0, v0 * (v1 - cf.x)), (v1 - cf.x) * cf.y + cf.z > 0.0)'
      : 'vec2f(v0, v0 * (v1 - cf.x))',
    width: 2, out: sums, scale: 1, maxElems,
  });

  const params = gpu.pipeline(`gn-bwd-params:${wg}`, () => `
struct Params { n: u32, channels: u32, groups: u32, cg: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> sums: array<vec2f>;
@group(0) @binding(2) var<storage, read> rstd: array<f32>;
@group(0) @binding(3) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(4) var<storage, read_write> dbias: array<f32>;
${linearMain(wg)}
  if (gid >= p.channels) { return; }
  var db = 0.0;
  var dw = 0.0;
  for (var n = 0u; n < p.n; n = n + 1u) {
    let s = sums[n * p.channels + gid];
    db = db + s.x;
    dw = dw + rstd[n * p.groups + gid / p.cg] * s.y;
  }
  dweight[gid] = dw;
  dbias[gid] = db;
}`);
  gpu.dispatch({
    pipeline: params, label: `${op}:params`, bindings: [sums, rstd, dweight, dbias],
    params: packParams([{ u: N }, { u: C }, { u: G }, { u: cg }]), workgroups: Math.ceil(C / wg),
  });

  const fold = gpu.pipeline(`gn-bwd-fold:${wg}`, () => `
struct Params { ng: u32, channels: u32, groups: u32, cg: u32, invM: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> sums: array<vec2f>;
@group(0) @binding(2) var<storage, read> coef: array<vec4f>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read_write> coefB: array<vec4f>;
${linearMain(wg)}
  if (gid >= p.ng) { return; }
  let n = gid / p.groups;
  let g = gid - n * p.groups;
  let r = rstd[gid];
  let c0 = n * p.channels + g * p.cg;
  var a = 0.0;
  var b = 0.0;
  for (var i = 0u; i < p.cg; i = i + 1u) {
    let s = sums[c0 + i];
    let wc = weight[g * p.cg + i];
    a = a + wc * s.x;
    b = b + wc * s.y;
  }
  a = a * p.invM;
  b = b * p.invM * r;
  for (var i = 0u; i < p.cg; i = i + 1u) {
    let cf = coef[c0 + i];
    coefB[2u * (c0 + i)] = vec4f(cf.x, cf.y, cf.z, -r * r * b);
    coefB[2u * (c0 + i) + 1u] = vec4f(-r * a, 0.0, 0.0, 0.0);
  }
}`);
  gpu.dispatch({
    pipeline: fold, label: `${op}:fold`, bindings: [sums, coef, rstd, weight, coefB],
    params: packParams([{ u: N * G }, { u: C }, { u: G }, { u: cg }, { f: 1 / (cg * S) }]),
    workgroups: Math.ceil((N * G) / wg),
  });

  const V = S % 4 === 0 ? 4 : 1;
  const T = V === 4 ? 'vec4f' : 'f32';
  const apply = gpu.pipeline(`gn-bwd-apply:${V}:${relu}:${wg}`, () => `
struct Params { n: u32, base: u32, sv: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dys: array<${T}>;
@group(0) @binding(2) var<storage, read> xs: array<${T}>;
@group(0) @binding(3) var<storage, read> coefB: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> dxs: array<${T}>;
${linearMain(wg)}
  if (gid >= p.n) { return; }
  let nc = (p.base + gid) / p.sv;
  let cf = coefB[2u * nc];
  let q0 = coefB[2u * nc + 1u].x;
  let xc = xs[gid] - cf.x;
  let dz = ${relu ? `select(${T}(0.0), dys[gid], xc * cf.y + cf.z > ${T}(0.0))` : 'dys[gid]'};
  dxs[gid] = dz * cf.y + xc * cf.w + q0;
}`);
  for (const [start, count] of flatWindows(total, maxElems)) {
    const win = (b: GPUBuffer) => ({ buffer: b, offset: start * 4, size: count * 4 });
    gpu.dispatch({
      pipeline: apply, label: `${op}:apply`,
      bindings: [win(dy), win(x), coefB, win(dx)],
      params: packParams([{ u: count / V }, { u: start / V }, { u: S / V }]),
      workgroups: Math.ceil(count / V / wg),
    });
  }
  gpu.pool.release(coef);
  gpu.pool.release(sums);
  gpu.pool.release(coefB);
}
