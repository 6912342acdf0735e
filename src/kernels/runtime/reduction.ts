/**
 * Segmented reductions shared by the per-channel kernels (GAP, group norm, gating, WS): back-to-back
 * segments (a channel, a group) are split into chunks; one workgroup per chunk writes a partial sum and one
 * workgroup per segment merges them, so a large volume reduces with many workgroups per segment.
 */
import type { Binding, Gpu } from './gpu.js';
import { alignElements } from './windows.js';
import { linearMain, linearWorkgroupSize, packParams } from './wgsl.js';

/** A binding window over the flat tensor and the chunks whose elements all lie inside it. */
export interface ChunkWindow {
  base: number;
  count: number;
  chunk0: number;
  chunks: number;
}

export interface ChunkPlan {
  chunkLen: number;
  chunksPerSeg: number;
  windows: ChunkWindow[];
}

/** Default elements per reduction chunk (one workgroup of 256 threads, 64 elements each). */
export const CHUNK_ELEMENTS = 16384;

/**
 * Chunks `numSegs` back-to-back segments of `segLen` elements (chunk j of segment s covers
 * [s*segLen + j*chunkLen, min(.. + chunkLen, (s+1)*segLen))) and groups the chunks into binding windows.
 */
export function planChunks(segLen: number, numSegs: number, maxElems: number, align: number, target = CHUNK_ELEMENTS): ChunkPlan {
  const chunkLen = Math.max(1, Math.min(target, segLen, maxElems - align + 1));
  const cps = Math.ceil(segLen / chunkLen);
  const total = segLen * numSegs;
  const K = cps * numSegs;
  if (total <= maxElems) return { chunkLen, chunksPerSeg: cps, windows: [{ base: 0, count: total, chunk0: 0, chunks: K }] };
  const start = (k: number) => Math.floor(k / cps) * segLen + (k % cps) * chunkLen;
  const end = (k: number) => Math.min(start(k) + chunkLen, (Math.floor(k / cps) + 1) * segLen);
  const windows: ChunkWindow[] = [];
  let k = 0;
  while (k < K) {
    const base = Math.floor(start(k) / align) * align;
    let k1 = k + 1;
    while (k1 < K && end(k1) - base <= maxElems) k1++;
    windows.push({ base, count: end(k1 - 1) - base, chunk0: k, chunks: k1 - k });
    k = k1;
  }
  return { chunkLen, chunksPerSeg: cps, windows };
}

/**
 * WGSL defining chunk `k` of the plan for workgroup `w` (Params needs chunk0, cps, segLen, chunkLen): its
 * segment `seg`, index `j` in it, and element range [start, end) within the bound window.
 */
export function chunkBounds(): string {
  return /* wgsl */ `let k = p.chunk0 + w;
  let seg = k / p.cps;
  let j = k - seg * p.cps;
  let segStart = seg * p.segLen;
  let start = segStart + j * p.chunkLen;
  let end = min(start + p.chunkLen, segStart + p.segLen);`;
}

/** Index of the workgroup in a linear (possibly folded) grid; defines `w` and `lid`. */
export function workgroupMain(wg: number): string {
  return /* wgsl */ `
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + nwg.x * (wid.y + nwg.y * wid.z);`;
}

/** Tree reduction of `sh` (workgroup array of `wg` entries, power of two) into sh[0] with `+`. */
export function treeSum(wg: number): string {
  return /* wgsl */ `
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { sh[lid] = sh[lid] + sh[lid + s]; }
    workgroupBarrier();
  }`;
}

export interface SegmentedReduceSpec {
  /** Op name for labels and errors. */
  label: string;
  /** Pipeline key: must identify `prelude`, `value` and the extra buffer types. */
  key: string;
  segLen: number;
  numSegs: number;
  /** Tensors windowed like the reduced range, read as `v0`, `v1`, ... (f32) at each element. */
  inputs: GPUBuffer[];
  /** Whole read-only buffers, declared as `e0`, `e1`, ... with the given WGSL element type. */
  extras?: { buffer: GPUBuffer; type: string }[];
  /** WGSL statements run once per workgroup (may use `seg`, the segment index). */
  prelude?: string;
  /** WGSL expression of one element's contribution (f32 or vec2f as `width`), from v0.., seg, e0... */
  value: string;
  width: 1 | 2;
  /** Receives numSegs results (f32 or vec2f) = sum * scale. */
  out: GPUBuffer;
  scale: number;
  maxElems: number;
}

/** WGSL declarations matching reduceBindings: in0.., e0.. (extras), then dst. */
function reduceDeclarations(spec: SegmentedReduceSpec, T: string): string {
  const nIn = spec.inputs.length;
  const extras = spec.extras ?? [];
  return [
    ...spec.inputs.map((_, i) => `@group(0) @binding(${1 + i}) var<storage, read> in${i}: array<f32>;`),
    ...extras.map((e, i) => `@group(0) @binding(${1 + nIn + i}) var<storage, read> e${i}: array<${e.type}>;`),
    `@group(0) @binding(${1 + nIn + extras.length}) var<storage, read_write> dst: array<${T}>;`,
  ].join('\n');
}

/** The inputs windowed to `win`, the whole extra buffers, then the destination. */
function reduceBindings(spec: SegmentedReduceSpec, win: ChunkWindow, dst: GPUBuffer): Binding[] {
  return [
    ...spec.inputs.map((b) => ({ buffer: b, offset: win.base * 4, size: win.count * 4 })),
    ...(spec.extras ?? []).map((e) => e.buffer),
    dst,
  ];
}

/** Sums `value` over each segment: partials per chunk (many workgroups per segment), then a merge. */
export function segmentedReduce(gpu: Gpu, spec: SegmentedReduceSpec): void {
  const { segLen, numSegs } = spec;
  if (segLen * numSegs === 0) return;
  const wg = linearWorkgroupSize(gpu);
  const T = spec.width === 2 ? 'vec2f' : 'f32';
  const extras = spec.extras ?? [];
  const plan = planChunks(segLen, numSegs, spec.maxElems, alignElements(gpu));
  const K = plan.chunksPerSeg * numSegs;
  if (segLen <= SMALL_SEGMENT) {
    const small = planChunks(segLen, numSegs, spec.maxElems, alignElements(gpu), segLen);
    if (small.chunksPerSeg === 1) {
      smallSegmentReduce(gpu, spec, T, small);
      return;
    }
  }
  const direct = plan.chunksPerSeg === 1;
  const partial = direct ? spec.out : gpu.pool.acquire(K * spec.width * 4, `${spec.label} partial sums`);
  const nIn = spec.inputs.length;
  const decls = reduceDeclarations(spec, T);
  const pipeline = gpu.pipeline(`segreduce:${spec.key}:${T}:${nIn}:${extras.map((e) => e.type).join(',')}:${wg}`, () => `
struct Params { base: u32, chunk0: u32, nchunks: u32, segLen: u32, chunkLen: u32, cps: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
${decls}
var<workgroup> sh: array<${T}, ${wg}>;
${workgroupMain(wg)}
  if (w >= p.nchunks) { return; }
  ${chunkBounds()}
  ${spec.prelude ?? ''}
  var acc = ${T}(0.0);
  for (var gi = start + lid; gi < end; gi = gi + ${wg}u) {
    let i = gi - p.base;
    ${spec.inputs.map((_, q) => `let v${q} = in${q}[i];`).join(' ')}
    acc = acc + (${spec.value});
  }
  sh[lid] = acc;
  ${treeSum(wg)}
  if (lid == 0u) { dst[k] = sh[0] * p.scale; }
}`);
  for (const win of plan.windows) {
    gpu.dispatch({
      pipeline, label: `${spec.label}:reduce`,
      bindings: reduceBindings(spec, win, partial),
      params: packParams([
        { u: win.base }, { u: win.chunk0 }, { u: win.chunks }, { u: segLen }, { u: plan.chunkLen },
        { u: plan.chunksPerSeg }, { f: direct ? spec.scale : 1 },
      ]),
      workgroups: win.chunks,
    });
  }
  if (direct) return;
  const merge = gpu.pipeline(`segmerge:${T}:${wg}`, () => `
struct Params { cps: u32, nsegs: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<${T}>;
@group(0) @binding(2) var<storage, read_write> dst: array<${T}>;
var<workgroup> sh: array<${T}, ${wg}>;
${workgroupMain(wg)}
  if (w >= p.nsegs) { return; }
  var acc = ${T}(0.0);
  for (var j = lid; j < p.cps; j = j + ${wg}u) { acc = acc + part[w * p.cps + j]; }
  sh[lid] = acc;
  ${treeSum(wg)}
  if (lid == 0u) { dst[w] = sh[0] * p.scale; }
}`);
  gpu.dispatch({
    pipeline: merge, label: `${spec.label}:merge`,
    bindings: [partial, spec.out],
    params: packParams([{ u: plan.chunksPerSeg }, { u: numSegs }, { f: spec.scale }]),
    workgroups: numSegs,
  });
  gpu.pool.release(partial);
}

/** Segments at most this long are reduced by one thread each (a workgroup per segment would idle). */
const SMALL_SEGMENT = 256;

function smallSegmentReduce(gpu: Gpu, spec: SegmentedReduceSpec, T: string, plan: ChunkPlan): void {
  const wg = linearWorkgroupSize(gpu);
  const extras = spec.extras ?? [];
  const nIn = spec.inputs.length;
  const decls = reduceDeclarations(spec, T);
  const pipeline = gpu.pipeline(`segreduce-small:${spec.key}:${T}:${nIn}:${extras.map((e) => e.type).join(',')}:${wg}`, () => `
struct Params { base: u32, seg0: u32, nsegs: u32, segLen: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
${decls}
${linearMain(wg)}
  if (gid >= p.nsegs) { return; }
  let seg = p.seg0 + gid;
  let start = seg * p.segLen;
  ${spec.prelude ?? ''}
  var acc = ${T}(0.0);
  for (var gi = start; gi < start + p.segLen; gi = gi + 1u) {
    let i = gi - p.base;
    ${spec.inputs.map((_, q) => `let v${q} = in${q}[i];`).join(' ')}
    acc = acc + (${spec.value});
  }
  dst[seg] = acc * p.scale;
}`);
  for (const win of plan.windows) {
    gpu.dispatch({
      pipeline, label: `${spec.label}:reduce`,
      bindings: reduceBindings(spec, win, spec.out),
      params: packParams([{ u: win.base }, { u: win.chunk0 }, { u: win.chunks }, { u: spec.segLen }, { f: spec.scale }]),
      workgroups: Math.ceil(win.chunks / wg),
    });
  }
}

/** Checks an [N, C, ...spatial] shape (at least 2 dims) and returns N, C and the spatial size S. */
