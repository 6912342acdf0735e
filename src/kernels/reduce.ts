/**
 * Reductions (sum, mean, max) over any set of axes, and `sumToShape`, the adjoint of broadcasting.
 *
 * The input is first collapsed to alternating runs of kept and reduced axes (size-1 axes dropped), e.g.
 * [outer, reduced, inner] for contiguous axes or [N, C, D*H*W] -> [C] for a bias gradient; no permute is
 * needed. One kernel handles every layout: a workgroup owns a tile of TI consecutive outputs and TR lanes
 * that stride over the reduced index (Kahan-compensated per lane), then combines the lanes by a tree in
 * workgroup memory. When the reduced extent is long and the outputs are few, the reduced range is split in
 * chunks written to a partials buffer [chunks, outputs], which a second pass reduces, so long reductions
 * use the whole GPU. Inputs larger than one storage binding are processed in slabs of their leading axis
 * (slabs of a reduced axis accumulate into the output in order).
 */
import { alignedWindow, maxWindowElements, type AlignedWindow } from './runtime/windows.js';
import type { Gpu } from './runtime/gpu.js';
import { f32Bits, kernelSignature, readOnly, readWrite } from './runtime/kernel-signature.js';
import { checkBuffer, checkShape, linearMain, linearWorkgroupSize, maxBindingElements, sizeOf } from './runtime/wgsl.js';
import { unary } from './elementwise.js';

export type ReduceOp = 'sum' | 'mean' | 'max';
export const REDUCE_OPS: readonly ReduceOp[] = ['sum', 'mean', 'max'];

/** Most kept (and most reduced) runs of axes after collapsing, e.g. [k, r, k, r, k, r, k, r]. */
const MAX_RUNS = 4;

/**
 * The tiled reduction over canonical runs: kd/ks the sizes and input strides of the kept runs, rd/rs those of
 * the reduced runs (unused components 1 and 0). `init` (the op's identity, -Infinity for max: f32 bits, since
 * Tint rejects an infinite constant) starts each lane.
 */
const REDUCE = kernelSignature('reduce', {
  uniforms: {
    kd: 'vec4u', ks: 'vec4u', rd: 'vec4u', rs: 'vec4u', nOut: 'u32', nTiles: 'u32', total: 'u32', rLen: 'u32',
    chunk: 'u32', inBase: 'u32', outBase: 'u32', scale: 'f32', init: 'u32', accumulate: 'u32',
  },
  storage: { xs: readOnly('f32'), ys: readWrite('f32') },
});

/** dd: sizes of the canonical runs, os: their strides in the output gradient (0 for reduced runs), 8 each. */
const backwardUniforms = {
  dd: { array: 'vec4u', length: 2 }, os: { array: 'vec4u', length: 2 }, n: 'u32', start: 'u32', gxBase: 'u32', xBase: 'u32', scale: 'f32',
} as const;
const BACKWARD = {
  sum: kernelSignature('reduceBackward', { uniforms: backwardUniforms, storage: { gys: readOnly('f32'), gxs: readWrite('f32') } }),
  max: kernelSignature('reduceBackward', {
    uniforms: backwardUniforms,
    storage: { gys: readOnly('f32'), gxs: readWrite('f32'), xs: readOnly('f32'), ys: readOnly('f32') },
  }),
};

/**
 * Sorted, de-duplicated non-negative axes; `undefined` means every axis. Negative axes count from the end.
 */
export function normalizeAxes(rank: number, axes: readonly number[] | undefined, what = 'reduce'): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  if (!Array.isArray(axes)) throw new TypeError(`${what}: axes must be an array of integers or undefined, got ${String(axes)}`);
  const set = new Set<number>();
  for (const a of axes) {
    if (!Number.isInteger(a) || a < -rank || a >= rank) {
      throw new RangeError(`${what}: axis ${a} is out of range for a rank-${rank} input (axes [${axes.join(', ')}])`);
    }
    set.add(a < 0 ? a + rank : a);
  }
  return [...set].sort((x, y) => x - y);
}

/** The output shape of a reduction: the input shape with the reduced axes removed. */
export function reducedShape(shape: readonly number[], axes?: readonly number[]): number[] {
  const ax = normalizeAxes(shape.length, axes);
  return shape.filter((_, i) => !ax.includes(i));
}

/** The output shape of a reduction with kept dimensions: reduced axes become 1. */
export function reducedShapeKeepDims(shape: readonly number[], axes?: readonly number[]): number[] {
  const ax = normalizeAxes(shape.length, axes);
  return shape.map((d, i) => (ax.includes(i) ? 1 : d));
}

/** The axes of `gShape` that sumToShape reduces to get `targetShape` (which must broadcast to `gShape`). */
export function sumToShapeAxes(gShape: readonly number[], targetShape: readonly number[], what = 'sumToShape'): number[] {
  const lead = gShape.length - targetShape.length;
  const bad = () => new RangeError(
    `${what}: target shape [${targetShape.join(', ')}] does not broadcast to the gradient shape [${gShape.join(', ')}]`,
  );
  if (lead < 0) throw bad();
  const axes: number[] = [];
  for (let i = 0; i < gShape.length; i++) {
    if (i < lead) {
      axes.push(i);
      continue;
    }
    const t = targetShape[i - lead];
    if (t === gShape[i]) continue;
    if (t !== 1) throw bad();
    axes.push(i);
  }
  return axes;
}

/**
 * out = op over `axes` of x (`axes` undefined: all axes; negative axes allowed; [] copies).
 * `out` holds reducedShape(xShape, axes) elements. Returns that shape. Reducing an empty extent gives
 * 0 for sum, NaN for mean and -Infinity for max.
 */
export function reduce(
  gpu: Gpu, op: ReduceOp, x: GPUBuffer, xShape: readonly number[], axes: readonly number[] | undefined, out: GPUBuffer,
): number[] {
  if (!REDUCE_OPS.includes(op)) throw new RangeError(`reduce: unknown op '${String(op)}', expected one of ${REDUCE_OPS.join(', ')}`);
  const what = `reduce ${op}`;
  checkShape(xShape, `${what} input`);
  const ax = normalizeAxes(xShape.length, axes, what);
  const outShape = xShape.filter((_, i) => !ax.includes(i));
  const nOut = sizeOf(outShape);
  checkBuffer(x, sizeOf(xShape), `${what} input`);
  checkBuffer(out, nOut, `${what} output`);
  if (nOut === 0) return outShape;
  const dims = canonDims(xShape.map((size, i) => ({ size, red: ax.includes(i) })));
  const R = sizeOf(dims.filter((d) => d.red).map((d) => d.size));
  if (!dims.some((d) => d.red)) {
    // Nothing to reduce (only size-1 axes): a copy.
    if (x !== out) gpu.copy(x, 0, out, 0, nOut * 4);
    return outShape;
  }
  if (x === out) throw new RangeError(`${what}: input and output must be different buffers`);
  if (dims.filter((d) => d.red).length > MAX_RUNS || dims.filter((d) => !d.red).length > MAX_RUNS) {
    throw new RangeError(
      `${what}: axes [${ax.join(', ')}] of [${xShape.join(', ')}] form more than ${MAX_RUNS} separate runs of reduced or kept axes`,
    );
  }
  if (R === 0) {
    // An empty reduced extent: the identity of the op (mean: 0 / 0).
    unary(gpu, 'fill', null, out, nOut, op === 'sum' ? 0 : op === 'mean' ? Number.NaN : -Infinity);
    return outShape;
  }
  const kop = op === 'max' ? 'max' : 'sum';
  reduceDims(gpu, kop, dims, x, 0, out, 0, op === 'mean' ? 1 / R : 1, false);
  return outShape;
}

/**
 * The adjoint of broadcasting: sums the gradient `g` (shape gShape) over the axes along which
 * `targetShape` was broadcast, so `out` holds sizeOf(targetShape) elements in targetShape's layout.
 */
export function sumToShape(gpu: Gpu, g: GPUBuffer, gShape: readonly number[], targetShape: readonly number[], out: GPUBuffer): number[] {
  checkShape(gShape, 'sumToShape gradient');
  checkShape(targetShape, 'sumToShape target');
  const axes = sumToShapeAxes(gShape, targetShape);
  checkBuffer(out, sizeOf(targetShape), 'sumToShape output');
  reduce(gpu, 'sum', g, gShape, axes, out);
  return [...targetShape];
}

/**
 * The backward of `reduce`: gx = dy broadcast back over the reduced axes (times 1/R for mean). For max, only
 * elements equal to their maximum receive the gradient (each tied maximum receives all of it), so `x` and
 * the forward output `y` are required; they are ignored for sum and mean. `gy` holds reducedShape elements.
 */
export function reduceBackward(
  gpu: Gpu, op: ReduceOp, xShape: readonly number[], axes: readonly number[] | undefined,
  gy: GPUBuffer, gx: GPUBuffer, x: GPUBuffer | null = null, y: GPUBuffer | null = null,
): void {
  if (!REDUCE_OPS.includes(op)) throw new RangeError(`reduceBackward: unknown op '${String(op)}', expected one of ${REDUCE_OPS.join(', ')}`);
  const what = `reduceBackward ${op}`;
  checkShape(xShape, `${what} input`);
  const ax = normalizeAxes(xShape.length, axes, what);
  const n = sizeOf(xShape);
  const nOut = sizeOf(xShape.filter((_, i) => !ax.includes(i)));
  checkBuffer(gy, nOut, `${what} output gradient`);
  checkBuffer(gx, n, `${what} input gradient`);
  const isMax = op === 'max';
  if (isMax) {
    if (!x || !y) throw new TypeError(`${what}: the forward input x and output y are required for max`);
    checkBuffer(x, n, `${what} forward input`);
    checkBuffer(y, nOut, `${what} forward output`);
  }
  if (gx === gy || gx === x || gx === y) throw new RangeError(`${what}: the input gradient must be a separate buffer`);
  if (n === 0) return;
  const dims = canonDims(xShape.map((size, i) => ({ size, red: ax.includes(i) })));
  if (dims.length > 2 * MAX_RUNS) throw new RangeError(`${what}: axes [${ax.join(', ')}] of [${xShape.join(', ')}] form too many runs`);
  const R = n / nOut;
  const scale = op === 'mean' ? 1 / R : 1;
  // Output stride of each canonical run (0 for reduced runs).
  const dd = new Array<number>(8).fill(1);
  const os = new Array<number>(8).fill(0);
  let acc = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    dd[i] = dims[i].size;
    if (!dims[i].red) {
      os[i] = acc;
      acc *= dims[i].size;
    }
  }
  const rank = dims.length;
  const terms: string[] = [];
  for (let d = rank - 1; d >= 0; d--) {
    terms.push(`o += (i % p.dd[${d >> 2}][${d & 3}]) * p.os[${d >> 2}][${d & 3}]; i = i / p.dd[${d >> 2}][${d & 3}];`);
  }
  const wg = linearWorkgroupSize(gpu);
  const sig = BACKWARD[isMax ? 'max' : 'sum'];
  const pipeline = sig.pipeline(gpu, `reduceBackward:${isMax ? 'max' : 'sum'}:${rank}:${wg}`, () => `
${linearMain(wg)}
  if (gid >= p.n) { return; }
  var i = gid + p.start;
  var o = 0u;
  ${terms.join('\n  ')}
  ${isMax
    ? 'gxs[p.gxBase + gid] = select(0.0, gys[o], xs[p.xBase + gid] == ys[o]);'
    : 'gxs[p.gxBase + gid] = gys[o] * p.scale;'}
}`);
  const maxElems = maxWindowElements(gpu);
  if (nOut > maxBindingElements(gpu)) throw new RangeError(`${what}: the output gradient of ${nOut} elements exceeds one storage binding`);
  const gyw = alignedWindow(gpu, gy, 0, nOut).binding;
  for (let start = 0; start < n; start += maxElems) {
    const count = Math.min(maxElems, n - start);
    const gw = alignedWindow(gpu, gx, start, count);
    const xw = isMax && x ? alignedWindow(gpu, x, start, count) : null;
    const uniforms = { dd, os, n: count, start, gxBase: gw.base, scale };
    gpu.dispatch({
      pipeline, label: `reduceBackward:${op}`, workgroups: Math.ceil(count / wg),
      ...(xw && y
        ? BACKWARD.max.bind({ ...uniforms, xBase: xw.base }, { gys: gyw, gxs: gw.binding, xs: xw.binding, ys: alignedWindow(gpu, y, 0, nOut).binding })
        : BACKWARD.sum.bind({ ...uniforms, xBase: 0 }, { gys: gyw, gxs: gw.binding })),
    });
  }
}

interface Dim {
  size: number;
  red: boolean;
}

/** Drops size-1 axes and merges neighbouring axes of the same kind. */
function canonDims(dims: readonly Dim[]): Dim[] {
  const outDims: Dim[] = [];
  for (const d of dims) {
    if (d.size === 1) continue;
    const last = outDims[outDims.length - 1];
    if (last && last.red === d.red) last.size *= d.size;
    else outDims.push({ ...d });
  }
  return outDims;
}

type KernelOp = 'sum' | 'max';

/**
 * Reduces canonical `dims` of x (from element xOff) into out (from element outOff), in binding-sized slabs.
 * The final write is out = combine(out, result) * scale when `accumulate`, else result * scale.
 */
function reduceDims(
  gpu: Gpu, kop: KernelOp, dims: readonly Dim[], x: GPUBuffer, xOff: number, out: GPUBuffer, outOff: number,
  scale: number, accumulate: boolean,
): void {
  const total = sizeOf(dims.map((d) => d.size));
  const nOut = sizeOf(dims.filter((d) => !d.red).map((d) => d.size));
  if (nOut === 0) return;
  const maxElems = maxWindowElements(gpu);
  if (total <= maxElems) {
    reducePasses(gpu, kop, dims, x, xOff, out, outOff, scale, accumulate);
    return;
  }
  // Too big for one binding: slabs of the leading axis. Slabs of a reduced axis accumulate into the output
  // in order (dispatches of one batch run in sequence), the scale applied with the last one.
  const [d0, ...rest] = dims;
  const restSize = total / d0.size;
  const outRest = d0.red ? nOut : nOut / d0.size;
  const per = restSize <= maxElems ? Math.floor(maxElems / restSize) : 1;
  const chunks = Math.ceil(d0.size / per);
  for (let k = 0; k < chunks; k++) {
    const i0 = k * per;
    const count = Math.min(per, d0.size - i0);
    const sub = count === 1 ? rest : [{ size: count, red: d0.red }, ...rest];
    if (d0.red) {
      reduceDims(gpu, kop, sub, x, xOff + i0 * restSize, out, outOff, k === chunks - 1 ? scale : 1, accumulate || k > 0);
    } else {
      reduceDims(gpu, kop, sub, x, xOff + i0 * restSize, out, outOff + i0 * outRest, scale, accumulate);
    }
  }
}

/** One pass, or two (chunked partials, then their reduction) when the reduced extent is long. */
function reducePasses(
  gpu: Gpu, kop: KernelOp, dims: readonly Dim[], x: GPUBuffer, xOff: number, out: GPUBuffer, outOff: number,
  scale: number, accumulate: boolean,
): void {
  const total = sizeOf(dims.map((d) => d.size));
  const nOut = sizeOf(dims.filter((d) => !d.red).map((d) => d.size));
  const R = sizeOf(dims.filter((d) => d.red).map((d) => d.size));
  const wg = linearWorkgroupSize(gpu);
  // Tiles are TI x TR = wg with TR a power of 4 (few pipelines: shader compiles are slow on software Vulkan).
  const trs = [4, 16, 64, 256].filter((t) => t <= wg);
  const trForR = trs.find((t) => t >= R) ?? trs[trs.length - 1];
  const last = dims[dims.length - 1];
  let tr = trForR;
  if (last && !last.red) {
    // Kept axis innermost: a tile of up to 64 consecutive outputs reads consecutive elements.
    const tiWanted = [1, 4, 16, 64].find((t) => t >= Math.min(64, last.size)) ?? 64;
    tr = Math.max(trs[0], Math.min(trForR, wg / tiWanted));
    // A short reduction over many outputs (e.g. split-K slot sums): one lane per output and no tree, whose
    // workgroup barriers made a [2, n] -> [n] sum 10x slower than a plain loop on lavapipe.
    if (R <= 64 && nOut >= wg) tr = 1;
  }
  const ti = Math.max(1, Math.floor(wg / tr));
  const tiles = Math.ceil(nOut / ti);
  let splits = 1;
  if (R > tr * 256 && tiles < 1024) splits = Math.min(Math.ceil(2048 / tiles), Math.ceil(R / (tr * 64)));
  const chunk = Math.ceil(R / splits);
  splits = Math.ceil(R / Math.max(1, chunk));
  const xw = alignedWindow(gpu, x, xOff, total);
  if (splits <= 1) {
    dispatchReduce(gpu, kop, dims, ti, tr, 1, Math.max(R, 1), xw, alignedWindow(gpu, out, outOff, nOut), scale, accumulate);
    return;
  }
  const partials = gpu.pool.acquire(splits * nOut * 4, 'reduce partials');
  dispatchReduce(gpu, kop, dims, ti, tr, splits, chunk, xw, alignedWindow(gpu, partials, 0, splits * nOut), 1, false);
  reduceDims(gpu, kop, canonDims([{ size: splits, red: true }, { size: nOut, red: false }]), partials, 0, out, outOff, scale, accumulate);
  gpu.pool.release(partials);
}

/** WGSL body of REDUCE, specialised on the op, the numbers of kept/reduced runs and the tile. */
function reduceWgsl(kop: KernelOp, nk: number, nr: number, ti: number, tr: number): string {
  const wg = ti * tr;
  const comp = (i: number) => `[${i}]`;
  const keptTerms: string[] = [];
  for (let j = nk - 1; j >= 0; j--) {
    if (j === 0) keptTerms.push(`base += rem * p.ks${comp(0)};`);
    else keptTerms.push(`base += (rem % p.kd${comp(j)}) * p.ks${comp(j)}; rem = rem / p.kd${comp(j)};`);
  }
  const redTerms: string[] = [];
  for (let j = nr - 1; j >= 0; j--) {
    if (j === 0) redTerms.push(`off += rr * p.rs${comp(0)};`);
    else redTerms.push(`off += (rr % p.rd${comp(j)}) * p.rs${comp(j)}; rr = rr / p.rd${comp(j)};`);
  }
  const accumulate = kop === 'sum'
    ? 'let y = v - c; let t = s + y; c = (t - s) - y; s = t;'
    : 's = max(s, v);';
  const combine = kop === 'sum' ? (a: string, b: string) => `${a} + ${b}` : (a: string, b: string) => `max(${a}, ${b})`;
  const tree: string[] = [];
  for (let st = tr / 2; st >= 1; st /= 2) {
    tree.push(`  if (tr < ${st}u) { acc[lid] = ${combine('acc[lid]', `acc[lid + ${st * ti}u]`)}; }\n  workgroupBarrier();`);
  }
  const shared = tr > 1;
  return /* wgsl */ `
${shared ? `var<workgroup> acc: array<f32, ${wg}>;` : ''}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let L = wid.x + nwg.x * (wid.y + nwg.y * wid.z);
  if (L >= p.total) { return; }
  let tile = L % p.nTiles;
  let ch = L / p.nTiles;
  let ti = lid % ${ti}u;
  let tr = lid / ${ti}u;
  let o = tile * ${ti}u + ti;
  let valid = o < p.nOut;
  var s = bitcast<f32>(p.init);
  var c = 0.0;
  if (valid) {
    var rem = o;
    var base = p.inBase;
    ${keptTerms.join('\n    ')}
    let r1 = min(ch * p.chunk + p.chunk, p.rLen);
    for (var r = ch * p.chunk + tr; r < r1; r += ${tr}u) {
      var rr = r;
      var off = base;
      ${redTerms.join('\n      ')}
      let v = xs[off];
      ${accumulate}
    }
  }
  ${shared ? 'acc[lid] = s;\n  workgroupBarrier();' : ''}
${tree.join('\n')}
  if ((tr == 0u) & valid) {
    let idx = p.outBase + ch * p.nOut + o;
    var res = ${shared ? 'acc[lid]' : 's'};
    if (p.accumulate != 0u) { res = ${combine('ys[idx]', 'res')}; }
    ys[idx] = ${kop === 'sum' ? 'res * p.scale' : 'res'};
  }
}`;
}

function dispatchReduce(
  gpu: Gpu, kop: KernelOp, dims: readonly Dim[], ti: number, tr: number, splits: number, chunk: number,
  xw: AlignedWindow, ow: AlignedWindow, scale: number, accumulate: boolean,
): void {
  const kept = dims.filter((d) => !d.red);
  const red = dims.filter((d) => d.red);
  // Input strides of each run.
  const strides: number[] = new Array<number>(dims.length);
  let acc = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    strides[i] = acc;
    acc *= dims[i].size;
  }
  const kd = [1, 1, 1, 1];
  const ks = [0, 0, 0, 0];
  const rd = [1, 1, 1, 1];
  const rs = [0, 0, 0, 0];
  let ki = 0;
  let ri = 0;
  dims.forEach((d, i) => {
    if (d.red) {
      rd[ri] = d.size;
      rs[ri++] = strides[i];
    } else {
      kd[ki] = d.size;
      ks[ki++] = strides[i];
    }
  });
  const nOut = sizeOf(kept.map((d) => d.size));
  const R = sizeOf(red.map((d) => d.size));
  const tiles = Math.ceil(nOut / ti);
  const key = `reduce:${kop}:${kept.length}:${red.length}:${ti}x${tr}`;
  const pipeline = REDUCE.pipeline(gpu, key, () => reduceWgsl(kop, kept.length, red.length, ti, tr));
  gpu.dispatch({
    pipeline, label: `reduce:${kop}`, workgroups: tiles * splits,
    ...REDUCE.bind({
      kd, ks, rd, rs, nOut, nTiles: tiles, total: tiles * splits, rLen: R,
      chunk, inBase: xw.base, outBase: ow.base, scale, init: f32Bits(kop === 'max' ? -Infinity : 0), accumulate: accumulate ? 1 : 0,
    }, { xs: xw.binding, ys: ow.binding }),
  });
}
