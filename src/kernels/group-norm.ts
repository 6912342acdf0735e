/**
 * Group normalisation (PyTorch nn.GroupNorm: biased variance, affine weight and bias per channel) on
 * [N, C, ...spatial], with an optional fused ReLU (y = relu(gn(x))), forward and backward. x, y, dy and dx are
 * f32 or f16 (`dtype`: loaded into f32, every sum in f32, rounded once when stored); weight, bias, their
 * gradients, mean, rstd and the coefficients are always f32.
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
 *
 * Software adapters (lavapipe, SwiftShader) run a workgroup's invocations as SIMD lanes of one CPU thread and
 * pay per invocation, per workgroup and per barrier, while a few workgroups already fill the CPU's cores. There
 * (`fused`, the default on software adapters when the tensor fits one binding) one workgroup normalises a whole
 * (n, g): forward in one dispatch (statistics, then the apply over the group's elements still in cache, 2
 * barriers), backward in two (per (n, g) the channel sums, A, B and dx; then dweight, dbias per channel).
 */
import { isSoftwareAdapter, type Gpu } from './runtime/gpu.js';
import { cachedSignature, kernelSignature, readOnly, readWrite } from './runtime/kernel-signature.js';
import { computeType, requireDType, storageType, type DType } from './runtime/precision.js';
import { checkBuffer, linearMain, linearWorkgroupSize } from './runtime/wgsl.js';
import { alignedWindow, alignElements, slabElements, type SlabOptions } from './runtime/windows.js';
import { channelMap, chunkBounds, planChunks, segmentedReduce, workgroupMain } from './runtime/reduction.js';
import { splitNC } from './runtime/shapes.js';

export interface GroupNormOptions extends SlabOptions {
  /** Added to the variance (default 1e-5, as PyTorch). */
  eps?: number;
  /** Fuse a ReLU into the output: y = relu(gn(x)). */
  relu?: boolean;
  /**
   * One workgroup per (n, g) (see the file comment). Default: on software adapters. Ignored (the chunked
   * kernels run) when the tensor does not fit one binding window.
   */
  fused?: boolean;
  /** Element type of x and y (default 'f32'); the statistics and coefficients are f32 either way. */
  dtype?: DType;
}

export interface GroupNormBackwardOptions extends SlabOptions {
  /** The forward fused a ReLU (the backward masks dy where the pre-activation is <= 0). */
  relu?: boolean;
  /** As GroupNormOptions.fused. */
  fused?: boolean;
  /** Element type of dy, x and dx (default 'f32'); dweight and dbias are f32 either way. */
  dtype?: DType;
}

/**
 * Invocations per workgroup of the fused kernels: one SIMD vector of a software adapter (lavapipe: 8 lanes), so
 * barriers cost next to nothing, each invocation walking many elements (per-invocation overhead dominates
 * there). Measured on lavapipe at TGNet's shapes, 8 beat 16..128 by up to 2x on small groups and tied on large.
 */
const FUSED_WG = 8;

function useFused(gpu: Gpu, fused: boolean | undefined, total: number, maxElems: number): boolean {
  return (fused ?? isSoftwareAdapter(gpu)) && total <= maxElems;
}

function checkGroups(shape: readonly number[], groups: number, op: string): { N: number; C: number; S: number; G: number; cg: number } {
  const { N, C, S } = splitNC(shape, op);
  if (!Number.isInteger(groups) || groups < 1 || C % groups !== 0) {
    throw new RangeError(`${op}: groups G=${groups} must be a positive integer dividing the channels C=${C}`);
  }
  return { N, C, S, G: groups, cg: C / groups };
}

const stats = (dtype: DType) => cachedSignature(`groupNorm:stats:${dtype}`, () => kernelSignature('groupNorm:stats', {
  uniforms: { base: 'u32', chunk0: 'u32', nchunks: 'u32', segLen: 'u32', chunkLen: 'u32', cps: 'u32' },
  storage: { xs: readOnly(dtype), part: readWrite('vec2f') },
}));

const MERGE = kernelSignature('groupNorm:merge', {
  uniforms: { cps: 'u32', nsegs: 'u32', segLen: 'u32', chunkLen: 'u32', groups: 'u32', cg: 'u32', channels: 'u32', eps: 'f32' },
  storage: {
    part: readOnly('vec2f'), weight: readOnly('f32'), bias: readOnly('f32'),
    mean: readWrite('f32'), rstd: readWrite('f32'), coef: readWrite('vec4f'),
  },
});

const BACKWARD_PREP = kernelSignature('groupNormBackward:prep', {
  uniforms: { nc: 'u32', channels: 'u32', groups: 'u32', cg: 'u32' },
  storage: { mean: readOnly('f32'), rstd: readOnly('f32'), weight: readOnly('f32'), bias: readOnly('f32'), coef: readWrite('vec4f') },
});

/** dweight, dbias per channel from per-(n, c) sums (vec2f: sum dz, sum dz * (x - mean)). */
const BACKWARD_PARAMS = kernelSignature('groupNormBackward:params', {
  uniforms: { n: 'u32', channels: 'u32', groups: 'u32', cg: 'u32' },
  storage: { sums: readOnly('vec2f'), rstd: readOnly('f32'), dweight: readWrite('f32'), dbias: readWrite('f32') },
});

const BACKWARD_FOLD = kernelSignature('groupNormBackward:fold', {
  uniforms: { ng: 'u32', channels: 'u32', groups: 'u32', cg: 'u32', invM: 'f32' },
  storage: {
    sums: readOnly('vec2f'), coef: readOnly('vec4f'), rstd: readOnly('f32'), weight: readOnly('f32'), coefB: readWrite('vec4f'),
  },
});

/** What the fused forward writes besides the statistics: y, or (groupNormCoefficients) the per-(n, c) coefficients. */
type FusedOutput = { y: GPUBuffer } | { coef: GPUBuffer };
const fusedForward = (T: ReturnType<typeof storageType>, coefficients: boolean) => cachedSignature(`groupNorm:fused:${T}:${coefficients}`, () => kernelSignature('groupNorm:fused', {
  uniforms: { sv: 'u32', cg: 'u32', groups: 'u32', segLen: 'u32', eps: 'f32' },
  storage: {
    xs: readOnly(T), weight: readOnly('f32'), bias: readOnly('f32'),
    ...(coefficients ? { coef: readWrite('vec4f') } : { ys: readWrite(T) }), mean: readWrite('f32'), rstd: readWrite('f32'),
  },
}));

/** The bias only decides the ReLU mask, so it is bound only with `relu`. */
const fusedBackward = (T: ReturnType<typeof storageType>, relu: boolean) => cachedSignature(`groupNormBackward:fused:${T}:${relu}`, () => kernelSignature('groupNormBackward:fused', {
  uniforms: { sv: 'u32', cg: 'u32', groups: 'u32', channels: 'u32', invM: 'f32' },
  storage: {
    dys: readOnly(T), xs: readOnly(T), weight: readOnly('f32'), mean: readOnly('f32'), rstd: readOnly('f32'),
    dxs: readWrite(T), part: readWrite('vec2f'), ...(relu ? { bias: readOnly('f32') } : {}),
  },
}));

/** Chan's parallel merge of (count, mean, M2) triples. */
const CHAN = /* wgsl */ `
fn chan(a: vec3f, b: vec3f) -> vec3f {
  let n = a.x + b.x;
  if (n == 0.0) { return a; }
  let d = b.y - a.y;
  let t = b.x / n;
  return vec3f(n, a.y + d * t, a.z + b.z + d * d * a.x * t);
}`;

/** The checks both forward entry points share: dtype, groups, eps, and the input, affine and statistics buffers. */
function checkForward(
  gpu: Gpu, op: string, x: GPUBuffer, shape: readonly number[], groups: number, weight: GPUBuffer, bias: GPUBuffer,
  mean: GPUBuffer, rstd: GPUBuffer, options: { eps?: number; dtype?: DType },
): { dims: GroupDims; eps: number; dtype: DType } {
  const dtype = options.dtype ?? 'f32';
  requireDType(gpu, dtype, op);
  const dims = checkGroups(shape, groups, op);
  const { N, C, S, G } = dims;
  const eps = options.eps ?? 1e-5;
  if (!(eps >= 0)) throw new RangeError(`${op}: eps must be a non-negative number, got ${eps}`);
  checkBuffer(x, N * C * S, `${op} input`, dtype);
  checkBuffer(weight, C, `${op} weight`);
  checkBuffer(bias, C, `${op} bias`);
  checkBuffer(mean, N * G, `${op} mean`);
  checkBuffer(rstd, N * G, `${op} rstd`);
  return { dims, eps, dtype };
}

/**
 * y = gn(x) * weight + bias (relu optional); saves mean and rstd per (n, g) (buffers of N*G f32).
 * x, y: [N, C, ...spatial] of options.dtype; weight, bias: [C] f32.
 */
export function groupNormForward(
  gpu: Gpu, x: GPUBuffer, shape: readonly number[], groups: number, weight: GPUBuffer, bias: GPUBuffer,
  y: GPUBuffer, mean: GPUBuffer, rstd: GPUBuffer, options: GroupNormOptions = {},
): void {
  const op = 'groupNorm';
  const { dims, eps, dtype } = checkForward(gpu, op, x, shape, groups, weight, bias, mean, rstd, options);
  const { N, C, S, G, cg } = dims;
  const total = N * C * S;
  checkBuffer(y, total, `${op} output`, dtype);
  if (total === 0) return;
  const maxElems = slabElements(gpu, op, options, dtype);
  if (useFused(gpu, options.fused, total, maxElems)) {
    groupNormForwardFused(gpu, x, { N, C, S, G, cg }, weight, bias, { y }, mean, rstd, eps, options.relu ?? false, dtype);
    return;
  }
  const coef = gpu.pool.acquire(N * C * 16, `${op} coefficients`);
  statisticsAndCoefficients(gpu, x, { N, C, S, G, cg }, weight, bias, mean, rstd, coef, eps, maxElems, op, dtype);

  // y = (x - mean) * (rstd * w) + b per (n, c), from the merge's coefficients (mean, rstd * w, b).
  const relu = options.relu ?? false;
  channelMap(gpu, {
    label: `${op}:apply`, key: `gn-apply:${relu}`, channels: N * C, spatial: S, inputs: { x }, dtype,
    perChannel: { coef: { buffer: coef, type: 'vec4f' } },
    prelude: 'let cf = coef[ch];\n  let z = (x - cf.x) * cf.y + cf.z;',
    value: relu ? 'max(z, Elem(0.0))' : 'z', out: y, maxElems,
  });
  gpu.pool.release(coef);
}

/**
 * The statistics of groupNormForward without the normalised output (x of options.dtype): mean and rstd per
 * (n, g) (N*G f32 each) and per (n, c) the coefficients (mean, rstd * weight, bias, 0) (N*C vec4f), from which a consumer computes
 * gn(x) = (x - mean) * (rstd * weight) + bias as it loads x (Conv3dOptions.inputNormRelu). (Folding the mean
 * into the shift, x * a + (bias - mean * a), saves an op per load but loses |mean| / std of the digits: it failed
 * the PyTorch golden test at the bottleneck.)
 */
export function groupNormCoefficients(
  gpu: Gpu, x: GPUBuffer, shape: readonly number[], groups: number, weight: GPUBuffer, bias: GPUBuffer,
  mean: GPUBuffer, rstd: GPUBuffer, coef: GPUBuffer, options: Omit<GroupNormOptions, 'relu'> = {},
): void {
  const op = 'groupNormCoefficients';
  const { dims, eps, dtype } = checkForward(gpu, op, x, shape, groups, weight, bias, mean, rstd, options);
  const { N, C, S, G, cg } = dims;
  checkBuffer(coef, 4 * N * C, `${op} coefficients`);
  if (N * C * S === 0) return;
  const maxElems = slabElements(gpu, op, options, dtype);
  if (useFused(gpu, options.fused, N * C * S, maxElems)) {
    groupNormForwardFused(gpu, x, { N, C, S, G, cg }, weight, bias, { coef }, mean, rstd, eps, false, dtype);
    return;
  }
  statisticsAndCoefficients(gpu, x, { N, C, S, G, cg }, weight, bias, mean, rstd, coef, eps, maxElems, op, dtype);
}

/** Chunked statistics (partials, then one Chan merge per (n, g)) -> mean, rstd and the per-(n, c) coefficients. */
function statisticsAndCoefficients(
  gpu: Gpu, x: GPUBuffer, d: GroupDims, weight: GPUBuffer, bias: GPUBuffer, mean: GPUBuffer, rstd: GPUBuffer,
  coef: GPUBuffer, eps: number, maxElems: number, op: string, dtype: DType,
): void {
  const { N, C, S, G, cg } = d;
  const wg = linearWorkgroupSize(gpu);
  const M = cg * S;
  const NG = N * G;
  const plan = planChunks(M, NG, maxElems, alignElements(gpu, dtype));
  const K = plan.chunksPerSeg * NG;
  const part = gpu.pool.acquire(K * 8, `${op} partial statistics`);

  const STATS = stats(dtype);
  const statsPipeline = STATS.pipeline(gpu, `gn-stats:${dtype}:${wg}`, () => `
var<workgroup> sh: array<vec3f, ${wg}>;
${CHAN}
${workgroupMain(wg)}
  if (w >= p.nchunks) { return; }
  ${chunkBounds()}
  // Per thread: sums shifted by the thread's first element (a sample of the data, so the cancellation in
  // s2 - s1^2/n stays mild), then Chan merges across threads.
  var shift = 0.0;
  if (start + lid < end) { shift = f32(xs[start + lid - p.base]); }
  var cnt = 0u;
  var s1 = 0.0;
  var s2 = 0.0;
  for (var gi = start + lid; gi < end; gi = gi + ${wg}u) {
    let d = f32(xs[gi - p.base]) - shift;
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
      pipeline: statsPipeline, label: `${op}:stats`, workgroups: win.chunks,
      ...STATS.bind(
        { base: win.base, chunk0: win.chunk0, nchunks: win.chunks, segLen: M, chunkLen: plan.chunkLen, cps: plan.chunksPerSeg },
        // win.base is aligned (planChunks), so the window starts exactly there.
        { xs: alignedWindow(gpu, x, win.base, win.count, dtype).binding, part },
      ),
    });
  }

  const merge = MERGE.pipeline(gpu, `gn-merge:${wg}`, () => `
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
    pipeline: merge, label: `${op}:merge`, workgroups: NG,
    ...MERGE.bind(
      { cps: plan.chunksPerSeg, nsegs: NG, segLen: M, chunkLen: plan.chunkLen, groups: G, cg, channels: C, eps },
      { part, weight, bias, mean, rstd, coef },
    ),
  });
  gpu.pool.release(part);
}

/**
 * Backward of groupNormForward (with the same `relu` flag): dx [N, C, ...], dweight [C], dbias [C] from
 * dy, the forward input x, weight, bias (used only to recompute the ReLU mask) and the saved mean, rstd.
 * dy, x and dx are of options.dtype; everything else f32.
 */
export function groupNormBackward(
  gpu: Gpu, dy: GPUBuffer, x: GPUBuffer, shape: readonly number[], groups: number, weight: GPUBuffer, bias: GPUBuffer,
  mean: GPUBuffer, rstd: GPUBuffer, dx: GPUBuffer, dweight: GPUBuffer, dbias: GPUBuffer,
  options: GroupNormBackwardOptions = {},
): void {
  const op = 'groupNormBackward';
  const dtype = options.dtype ?? 'f32';
  requireDType(gpu, dtype, op);
  const { N, C, S, G, cg } = checkGroups(shape, groups, op);
  const total = N * C * S;
  checkBuffer(dy, total, `${op} output gradient`, dtype);
  checkBuffer(x, total, `${op} input`, dtype);
  checkBuffer(dx, total, `${op} input gradient`, dtype);
  checkBuffer(weight, C, `${op} weight`);
  checkBuffer(bias, C, `${op} bias`);
  checkBuffer(mean, N * G, `${op} mean`);
  checkBuffer(rstd, N * G, `${op} rstd`);
  checkBuffer(dweight, C, `${op} weight gradient`);
  checkBuffer(dbias, C, `${op} bias gradient`);
  if (total === 0) return;
  const relu = options.relu ?? false;
  const maxElems = slabElements(gpu, op, options, dtype);
  if (useFused(gpu, options.fused, total, maxElems)) {
    groupNormBackwardFused(gpu, dy, x, { N, C, S, G, cg }, weight, bias, mean, rstd, dx, dweight, dbias, relu, dtype);
    return;
  }
  const wg = linearWorkgroupSize(gpu);
  const NC = N * C;
  const coef = gpu.pool.acquire(NC * 16, `${op} forward coefficients`);
  const sums = gpu.pool.acquire(NC * 8, `${op} channel sums`);
  const coefB = gpu.pool.acquire(NC * 32, `${op} backward coefficients`);

  // Per-(n, c) forward coefficients (mean, rstd*w, b), exactly as the forward merge computed them.
  const prep = BACKWARD_PREP.pipeline(gpu, `gn-bwd-prep:${wg}`, () => `
${linearMain(wg)}
  if (gid >= p.nc) { return; }
  let n = gid / p.channels;
  let c = gid - n * p.channels;
  let s = n * p.groups + c / p.cg;
  coef[gid] = vec4f(mean[s], rstd[s] * weight[c], bias[c], 0.0);
}`);
  gpu.dispatch({
    pipeline: prep, label: `${op}:prep`, workgroups: Math.ceil(NC / wg),
    ...BACKWARD_PREP.bind({ nc: NC, channels: C, groups: G, cg }, { mean, rstd, weight, bias, coef }),
  });

  // sums[n, c] = (sum dz, sum dz * (x - mean)).
  segmentedReduce(gpu, {
    label: op, key: `gn-bwd:${relu}`, segLen: S, numSegs: NC, inputs: [dy, x], dtype,
    extras: [{ buffer: coef, type: 'vec4f' }],
    prelude: 'let cf = e0[seg];',
    value: relu
      ? 'select(vec2f(0.0), vec2f(v0, v0 * (v1 - cf.x)), (v1 - cf.x) * cf.y + cf.z > 0.0)'
      : 'vec2f(v0, v0 * (v1 - cf.x))',
    width: 2, out: sums, scale: 1, maxElems,
  });

  const params = BACKWARD_PARAMS.pipeline(gpu, `gn-bwd-params:${wg}`, () => `
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
    pipeline: params, label: `${op}:params`, workgroups: Math.ceil(C / wg),
    ...BACKWARD_PARAMS.bind({ n: N, channels: C, groups: G, cg }, { sums, rstd, dweight, dbias }),
  });

  const fold = BACKWARD_FOLD.pipeline(gpu, `gn-bwd-fold:${wg}`, () => `
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
    pipeline: fold, label: `${op}:fold`, workgroups: Math.ceil((N * G) / wg),
    ...BACKWARD_FOLD.bind({ ng: N * G, channels: C, groups: G, cg, invM: 1 / (cg * S) }, { sums, coef, rstd, weight, coefB }),
  });

  // dx = dz * (rstd * w) + (x - mean) * (-rstd^2 B) - rstd * A per (n, c), from the folded coefficients.
  channelMap(gpu, {
    label: `${op}:apply`, key: `gn-bwd-apply:${relu}`, channels: NC, spatial: S, inputs: { dy, x }, dtype,
    perChannel: { coefB: { buffer: coefB, type: 'vec4f' } },
    prelude: [
      'let cf = coefB[2u * ch];',
      'let q0 = coefB[2u * ch + 1u].x;',
      'let xc = x - cf.x;',
      `let dz = ${relu ? 'select(Elem(0.0), dy, xc * cf.y + cf.z > Elem(0.0))' : 'dy'};`,
    ].join('\n  '),
    value: 'dz * cf.y + xc * cf.w + q0', out: dx, maxElems,
  });
  gpu.pool.release(coef);
  gpu.pool.release(sums);
  gpu.pool.release(coefB);
}

interface GroupDims { N: number; C: number; S: number; G: number; cg: number }

/** A binding of the first `elements` of `dtype` (the fused kernels run only when the tensor fits one binding). */
function whole(gpu: Gpu, buffer: GPUBuffer, elements: number, dtype: DType): { buffer: GPUBuffer; offset: number; size: number } {
  return alignedWindow(gpu, buffer, 0, elements, dtype).binding;
}

/**
 * Forward, one workgroup per (n, g): shifted sums per invocation, Chan-merged serially by invocation 0 (one
 * barrier), then y over the group channel by channel (weight and bias uniform across the workgroup), or, for
 * groupNormCoefficients, the group's per-channel coefficients (mean, rstd * weight, bias, 0) as the chunked merge.
 */
function groupNormForwardFused(
  gpu: Gpu, x: GPUBuffer, d: GroupDims, weight: GPUBuffer, bias: GPUBuffer, out: FusedOutput, mean: GPUBuffer,
  rstd: GPUBuffer, eps: number, relu: boolean, dtype: DType,
): void {
  const coefficients = 'coef' in out;
  const { N, C, S, G, cg } = d;
  const V = S % 4 === 0 ? 4 : 1;
  // T: the stored element (loads convert to the computing type Cf; ys rounds once to T).
  const T = storageType(dtype, V);
  const Cf = computeType(V);
  const wg = Math.min(FUSED_WG, gpu.limits.maxComputeInvocationsPerWorkgroup);
  const sum = V === 4 ? 'dot(dv, vec4f(1.0))' : 'dv';
  const sig = fusedForward(T, coefficients);
  const finish = coefficients ? `
  let cBase = (w / p.groups) * p.groups * p.cg + c0;
  for (var cl = lid; cl < p.cg; cl = cl + ${wg}u) {
    coef[cBase + cl] = vec4f(m, r * weight[c0 + cl], bias[c0 + cl], 0.0);
  }` : `
  for (var cl = 0u; cl < p.cg; cl = cl + 1u) {
    let sc = r * weight[c0 + cl];
    let sh0 = bias[c0 + cl] - m * sc;
    let o = base + cl * p.sv;
    for (var i = lid; i < p.sv; i = i + ${wg}u) {
      let z = ${Cf}(xs[o + i]) * sc + sh0;
      ys[o + i] = ${T}(${relu ? `max(z, ${Cf}(0.0))` : 'z'});
    }
  }`;
  const pipeline = sig.pipeline(gpu, `gn-fused:${dtype}:${V}:${relu}:${wg}${coefficients ? ':coef' : ''}`, () => `
var<workgroup> sh: array<vec3f, ${wg}>;
var<workgroup> stat: vec2f;
${CHAN}
${workgroupMain(wg)}
  let mv = p.cg * p.sv;
  let base = w * mv;
  // Sums shifted by the invocation's first element (a sample of the data: s2 - s1^2/n cancels mildly).
  var shift = 0.0;
  if (lid < mv) { shift = f32(xs[base + lid]${V === 4 ? '.x' : ''}); }
  var s1 = 0.0;
  var s2 = 0.0;
  var cnt = 0u;
  for (var i = lid; i < mv; i = i + ${wg}u) {
    let dv = ${Cf}(xs[base + i]) - ${Cf}(shift);
    s1 = s1 + ${sum};
    s2 = s2 + ${V === 4 ? 'dot(dv, dv)' : 'dv * dv'};
    cnt = cnt + ${V}u;
  }
  var part = vec3f(0.0, shift, 0.0);
  if (cnt > 0u) {
    let n = f32(cnt);
    part = vec3f(n, shift + s1 / n, max(s2 - s1 * s1 / n, 0.0));
  }
  sh[lid] = part;
  workgroupBarrier();
  if (lid == 0u) {
    var acc = sh[0];
    for (var j = 1u; j < ${wg}u; j = j + 1u) { acc = chan(acc, sh[j]); }
    let r = 1.0 / sqrt(acc.z / f32(p.segLen) + p.eps);
    stat = vec2f(acc.y, r);
    mean[w] = acc.y;
    rstd[w] = r;
  }
  workgroupBarrier();
  let m = stat.x;
  let r = stat.y;
  let c0 = (w % p.groups) * p.cg;
  ${finish}
}`);
  const total = N * C * S;
  const outputs = 'coef' in out ? { coef: whole(gpu, out.coef, 4 * N * C, 'f32') } : { ys: whole(gpu, out.y, total, dtype) };
  gpu.dispatch({
    pipeline, label: coefficients ? 'groupNormCoefficients:fused' : 'groupNorm:fused', workgroups: N * G,
    ...sig.bind({ sv: S / V, cg, groups: G, segLen: cg * S, eps }, { xs: whole(gpu, x, total, dtype), weight, bias, ...outputs, mean, rstd }),
  });
}

/**
 * Backward, one workgroup per (n, g): per channel the invocations' partial sums of dz and dz*(x - mean) go to
 * a scratch buffer (no barrier per channel) while each invocation also accumulates their weighted sums; one
 * barrier and a serial sum give A and B, then dx. A second dispatch sums the partials into dweight and dbias.
 */
function groupNormBackwardFused(
  gpu: Gpu, dy: GPUBuffer, x: GPUBuffer, d: GroupDims, weight: GPUBuffer, bias: GPUBuffer, mean: GPUBuffer,
  rstd: GPUBuffer, dx: GPUBuffer, dweight: GPUBuffer, dbias: GPUBuffer, relu: boolean, dtype: DType,
): void {
  const { N, C, S, G, cg } = d;
  const V = S % 4 === 0 ? 4 : 1;
  const T = storageType(dtype, V);
  const Cf = computeType(V);
  const wg = Math.min(FUSED_WG, gpu.limits.maxComputeInvocationsPerWorkgroup);
  const hsum = (e: string) => (V === 4 ? `dot(${e}, vec4f(1.0))` : e);
  const partials = gpu.pool.acquire(N * C * wg * 8, 'groupNormBackward partial sums');
  const sig = fusedBackward(T, relu);
  const main = sig.pipeline(gpu, `gn-bwd-fused:${dtype}:${V}:${relu}:${wg}`, () => `
var<workgroup> sh: array<vec2f, ${wg}>;
var<workgroup> coefs: vec2f;
${workgroupMain(wg)}
  let mv = p.cg * p.sv;
  let base = w * mv;
  let n = w / p.groups;
  let c0 = (w - n * p.groups) * p.cg;
  let m = mean[w];
  let r = rstd[w];
  var ab = vec2f(0.0);
  for (var cl = 0u; cl < p.cg; cl = cl + 1u) {
    let wc = weight[c0 + cl];
    ${relu ? 'let sc = r * wc;\n    let sh0 = bias[c0 + cl];' : ''}
    let o = base + cl * p.sv;
    var acc = vec2f(0.0);
    for (var i = lid; i < p.sv; i = i + ${wg}u) {
      let xc = ${Cf}(xs[o + i]) - ${Cf}(m);
      let dz = ${relu ? `select(${Cf}(0.0), ${Cf}(dys[o + i]), xc * sc + sh0 > ${Cf}(0.0))` : `${Cf}(dys[o + i])`};
      acc = acc + vec2f(${hsum('dz')}, ${hsum('dz * xc')});
    }
    part[(n * p.channels + c0 + cl) * ${wg}u + lid] = acc;
    ab = ab + wc * acc;
  }
  sh[lid] = ab;
  workgroupBarrier();
  if (lid == 0u) {
    var t = vec2f(0.0);
    for (var j = 0u; j < ${wg}u; j = j + 1u) { t = t + sh[j]; }
    // A = mean(dz*w), B = mean(dz*w*xhat); dx = dz*(r*w) + (x - mean)*(-r^2 B) - r*A.
    coefs = vec2f(-r * t.x * p.invM, -r * r * r * t.y * p.invM);
  }
  workgroupBarrier();
  let q0 = coefs.x;
  let qx = coefs.y;
  for (var cl = 0u; cl < p.cg; cl = cl + 1u) {
    let sc = r * weight[c0 + cl];
    ${relu ? 'let sh0 = bias[c0 + cl];' : ''}
    let o = base + cl * p.sv;
    for (var i = lid; i < p.sv; i = i + ${wg}u) {
      let xc = ${Cf}(xs[o + i]) - ${Cf}(m);
      let dz = ${relu ? `select(${Cf}(0.0), ${Cf}(dys[o + i]), xc * sc + sh0 > ${Cf}(0.0))` : `${Cf}(dys[o + i])`};
      dxs[o + i] = ${T}(dz * sc + xc * qx + q0);
    }
  }
}`);
  const total = N * C * S;
  gpu.dispatch({
    pipeline: main, label: 'groupNormBackward:fused', workgroups: N * G,
    ...sig.bind({ sv: S / V, cg, groups: G, channels: C, invM: 1 / (cg * S) }, {
      dys: whole(gpu, dy, total, dtype), xs: whole(gpu, x, total, dtype), weight, mean, rstd, dxs: whole(gpu, dx, total, dtype), part: partials,
      bias: relu ? bias : undefined,
    }),
  });
  // The per-invocation partials of each (n, c): `wg` vec2f per channel, summed in order.
  const params = BACKWARD_PARAMS.pipeline(gpu, `gn-bwd-fused-params:${wg}`, () => `
${linearMain(8)}
  if (gid >= p.channels) { return; }
  var db = 0.0;
  var dw = 0.0;
  for (var n = 0u; n < p.n; n = n + 1u) {
    let o = (n * p.channels + gid) * ${wg}u;
    var s = vec2f(0.0);
    for (var j = 0u; j < ${wg}u; j = j + 1u) { s = s + sums[o + j]; }
    db = db + s.x;
    dw = dw + rstd[n * p.groups + gid / p.cg] * s.y;
  }
  dweight[gid] = dw;
  dbias[gid] = db;
}`);
  gpu.dispatch({
    pipeline: params, label: 'groupNormBackward:params', workgroups: Math.ceil(C / 8),
    ...BACKWARD_PARAMS.bind({ n: N, channels: C, groups: G, cg }, { sums: partials, rstd, dweight, dbias }),
  });
  gpu.pool.release(partials);
}
