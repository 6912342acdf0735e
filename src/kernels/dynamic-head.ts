/**
 * DoDNet's dynamic head: per-sample 1x1x1 convolutions 8 -> 8 -> 8 -> 2 whose 162 weights come from the
 * controller (bench/torch/tgnet_torch.py `dynamic_head`). y = w3 relu(w2 relu(w1 h + b1) + b2) + b3.
 *
 * Forward: one fused kernel, one thread per voxel, the sample's 162 parameters in workgroup memory and the
 * 8-vectors in registers (straight-line generated code).
 * Backward: one fused kernel writes dh and, per workgroup, the partial parameter gradient over its block of
 * voxels (hidden activations recomputed, not saved); a second pass sums the block partials in a fixed order,
 * so the result is deterministic. When one block covers V the first kernel writes dparams directly.
 *
 * Tensors larger than one storage binding are processed in chunks of whole samples (see `forEachSampleChunk`).
 */
import { isSoftwareAdapter, isSwiftShader, type Gpu } from './runtime/gpu.js';
import { cachedSignature, kernelSignature, readOnly, readWrite } from './runtime/kernel-signature.js';
import { requireDType, type DType } from './runtime/precision.js';
import { checkBuffer, checkShape, linearMain, linearWorkgroupSize, sizeOf } from './runtime/wgsl.js';
import { forEachSampleChunk } from './runtime/windows.js';
import { HEAD_OFFSETS, HEAD_PARAMS } from './dynamic-head-layout.js';

export { HEAD_OFFSETS, HEAD_PARAMS };

/** h (and dh) take the features' dtype; the parameters, the logits and their gradients are f32. */
const forwardSignature = (dtype: DType) => cachedSignature(`dynamicHead:${dtype}`, () => kernelSignature('dynamicHead', {
  uniforms: { V: 'u32', blocks: 'u32', count: 'u32', hBase: 'u32', pBase: 'u32', yBase: 'u32' },
  storage: { h: readOnly(dtype), prm: readOnly('f32'), ys: readWrite('f32') },
}));

const backwardSignature = (dtype: DType) => cachedSignature(`dynamicHeadBackward:${dtype}`, () => kernelSignature('dynamicHeadBackward', {
  uniforms: {
    V: 'u32', blocks: 'u32', blockVoxels: 'u32', count: 'u32', hBase: 'u32', pBase: 'u32', dyBase: 'u32', dhBase: 'u32', oBase: 'u32',
  },
  storage: { h: readOnly(dtype), prm: readOnly('f32'), dy: readOnly('f32'), dh: readWrite(dtype), part: readWrite('f32') },
}));

const BACKWARD_REDUCE = kernelSignature('dynamicHeadBackward:reduce', {
  uniforms: { total: 'u32', blocks: 'u32', oBase: 'u32' },
  storage: { part: readOnly('f32'), dp: readWrite('f32') },
});

/** Validates h [N, 8, ...spatial] and params [N, 162]; returns N and V (voxels per sample). */
function checkHeadShapes(what: string, hShape: readonly number[], paramsShape: readonly number[]): { n: number; v: number } {
  checkShape(hShape, `${what} h`);
  checkShape(paramsShape, `${what} params`);
  if (hShape.length < 2 || hShape[1] !== 8) {
    throw new RangeError(`${what}: h must be [N, 8, ...spatial], got [${hShape.join(', ')}]`);
  }
  const n = hShape[0];
  if (paramsShape.length !== 2 || paramsShape[0] !== n || paramsShape[1] !== HEAD_PARAMS) {
    throw new RangeError(`${what}: params must be [N, 162] = [${n}, 162] for h [${hShape.join(', ')}], got [${paramsShape.join(', ')}]`);
  }
  return { n, v: sizeOf(hShape.slice(2)) };
}

const { w1: W1, w2: W2, w3: W3, b1: B1, b2: B2, b3: B3 } = HEAD_OFFSETS;

/** Straight-line WGSL of the head's forward for one voxel: needs x0..x7 and `w`; defines a1_*, r1_*, a2_*, r2_*, y0, y1. */
function forwardMath(): string {
  const lines: string[] = [];
  for (let o = 0; o < 8; o++) {
    const terms = [`w[${B1 + o}]`];
    for (let i = 0; i < 8; i++) terms.push(`w[${W1 + o * 8 + i}] * x${i}`);
    lines.push(`let a1_${o} = ${terms.join(' + ')};`, `let r1_${o} = max(a1_${o}, 0.0);`);
  }
  for (let o = 0; o < 8; o++) {
    const terms = [`w[${B2 + o}]`];
    for (let i = 0; i < 8; i++) terms.push(`w[${W2 + o * 8 + i}] * r1_${i}`);
    lines.push(`let a2_${o} = ${terms.join(' + ')};`, `let r2_${o} = max(a2_${o}, 0.0);`);
  }
  for (let k = 0; k < 2; k++) {
    const terms = [`w[${B3 + k}]`];
    for (let i = 0; i < 8; i++) terms.push(`w[${W3 + k * 8 + i}] * r2_${i}`);
    lines.push(`let y${k} = ${terms.join(' + ')};`);
  }
  return lines.join('\n    ');
}

/**
 * WGSL that loads the sample's 162 parameters into `w` (all invocations reach the barrier); with `copy`, then into
 * the function's `wv`, which the backward's voxel loop reads: on lavapipe the copy, made outside any branch or loop,
 * reads each parameter once for all lanes, where a read of `w` inside the loop (or after an early return) is a
 * load per lane. The forward has neither and reads `w` itself (the copy cost SwiftShader more than it saved).
 */
function loadParams(wg: number, copy: boolean): string {
  return `
  if (valid) {
    for (var i = lid; i < ${HEAD_PARAMS}u; i += ${wg}u) { w[i] = prm[p.pBase + n * ${HEAD_PARAMS}u + i]; }
  }
  workgroupBarrier();${copy ? '\n  let wv = w;' : ''}`;
}

/** The math's parameter reads, from the function's copy (see loadParams). */
function fromCopy(wgsl: string): string {
  return wgsl.replace(/\bw\[/g, 'wv[');
}

export interface DynamicHeadOptions {
  /** Element type of h (and, in backward, dh): 'f16' under mixed precision; the logits stay f32. Default 'f32'. */
  dtype?: DType;
}

export interface DynamicHeadForwardOptions extends DynamicHeadOptions {
  /**
   * Voxels each invocation of the forward computes, one after another, after its workgroup loaded the parameters
   * once. Default 16 on SwiftShader, where a workgroup's barrier costs more than the head's math (width-4 TGNet
   * step: 21-23 -> 9-10 ms), and 1 elsewhere (on lavapipe the parameter reads inside a loop are loads per lane:
   * 1 -> 3 ms).
   */
  voxelsPerInvocation?: number;
}

/**
 * y [N, 2, ...spatial] = dynamic head of h [N, 8, ...spatial] with per-sample params [N, 162]. `out` is given
 * by the caller (N*2*V f32). Returns the output shape.
 */
export function dynamicHead(
  gpu: Gpu, h: GPUBuffer, hShape: readonly number[], params: GPUBuffer, paramsShape: readonly number[], out: GPUBuffer,
  options: DynamicHeadForwardOptions = {},
): number[] {
  const { n, v } = checkHeadShapes('dynamicHead', hShape, paramsShape);
  const dtype = options.dtype ?? 'f32';
  requireDType(gpu, dtype, 'dynamicHead');
  checkBuffer(h, n * 8 * v, 'dynamicHead h', dtype);
  checkBuffer(params, n * HEAD_PARAMS, 'dynamicHead params');
  checkBuffer(out, n * 2 * v, 'dynamicHead output');
  const perInvocation = options.voxelsPerInvocation ?? (isSwiftShader(gpu) ? 16 : 1);
  if (!Number.isInteger(perInvocation) || perInvocation < 1) {
    throw new RangeError(`dynamicHead: voxelsPerInvocation is ${perInvocation}; expected a positive integer`);
  }
  const outShape = [n, 2, ...hShape.slice(2)];
  if (n === 0 || v === 0) return outShape;
  // Software adapters: 64 invocations (SwiftShader ran the 256-invocation workgroup's barrier 3x slower: 53 -> 17 ms
  // at width 4; lavapipe 1 -> 2 ms).
  const wg = isSoftwareAdapter(gpu) ? Math.min(64, linearWorkgroupSize(gpu)) : linearWorkgroupSize(gpu);
  const FORWARD = forwardSignature(dtype);
  const voxel = /* wgsl */ `
  // No early return before the math: its parameter reads stay outside any branch (see loadParams).
  let ok = valid & (v < p.V);
  let hb = select(0u, p.hBase + n * 8u * p.V + v, ok);
  ${Array.from({ length: 8 }, (_, c) => `let x${c} = f32(h[select(0u, hb + ${c}u * p.V, ok)]);`).join('\n  ')}
  ${forwardMath()}
  if (ok) {
    let yb = p.yBase + n * 2u * p.V + v;
    ys[yb] = y0;
    ys[yb + p.V] = y1;
  }`;
  const pipeline = FORWARD.pipeline(gpu, `dynamicHead:fwd:${wg}${perInvocation > 1 ? `x${perInvocation}` : ''}:${dtype}`, () => `
var<workgroup> w: array<f32, ${HEAD_PARAMS}>;
${linearMain(wg)}
  let wgi = gid / ${wg}u;
  let n = wgi / p.blocks;
  let valid = n < p.count;
  ${loadParams(wg, false)}
  ${perInvocation > 1
    ? `for (var r = 0u; r < ${perInvocation}u; r++) {
  let v = ((wgi % p.blocks) * ${perInvocation}u + r) * ${wg}u + lid;${voxel}
  }`
    : `let v = (wgi % p.blocks) * ${wg}u + lid;${voxel}`}
}`);
  const blocks = Math.ceil(v / (wg * perInvocation));
  forEachSampleChunk(gpu, 'dynamicHead', n, [
    { buffer: h, perSample: 8 * v, dtype }, { buffer: params, perSample: HEAD_PARAMS }, { buffer: out, perSample: 2 * v },
  ], (c) => {
    const [hW, pW, yW] = c.windows;
    const [hBase, pBase, yBase] = c.bases;
    gpu.dispatch({
      pipeline, label: 'dynamicHead:fwd', workgroups: c.count * blocks,
      ...FORWARD.bind({ V: v, blocks, count: c.count, hBase, pBase, yBase }, { h: hW, prm: pW, ys: yW }),
    });
  });
  return outShape;
}

export interface DynamicHeadBackwardOptions extends DynamicHeadOptions {
  /**
   * Voxels per workgroup of the fused backward kernel (rounded up to a multiple of its workgroup size).
   * When V exceeds it, per-block partial parameter gradients are reduced by a second pass. Default 2048.
   */
  blockVoxels?: number;
}

/** Workgroup size of the backward kernel: 64 threads each holding 162 accumulators. */
const BWD_WG = 64;

/**
 * Backward of `dynamicHead`: dh [N, 8, ...spatial] and dparams [N, 162] from the cotangent dy [N, 2, ...spatial].
 * Both outputs are overwritten (not accumulated). Deterministic: the reduction order depends only on the shape.
 */
export function dynamicHeadBackward(
  gpu: Gpu, h: GPUBuffer, hShape: readonly number[], params: GPUBuffer, paramsShape: readonly number[],
  dy: GPUBuffer, dh: GPUBuffer, dparams: GPUBuffer, options: DynamicHeadBackwardOptions = {},
): void {
  const what = 'dynamicHeadBackward';
  const { n, v } = checkHeadShapes(what, hShape, paramsShape);
  const dtype = options.dtype ?? 'f32';
  requireDType(gpu, dtype, what);
  checkBuffer(h, n * 8 * v, `${what} h`, dtype);
  checkBuffer(params, n * HEAD_PARAMS, `${what} params`);
  checkBuffer(dy, n * 2 * v, `${what} dy`);
  checkBuffer(dh, n * 8 * v, `${what} dh`, dtype);
  checkBuffer(dparams, n * HEAD_PARAMS, `${what} dparams`);
  const requested = options.blockVoxels ?? 2048;
  if (!Number.isInteger(requested) || requested < 1) {
    throw new RangeError(`${what}: blockVoxels must be a positive integer, got ${requested}`);
  }
  if (n === 0) return;
  const wg = BWD_WG;
  const blockVoxels = Math.ceil(requested / wg) * wg;
  const blocks = Math.max(1, Math.ceil(v / blockVoxels));
  const storage = gpu.limits.maxComputeWorkgroupStorageSize;
  // Accumulators staged through workgroup memory K at a time: WG*K floats next to the 162 parameters.
  const k = Math.min(HEAD_PARAMS, Math.floor((storage - HEAD_PARAMS * 4) / (wg * 4)));
  if (k < 1) throw new RangeError(`${what}: maxComputeWorkgroupStorageSize ${storage} is too small`);
  const BACKWARD = backwardSignature(dtype);
  const pipeline = BACKWARD.pipeline(gpu, `dynamicHead:bwd:${wg}:${k}:${dtype}`, () => backwardWgsl(wg, k, dtype));

  const partial = blocks > 1;
  const rwg = linearWorkgroupSize(gpu);
  const reducePipeline = partial ? BACKWARD_REDUCE.pipeline(gpu, `dynamicHead:bwdReduce:${rwg}`, () => reduceWgsl(rwg)) : null;
  forEachSampleChunk(gpu, what, n, [
    { buffer: h, perSample: 8 * v, dtype }, { buffer: params, perSample: HEAD_PARAMS }, { buffer: dy, perSample: 2 * v },
    { buffer: dh, perSample: 8 * v, dtype }, { buffer: dparams, perSample: HEAD_PARAMS },
  ], (c) => {
    const [hW, pW, dyW, dhW, dpW] = c.windows;
    const [hB, pB, dyB, dhB, dpB] = c.bases;
    const parts = partial ? gpu.pool.acquire(c.count * blocks * HEAD_PARAMS * 4, 'dynamicHead partials') : null;
    const partsWindow = parts ? { buffer: parts, offset: 0, size: c.count * blocks * HEAD_PARAMS * 4 } : null;
    gpu.dispatch({
      pipeline, label: 'dynamicHead:bwd', workgroups: c.count * blocks,
      ...BACKWARD.bind({
        V: v, blocks, blockVoxels, count: c.count, hBase: hB, pBase: pB, dyBase: dyB, dhBase: dhB, oBase: partsWindow ? 0 : dpB,
      }, { h: hW, prm: pW, dy: dyW, dh: dhW, part: partsWindow ?? dpW }),
    });
    if (parts && partsWindow && reducePipeline) {
      gpu.dispatch({
        pipeline: reducePipeline, label: 'dynamicHead:bwdReduce', workgroups: Math.ceil(c.count * HEAD_PARAMS / rwg),
        ...BACKWARD_REDUCE.bind({ total: c.count * HEAD_PARAMS, blocks, oBase: dpB }, { part: partsWindow, dp: dpW }),
      });
      gpu.pool.release(parts);
    }
  });
}

/** Fused backward (BACKWARD's body): recompute the hidden activations, write dh, accumulate the 162 parameter gradients per block. */
function backwardWgsl(wg: number, k: number, dtype: DType): string {
  const L: string[] = [];
  // da2 = relu'(a2) * (w3^T g)
  for (let o = 0; o < 8; o++) {
    L.push(`let da2_${o} = select(0.0, w[${W3 + o}] * g0 + w[${W3 + 8 + o}] * g1, a2_${o} > 0.0);`);
  }
  for (let o = 0; o < 8; o++) {
    const t = Array.from({ length: 8 }, (_, q) => `w[${W2 + q * 8 + o}] * da2_${q}`).join(' + ');
    L.push(`let da1_${o} = select(0.0, ${t}, a1_${o} > 0.0);`);
  }
  for (let i = 0; i < 8; i++) {
    const t = Array.from({ length: 8 }, (_, o) => `w[${W1 + o * 8 + i}] * da1_${o}`).join(' + ');
    L.push(`dh[dhb + ${i}u * p.V] = ${dtype}(${t});`);
  }
  for (let o = 0; o < 8; o++) {
    for (let i = 0; i < 8; i++) {
      L.push(`acc${W1 + o * 8 + i} += da1_${o} * x${i};`);
      L.push(`acc${W2 + o * 8 + i} += da2_${o} * r1_${i};`);
    }
    L.push(`acc${B1 + o} += da1_${o};`, `acc${B2 + o} += da2_${o};`);
  }
  for (let q = 0; q < 2; q++) {
    for (let i = 0; i < 8; i++) L.push(`acc${W3 + q * 8 + i} += g${q} * r2_${i};`);
    L.push(`acc${B3 + q} += g${q};`);
  }
  const passes: string[] = [];
  for (let j0 = 0; j0 < HEAD_PARAMS; j0 += k) {
    const kk = Math.min(k, HEAD_PARAMS - j0);
    const stage = Array.from({ length: kk }, (_, q) => `red[lid * ${k}u + ${q}u] = acc${j0 + q};`).join('\n  ');
    passes.push(`
  ${stage}
  workgroupBarrier();
  for (var j = lid; j < ${kk}u; j += ${wg}u) {
    var s = 0.0;
    for (var t = 0u; t < ${wg}u; t++) { s += red[t * ${k}u + j]; }
    if (valid) { part[p.oBase + (n * p.blocks + b) * ${HEAD_PARAMS}u + ${j0}u + j] = s; }
  }
  workgroupBarrier();`);
  }
  return `
var<workgroup> w: array<f32, ${HEAD_PARAMS}>;
var<workgroup> red: array<f32, ${wg * k}>;
${linearMain(wg)}
  let wgi = gid / ${wg}u;
  let n = wgi / p.blocks;
  let b = wgi % p.blocks;
  let valid = n < p.count;
  ${loadParams(wg, true)}
  ${Array.from({ length: HEAD_PARAMS }, (_, j) => `var acc${j} = 0.0;`).join(' ')}
  let vStart = b * p.blockVoxels;
  let vEnd = select(vStart, min(vStart + p.blockVoxels, p.V), valid);
  for (var v = vStart + lid; v < vEnd; v += ${wg}u) {
    let hb = p.hBase + n * 8u * p.V + v;
    ${Array.from({ length: 8 }, (_, c) => `let x${c} = f32(h[hb + ${c}u * p.V]);`).join('\n    ')}
    let dyb = p.dyBase + n * 2u * p.V + v;
    let g0 = dy[dyb];
    let g1 = dy[dyb + p.V];
    ${fromCopy(forwardMath())}
    let dhb = p.dhBase + n * 8u * p.V + v;
    ${fromCopy(L.join('\n    '))}
  }
  ${passes.join('\n')}
}`;
}

/** BACKWARD_REDUCE's body: sums per-block partials [count, blocks, 162] into dparams [count, 162] in a fixed order. */
function reduceWgsl(wg: number): string {
  return `
${linearMain(wg)}
  if (gid >= p.total) { return; }
  let n = gid / ${HEAD_PARAMS}u;
  let j = gid % ${HEAD_PARAMS}u;
  var s = 0.0;
  for (var b = 0u; b < p.blocks; b++) { s += part[(n * p.blocks + b) * ${HEAD_PARAMS}u + j]; }
  dp[p.oBase + gid] = s;
}`;
}
