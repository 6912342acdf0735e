/**
 * Batched matrix multiply C[b] = op(A[b]) op(B[b]) (op = identity or transpose), row-major f32.
 *
 * Tiled with register blocking: a workgroup computes a BM x BN block of C, staging BK-deep slices of A and
 * B in workgroup memory (k-major, padded against bank conflicts); each thread accumulates TM x TN outputs
 * with the rows and columns strided across the block so that shared-memory reads and global stores of
 * neighbouring threads are contiguous. The batch is folded into the z grid dimension; a batch stride of 0
 * shares an operand across the batch. m, n and k need not be multiples of the tile (guarded loads and stores).
 */
import { alignedWindow, maxWindowElements } from './runtime/windows.js';
import { reduce } from './reduce.js';
import type { Gpu } from './runtime/gpu.js';
import { checkBuffer, checkShape, packParams, sizeOf } from './runtime/wgsl.js';

export interface MatmulOptions {
  /** Number of matrices (default 1). */
  batch?: number;
  /** Rows of C and of op(A). */
  m: number;
  /** Columns of C and of op(B). */
  n: number;
  /** Inner dimension: columns of op(A), rows of op(B). */
  k: number;
  /** A is stored [k, m] (A^T is used). */
  transposeA?: boolean;
  /** B is stored [n, k] (B^T is used). */
  transposeB?: boolean;
  /** Elements between consecutive A matrices; default m*k; 0 shares A across the batch. */
  batchStrideA?: number;
  /** Elements between consecutive B matrices; default k*n; 0 shares B across the batch. */
  batchStrideB?: number;
}

/** A block tile: BM x BN outputs per workgroup, BK-deep slices, TM x TN outputs per thread. */
export interface MatmulTile {
  bm: number;
  bn: number;
  bk: number;
  tm: number;
  tn: number;
  /** Invocations per workgroup: (bm / tm) * (bn / tn). */
  threads: number;
  /** Workgroup memory in bytes. */
  storageBytes: number;
  /** e.g. "128x128x8/8x8". */
  name: string;
}

const PAD = 4;

function makeTile(bm: number, bn: number, bk: number, tm: number, tn: number): MatmulTile {
  return {
    bm, bn, bk, tm, tn,
    threads: (bm / tm) * (bn / tn),
    storageBytes: bk * (bm + PAD + bn + PAD) * 4,
    name: `${bm}x${bn}x${bk}/${tm}x${tn}`,
  };
}

/** Candidate tiles, largest first. */
export const MATMUL_TILES: readonly MatmulTile[] = [
  makeTile(128, 128, 8, 8, 8),
  makeTile(64, 64, 8, 4, 4),
  makeTile(32, 32, 8, 4, 4),
  makeTile(16, 16, 8, 2, 2),
];

/**
 * The tile for this device (and, when given, this problem): the largest that fits the device's
 * invocation and workgroup-storage limits; for problems too small to fill the GPU with it, the next smaller.
 */
export function pickMatmulTile(gpu: Gpu, problem?: { m: number; n: number; batch?: number }): MatmulTile {
  const fits = MATMUL_TILES.filter((t) =>
    t.threads <= gpu.limits.maxComputeInvocationsPerWorkgroup
    && t.storageBytes <= gpu.limits.maxComputeWorkgroupStorageSize
    && t.threads <= gpu.limits.maxComputeWorkgroupSizeX);
  if (fits.length === 0) throw new RangeError('matmul: no tile fits this device\'s workgroup limits');
  if (!problem) return fits[0];
  const blocks = (t: MatmulTile) => Math.ceil(problem.m / t.bm) * Math.ceil(problem.n / t.bn) * (problem.batch ?? 1);
  // Prefer a big tile only when it still yields enough workgroups to keep a GPU busy.
  for (const t of fits) if (blocks(t) >= 64 && t.bm <= 2 * problem.m && t.bn <= 2 * problem.n) return t;
  return fits.find((t) => t.bm <= Math.max(problem.m, problem.n)) ?? fits[fits.length - 1];
}

/** Batch broadcasting of tensor shapes [..., m, k] x [..., k, n] (before transposes), as options for `matmul`. */
export function matmulShapes(
  aShape: readonly number[], bShape: readonly number[], transposeA = false, transposeB = false,
): { outShape: number[]; options: Required<MatmulOptions> } {
  checkShape(aShape, 'matmul A');
  checkShape(bShape, 'matmul B');
  const desc = () => `A [${aShape.join(', ')}]${transposeA ? ' (transposed)' : ''} and B [${bShape.join(', ')}]${transposeB ? ' (transposed)' : ''}`;
  if (aShape.length < 2 || bShape.length < 2) throw new RangeError(`matmul: ${desc()} must both have rank >= 2`);
  const ra = aShape.length;
  const rb = bShape.length;
  const [m, ka] = transposeA ? [aShape[ra - 1], aShape[ra - 2]] : [aShape[ra - 2], aShape[ra - 1]];
  const [kb, n] = transposeB ? [bShape[rb - 1], bShape[rb - 2]] : [bShape[rb - 2], bShape[rb - 1]];
  if (ka !== kb) throw new RangeError(`matmul: inner dimensions differ (${ka} vs ${kb}) for ${desc()}`);
  const ab = aShape.slice(0, -2);
  const bb = bShape.slice(0, -2);
  const nb = Math.max(ab.length, bb.length);
  const pa = [...new Array<number>(nb - ab.length).fill(1), ...ab];
  const pb = [...new Array<number>(nb - bb.length).fill(1), ...bb];
  const batchShape = pa.map((d, i) => (d === 1 ? pb[i] : d));
  const aShared = sizeOf(ab) === 1;
  const bShared = sizeOf(bb) === 1;
  const same = pa.every((d, i) => d === pb[i]);
  if (!same && !aShared && !bShared) {
    throw new RangeError(
      `matmul: batch dimensions of ${desc()} do not match; only equal batch dimensions or one operand without batch are supported`,
    );
  }
  const batch = sizeOf(batchShape);
  return {
    outShape: [...batchShape, m, n],
    options: {
      batch, m, n, k: ka, transposeA, transposeB,
      batchStrideA: aShared ? 0 : m * ka, batchStrideB: bShared ? 0 : ka * n,
    },
  };
}

function matmulWgsl(t: MatmulTile, transA: boolean, transB: boolean): string {
  const { bm, bn, bk, tm, tn, threads } = t;
  const sa = bm + PAD;
  const sb = bn + PAD;
  const tnx = bn / tn; // threads across columns
  const tmy = bm / tm;
  const loadsA = (bm * bk) / threads;
  const loadsB = (bn * bk) / threads;
  const lines: string[] = [];
  for (let i = 0; i < loadsA; i++) {
    lines.push(`  {
    let li = lid + ${i * threads}u;
    ${transA
      ? `let r = li % ${bm}u; let kk = li / ${bm}u;
    let gr = row0 + r; let gk = k0 + kk;
    let ok = gr < p.m && gk < p.k;
    let v = select(0.0, as_[select(0u, aOff + gk * p.m + gr, ok)], ok);`
      : `let kk = li % ${bk}u; let r = li / ${bk}u;
    let gr = row0 + r; let gk = k0 + kk;
    let ok = gr < p.m && gk < p.k;
    let v = select(0.0, as_[select(0u, aOff + gr * p.k + gk, ok)], ok);`}
    tA[kk * ${sa}u + r] = v;
  }`);
  }
  for (let i = 0; i < loadsB; i++) {
    lines.push(`  {
    let li = lid + ${i * threads}u;
    ${transB
      ? `let kk = li % ${bk}u; let c = li / ${bk}u;
    let gc = col0 + c; let gk = k0 + kk;
    let ok = gc < p.n && gk < p.k;
    let v = select(0.0, bs[select(0u, bOff + gc * p.k + gk, ok)], ok);`
      : `let c = li % ${bn}u; let kk = li / ${bn}u;
    let gc = col0 + c; let gk = k0 + kk;
    let ok = gc < p.n && gk < p.k;
    let v = select(0.0, bs[select(0u, bOff + gk * p.n + gc, ok)], ok);`}
    tB[kk * ${sb}u + c] = v;
  }`);
  }
  const body: string[] = [];
  for (let i = 0; i < tm; i++) body.push(`      let a${i} = tA[kk * ${sa}u + ty + ${i * tmy}u];`);
  for (let j = 0; j < tn; j++) body.push(`      let b${j} = tB[kk * ${sb}u + tx + ${j * tnx}u];`);
  for (let i = 0; i < tm; i++) {
    for (let j = 0; j < tn; j++) body.push(`      acc[${i * tn + j}] = fma(a${i}, b${j}, acc[${i * tn + j}]);`);
  }
  const stores: string[] = [];
  for (let i = 0; i < tm; i++) {
    stores.push(`  {
    let gr = row0 + ty + ${i * tmy}u;
    if (gr < p.m) {
${Array.from({ length: tn }, (_, j) => `      if (col0 + tx + ${j * tnx}u < p.n) { cs[cOff + gr * p.n + col0 + tx + ${j * tnx}u] = acc[${i * tn + j}]; }`).join('\n')}
    }
  }`);
  }
  return /* wgsl */ `
struct Params { m: u32, n: u32, k: u32, strideA: u32, strideB: u32, aBase: u32, bBase: u32, cBase: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> as_: array<f32>;
@group(0) @binding(2) var<storage, read> bs: array<f32>;
@group(0) @binding(3) var<storage, read_write> cs: array<f32>;
var<workgroup> tA: array<f32, ${bk * sa}>;
var<workgroup> tB: array<f32, ${bk * sb}>;
@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row0 = wid.y * ${bm}u;
  let col0 = wid.x * ${bn}u;
  let aOff = p.aBase + wid.z * p.strideA;
  let bOff = p.bBase + wid.z * p.strideB;
  let cOff = p.cBase + wid.z * p.m * p.n;
  let tx = lid % ${tnx}u;
  let ty = lid / ${tnx}u;
  var acc: array<f32, ${tm * tn}>;
  let kTiles = (p.k + ${bk - 1}u) / ${bk}u;
  for (var t = 0u; t < kTiles; t++) {
    let k0 = t * ${bk}u;
${lines.join('\n')}
    workgroupBarrier();
    for (var kk = 0u; kk < ${bk}u; kk++) {
${body.join('\n')}
    }
    workgroupBarrier();
  }
${stores.join('\n')}
}`;
}

function checkDim(v: number, name: string): void {
  if (!Number.isInteger(v) || v < 0) throw new RangeError(`matmul: ${name} must be a non-negative integer, got ${v}`);
}

/**
 * out[b] = op(A[b]) @ op(B[b]) for b < batch: A[b] starts at b * batchStrideA and is [m, k] ([k, m] when
 * transposeA), B[b] at b * batchStrideB and is [k, n] ([n, k] when transposeB); out is dense [batch, m, n].
 * `tile` overrides the tile choice (benches, tests).
 */
export function matmul(gpu: Gpu, a: GPUBuffer, b: GPUBuffer, out: GPUBuffer, options: MatmulOptions, tile?: MatmulTile): void {
  const { m, n, k } = options;
  const batch = options.batch ?? 1;
  const transA = options.transposeA ?? false;
  const transB = options.transposeB ?? false;
  checkDim(m, 'm');
  checkDim(n, 'n');
  checkDim(k, 'k');
  checkDim(batch, 'batch');
  const sA = options.batchStrideA ?? m * k;
  const sB = options.batchStrideB ?? k * n;
  checkDim(sA, 'batchStrideA');
  checkDim(sB, 'batchStrideB');
  const sizeA = m * k;
  const sizeB = k * n;
  const sizeC = m * n;
  if (batch === 0 || sizeC === 0) return;
  checkBuffer(a, (batch - 1) * sA + sizeA, `matmul A (batch ${batch}, ${transA ? `[${k}, ${m}]` : `[${m}, ${k}]`}, stride ${sA})`);
  checkBuffer(b, (batch - 1) * sB + sizeB, `matmul B (batch ${batch}, ${transB ? `[${n}, ${k}]` : `[${k}, ${n}]`}, stride ${sB})`);
  checkBuffer(out, batch * sizeC, `matmul output ([${batch}, ${m}, ${n}])`);
  if (out === a || out === b) throw new RangeError('matmul: the output must not be an input buffer');
  const t = tile ?? pickMatmulTile(gpu, { m, n, batch });
  const maxGrid = gpu.limits.maxComputeWorkgroupsPerDimension;
  const gx = Math.ceil(n / t.bn);
  const gy = Math.ceil(m / t.bm);
  if (gx > maxGrid || gy > maxGrid) {
    throw new RangeError(`matmul: [${m}, ${n}] output needs a ${gy} x ${gx} grid of ${t.name} tiles, over ${maxGrid} per dimension`);
  }
  // Batches per dispatch: the z grid limit and one storage binding per operand.
  const maxElems = maxWindowElements(gpu);
  let per = Math.min(maxGrid, Math.floor(maxElems / sizeC));
  for (const [name, size, stride] of [['A', sizeA, sA], ['B', sizeB, sB]] as const) {
    if (size > maxElems) {
      throw new RangeError(`matmul: one ${name} matrix of ${size} elements exceeds one storage binding (${maxElems} f32 elements on this device)`);
    }
    if (stride > 0) per = Math.min(per, Math.floor((maxElems - size) / stride) + 1);
  }
  if (per < 1) {
    throw new RangeError(`matmul: one [${m}, ${n}] output matrix exceeds one storage binding (${maxElems} f32 elements on this device)`);
  }
  const pipeline = gpu.pipeline(`matmul:${t.name}:${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`, () => matmulWgsl(t, transA, transB));
  for (let b0 = 0; b0 < batch; b0 += per) {
    const count = Math.min(per, batch - b0);
    const aw = alignedWindow(gpu, a, b0 * sA, (count - 1) * sA + sizeA);
    const bw = alignedWindow(gpu, b, b0 * sB, (count - 1) * sB + sizeB);
    const cw = alignedWindow(gpu, out, b0 * sizeC, count * sizeC);
    gpu.dispatch({
      pipeline, label: `matmul:${t.name}`,
      bindings: [aw.binding, bw.binding, cw.binding],
      params: packParams([
        { u: m }, { u: n }, { u: k }, { u: sA }, { u: sB }, { u: aw.base }, { u: bw.base }, { u: cw.base },
      ]),
      workgroups: [gx, gy, count],
    });
  }
}

/**
 * Gradients of `matmul` for the same options: gradA (A's layout, [m, k] or [k, m] when transposeA) and gradB
 * (B's layout) from gOut ([batch, m, n]); either may be null to skip it. An operand shared across the batch
 * (batch stride 0) gets the sum over the batch; other batch strides must be the dense default.
 */
export function matmulBackward(
  gpu: Gpu, a: GPUBuffer, b: GPUBuffer, gOut: GPUBuffer, gradA: GPUBuffer | null, gradB: GPUBuffer | null, options: MatmulOptions,
): void {
  const { m, n, k } = options;
  const batch = options.batch ?? 1;
  const transA = options.transposeA ?? false;
  const transB = options.transposeB ?? false;
  const sA = options.batchStrideA ?? m * k;
  const sB = options.batchStrideB ?? k * n;
  for (const [name, stride, dense] of [['batchStrideA', sA, m * k], ['batchStrideB', sB, k * n]] as const) {
    if (batch > 1 && stride !== 0 && stride !== dense) {
      throw new RangeError(`matmulBackward: ${name} must be 0 (shared) or ${dense} (dense) for gradients, got ${stride}`);
    }
  }
  checkBuffer(gOut, batch * m * n, `matmulBackward output gradient ([${batch}, ${m}, ${n}])`);
  const sharedA = batch > 1 && sA === 0;
  const sharedB = batch > 1 && sB === 0;
  if (gradA) {
    if (gradA === a || gradA === b || gradA === gOut) throw new RangeError('matmulBackward: gradA must be a separate buffer');
    // Per batch: dA = dC opB(B)^T ([m, k]), or for transposeA dA^T = opB(B) dC^T ([k, m]).
    const opts: MatmulOptions = transA
      ? { batch, m: k, n: m, k: n, transposeA: transB, transposeB: true, batchStrideA: sB, batchStrideB: m * n }
      : { batch, m, n: k, k: n, transposeA: false, transposeB: !transB, batchStrideA: m * n, batchStrideB: sB };
    if (sharedA) {
      const tmp = gpu.pool.acquire(batch * m * k * 4, 'matmulBackward gradA per batch');
      if (transA) matmul(gpu, b, gOut, tmp, opts);
      else matmul(gpu, gOut, b, tmp, opts);
      reduce(gpu, 'sum', tmp, [batch, m * k], [0], gradA);
      gpu.pool.release(tmp);
    } else if (transA) {
      matmul(gpu, b, gOut, gradA, opts);
    } else {
      matmul(gpu, gOut, b, gradA, opts);
    }
  }
  if (gradB) {
    if (gradB === a || gradB === b || gradB === gOut) throw new RangeError('matmulBackward: gradB must be a separate buffer');
    // Per batch: dB = opA(A)^T dC ([k, n]), or for transposeB dB^T = dC^T opA(A) ([n, k]).
    const opts: MatmulOptions = transB
      ? { batch, m: n, n: k, k: m, transposeA: true, transposeB: transA, batchStrideA: m * n, batchStrideB: sA }
      : { batch, m: k, n, k: m, transposeA: !transA, transposeB: false, batchStrideA: sA, batchStrideB: m * n };
    const run = (o: MatmulOptions, out: GPUBuffer) => (transB ? matmul(gpu, gOut, a, out, o) : matmul(gpu, a, gOut, out, o));
    if (sharedB && !sharedA && !transA) {
      // A dense and untransposed: the batch folds into the inner dimension (one GEMM, no temporary).
      run({ ...opts, batch: 1, k: batch * m }, gradB);
    } else if (sharedB) {
      const tmp = gpu.pool.acquire(batch * k * n * 4, 'matmulBackward gradB per batch');
      run(opts, tmp);
      reduce(gpu, 'sum', tmp, [batch, k * n], [0], gradB);
      gpu.pool.release(tmp);
    } else {
      run(opts, gradB);
    }
  }
}
