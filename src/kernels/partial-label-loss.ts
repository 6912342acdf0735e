/**
 * The DoDNet/TGNet partial-label loss on the GPU (bench/torch/tgnet_torch.py `loss_fn`): Dice (+1 in the denominator) plus
 * mean BCE-with-logits per sample and channel; a channel whose target is filled with -1 (checked at the first
 * voxel, as the reference does) is left out; each channel is averaged over the samples that annotate it, then
 * the channels with any such sample are averaged. When no channel is annotated at all the loss is defined as
 * 0 and its gradient is zero (PyTorch's reference would raise on the empty stack).
 *
 * Three kernels, nothing read back:
 *   1. reduce: per (n, c) and block of voxels, sums of p*t, p, t and the BCE terms -> partials (f32, tree
 *      reduction in workgroup memory, fixed order: deterministic);
 *   2. finalize (one workgroup): sums the block partials in order, writes the per-(n, c) stats (the saved sums,
 *      dice, bce, annotated flag and the loss coefficient) and the scalar loss;
 *   3. backward: dlogits from logits, target, the saved stats and the upstream gradient (a 1-element buffer).
 *
 * NaN/Inf: the loss is not checked on the GPU; read it (every N steps) and call `checkFinite` on the host.
 */
import type { Gpu } from './runtime/gpu.js';
import { kernelSignature, readOnly, readWrite } from './runtime/kernel-signature.js';
import { checkBuffer, checkShape, linearMain, linearWorkgroupSize, sizeOf } from './runtime/wgsl.js';
import { forEachSampleChunk } from './runtime/windows.js';

/** Floats per (n, c) in the stats buffer, and the meaning of each. */
export const LOSS_STATS_STRIDE = 8;
export const LOSS_STAT = {
  /** sum(p t) */ intersection: 0,
  /** sum(p) */ predSum: 1,
  /** sum(t) */ targetSum: 2,
  /** sum of the BCE terms */ bceSum: 3,
  /** 1 when target[n, c, 0] != -1, else 0 */ labelled: 4,
  /** 1 - 2 sum(p t) / (sum(p) + sum(t) + 1) */ dice: 5,
  /** mean BCE */ bce: 6,
  /** d loss / d dice[n,c] = d loss / d bce[n,c] */ coef: 7,
} as const;

/** f32 elements of the stats buffer for a batch of n samples: [N, 2, LOSS_STATS_STRIDE]. */
export function lossStatsSize(n: number): number {
  return n * 2 * LOSS_STATS_STRIDE;
}

export interface PartialLabelLossOptions {
  /** Voxels per workgroup of the reduce kernel (rounded up to its workgroup size); default 4096. */
  blockVoxels?: number;
}

const REDUCE = kernelSignature('partialLabelLoss:reduce', {
  uniforms: { V: 'u32', blocks: 'u32', blockVoxels: 'u32', count: 'u32', xBase: 'u32', tBase: 'u32', n0: 'u32' },
  storage: { xs: readOnly('f32'), ts: readOnly('f32'), part: readWrite('f32') },
});

const FINALIZE = kernelSignature('partialLabelLoss:finalize', {
  uniforms: { pairs: 'u32', blocks: 'u32', V: 'u32' },
  storage: { part: readOnly('f32'), st: readWrite('f32'), lossOut: readWrite('f32') },
});

const BACKWARD = kernelSignature('partialLabelLossBackward', {
  uniforms: { V: 'u32', total: 'u32', n0: 'u32', xBase: 'u32', tBase: 'u32', gBase: 'u32' },
  storage: { xs: readOnly('f32'), ts: readOnly('f32'), st: readOnly('f32'), up: readOnly('f32'), gs: readWrite('f32') },
});

function checkLogits(what: string, shape: readonly number[]): { n: number; v: number } {
  checkShape(shape, `${what} logits`);
  if (shape.length < 3 || shape[1] !== 2) {
    throw new RangeError(`${what}: logits must be [N, 2, ...spatial] with at least one spatial axis, got [${shape.join(', ')}]`);
  }
  const v = sizeOf(shape.slice(2));
  if (v === 0 || shape[0] === 0) throw new RangeError(`${what}: logits [${shape.join(', ')}] are empty`);
  return { n: shape[0], v };
}

/**
 * Forward: writes the scalar loss to `loss` (1 f32) and the per-(n, c) stats to `stats`
 * ([N, 2, LOSS_STATS_STRIDE] f32, see LOSS_STAT; keep it for the backward). `target` must have the logits' shape.
 */
export function partialLabelLoss(
  gpu: Gpu, logits: GPUBuffer, logitsShape: readonly number[], target: GPUBuffer, targetShape: readonly number[],
  loss: GPUBuffer, stats: GPUBuffer, options: PartialLabelLossOptions = {},
): void {
  const what = 'partialLabelLoss';
  const { n, v } = checkLogits(what, logitsShape);
  checkShape(targetShape, `${what} target`);
  if (targetShape.length !== logitsShape.length || targetShape.some((d, i) => d !== logitsShape[i])) {
    throw new RangeError(`${what}: target shape [${targetShape.join(', ')}] does not match logits [${logitsShape.join(', ')}]`);
  }
  checkBuffer(logits, n * 2 * v, `${what} logits`);
  checkBuffer(target, n * 2 * v, `${what} target`);
  checkBuffer(loss, 1, `${what} loss`);
  checkBuffer(stats, lossStatsSize(n), `${what} stats`);
  const requested = options.blockVoxels ?? 4096;
  if (!Number.isInteger(requested) || requested < 1) throw new RangeError(`${what}: blockVoxels must be a positive integer, got ${requested}`);
  const wg = linearWorkgroupSize(gpu);
  const blockVoxels = Math.ceil(requested / wg) * wg;
  const blocks = Math.ceil(v / blockVoxels);

  const reduce = REDUCE.pipeline(gpu, `partialLabelLoss:reduce:${wg}`, () => `
var<workgroup> red: array<vec4f, ${wg}>;
${linearMain(wg)}
  let wgi = gid / ${wg}u;
  let nc = wgi / p.blocks;       // local (sample, channel) pair of this chunk
  let b = wgi % p.blocks;
  let valid = nc < p.count * 2u;
  let vStart = b * p.blockVoxels;
  let vEnd = select(vStart, min(vStart + p.blockVoxels, p.V), valid);
  var acc = vec4f(0.0);
  for (var v = vStart + lid; v < vEnd; v += ${wg}u) {
    let x = xs[p.xBase + nc * p.V + v];
    let t = max(ts[p.tBase + nc * p.V + v], 0.0);
    let pr = 1.0 / (1.0 + exp(-x));
    acc += vec4f(pr * t, pr, t, max(x, 0.0) - x * t + log(1.0 + exp(-abs(x))));
  }
  red[lid] = acc;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  if (valid & (lid == 0u)) {
    let o = ((p.n0 * 2u + nc) * p.blocks + b) * 8u;
    part[o] = red[0].x;
    part[o + 1u] = red[0].y;
    part[o + 2u] = red[0].z;
    part[o + 3u] = red[0].w;
    part[o + 4u] = select(1.0, 0.0, ts[p.tBase + nc * p.V] == -1.0);
  }
}`);
  if (wg & (wg - 1)) throw new Error(`${what}: workgroup size ${wg} must be a power of two`);

  const fwg = 64;
  const finalize = FINALIZE.pipeline(gpu, `partialLabelLoss:finalize:${fwg}`, () => `
@compute @workgroup_size(${fwg})
fn main(@builtin(local_invocation_index) lid: u32) {
  for (var nc = lid; nc < p.pairs; nc += ${fwg}u) {
    var s = vec4f(0.0);
    for (var b = 0u; b < p.blocks; b++) {
      let o = (nc * p.blocks + b) * 8u;
      s += vec4f(part[o], part[o + 1u], part[o + 2u], part[o + 3u]);
    }
    let o = nc * 8u;
    st[o] = s.x;
    st[o + 1u] = s.y;
    st[o + 2u] = s.z;
    st[o + 3u] = s.w;
    st[o + 4u] = part[nc * p.blocks * 8u + 4u];
    st[o + 5u] = 1.0 - 2.0 * s.x / (s.y + s.z + 1.0);
    st[o + 6u] = s.w / f32(p.V);
  }
  storageBarrier();
  if (lid == 0u) {
    var cnt = vec2f(0.0);
    var sum = vec2f(0.0);
    for (var nc = 0u; nc < p.pairs; nc++) {
      let l = st[nc * 8u + 4u];
      let term = l * (st[nc * 8u + 5u] + st[nc * 8u + 6u]);
      if (nc % 2u == 0u) { cnt.x += l; sum.x += term; } else { cnt.y += l; sum.y += term; }
    }
    let nActive = select(0.0, 1.0, cnt.x > 0.0) + select(0.0, 1.0, cnt.y > 0.0);
    var L = 0.0;
    if (cnt.x > 0.0) { L += sum.x / cnt.x; }
    if (cnt.y > 0.0) { L += sum.y / cnt.y; }
    lossOut[0] = select(0.0, L / nActive, nActive > 0.0);
    for (var nc = 0u; nc < p.pairs; nc++) {
      let c = select(cnt.y, cnt.x, nc % 2u == 0u);
      let l = st[nc * 8u + 4u];
      st[nc * 8u + 7u] = select(0.0, 1.0 / (nActive * c), l > 0.0);
    }
  }
}`);

  const partBytes = n * 2 * blocks * 8 * 4;
  const parts = gpu.pool.acquire(partBytes, 'partialLabelLoss partials');
  forEachSampleChunk(gpu, what, n, [{ buffer: logits, perSample: 2 * v }, { buffer: target, perSample: 2 * v }], (c) => {
    gpu.dispatch({
      pipeline: reduce, label: 'partialLabelLoss:reduce', workgroups: c.count * 2 * blocks,
      ...REDUCE.bind(
        { V: v, blocks, blockVoxels, count: c.count, xBase: c.bases[0], tBase: c.bases[1], n0: c.n0 },
        { xs: c.windows[0], ts: c.windows[1], part: { buffer: parts, offset: 0, size: partBytes } },
      ),
    });
  });
  gpu.dispatch({
    pipeline: finalize, label: 'partialLabelLoss:finalize', workgroups: 1,
    ...FINALIZE.bind({ pairs: n * 2, blocks, V: v }, {
      part: { buffer: parts, offset: 0, size: partBytes },
      st: { buffer: stats, offset: 0, size: lossStatsSize(n) * 4 },
      lossOut: { buffer: loss, offset: 0, size: 4 },
    }),
  });
  gpu.pool.release(parts);
}

/**
 * Backward: dlogits [N, 2, ...spatial] = dloss[0] * d loss / d logits, from the `stats` written by the forward
 * on the same logits and target. `dloss` is a 1-element buffer so the upstream gradient stays on the GPU.
 * Overwrites dlogits (zero for channels that are not annotated).
 */
export function partialLabelLossBackward(
  gpu: Gpu, logits: GPUBuffer, logitsShape: readonly number[], target: GPUBuffer, stats: GPUBuffer,
  dloss: GPUBuffer, dlogits: GPUBuffer,
): void {
  const what = 'partialLabelLossBackward';
  const { n, v } = checkLogits(what, logitsShape);
  checkBuffer(logits, n * 2 * v, `${what} logits`);
  checkBuffer(target, n * 2 * v, `${what} target`);
  checkBuffer(stats, lossStatsSize(n), `${what} stats`);
  checkBuffer(dloss, 1, `${what} dloss`);
  checkBuffer(dlogits, n * 2 * v, `${what} dlogits`);
  const wg = linearWorkgroupSize(gpu);
  const pipeline = BACKWARD.pipeline(gpu, `partialLabelLoss:backward:${wg}`, () => `
${linearMain(wg)}
  if (gid >= p.total) { return; }
  let nc = p.n0 * 2u + gid / p.V;
  let o = nc * 8u;
  let k = up[0] * st[o + 7u];
  var g = 0.0;
  if (k != 0.0) {
    let x = xs[p.xBase + gid];
    let t = max(ts[p.tBase + gid], 0.0);
    let pr = 1.0 / (1.0 + exp(-x));
    let den = st[o + 1u] + st[o + 2u] + 1.0;
    let dDice = -2.0 * t / den + 2.0 * st[o] / (den * den);
    g = k * (dDice * pr * (1.0 - pr) + (pr - t) / f32(p.V));
  }
  gs[p.gBase + gid] = g;
}`);
  forEachSampleChunk(gpu, what, n, [
    { buffer: logits, perSample: 2 * v }, { buffer: target, perSample: 2 * v }, { buffer: dlogits, perSample: 2 * v },
  ], (c) => {
    const total = c.count * 2 * v;
    gpu.dispatch({
      pipeline, label: 'partialLabelLoss:backward', workgroups: Math.ceil(total / wg),
      ...BACKWARD.bind({ V: v, total, n0: c.n0, xBase: c.bases[0], tBase: c.bases[1], gBase: c.bases[2] }, {
        xs: c.windows[0], ts: c.windows[1], st: { buffer: stats, offset: 0, size: lossStatsSize(n) * 4 },
        up: { buffer: dloss, offset: 0, size: 4 }, gs: c.windows[2],
      }),
    });
  });
}

/** Throws when a loss read back from the GPU is NaN or infinite (the host-side check autograd uses). */
export function checkFinite(value: number, what = 'loss'): number {
  if (!Number.isFinite(value)) {
    throw new Error(`${what} is ${value}: training diverged or the input holds NaN/Inf (check the learning rate, the input volume and the target)`);
  }
  return value;
}
