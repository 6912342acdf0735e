/**
 * Batched matrix multiply C[b] = op(A[b]) op(B[b]) (op = identity or transpose), row-major f32.
 *
 * Runs on the tiled GEMM skeleton shared with conv3d (gemm/skeleton.ts): a workgroup computes a BM x BN block
 * of C, staging BK-deep slices of A and B in workgroup memory (k-major, padded against bank conflicts), and
 * each invocation accumulates TM x TN outputs. A transposed operand is loaded with its contiguous index
 * fastest across invocations. The batch is the z grid dimension; a batch stride of 0 shares an operand across
 * the batch. m, n and k need not be multiples of the tile (guarded loads and stores).
 */
import { gemmShader } from './gemm/skeleton.js';
import { checkTile } from './conv3d/tiles.js';
import { reduce } from './reduce.js';
import { isSoftwareAdapter, type Gpu } from './runtime/gpu.js';
import { kernelSignature, readOnly, readWrite } from './runtime/kernel-signature.js';
import { checkBuffer, checkShape, sizeOf } from './runtime/wgsl.js';
import { alignedWindow, maxWindowElements } from './runtime/windows.js';

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

const matmulSignature = kernelSignature('matmul', {
  uniforms: {
    total: 'u32', M: 'u32', N: 'u32', K: 'u32', kT: 'u32',
    strideA: 'u32', strideB: 'u32', aBase: 'u32', bBase: 'u32', cBase: 'u32',
  },
  storage: { as_: readOnly('f32'), bs: readOnly('f32'), cs: readWrite('f32') },
});

/** The matmul on the GEMM skeleton shared with conv3d: loads of dense (optionally transposed) matrices. */
function matmulWgsl(t: MatmulTile, transA: boolean, transB: boolean, prefetch: boolean): string {
  // A transposed operand is loaded with its contiguous index fastest across invocations.
  const a = transA ? 'aOff + k * p.M + row' : 'aOff + row * p.K + k';
  const b = transB ? 'bOff + col * p.K + k' : 'bOff + k * p.N + col';
  return gemmShader({
    tile: t, threads: t.threads, prefetch, sharedPad: PAD,
    // Measured on lavapipe (software Vulkan); GPUs were not measured.
    registerLayout: t.tm >= 8 ? 'runs' : 'strided',
    aOrder: transA ? 'row' : 'k',
    bOrder: transB ? 'k' : 'column',
    decls: '', init: '',
    privates: 'var<private> aOff: u32; var<private> bOff: u32; var<private> k0: u32;',
    // A [column tiles, row tiles, batch] grid: decoding a linear index costs three divisions per invocation,
    // 10% of a small matmul on lavapipe.
    decode: 'let tn = wid.x; let tm = wid.y; let bz = wid.z;',
    setup: 'aOff = p.aBase + bz * p.strideA; bOff = p.bBase + bz * p.strideB;',
    tBegin: '0u',
    tEnd: 'p.kT',
    tileSetup: `k0 = t * ${t.bk}u;`,
    loadA: `let k = k0 + kc; let ok = (row < p.M) & (k < p.K); return select(0.0, as_[select(0u, ${a}, ok)], ok);`,
    loadB: `let k = k0 + kr; let ok = (col < p.N) & (k < p.K); return select(0.0, bs[select(0u, ${b}, ok)], ok);`,
    store: 'cs[p.cBase + bz * p.M * p.N + row * p.N + col] = v;',
  });
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
  checkTile(gpu, t, 'matmul', PAD);
  const maxGrid = gpu.limits.maxComputeWorkgroupsPerDimension;
  const nT = Math.ceil(n / t.bn);
  const mT = Math.ceil(m / t.bm);
  if (nT > maxGrid || mT > maxGrid) {
    throw new RangeError(`matmul: [${m}, ${n}] output needs a ${mT} x ${nT} grid of ${t.name} tiles, over ${maxGrid} per dimension`);
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
  const prefetch = !isSoftwareAdapter(gpu);
  const key = `matmul:${t.name}:${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}${prefetch ? ':pf' : ''}`;
  const pipeline = matmulSignature.pipeline(gpu, key, () => matmulWgsl(t, transA, transB, prefetch));
  for (let b0 = 0; b0 < batch; b0 += per) {
    const count = Math.min(per, batch - b0);
    const aw = alignedWindow(gpu, a, b0 * sA, (count - 1) * sA + sizeA);
    const bw = alignedWindow(gpu, b, b0 * sB, (count - 1) * sB + sizeB);
    const cw = alignedWindow(gpu, out, b0 * sizeC, count * sizeC);
    const uniforms = {
      total: nT * mT * count, M: m, N: n, K: k, kT: Math.ceil(k / t.bk), strideA: sA, strideB: sB, aBase: aw.base, bBase: bw.base, cBase: cw.base,
    };
    gpu.dispatch({
      pipeline, label: `matmul:${t.name}`, workgroups: [nT, mT, count], flops: 2 * count * m * n * k,
      ...matmulSignature.bind(uniforms, { as_: aw.binding, bs: bw.binding, cs: cw.binding }),
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
