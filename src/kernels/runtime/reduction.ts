/**
 * The per-channel kernels shared by GAP, group norm, gating and WS.
 * - Segmented reductions: back-to-back segments (a channel, a group) are split into chunks; one workgroup per
 *   chunk writes a partial sum and one workgroup per segment merges them, so a large volume reduces with many
 *   workgroups per segment.
 * - Channel maps: y[ch, s] = f(inputs[ch, s], per-channel values[ch]) over [channels, spatial] tensors, vec4
 *   when the spatial size allows, in binding windows.
 */
import { isSoftwareAdapter, type Binding, type Gpu } from './gpu.js';
import { cachedSignature, kernelSignature, readOnly, readWrite, type KernelSignature, type StorageElementType, type StorageSpec, type UniformType } from './kernel-signature.js';
import { storageType, type DType } from './precision.js';
import { alignedWindow, alignElements, flatWindows } from './windows.js';
import { linearMain, linearWorkgroupSize } from './wgsl.js';

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

/** The invocations that play a wide workgroup's sums on software adapters (see laneSums): lavapipe's SIMD width (AVX2). */
export const SIMD_LANES = 8;

/**
 * Invocations that compute a `wg`-invocation reduction's sums on this adapter: SIMD_LANES on software adapters
 * (when wg is a multiple), else wg. Fewer than wg: the kernel uses laneSums, bit for bit the wide kernel's result
 * without its barriers across wg / 8 SIMD vectors (lavapipe runs a wide workgroup's barriers as coroutine switches,
 * SwiftShader as fiber switches).
 */
export function reductionLanes(gpu: Gpu, wg: number): number {
  return isSoftwareAdapter(gpu) && wg % SIMD_LANES === 0 && wg > SIMD_LANES ? SIMD_LANES : wg;
}

/**
 * WGSL for a `lanes`-invocation workgroup that plays a `wg`-invocation one summing into `sh` by `treeSum(wg)`:
 * wide invocation v would sum `body` (which adds element `index` to `acc`) over index = first + v, first + v + wg,
 * ... while index < end; invocation lid plays v = lid + lanes * j (j < wg / lanes), adds its virtual invocations
 * with the first log2(wg / lanes) tree steps (which only combine v with v + lanes * h), and stores the result in
 * sh[lid]. `treeSum(lanes)` then finishes exactly as the wide tree would. A block of its own (one kernel may use it twice).
 */
export function laneSums(wg: number, lanes: number, type: 'f32' | 'vec2f', index: string, first: string, end: string, body: string): string {
  const per = wg / lanes;
  return `{
    var vparts: array<${type}, ${per}>;
    for (var j = 0u; j < ${per}u; j = j + 1u) {
      var acc = ${type}(0.0);
      for (var ${index} = ${first} + lid + ${lanes}u * j; ${index} < ${end}; ${index} = ${index} + ${wg}u) {
        ${body}
      }
      vparts[j] = acc;
    }
    for (var h = ${per / 2}u; h > 0u; h = h >> 1u) {
      for (var j = 0u; j < h; j = j + 1u) { vparts[j] = vparts[j] + vparts[j + h]; }
    }
    sh[lid] = vparts[0];
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
  /** Element type of the inputs (default 'f32'; 'f16' is converted to f32 as it loads: the sums stay f32). */
  dtype?: DType;
  /** Whole read-only buffers, declared as `e0`, `e1`, ... with the given WGSL element type. */
  extras?: { buffer: GPUBuffer; type: StorageElementType }[];
  /** WGSL statements run once per workgroup (may use `seg`, the segment index). */
  prelude?: string;
  /** WGSL expression of one element's contribution (f32 or vec2f as `width`), from v0.., seg, e0... */
  value: string;
  width: 1 | 2;
  /** Receives numSegs results (f32 or vec2f) = sum * scale. */
  out: GPUBuffer;
  scale: number;
  /** Elements of `dtype` per binding window (see slabElements). */
  maxElems: number;
}

/** The reduce kernels' signature (one per pipeline key): inputs in0.. (windowed), extras e0.. (whole), then dst. */
function reduceSignature<U extends Record<string, UniformType>>(key: string, spec: SegmentedReduceSpec, T: StorageElementType, uniforms: U) {
  return cachedSignature(`${spec.label}|${key}`, () => {
    const storage: Record<string, StorageSpec> = {};
    spec.inputs.forEach((_, i) => { storage[`in${i}`] = readOnly(storageType(spec.dtype ?? 'f32')); });
    (spec.extras ?? []).forEach((e, i) => { storage[`e${i}`] = readOnly(e.type); });
    storage.dst = readWrite(T);
    return kernelSignature(`${spec.label}:reduce`, { uniforms, storage });
  });
}

/** The inputs windowed to `win`, the whole extra buffers, then the destination, by name. */
function reduceBuffers(gpu: Gpu, spec: SegmentedReduceSpec, win: ChunkWindow, dst: GPUBuffer): Record<string, Binding> {
  const buffers: Record<string, Binding> = {};
  // win.base is aligned (planChunks), so each window starts exactly there.
  spec.inputs.forEach((b, i) => { buffers[`in${i}`] = alignedWindow(gpu, b, win.base, win.count, spec.dtype).binding; });
  (spec.extras ?? []).forEach((e, i) => { buffers[`e${i}`] = e.buffer; });
  buffers.dst = dst;
  return buffers;
}

const CHUNK_UNIFORMS = { base: 'u32', chunk0: 'u32', nchunks: 'u32', segLen: 'u32', chunkLen: 'u32', cps: 'u32', scale: 'f32' } as const;
const SMALL_UNIFORMS = { base: 'u32', seg0: 'u32', nsegs: 'u32', segLen: 'u32', scale: 'f32' } as const;

const MERGE = {
  f32: kernelSignature('segmentedReduce:merge', { uniforms: { cps: 'u32', nsegs: 'u32', scale: 'f32' }, storage: { part: readOnly('f32'), dst: readWrite('f32') } }),
  vec2f: kernelSignature('segmentedReduce:merge', { uniforms: { cps: 'u32', nsegs: 'u32', scale: 'f32' }, storage: { part: readOnly('vec2f'), dst: readWrite('vec2f') } }),
};

/** Sums `value` over each segment: partials per chunk (many workgroups per segment), then a merge. */
export function segmentedReduce(gpu: Gpu, spec: SegmentedReduceSpec): void {
  const { segLen, numSegs } = spec;
  if (segLen * numSegs === 0) return;
  const wg = linearWorkgroupSize(gpu);
  const T = spec.width === 2 ? 'vec2f' : 'f32';
  const dtype = spec.dtype ?? 'f32';
  const extras = spec.extras ?? [];
  const plan = planChunks(segLen, numSegs, spec.maxElems, alignElements(gpu, dtype));
  const K = plan.chunksPerSeg * numSegs;
  if (segLen <= SMALL_SEGMENT) {
    const small = planChunks(segLen, numSegs, spec.maxElems, alignElements(gpu, dtype), segLen);
    if (small.chunksPerSeg === 1) {
      smallSegmentReduce(gpu, spec, T, small);
      return;
    }
  }
  const direct = plan.chunksPerSeg === 1;
  const partial = direct ? spec.out : gpu.pool.acquire(K * spec.width * 4, `${spec.label} partial sums`);
  const nIn = spec.inputs.length;
  const lanes = reductionLanes(gpu, wg);
  const key = `segreduce:${spec.key}:${dtype}>${T}:${nIn}:${extras.map((e) => e.type).join(',')}:${wg}${lanes < wg ? `:in${lanes}` : ''}`;
  const sig = reduceSignature(key, spec, T, CHUNK_UNIFORMS);
  const element = `let i = gi - p.base;
      ${loadInputs(spec)}
      acc = acc + (${spec.value});`;
  const pipeline = sig.pipeline(gpu, key, () => `
var<workgroup> sh: array<${T}, ${lanes}>;
${workgroupMain(lanes)}
  if (w >= p.nchunks) { return; }
  ${chunkBounds()}
  ${spec.prelude ?? ''}
  ${lanes < wg ? laneSums(wg, lanes, T, 'gi', 'start', 'end', element) : `var acc = ${T}(0.0);
  for (var gi = start + lid; gi < end; gi = gi + ${wg}u) {
    ${element}
  }
  sh[lid] = acc;`}
  ${treeSum(lanes)}
  if (lid == 0u) { dst[k] = sh[0] * p.scale; }
}`);
  for (const win of plan.windows) {
    gpu.dispatch({
      pipeline, label: `${spec.label}:reduce`, workgroups: win.chunks,
      ...sig.bind({
        base: win.base, chunk0: win.chunk0, nchunks: win.chunks, segLen, chunkLen: plan.chunkLen,
        cps: plan.chunksPerSeg, scale: direct ? spec.scale : 1,
      }, reduceBuffers(gpu, spec, win, partial)),
    });
  }
  if (direct) return;
  const merge = MERGE[T];
  const mergeLanes = reductionLanes(gpu, wg);
  const mergePipeline = merge.pipeline(gpu, `segmerge:${T}:${wg}${mergeLanes < wg ? `:in${mergeLanes}` : ''}`, () => `
var<workgroup> sh: array<${T}, ${mergeLanes}>;
${workgroupMain(mergeLanes)}
  if (w >= p.nsegs) { return; }
  ${mergeLanes < wg ? laneSums(wg, mergeLanes, T, 'q', '0u', 'p.cps', 'acc = acc + part[w * p.cps + q];') : `var acc = ${T}(0.0);
  for (var q = lid; q < p.cps; q = q + ${wg}u) { acc = acc + part[w * p.cps + q]; }
  sh[lid] = acc;`}
  ${treeSum(mergeLanes)}
  if (lid == 0u) { dst[w] = sh[0] * p.scale; }
}`);
  gpu.dispatch({
    pipeline: mergePipeline, label: `${spec.label}:merge`, workgroups: numSegs,
    ...merge.bind({ cps: plan.chunksPerSeg, nsegs: numSegs, scale: spec.scale }, { part: partial, dst: spec.out }),
  });
  gpu.pool.release(partial);
}

/** WGSL loading element `i` of each input as an f32 `v0`, `v1`, ... */
function loadInputs(spec: SegmentedReduceSpec): string {
  return spec.inputs.map((_, q) => `let v${q} = f32(in${q}[i]);`).join(' ');
}

/** Segments at most this long are reduced by one thread each (a workgroup per segment would idle). */
const SMALL_SEGMENT = 256;

function smallSegmentReduce(gpu: Gpu, spec: SegmentedReduceSpec, T: 'f32' | 'vec2f', plan: ChunkPlan): void {
  const wg = linearWorkgroupSize(gpu);
  const extras = spec.extras ?? [];
  const nIn = spec.inputs.length;
  const key = `segreduce-small:${spec.key}:${spec.dtype ?? 'f32'}>${T}:${nIn}:${extras.map((e) => e.type).join(',')}:${wg}`;
  const sig = reduceSignature(key, spec, T, SMALL_UNIFORMS);
  const pipeline = sig.pipeline(gpu, key, () => `
${linearMain(wg)}
  if (gid >= p.nsegs) { return; }
  let seg = p.seg0 + gid;
  let start = seg * p.segLen;
  ${spec.prelude ?? ''}
  var acc = ${T}(0.0);
  for (var gi = start; gi < start + p.segLen; gi = gi + 1u) {
    let i = gi - p.base;
    ${loadInputs(spec)}
    acc = acc + (${spec.value});
  }
  dst[seg] = acc * p.scale;
}`);
  for (const win of plan.windows) {
    gpu.dispatch({
      pipeline, label: `${spec.label}:reduce`, workgroups: Math.ceil(win.chunks / wg),
      ...sig.bind(
        { base: win.base, seg0: win.chunk0, nsegs: win.chunks, segLen: spec.segLen, scale: spec.scale },
        reduceBuffers(gpu, spec, win, spec.out),
      ),
    });
  }
}

export interface ChannelMapSpec {
  /** Dispatch label (the op name). */
  label: string;
  /** Pipeline key: must identify `prelude`, `value` and the names and types of the buffers and scalars. */
  key: string;
  /** The tensors are [channels, spatial] (e.g. [N * C, D * H * W]); `ch` is the channel index. */
  channels: number;
  spatial: number;
  /** Tensors shaped like the output: each element is read into a WGSL `let` of type `Elem` named by its key. */
  inputs: Record<string, GPUBuffer>;
  /** Element type of the inputs and the output (default 'f32'; 'f16' loads into `Elem` and rounds once as it stores). */
  dtype?: DType;
  /** Whole buffers of per-channel values, indexed in WGSL by `ch` (e.g. `gate[ch]`). */
  perChannel: Record<string, { buffer: GPUBuffer; type: StorageElementType }>;
  /** f32 uniforms read as `p.<name>`. */
  scalars?: Record<string, number>;
  /** WGSL statements run per element before `value` (may use the inputs, `ch` and the per-channel buffers). */
  prelude?: string;
  /** WGSL expression of the output element, of type `Elem` (vec4f when `spatial` % 4 == 0, else f32). */
  value: string;
  out: GPUBuffer;
  /** Elements of `dtype` per binding window (see slabElements; a multiple of 4). */
  maxElems: number;
}

/** What a channel map needs per launch, prepared once per label, key and vector width. */
interface ChannelMapPlan {
  sig: KernelSignature<Record<string, UniformType>, Record<string, StorageSpec>>;
  pipelineKey: string;
  inputs: string[];
  perChannel: string[];
}

const channelMapPlans = new Map<string, ChannelMapPlan>();

function channelMapPlan(spec: ChannelMapSpec, V: 1 | 4, wg: number): ChannelMapPlan {
  const dtype = spec.dtype ?? 'f32';
  const cacheKey = `${spec.label}|${spec.key}|${dtype}|${V}|${wg}`;
  let plan = channelMapPlans.get(cacheKey);
  if (!plan) {
    const Stored = storageType(dtype, V);
    const inputs = Object.keys(spec.inputs);
    const perChannel = Object.keys(spec.perChannel);
    const uniforms: Record<string, UniformType> = { n: 'u32', base: 'u32', sv: 'u32' };
    for (const s of Object.keys(spec.scalars ?? {})) uniforms[s] = 'f32';
    const storage: Record<string, StorageSpec> = {};
    for (const name of inputs) storage[`${name}In`] = readOnly(Stored);
    for (const name of perChannel) storage[name] = readOnly(spec.perChannel[name].type);
    storage.dst = readWrite(Stored);
    plan = { sig: kernelSignature(spec.label, { uniforms, storage }), pipelineKey: `channel-map:${spec.key}:${dtype}:${V}:${wg}`, inputs, perChannel };
    channelMapPlans.set(cacheKey, plan);
  }
  return plan;
}

/**
 * out[ch, s] = value(inputs[ch, s], perChannel[ch]) for a [channels, spatial] tensor: one invocation per element
 * (a vec4 of them when spatial % 4 == 0, so a vec4 never straddles two channels), in binding windows.
 */
export function channelMap(gpu: Gpu, spec: ChannelMapSpec): void {
  const V = spec.spatial % 4 === 0 ? 4 : 1;
  const dtype = spec.dtype ?? 'f32';
  const wg = linearWorkgroupSize(gpu);
  const { sig, pipelineKey, inputs, perChannel } = channelMapPlan(spec, V, wg);
  const pipeline = sig.pipeline(gpu, pipelineKey, () => `
alias Elem = ${V === 4 ? 'vec4f' : 'f32'};
${linearMain(wg)}
  if (gid >= p.n) { return; }
  let ch = (p.base + gid) / p.sv;
  ${inputs.map((name) => `let ${name} = Elem(${name}In[gid]);`).join('\n  ')}
  ${spec.prelude ?? ''}
  dst[gid] = ${storageType(dtype, V)}(${spec.value});
}`);
  // Windows start at multiples of maxElems, so at aligned offsets (alignedWindow's base is 0).
  for (const [start, count] of flatWindows(spec.channels * spec.spatial, spec.maxElems)) {
    const buffers: Record<string, Binding> = {};
    for (const name of inputs) buffers[`${name}In`] = alignedWindow(gpu, spec.inputs[name], start, count, dtype).binding;
    for (const name of perChannel) buffers[name] = spec.perChannel[name].buffer;
    buffers.dst = alignedWindow(gpu, spec.out, start, count, dtype).binding;
    gpu.dispatch({
      pipeline, label: spec.label, workgroups: Math.ceil(count / V / wg),
      ...sig.bind({ ...spec.scalars, n: count / V, base: start / V, sv: spec.spatial / V }, buffers),
    });
  }
}
