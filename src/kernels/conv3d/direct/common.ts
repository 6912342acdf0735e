/**
 * Direct conv3d kernels for software adapters (lavapipe, SwiftShader), which run a workgroup's invocations
 * as the SIMD lanes of one CPU thread: there every workgroupBarrier and workgroup-memory round trip is costly,
 * and a storage load is done lane by lane (Mesa 25.0's llvmpipe: a loop over the 8 lanes with a bounds branch
 * each) unless its address is a compile-time constant, even when all lanes read the same address (derived from
 * the workgroup id and uniform loop counters): measured, such "uniform" weight loads were two thirds of the
 * forward's time.
 *
 * So these kernels use no workgroup memory and no barriers, and arrange the loops so that weights (or, in
 * the weight gradient, the output gradient) are lane-uniform while the other operand is read once per lane
 * and reused from registers across several taps and channels; where the adapter has subgroups of a fixed size
 * (`Gpu.subgroupSize`), the lane-uniform values are loaded once per subgroup, each lane a different one, and
 * handed to all lanes by `subgroupBroadcast` with constant lane indices:
 *
 *   conv:    one invocation owns CT destination channels x VW consecutive voxels along W; it loops over source
 *            channels and (kd, kh), loads the (VW - 1) * s + k source values of its row once and applies them
 *            to all k taps along W and all CT channels (weights uniform). The forward pass is this kernel;
 *            the stride-1 data gradient is the same kernel on gradOut with the kernel flipped and the channel
 *            roles of the weight swapped (padding k - 1 - p). See conv.ts.
 *   strided: the data gradient of any stride, per input phase (no zero taps). See strided.ts.
 *   weight:  one invocation owns one (ci, kd, kh) and CT output channels x k taps along W; it walks a chunk of
 *            output rows (n, od, oh) along W, reading gradOut uniformly; chunks write partial sums that
 *            `reduce` adds up (deterministic, no atomics). See weight.ts.
 *
 * This file holds what they share: register blocking, workgroup sizing and batch grouping.
 */
import { isSwiftShader, type Gpu } from '../../runtime/gpu.js';

/**
 * The largest kernel side the direct kernels take. They unroll the k taps along W times the register blocking,
 * so their WGSL grows with k; past 7 (no 3D segmentation network uses more) the implicit GEMMs, whose WGSL does
 * not depend on k, take the convolution, and no shader grows without bound.
 */
export const DIRECT_MAX_KERNEL = 7;

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
export function laneBlocks(items: number, target: number): { wg: number; blocks: number } {
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

/**
 * The default blocking where the kernels broadcast the shared operand through subgroups (`subgroups`: conv with
 * k <= 3 and no channel folding, the weight gradient): there the operands shared by all lanes cost little, and 8
 * channels x 4 voxels per invocation, which spilled without that, took 15-35% less CPU than 4 x 4 on lavapipe's
 * TGNet layers (8 to 64 channels) and compiles as fast.
 */
export function broadcastBlocking(channels: number, subgroups: boolean): DirectBlocking {
  return subgroups && channels >= 8 ? { ct: 8, vw: 4 } : directBlocking(channels);
}

/**
 * Whether the convolution kernel should write the kh taps of a kd slice as straight-line code, without a branch per
 * row: rows that lie wholly in the padding are then computed on zeros instead of skipped. SwiftShader's JIT (Reactor)
 * stores every live value to memory at each basic-block boundary, so there a branch costs more than the FMAs it
 * saves: its convolution kernels of a width-4 TGNet step took 227 against 275 ms (GPU timestamps, Node, 2-core EPYC,
 * interleaved runs). lavapipe's LLVM keeps values in registers across branches, and skipping padded rows saves work
 * in the deepest layers: there this form was 0-20% slower, so lavapipe keeps the branches. (Unrolling the kd loop
 * too took SwiftShader's forward and data gradient another 5-15% lower, but the kernel then passes its WGSL budget.)
 */
export function straightLineTaps(gpu: Gpu): boolean {
  return straightLine.get(gpu) ?? isSwiftShader(gpu);
}
const straightLine = new WeakMap<Gpu, boolean>();

/** Overrides straightLineTaps for `gpu` (tests cover both forms on any adapter); null restores the adapter's choice. */
export function setStraightLineTaps(gpu: Gpu, straight: boolean | null): void {
  if (straight === null) straightLine.delete(gpu);
  else straightLine.set(gpu, straight);
}

/** Batch groups that each fit one binding on both sides: the whole batch, else one sample at a time; null if a sample does not fit. */
export function batchGroups(N: number, aSample: number, bSample: number, budget: number): [number, number][] | null {
  if (N * aSample <= budget && N * bSample <= budget) return [[0, N]];
  if (aSample > budget || bSample > budget) return null;
  return Array.from({ length: N }, (_, n) => [n, 1] as [number, number]);
}

/** Accumulator declarations `var a{c}_{i} = 0.0;` for `rows` x `cols` registers, one line per row. */
export function accumulators(rows: number, cols: number): string[] {
  const acc: string[] = [];
  for (let c = 0; c < rows; c++) acc.push(Array.from({ length: cols }, (_, v) => `var a${c}_${v} = 0.0;`).join(' '));
  return acc;
}

/**
 * The entry point of a direct kernel: `lin` is the workgroup's linear index (the launcher folds the count into
 * y/z past the per-dimension limit) and `lid` the lane (with `subgroups`, `sgl` its lane in the subgroup); the body
 * follows and closes the function.
 */
export function directMain(wg: number, subgroups = false): string {
  return /* wgsl */ `@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32${subgroups ? ', @builtin(subgroup_invocation_id) sgl: u32' : ''}) {
  let lin = wid.x + nwg.x * (wid.y + nwg.y * wid.z);`;
}
