/**
 * N-D transpose (permute). The shape is first collapsed (size-1 axes dropped, runs of axes that stay adjacent
 * merged), so most permutes become a small-rank problem; the swap of the last two axes (with any leading
 * batch axes) goes through a tiled transpose in workgroup memory, everything else through a general gather.
 * Input and output are f32 or f16 (`dtype`; a permute moves values, so f16 ones arrive unchanged).
 */
import { copyRows } from './concat.js';
import type { Gpu } from './runtime/gpu.js';
import { cachedSignature, kernelSignature, readOnly, readWrite } from './runtime/kernel-signature.js';
import { requireDType, type DType } from './runtime/precision.js';
import {
  checkBuffer, checkShape, linearMain, linearWorkgroupSize, sizeOf, stridesOf,
} from './runtime/wgsl.js';
import { alignedWindow, maxWindowElements, type AlignedWindow } from './runtime/windows.js';

/** Highest rank the gather kernel handles after collapsing. */
export const MAX_PERMUTE_RANK = 8;

/** Validates a permutation of 0..rank-1 (negative entries allowed) and returns it normalised. */
export function normalizePerm(perm: readonly number[], rank: number, what = 'permute'): number[] {
  if (!Array.isArray(perm) || perm.length !== rank) {
    throw new RangeError(`${what}: perm must list ${rank} axes for a rank-${rank} input, got [${String(perm)}]`);
  }
  const seen = new Array<boolean>(rank).fill(false);
  return perm.map((a) => {
    if (!Number.isInteger(a) || a < -rank || a >= rank) {
      throw new RangeError(`${what}: perm [${perm.join(', ')}] has axis ${a} out of range for rank ${rank}`);
    }
    const ax = a < 0 ? a + rank : a;
    if (seen[ax]) throw new RangeError(`${what}: perm [${perm.join(', ')}] repeats axis ${ax}`);
    seen[ax] = true;
    return ax;
  });
}

/** Output shape of a permute: out[i] = shape[perm[i]]. */
export function permuteShape(shape: readonly number[], perm: readonly number[]): number[] {
  const p = normalizePerm(perm, shape.length);
  return p.map((a) => shape[a]);
}

/** The permutation that undoes `perm` (the backward of a permute is the permute by its inverse). */
export function inversePerm(perm: readonly number[]): number[] {
  const p = normalizePerm(perm, perm.length);
  const inv = new Array<number>(p.length);
  p.forEach((a, i) => {
    inv[a] = i;
  });
  return inv;
}

/**
 * Drops size-1 axes and merges input axes that stay adjacent and in order under the permutation.
 * Returns the collapsed input shape and permutation (an equivalent, usually much smaller, problem).
 */
export function collapsePermute(shape: readonly number[], perm: readonly number[]): { shape: number[]; perm: number[] } {
  // Renumber the axes that are not size 1, so that axes around a dropped one count as adjacent.
  const compact = new Map<number, number>();
  shape.forEach((d, a) => {
    if (d !== 1) compact.set(a, compact.size);
  });
  const sizes = shape.filter((d) => d !== 1);
  const keep = perm.filter((a) => shape[a] !== 1).map((a) => compact.get(a) as number);
  // Group runs a, a+1, ... that appear consecutively in the permutation.
  const groups: number[][] = [];
  for (const a of keep) {
    const last = groups[groups.length - 1];
    if (last && last[last.length - 1] + 1 === a) last.push(a);
    else groups.push([a]);
  }
  // Order groups by their first input axis to get the collapsed input shape.
  const byInput = [...groups].sort((g, h) => g[0] - h[0]);
  const newShape = byInput.map((g) => g.reduce((acc, a) => acc * sizes[a], 1));
  const newPerm = groups.map((g) => byInput.indexOf(g));
  return { shape: newShape, perm: newPerm };
}

/**
 * out = x transposed by `perm` (out.shape[i] = xShape[perm[i]]), any rank, both of `dtype`. Returns the output
 * shape. The input must fit one storage binding unless the permutation keeps leading axes in place (then it is
 * processed in slabs of those axes).
 */
export function permute(
  gpu: Gpu, x: GPUBuffer, xShape: readonly number[], perm: readonly number[], out: GPUBuffer, dtype: DType = 'f32',
): number[] {
  requireDType(gpu, dtype, 'permute');
  checkShape(xShape, 'permute input');
  const p = normalizePerm(perm, xShape.length);
  const outShape = p.map((a) => xShape[a]);
  const n = sizeOf(xShape);
  checkBuffer(x, n, 'permute input', dtype);
  checkBuffer(out, n, 'permute output', dtype);
  if (n === 0) return outShape;
  const c = collapsePermute(xShape, p);
  if (c.perm.every((a, i) => a === i)) {
    // A plain copy (copyRows: copyBufferToBuffer, or its kernel for an odd number of f16 values).
    if (x !== out) copyRows(gpu, 'permute', x, 0, n, out, 0, n, 1, n, dtype);
    return outShape;
  }
  if (x === out) throw new RangeError('permute: input and output must be different buffers');
  if (c.shape.length > MAX_PERMUTE_RANK) {
    throw new RangeError(
      `permute: [${xShape.join(', ')}] by [${p.join(', ')}] needs rank ${c.shape.length} after collapsing, more than ${MAX_PERMUTE_RANK}`,
    );
  }
  // Leading axes that stay in place form independent slabs.
  let lead = 0;
  while (c.perm[lead] === lead) lead++;
  const outer = sizeOf(c.shape.slice(0, lead));
  const innerShape = c.shape.slice(lead);
  const innerPerm = c.perm.slice(lead).map((a) => a - lead);
  const slab = sizeOf(innerShape);
  const maxElems = maxWindowElements(gpu, dtype);
  if (slab > maxElems) {
    throw new RangeError(
      `permute: a slab of ${slab} elements ([${innerShape.join(', ')}] by [${innerPerm.join(', ')}]) exceeds one storage binding ` +
      `(${maxElems} ${dtype} elements on this device)`,
    );
  }
  const maxGrid = gpu.limits.maxComputeWorkgroupsPerDimension;
  const isTranspose2d = innerPerm.length === 2
    && Math.ceil(innerShape[0] / TILE) <= maxGrid && Math.ceil(innerShape[1] / TILE) <= maxGrid;
  const maxSlabs = Math.max(1, Math.floor(maxElems / slab));
  const chunk = isTranspose2d ? Math.min(maxSlabs, maxGrid) : maxSlabs;
  for (let s0 = 0; s0 < outer; s0 += chunk) {
    const count = Math.min(chunk, outer - s0);
    const xw = alignedWindow(gpu, x, s0 * slab, count * slab, dtype);
    const ow = alignedWindow(gpu, out, s0 * slab, count * slab, dtype);
    if (isTranspose2d) transpose2d(gpu, xw, ow, count, innerShape[0], innerShape[1], dtype);
    else gatherPermute(gpu, xw, ow, count, innerShape, innerPerm, dtype);
  }
  return outShape;
}

const TILE = 32;
const TILE_ROWS = 8;

/** [batch, rows, cols] -> [batch, cols, rows]; the windows start inBase / outBase elements before the data. */
const transposeSignature = (dtype: DType) => cachedSignature(`permute:transpose2d:${dtype}`, () => kernelSignature('permute:transpose2d', {
  uniforms: { rows: 'u32', cols: 'u32', inBase: 'u32', outBase: 'u32' },
  storage: { xs: readOnly(dtype), ys: readWrite(dtype) },
}));

/** od: the output dims, is: the input stride of each output dim (8 each, unused dims 1 and 0). */
const gatherSignature = (dtype: DType) => cachedSignature(`permute:gather:${dtype}`, () => kernelSignature('permute:gather', {
  uniforms: { od: { array: 'vec4u', length: 2 }, is: { array: 'vec4u', length: 2 }, n: 'u32', slab: 'u32', inBase: 'u32', outBase: 'u32' },
  storage: { xs: readOnly(dtype), ys: readWrite(dtype) },
}));

/** [batch, rows, cols] -> [batch, cols, rows] through a padded 32x32 tile (of the element type) in workgroup memory. */
function transpose2d(gpu: Gpu, xw: AlignedWindow, ow: AlignedWindow, batch: number, rows: number, cols: number, dtype: DType): void {
  const TRANSPOSE = transposeSignature(dtype);
  const pipeline = TRANSPOSE.pipeline(gpu, `permute:transpose2d:${dtype}:${TILE}x${TILE_ROWS}`, () => `
var<workgroup> tile: array<${dtype}, ${TILE * (TILE + 1)}>;
@compute @workgroup_size(${TILE}, ${TILE_ROWS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let slab = wid.z * p.rows * p.cols;
  let c = wid.x * ${TILE}u + lid.x;
  for (var j = 0u; j < ${TILE}u; j += ${TILE_ROWS}u) {
    let r = wid.y * ${TILE}u + lid.y + j;
    if ((r < p.rows) & (c < p.cols)) {
      tile[(lid.y + j) * ${TILE + 1}u + lid.x] = xs[p.inBase + slab + r * p.cols + c];
    }
  }
  workgroupBarrier();
  let r2 = wid.y * ${TILE}u + lid.x;
  for (var j = 0u; j < ${TILE}u; j += ${TILE_ROWS}u) {
    let c2 = wid.x * ${TILE}u + lid.y + j;
    if ((r2 < p.rows) & (c2 < p.cols)) {
      ys[p.outBase + slab + c2 * p.rows + r2] = tile[lid.x * ${TILE + 1}u + lid.y + j];
    }
  }
}`);
  gpu.dispatch({
    pipeline, label: 'permute:transpose2d', workgroups: [Math.ceil(cols / TILE), Math.ceil(rows / TILE), batch],
    ...TRANSPOSE.bind({ rows, cols, inBase: xw.base, outBase: ow.base }, { xs: xw.binding, ys: ow.binding }),
  });
}

/** General gather: out[i] = x[sum_d coord_d(i) * inStride[perm[d]]] over `batch` consecutive slabs. */
function gatherPermute(
  gpu: Gpu, xw: AlignedWindow, ow: AlignedWindow, batch: number, shape: readonly number[], perm: readonly number[], dtype: DType,
): void {
  const rank = shape.length;
  const wg = linearWorkgroupSize(gpu);
  const outShape = perm.map((a) => shape[a]);
  const inStrides = stridesOf(shape);
  const slab = sizeOf(shape);
  const terms: string[] = [];
  for (let d = rank - 1; d >= 0; d--) {
    const dim = `p.od[${d >> 2}][${d & 3}]`;
    const str = `p.is[${d >> 2}][${d & 3}]`;
    terms.push(`  off += (i % ${dim}) * ${str}; i = i / ${dim};`);
  }
  const GATHER = gatherSignature(dtype);
  const pipeline = GATHER.pipeline(gpu, `permute:gather:${dtype}:${rank}:${wg}`, () => `
${linearMain(wg)}
  if (gid >= p.n) { return; }
  let s = gid / p.slab;
  var i = gid - s * p.slab;
  var off = s * p.slab;
${terms.join('\n')}
  ys[p.outBase + gid] = xs[p.inBase + off];
}`);
  const od = new Array<number>(8).fill(1);
  const is = new Array<number>(8).fill(0);
  for (let d = 0; d < rank; d++) {
    od[d] = outShape[d];
    is[d] = inStrides[perm[d]];
  }
  const n = batch * slab;
  gpu.dispatch({
    pipeline, label: 'permute:gather', workgroups: Math.ceil(n / wg),
    ...GATHER.bind({ od, is, n, slab, inBase: xw.base, outBase: ow.base }, { xs: xw.binding, ys: ow.binding }),
  });
}
