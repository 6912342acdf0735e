/**
 * conv3d on NCDHW f32 tensors (cross-correlation as PyTorch's F.conv3d): forward, data gradient, weight
 * gradient (split-K, deterministic two-pass reduction) and bias gradient.
 *
 * All three convolutions are implicit GEMMs (no im2col buffer): a workgroup computes a BM x BN block of the
 * product, staging BK-deep slices of both operands in workgroup memory, and every invocation accumulates a
 * TM x TN register tile. The operand that runs over voxels is gathered on the fly from the NCDHW tensor,
 * with the padding handled by bounds checks.
 *
 *   forward:  out[co, vox]    = sum_{ci,kd,kh,kw} w[co, ci, kd, kh, kw] * x[ci, vox*s - p + (kd, kh, kw)]
 *   data:     gx[ci, vox]     = sum_{co,kd,kh,kw} w[co, ci, kd, kh, kw] * gy[co, (vox + p - (kd, kh, kw)) / s]
 *   weight:   gw[co, ci, kpos] = sum_{n, vox}      gy[n, co, vox] * x[n, ci, vox*s - p + kpos]
 *
 * Tensors larger than one storage binding are processed in slabs: windows over the batch, then over channel
 * chunks (accumulating partial sums in stream order), then over depth. See `planSlabs`.
 */
import { isSoftwareAdapter, type Binding, type Gpu } from './runtime/gpu.js';
import { alignedWindow, type AlignedWindow } from './runtime/windows.js';
import {
  directConvBackwardData, directConvForward, planDirectWeightGrad, sumSlots, type DirectBlocking,
} from './conv3d-direct.js';
import { checkBuffer, checkShape } from './runtime/wgsl.js';

/** The geometry of one convolution. */
export interface Conv3dShape {
  /** Input [N, Cin, D, H, W]. */
  x: readonly number[];
  /** Weight [Cout, Cin, k, k, k] (cubic kernel). */
  w: readonly number[];
  /** Stride, the same on all three axes (default 1). */
  stride?: number;
  /** Zero padding on every side of all three axes (default 0, as PyTorch; TGNet uses k >> 1). */
  padding?: number;
}

/** A GEMM tile: BM x BN outputs per workgroup, BK-deep operand slices, TM x TN outputs per invocation. */
export interface Conv3dTile {
  bm: number;
  bn: number;
  bk: number;
  tm: number;
  tn: number;
}

export interface Conv3dOptions {
  /** Largest storage binding to use, in bytes (default and upper bound: the device's maxStorageBufferBindingSize). Tests lower it to force slabs. */
  maxBindingBytes?: number;
  /** Overrides the tile chosen from the shape and the device limits. */
  tile?: Conv3dTile;
  /** Weight and bias gradients: number of split-K chunks per sample (default chosen from the shape). */
  splitK?: number;
  /**
   * Compile the tensor sizes into the shader as constants (one pipeline per layer shape; divisions by constants
   * are cheap) instead of reading them from the params (one pipeline per kernel size, stride and tile).
   * Default: true on hardware adapters, false on software ones, where each pipeline takes seconds to compile.
   */
  specialize?: boolean;
  /** Register prefetch of the next tile's operands (default: true on hardware adapters, false on software ones). */
  prefetch?: boolean;
  /**
   * Use the direct kernels of conv3d-direct.ts (no workgroup memory, no barriers) instead of the implicit GEMMs.
   * Default: true on software adapters unless a `tile` is given. Shapes the direct kernels do not take (a
   * stride-2 data gradient, one sample past a binding) fall back to the GEMMs.
   */
  direct?: boolean;
  /** Register blocking of the direct kernels (default chosen from the channel count). */
  directBlocking?: DirectBlocking;
}

function useDirect(gpu: Gpu, options: Conv3dOptions): boolean {
  return options.direct ?? (options.tile === undefined && isSoftwareAdapter(gpu));
}

/** [N, Cout, Do, Ho, Wo] of conv3d(x, w) with Do = floor((D + 2p - k) / s) + 1; throws on bad shapes. */
export function conv3dOutputShape(
  xShape: readonly number[], wShape: readonly number[], opts: { stride?: number; padding?: number } = {},
): number[] {
  return geometry({ x: xShape, w: wShape, stride: opts.stride, padding: opts.padding }, 'conv3d').out;
}

interface Geom {
  N: number; Cin: number; D: number; H: number; W: number;
  Cout: number; k: number; s: number; p: number;
  Do: number; Ho: number; Wo: number;
  out: number[];
}

function geometry(shape: Conv3dShape, what: string): Geom {
  const { x, w } = shape;
  checkShape(x as number[], `${what} input`);
  checkShape(w as number[], `${what} weight`);
  if (x.length !== 5) throw new RangeError(`${what}: input must be [N, Cin, D, H, W], got [${x.join(', ')}]`);
  if (w.length !== 5) throw new RangeError(`${what}: weight must be [Cout, Cin, k, k, k], got [${w.join(', ')}]`);
  const [N, Cin, D, H, W] = x;
  const [Cout, wCin, k, kh, kw] = w;
  if (wCin !== Cin) {
    throw new RangeError(
      `${what}: weight [${w.join(', ')}] expects ${wCin} input channels but input [${x.join(', ')}] has ${Cin}`,
    );
  }
  if (k !== kh || k !== kw) throw new RangeError(`${what}: kernel must be cubic, got weight [${w.join(', ')}]`);
  if (k < 1) throw new RangeError(`${what}: kernel size must be at least 1, got weight [${w.join(', ')}]`);
  if (Cin < 1 || Cout < 1) throw new RangeError(`${what}: channel counts must be positive, got input [${x.join(', ')}] and weight [${w.join(', ')}]`);
  const s = shape.stride ?? 1;
  const p = shape.padding ?? 0;
  if (!Number.isInteger(s) || s < 1) throw new RangeError(`${what}: stride must be a positive integer, got ${s}`);
  if (!Number.isInteger(p) || p < 0) throw new RangeError(`${what}: padding must be a non-negative integer, got ${p}`);
  const o = (n: number) => Math.floor((n + 2 * p - k) / s) + 1;
  const [Do, Ho, Wo] = [o(D), o(H), o(W)];
  const out = [N, Cout, Math.max(Do, 0), Math.max(Ho, 0), Math.max(Wo, 0)];
  if (N < 1 || Do < 1 || Ho < 1 || Wo < 1) {
    throw new RangeError(
      `${what}: output would be empty: input [${x.join(', ')}] with kernel ${k}, stride ${s}, padding ${p} gives [${out.join(', ')}]`,
    );
  }
  return { N, Cin, D, H, W, Cout, k, s, p, Do, Ho, Wo, out };
}

// ---------------------------------------------------------------------------------------------------------
// Tiles

/**
 * The tile for an M x N GEMM (M: channels, N: voxels or weight columns) within the device limits: up to
 * 128 x 128 with 8 x 8 outputs per invocation on hardware; on software adapters at most 4 x 4 per invocation
 * (an 8 x 8 register tile takes lavapipe 5-15 s to compile and runs no faster there).
 */
export function chooseConv3dTile(gpu: Gpu, M: number, N: number, opts: { software?: boolean } = {}): Conv3dTile {
  const maxT = gpu.limits.maxComputeInvocationsPerWorkgroup;
  if (opts.software ?? isSoftwareAdapter(gpu)) {
    const [bm, tm] = M >= 48 ? [64, 4] : M >= 24 ? [32, 4] : [16, 2];
    const tn = N <= 32 ? 2 : 4;
    const tx = Math.min(16, Math.floor(Math.min(256, maxT) / (bm / tm)));
    return { bm, bn: tx * tn, bk: 8, tm, tn };
  }
  let bm: number;
  let tm: number;
  if (M >= 96) [bm, tm] = [128, 8];
  else if (M >= 48) [bm, tm] = [64, 4];
  else if (M >= 24) [bm, tm] = [32, 4];
  else if (M >= 12) [bm, tm] = [16, 2];
  else if (M >= 6) [bm, tm] = [8, 1];
  else [bm, tm] = [4, 1];
  const ty = bm / tm;
  let tx = Math.max(1, Math.floor(Math.min(256, maxT) / ty));
  // Narrow GEMMs (few weight columns) use fewer, not idler, invocations.
  while (tx > 8 && tx / 2 >= N) tx /= 2;
  let tn = 8;
  while (tn > 1 && tx * tn / 2 >= N) tn /= 2;
  while (tn > ty) tn /= 2; // BN <= invocations: every invocation loads one fixed B column
  while (ty / tn > 8) tn *= 2; // at most BK rows of B per pass
  return { bm, bn: tx * tn, bk: 8, tm, tn };
}

function checkTile(gpu: Gpu, t: Conv3dTile, what: string): number {
  const threads = (t.bm / t.tm) * (t.bn / t.tn);
  const ok = [t.bm, t.bn, t.bk, t.tm, t.tn].every((v) => Number.isInteger(v) && v >= 1)
    && t.bm % t.tm === 0 && t.bn % t.tn === 0
    && threads <= gpu.limits.maxComputeInvocationsPerWorkgroup
    && threads % t.bn === 0 && (t.bk * t.bn) % threads === 0
    && (t.tm < 4 || t.tm % 4 === 0) && (t.tn < 4 || t.tn % 4 === 0)
    && 4 * t.bk * (t.bm + t.bn) <= gpu.limits.maxComputeWorkgroupStorageSize;
  if (!ok) {
    throw new RangeError(
      `${what}: tile ${JSON.stringify(t)} is invalid here (needs tm | bm, tn | bn, (bm/tm)(bn/tn) invocations <= ` +
      `${gpu.limits.maxComputeInvocationsPerWorkgroup} and a multiple of bn, bk*bn a multiple of the invocations, ` +
      `tm and tn 1, 2 or a multiple of 4, workgroup storage <= ${gpu.limits.maxComputeWorkgroupStorageSize} bytes)`,
    );
  }
  return threads;
}

const tileKey = (t: Conv3dTile) => `${t.bm}x${t.bn}x${t.bk}/${t.tm}x${t.tn}`;

// ---------------------------------------------------------------------------------------------------------
// Slabs

/** One tensor as [N, C, D, HW] for windowing. */
interface Vol { c: number; d: number; hw: number }

/** A slab: the batch range, the depth range of the 'driving' tensor, and channel chunks of both sides. */
interface Slab {
  n0: number; nc: number;
  /** Depth range of the driving tensor (the GEMM's voxel axis, or the reduction axis of the weight gradient). */
  d0: number; dc: number;
  /** Depth range [lo, hi) of the gathered tensor that the driving range needs. */
  lo: number; hi: number;
  /** Channel chunk of the driving tensor. */
  a0: number; ac: number;
  /** Channel chunk of the gathered tensor. */
  b0: number; bc: number;
  firstB: boolean;
  firstReduction: boolean;
}

interface SlabPlan { nc: number; dc: number; ac: number; bc: number }

/** Largest binding in f32 elements, leaving room to align the window's start down. */
function bindingBudget(gpu: Gpu, options: Conv3dOptions | undefined, what: string): number {
  const limit = gpu.limits.maxStorageBufferBindingSize;
  const max = Math.min(limit, options?.maxBindingBytes ?? limit);
  const align = gpu.limits.minStorageBufferOffsetAlignment;
  const budget = Math.floor((max - align) / 4);
  if (!(budget >= 1)) throw new RangeError(`${what}: maxBindingBytes ${max} must exceed the offset alignment ${align}`);
  return budget;
}

/**
 * Chooses slab sizes so that the driving tensor `A` (depth range d0..d0+dc) and the gathered tensor `B`
 * (depth range map(d0, dc)) each fit `budget` elements: the whole batch if possible, else one sample at a time
 * with channel chunks, else one channel at a time over depth ranges.
 */
function planSlabs(
  N: number, A: Vol, B: Vol, map: (d0: number, dc: number) => [number, number], budget: number, what: string,
): SlabPlan {
  const need = (dc: number) => {
    let m = 0;
    for (let d0 = 0; d0 < A.d; d0 += dc) {
      const [lo, hi] = map(d0, Math.min(dc, A.d - d0));
      m = Math.max(m, hi - lo);
    }
    return m;
  };
  const spanA = (nc: number, cc: number, dc: number) => (nc - 1) * A.c * A.d * A.hw + (cc - 1) * A.d * A.hw + dc * A.hw;
  const spanB = (nc: number, cc: number, dn: number) => (nc - 1) * B.c * B.d * B.hw + (cc - 1) * B.d * B.hw + dn * B.hw;
  const fullNeed = need(A.d);
  for (let nc = N; nc >= 1; nc--) {
    if (spanA(nc, A.c, A.d) <= budget && spanB(nc, B.c, fullNeed) <= budget) return { nc, dc: A.d, ac: A.c, bc: B.c };
  }
  const ac = Math.min(A.c, Math.floor(budget / (A.d * A.hw)));
  const bc = fullNeed * B.hw > budget ? 0 : Math.min(B.c, Math.floor((budget - fullNeed * B.hw) / (B.d * B.hw)) + 1);
  if (ac >= 1 && bc >= 1) return { nc: 1, dc: A.d, ac, bc };
  for (let dc = Math.min(A.d, Math.floor(budget / A.hw)); dc >= 1; dc--) {
    if (need(dc) * B.hw <= budget) return { nc: 1, dc, ac: 1, bc: 1 };
  }
  throw new RangeError(
    `${what}: one depth plane does not fit a storage binding of ${budget * 4} bytes (planes of ${A.hw} and ${B.hw} elements)`,
  );
}

function* slabs(N: number, A: Vol, B: Vol, map: (d0: number, dc: number) => [number, number], plan: SlabPlan): Generator<Slab> {
  for (let n0 = 0; n0 < N; n0 += plan.nc) {
    for (let d0 = 0; d0 < A.d; d0 += plan.dc) {
      const dc = Math.min(plan.dc, A.d - d0);
      const [lo, hi] = map(d0, dc);
      for (let a0 = 0; a0 < A.c; a0 += plan.ac) {
        for (let b0 = 0; b0 < B.c; b0 += plan.bc) {
          yield {
            n0, nc: Math.min(plan.nc, N - n0), d0, dc, lo, hi,
            a0, ac: Math.min(plan.ac, A.c - a0), b0, bc: Math.min(plan.bc, B.c - b0),
            firstB: b0 === 0, firstReduction: n0 === 0 && d0 === 0,
          };
        }
      }
    }
  }
}

/** A window of `buffer` covering elements [start, start + span); a start past the end is clamped (empty slabs). */
function windowOf(gpu: Gpu, buffer: GPUBuffer, start: number, span: number): AlignedWindow {
  return alignedWindow(gpu, buffer, Math.min(start, Math.floor(buffer.size / 4) - 1), span);
}

/** Window into an [N, C, D, HW] tensor for batch, channel and depth ranges. */
function volWindow(gpu: Gpu, buffer: GPUBuffer, v: Vol, n0: number, nc: number, c0: number, cc: number, d0: number, dn: number) {
  const start = ((n0 * v.c + c0) * v.d + d0) * v.hw;
  const span = (nc - 1) * v.c * v.d * v.hw + (cc - 1) * v.d * v.hw + dn * v.hw;
  return windowOf(gpu, buffer, start, span);
}

/** Gathered input depth range [lo, hi) for output depths [d0, d0 + dc). */
function forwardDepthMap(g: Geom): (d0: number, dc: number) => [number, number] {
  return (d0, dc) => {
    const lo = Math.max(0, d0 * g.s - g.p);
    const hi = Math.min(g.D, (d0 + dc - 1) * g.s - g.p + g.k);
    return hi > lo ? [lo, hi] : [lo, lo];
  };
}

/** Output depth range [lo, hi) that input depths [d0, d0 + dc) receive gradient from. */
function backwardDepthMap(g: Geom): (d0: number, dc: number) => [number, number] {
  return (d0, dc) => {
    const lo = Math.max(0, Math.ceil((d0 + g.p - (g.k - 1)) / g.s));
    const hi = Math.min(g.Do, Math.floor((d0 + dc - 1 + g.p) / g.s) + 1);
    return hi > lo ? [lo, hi] : [Math.min(lo, g.Do - 1), Math.min(lo, g.Do - 1)];
  };
}

// ---------------------------------------------------------------------------------------------------------
// WGSL: the GEMM skeleton shared by the three convolutions

interface GemmParts {
  tile: Conv3dTile;
  threads: number;
  /** Params struct, bindings and constants. */
  decls: string;
  /** First statements of main (initialises size variables of generic shaders). */
  init: string;
  /** Statements decoding `lin` into `tm`, `tn` (tile indices) and whatever else the mode needs (e.g. `nl`). */
  decode: string;
  /** Per-invocation setup of the B column `bcol` (0..BN-1 within the tile, global column n0 + bcol), into private vars. */
  bColumn: string;
  /**
   * The reduction runs over BK-deep tiles t in [tBegin, tEnd); `tileSetup` (statements using `t`) sets the
   * private variables that loadA/loadB use for tile t (e.g. its first reduction index, or its kernel offset).
   */
  tBegin: string;
  tEnd: string;
  tileSetup: string;
  /** Body of `fn loadA(row: u32, kc: u32) -> f32` (row: GEMM row within the slab, kc: 0..BK-1 within the tile). */
  loadA: string;
  /** Body of `fn loadB(kr: u32) -> f32` for this invocation's B column (kr: 0..BK-1 within the tile). */
  loadB: string;
  /** Statements storing `v` for global row `row` and column `col` (bounds already checked against p.M, p.N). */
  store: string;
  /** Private variables used by loadA/loadB (declarations). */
  privates: string;
  /**
   * Load the next tile's operands into registers while computing on the current one (hides global-memory
   * latency on GPUs; software adapters skip it: it doubles the gather code that lavapipe has to compile).
   */
  prefetch: boolean;
}

function gemmShader(g: GemmParts): string {
  const { bm, bn, bk, tm, tn } = g.tile;
  const T = g.threads;
  const TX = bn / tn;
  const TY = bm / tm;
  const VM = Math.min(4, tm);
  const VN = Math.min(4, tn);
  const nA = Math.ceil((bm * bk) / T);
  const aGuard = (bm * bk) % T !== 0;
  const rowsPerPass = T / bn;
  const nB = (bk * bn) / T;
  const rowOf = (i: number) => `${Math.floor(i / VM) * TY * VM + (i % VM)}u + ty * ${VM}u`;
  const colOf = (j: number) => `${Math.floor(j / VN) * TX * VN + (j % VN)}u + tx * ${VN}u`;
  const lines: string[] = [];
  const loadGlobal = (t: string) => {
    const out: string[] = [`tileSetup(${t});`];
    for (let j = 0; j < nA; j++) {
      const e = `(lid + ${j * T}u)`;
      const body = `ra${j} = loadA(m0 + ${e} / ${bk}u, ${e} % ${bk}u);`;
      out.push(aGuard ? `if (${e} < ${bm * bk}u) { ${body} }` : body);
    }
    for (let j = 0; j < nB; j++) out.push(`rb${j} = loadB(brow + ${j * rowsPerPass}u);`);
    return out.join('\n      ');
  };
  const storeShared = () => {
    const out: string[] = [];
    for (let j = 0; j < nA; j++) {
      const e = `(lid + ${j * T}u)`;
      const body = `As[(${e} % ${bk}u) * ${bm}u + ${e} / ${bk}u] = ra${j};`;
      out.push(aGuard ? `if (${e} < ${bm * bk}u) { ${body} }` : body);
    }
    for (let j = 0; j < nB; j++) out.push(`Bs[(brow + ${j * rowsPerPass}u) * ${bn}u + bcol] = rb${j};`);
    return out.join('\n    ');
  };
  for (let i = 0; i < tm; i++) lines.push(`let a${i} = As[kk * ${bm}u + ${rowOf(i)}];`);
  for (let j = 0; j < tn; j++) lines.push(`let b${j} = Bs[kk * ${bn}u + ${colOf(j)}];`);
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) lines.push(`c${i}_${j} = fma(a${i}, b${j}, c${i}_${j});`);
  const accDecl: string[] = [];
  for (let i = 0; i < tm; i++) accDecl.push(`var ${Array.from({ length: tn }, (_, j) => `c${i}_${j} = 0.0`).join('; var ')};`);
  const stores: string[] = [];
  for (let i = 0; i < tm; i++) {
    stores.push(`row = m0 + ${rowOf(i)};`);
    for (let j = 0; j < tn; j++) {
      stores.push(`col = n0 + ${colOf(j)}; if (row < p.M && col < p.N) { let v = c${i}_${j}; ${g.store} }`);
    }
  }
  return /* wgsl */ `
${g.decls}
${g.privates}
var<workgroup> As: array<f32, ${bk * bm}>;
var<workgroup> Bs: array<f32, ${bk * bn}>;

fn tileSetup(t: u32) {
  ${g.tileSetup}
}
fn loadA(row: u32, kc: u32) -> f32 {
  ${g.loadA}
}
fn loadB(kr: u32) -> f32 {
  ${g.loadB}
}

@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  ${g.init}
  let lin = wid.x + nwg.x * (wid.y + nwg.y * wid.z);
  if (lin >= p.total) { return; }
  ${g.decode}
  let m0 = tm * ${bm}u;
  let n0 = tn * ${bn}u;
  let tx = lid % ${TX}u;
  let ty = lid / ${TX}u;
  let bcol = lid % ${bn}u;
  let brow = lid / ${bn}u;
  ${g.bColumn}
  let tBegin = ${g.tBegin};
  let tEnd = ${g.tEnd};
  ${accDecl.join('\n  ')}
  ${Array.from({ length: nA }, (_, j) => `var ra${j} = 0.0;`).join(' ')}
  ${Array.from({ length: nB }, (_, j) => `var rb${j} = 0.0;`).join(' ')}
  ${g.prefetch ? `if (tBegin < tEnd) {
    ${loadGlobal('tBegin')}
  }` : ''}
  for (var t = tBegin; t < tEnd; t++) {
    ${g.prefetch ? '' : loadGlobal('t')}
    ${storeShared()}
    workgroupBarrier();
    ${g.prefetch ? `if (t + 1u < tEnd) {
      ${loadGlobal('t + 1u')}
    }` : ''}
    for (var kk = 0u; kk < ${bk}u; kk++) {
      ${lines.join('\n      ')}
    }
    workgroupBarrier();
  }
  var row = 0u;
  var col = 0u;
  ${stores.join('\n  ')}
}`;
}

/** Tensor sizes a shader reads either as constants (specialised) or from the params (generic). */
const DIM_NAMES = ['D', 'H', 'W', 'HW', 'DHW', 'DO', 'HO', 'WO', 'HWO', 'DHWO', 'PAD', 'XS', 'OS', 'WROW', 'WSIZE'];

function dimValues(g: Geom): number[] {
  const K3 = g.k ** 3;
  const [DHW, DHWO] = [g.D * g.H * g.W, g.Do * g.Ho * g.Wo];
  return [g.D, g.H, g.W, g.H * g.W, DHW, g.Do, g.Ho, g.Wo, g.Ho * g.Wo, DHWO, g.p, g.Cin * DHW, g.Cout * DHWO, g.Cin * K3, g.Cout * g.Cin * K3];
}

/**
 * WGSL declarations of the sizes (`decl`, module scope) and their initialisation (`init`, first statements of
 * main). Kernel size and stride are always constants; the rest are constants only when specialised.
 */
function geomConsts(g: Geom, specialize: boolean): { decl: string; init: string } {
  const fixed = `const KS = ${g.k}u; const K2 = ${g.k * g.k}u; const K3 = ${g.k ** 3}u; const S = ${g.s}u;`;
  if (specialize) {
    const v = dimValues(g);
    const decl = DIM_NAMES.map((n, i) => (n === 'PAD' ? `const P = ${v[i]}i;` : `const ${n} = ${v[i]}u;`)).join(' ');
    return { decl: `${fixed}\n${decl}`, init: '' };
  }
  const decl = DIM_NAMES.map((n) => (n === 'PAD' ? 'var<private> P: i32;' : `var<private> ${n}: u32;`)).join(' ');
  const init = DIM_NAMES.map((n) => (n === 'PAD' ? 'P = i32(p.PAD);' : `${n} = p.${n};`)).join(' ');
  return { decl: `${fixed}\n${decl}`, init };
}

/** WGSL statements splitting kernel offset `r` (< K3) into kd, kh, kw. */
function splitKpos(g: Geom, r: string): string {
  if (g.k === 1) return 'let kd = 0u; let kh = 0u; let kw = 0u;';
  return `let kd = ${r} / K2; let krem = ${r} - kd * K2; let kh = krem / KS; let kw = krem - kh * KS;`;
}

const PARAMS = (fields: string[], dims = false) => `struct Params { ${[...fields, ...(dims ? DIM_NAMES : [])].map((f) => `${f}: u32`).join(', ')} }
@group(0) @binding(0) var<uniform> p: Params;`;

function packU32(values: number[]): Uint32Array {
  const a = new Uint32Array(Math.max(4, Math.ceil(values.length / 4) * 4));
  values.forEach((v, i) => {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`conv3d: param ${i} = ${v} is not a u32`);
    a[i] = v;
  });
  return a;
}

function geomKey(g: Geom, specialize: boolean): string {
  return specialize ? `${g.N}x${g.Cin}x${g.D}x${g.H}x${g.W}:${g.Cout}k${g.k}s${g.s}p${g.p}` : `k${g.k}s${g.s}`;
}

// ---------------------------------------------------------------------------------------------------------
// Forward

const FWD_FIELDS = ['total', 'nT', 'mT', 'M', 'N', 'C', 'cT', 'kT', 'xBase', 'oBase', 'wBase', 'co0', 'od0', 'id0', 'accumulate'];

/**
 * Whether the reduction runs kernel-offset-major ((kd, kh, kw) outer, channels inner in BK chunks): the tap's
 * bounds check and offset are then computed once per tile instead of per element, at the price of padding
 * each offset's channel run to a multiple of BK. Used when the gathered channel count is a multiple of BK or large.
 */
function offsetMajor(channels: number, k: number, tile: Conv3dTile): boolean {
  return k > 1 && (channels % tile.bk === 0 || channels >= 4 * tile.bk);
}

/** out = conv3d(x, w) + bias on NCDHW f32 buffers; `out` holds conv3dOutputShape(shape.x, shape.w, shape). */
export function conv3dForward(
  gpu: Gpu, x: GPUBuffer, w: GPUBuffer, bias: GPUBuffer | null, out: GPUBuffer, shape: Conv3dShape,
  options: Conv3dOptions = {},
): void {
  const what = 'conv3d forward';
  const g = geometry(shape, what);
  const K3 = g.k ** 3;
  checkBuffer(x, g.N * g.Cin * g.D * g.H * g.W, `${what} input`);
  checkBuffer(w, g.Cout * g.Cin * K3, `${what} weight`);
  if (bias) checkBuffer(bias, g.Cout, `${what} bias`);
  checkBuffer(out, g.N * g.Cout * g.Do * g.Ho * g.Wo, `${what} output`);
  const budget = bindingBudget(gpu, options, what);
  checkWeightFits(g, budget, what);
  if (useDirect(gpu, options) && directConvForward(gpu, x, w, bias, out, g, budget, options.directBlocking)) return;
  const tile = options.tile ?? chooseConv3dTile(gpu, g.Cout, g.Do * g.Ho * g.Wo);
  const threads = checkTile(gpu, tile, what);
  const spec = options.specialize ?? !isSoftwareAdapter(gpu);
  const dims = geomConsts(g, spec);
  const prefetch = options.prefetch ?? !isSoftwareAdapter(gpu);
  const hasBias = bias !== null;
  const major = offsetMajor(g.Cin, g.k, tile);
  const BK = `${tile.bk}u`;
  const pipeline = gpu.pipeline(`conv3d:fwd:${geomKey(g, spec)}:${tileKey(tile)}:${prefetch ? 'pf' : ''}:${hasBias ? 'b' : ''}${major ? 'o' : ''}`, () => gemmShader({
    tile, threads, prefetch,
    init: dims.init,
    decls: `${PARAMS(FWD_FIELDS, true)}
@group(0) @binding(1) var<storage, read> xs: array<f32>;
@group(0) @binding(2) var<storage, read> ws: array<f32>;
${hasBias ? '@group(0) @binding(3) var<storage, read> bs: array<f32>;' : ''}
@group(0) @binding(${hasBias ? 4 : 3}) var<storage, read_write> ys: array<f32>;
${dims.decl}`,
    privates: `var<private> colOk: bool; var<private> bd: i32; var<private> bh: i32; var<private> bw: i32; var<private> xRow: u32;
var<private> k0: u32; var<private> kp: u32; var<private> tapOk: bool; var<private> colOff: u32;`,
    decode: 'let tn = lin % p.nT; let rest = lin / p.nT; let tm = rest % p.mT; let nl = rest / p.mT;',
    bColumn: `
  let vox = n0 + bcol;
  colOk = vox < p.N;
  let od = vox / HWO + p.od0; let rem = vox % HWO; let oh = rem / WO; let ow = rem % WO;
  bd = i32(od * S) - P; bh = i32(oh * S) - P; bw = i32(ow * S) - P;
  xRow = p.xBase + nl * XS;`,
    tBegin: '0u',
    tEnd: 'p.kT',
    tileSetup: major ? `
  kp = t / p.cT; k0 = (t - kp * p.cT) * ${BK};
  ${splitKpos(g, 'kp')}
  let id = bd + i32(kd); let ih = bh + i32(kh); let iw = bw + i32(kw);
  tapOk = colOk && u32(id) < D && u32(ih) < H && u32(iw) < W;
  colOff = xRow + (u32(id) - p.id0) * HW + u32(ih) * W + u32(iw);` : `k0 = t * ${BK};`,
    loadA: major
      ? 'let c = k0 + kc; if (row < p.M && c < p.C) { return ws[p.wBase + row * WROW + c * K3 + kp]; } return 0.0;'
      : 'let k = k0 + kc; if (row < p.M && k < p.C * K3) { return ws[p.wBase + row * WROW + k]; } return 0.0;',
    loadB: major ? 'let c = k0 + kr; if (tapOk && c < p.C) { return xs[colOff + c * DHW]; } return 0.0;' : `
  let k = k0 + kr;
  if (!colOk || k >= p.C * K3) { return 0.0; }
  let ci = k / K3; let r = k - ci * K3;
  ${splitKpos(g, 'r')}
  let id = bd + i32(kd); let ih = bh + i32(kh); let iw = bw + i32(kw);
  if (u32(id) >= D || u32(ih) >= H || u32(iw) >= W) { return 0.0; }
  return xs[xRow + ci * DHW + (u32(id) - p.id0) * HW + u32(ih) * W + u32(iw)];`,
    store: `let idx = p.oBase + nl * OS + row * DHWO + col;
    if (p.accumulate != 0u) { ys[idx] = ys[idx] + v; } else { ys[idx] = v${hasBias ? ' + bs[p.co0 + row]' : ''}; }`,
  }));
  const X: Vol = { c: g.Cin, d: g.D, hw: g.H * g.W };
  const O: Vol = { c: g.Cout, d: g.Do, hw: g.Ho * g.Wo };
  const map = forwardDepthMap(g);
  const plan = planSlabs(g.N, O, X, map, budget, what);
  for (const sl of slabs(g.N, O, X, map, plan)) {
    const xw = volWindow(gpu, x, X, sl.n0, sl.nc, sl.b0, sl.bc, sl.lo, sl.hi - sl.lo);
    const ow = volWindow(gpu, out, O, sl.n0, sl.nc, sl.a0, sl.ac, sl.d0, sl.dc);
    const Nvox = sl.dc * O.hw;
    const nT = Math.ceil(Nvox / tile.bn);
    const mT = Math.ceil(sl.ac / tile.bm);
    const total = nT * mT * sl.nc;
    const cT = Math.ceil(sl.bc / tile.bk);
    const kT = major ? K3 * cT : Math.ceil((sl.bc * K3) / tile.bk);
    const params = packU32([
      total, nT, mT, sl.ac, Nvox, sl.bc, cT, kT, xw.base, ow.base, sl.a0 * g.Cin * K3 + sl.b0 * K3, sl.a0, sl.d0, sl.lo,
      sl.firstB ? 0 : 1,
      ...dimValues(g),
    ]);
    gpu.dispatch({
      pipeline, label: 'conv3d:fwd', params, workgroups: total,
      bindings: hasBias && bias
        ? [xw.binding, whole(w, g.Cout * g.Cin * K3), whole(bias, g.Cout), ow.binding]
        : [xw.binding, whole(w, g.Cout * g.Cin * K3), ow.binding],
    });
  }
}

/** The first n f32 elements of a buffer as a binding (pooled buffers may be larger than one binding). */
function whole(buffer: GPUBuffer, n: number): Binding {
  return { buffer, offset: 0, size: n * 4 };
}

function checkWeightFits(g: Geom, budget: number, what: string): void {
  const n = g.Cout * g.Cin * g.k ** 3;
  if (n > budget) throw new RangeError(`${what}: weight of ${n} elements does not fit one storage binding (${budget * 4} bytes)`);
}

// ---------------------------------------------------------------------------------------------------------
// Data gradient

const DGRAD_FIELDS = [
  'total', 'nT', 'mT', 'M', 'N', 'C', 'cT', 'kT', 'xBase', 'gBase', 'wBase', 'id0', 'od0', 'accumulate',
  // phase-split form: the phase's voxel offsets, first depth index, extents, first taps, tap counts, output shifts
  'ad', 'ah', 'aw', 'jd0', 'nh', 'nw', 'rd', 'rh', 'rw', 'th', 'tw', 'qd', 'qh', 'qw',
];

/**
 * gradX = d(sum(gradOut * conv3d(x, w)))/dx, the transposed convolution; `gradX` holds shape.x.
 *
 * Input voxels are split into s^3 phases by (coordinate mod s). Within a phase only the taps k with
 * k = (a + p) mod s (mod s) reach an output, and output = j + q - t for phase index j and tap index t: each phase
 * is a dense implicit GEMM over exactly its taps, so a stride-2 gradient does the forward's work, not 8 times it.
 * Small channel counts with stride 1 use the element-wise gather instead (no padding of channel runs to BK).
 */
export function conv3dBackwardData(
  gpu: Gpu, gradOut: GPUBuffer, w: GPUBuffer, gradX: GPUBuffer, shape: Conv3dShape, options: Conv3dOptions = {},
): void {
  const what = 'conv3d backward data';
  const g = geometry(shape, what);
  const K3 = g.k ** 3;
  checkBuffer(gradOut, g.N * g.Cout * g.Do * g.Ho * g.Wo, `${what} gradOut`);
  checkBuffer(w, g.Cout * g.Cin * K3, `${what} weight`);
  checkBuffer(gradX, g.N * g.Cin * g.D * g.H * g.W, `${what} gradX`);
  const budget = bindingBudget(gpu, options, what);
  checkWeightFits(g, budget, what);
  if (useDirect(gpu, options) && directConvBackwardData(gpu, gradOut, w, gradX, g, budget, options.directBlocking)) return;
  const tile = options.tile ?? chooseConv3dTile(gpu, g.Cin, g.D * g.H * g.W);
  const threads = checkTile(gpu, tile, what);
  const spec = options.specialize ?? !isSoftwareAdapter(gpu);
  const dims = geomConsts(g, spec);
  const prefetch = options.prefetch ?? !isSoftwareAdapter(gpu);
  const phased = g.s > 1 || offsetMajor(g.Cout, g.k, tile);
  const BK = `${tile.bk}u`;
  const pipeline = gpu.pipeline(`conv3d:dgrad:${geomKey(g, spec)}:${tileKey(tile)}:${prefetch ? 'pf' : ''}:${phased ? 'ph' : ''}`, () => gemmShader({
    tile, threads, prefetch,
    init: dims.init,
    decls: `${PARAMS(DGRAD_FIELDS, true)}
@group(0) @binding(1) var<storage, read> gs: array<f32>;
@group(0) @binding(2) var<storage, read> ws: array<f32>;
@group(0) @binding(3) var<storage, read_write> gxs: array<f32>;
${dims.decl}`,
    privates: `var<private> colOk: bool; var<private> bd: i32; var<private> bh: i32; var<private> bw: i32; var<private> gRow: u32;
var<private> k0: u32; var<private> kpos: u32; var<private> tapOk: bool; var<private> colOff: u32;`,
    decode: 'let tn = lin % p.nT; let rest = lin / p.nT; let tm = rest % p.mT; let nl = rest / p.mT;',
    bColumn: phased ? `
  let vox = n0 + bcol;
  colOk = vox < p.N;
  let jd = vox / (p.nh * p.nw) + p.jd0; let rem = vox % (p.nh * p.nw); let jh = rem / p.nw; let jw = rem % p.nw;
  bd = i32(jd + p.qd); bh = i32(jh + p.qh); bw = i32(jw + p.qw);
  gRow = p.gBase + nl * OS;` : `
  let vox = n0 + bcol;
  colOk = vox < p.N;
  let id = vox / HW + p.id0; let rem = vox % HW; let ih = rem / W; let iw = rem % W;
  bd = i32(id) + P; bh = i32(ih) + P; bw = i32(iw) + P;
  gRow = p.gBase + nl * OS;`,
    tBegin: '0u',
    tEnd: 'p.kT',
    tileSetup: phased ? `
  let kp = t / p.cT; k0 = (t - kp * p.cT) * ${BK};
  let td = kp / (p.th * p.tw); let tr = kp % (p.th * p.tw); let th = tr / p.tw; let tw = tr % p.tw;
  kpos = ((p.rd + S * td) * KS + p.rh + S * th) * KS + p.rw + S * tw;
  let od = u32(bd - i32(td)); let oh = u32(bh - i32(th)); let ow = u32(bw - i32(tw));
  tapOk = colOk && od < DO && oh < HO && ow < WO;
  colOff = gRow + (od - p.od0) * HWO + oh * WO + ow;` : `k0 = t * ${BK};`,
    loadA: phased
      ? 'let c = k0 + kc; if (row < p.M && c < p.C) { return ws[p.wBase + c * WROW + row * K3 + kpos]; } return 0.0;'
      : `let k = k0 + kc;
  if (row < p.M && k < p.C * K3) {
    let co = k / K3; let r = k - co * K3;
    return ws[p.wBase + co * WROW + row * K3 + r];
  }
  return 0.0;`,
    loadB: phased ? 'let c = k0 + kr; if (tapOk && c < p.C) { return gs[colOff + c * DHWO]; } return 0.0;' : `
  let k = k0 + kr;
  if (!colOk || k >= p.C * K3) { return 0.0; }
  let co = k / K3; let r = k - co * K3;
  ${splitKpos(g, 'r')}
  let od = u32(bd - i32(kd)); let oh = u32(bh - i32(kh)); let ow = u32(bw - i32(kw));
  if (od >= DO || oh >= HO || ow >= WO) { return 0.0; }
  return gs[gRow + co * DHWO + (od - p.od0) * HWO + oh * WO + ow];`,
    store: phased ? `let jd = col / (p.nh * p.nw) + p.jd0; let rem = col % (p.nh * p.nw);
    let id = p.ad + S * jd; let ih = p.ah + S * (rem / p.nw); let iw = p.aw + S * (rem % p.nw);
    let idx = p.xBase + nl * XS + row * DHW + (id - p.id0) * HW + ih * W + iw;
    if (p.accumulate != 0u) { gxs[idx] = gxs[idx] + v; } else { gxs[idx] = v; }` : `let idx = p.xBase + nl * XS + row * DHW + col;
    if (p.accumulate != 0u) { gxs[idx] = gxs[idx] + v; } else { gxs[idx] = v; }`,
  }));
  const X: Vol = { c: g.Cin, d: g.D, hw: g.H * g.W };
  const O: Vol = { c: g.Cout, d: g.Do, hw: g.Ho * g.Wo };
  const map = backwardDepthMap(g);
  const plan = planSlabs(g.N, X, O, map, budget, what);
  const s = g.s;
  const ceilDiv = (a: number, b: number) => Math.ceil(a / b);
  /** Phase a of one axis: first tap r, tap count, output shift q (output = j + q - t). */
  const phaseTaps = (a: number): [number, number, number] => {
    const r = (a + g.p) % s;
    return [r, r < g.k ? ceilDiv(g.k - r, s) : 0, (a + g.p - r) / s];
  };
  const phases: number[][] = [];
  if (phased) for (let ad = 0; ad < s; ad++) for (let ah = 0; ah < s; ah++) for (let aw = 0; aw < s; aw++) phases.push([ad, ah, aw]);
  for (const sl of slabs(g.N, X, O, map, plan)) {
    const xw = volWindow(gpu, gradX, X, sl.n0, sl.nc, sl.a0, sl.ac, sl.d0, sl.dc);
    const gw = volWindow(gpu, gradOut, O, sl.n0, sl.nc, sl.b0, sl.bc, sl.lo, sl.hi - sl.lo);
    const mT = Math.ceil(sl.ac / tile.bm);
    const cT = Math.ceil(sl.bc / tile.bk);
    const common = [xw.base, gw.base, sl.b0 * g.Cin * K3 + sl.a0 * K3, sl.d0, sl.lo, sl.firstB ? 0 : 1];
    const launch = (Nvox: number, kT: number, phase: number[]) => {
      const nT = Math.ceil(Nvox / tile.bn);
      const total = nT * mT * sl.nc;
      gpu.dispatch({
        pipeline, label: 'conv3d:dgrad', workgroups: total,
        params: packU32([total, nT, mT, sl.ac, Nvox, sl.bc, cT, kT, ...common, ...phase, ...dimValues(g)]),
        bindings: [gw.binding, whole(w, g.Cout * g.Cin * K3), xw.binding],
      });
    };
    if (!phased) {
      launch(sl.dc * X.hw, Math.ceil((sl.bc * K3) / tile.bk), new Array<number>(14).fill(0));
      continue;
    }
    for (const [ad, ah, aw] of phases) {
      const jd0 = Math.max(0, ceilDiv(sl.d0 - ad, s));
      const jd1 = Math.max(jd0, ceilDiv(sl.d0 + sl.dc - ad, s));
      const nh = Math.max(0, ceilDiv(g.H - ah, s));
      const nw = Math.max(0, ceilDiv(g.W - aw, s));
      const Nvox = (jd1 - jd0) * nh * nw;
      if (Nvox === 0) continue;
      const [rd, td, qd] = phaseTaps(ad);
      const [rh, th, qh] = phaseTaps(ah);
      const [rw, tw, qw] = phaseTaps(aw);
      // A phase without taps gets no gradient: it still runs (zero tiles) to write its zeros.
      launch(Nvox, td * th * tw * cT, [ad, ah, aw, jd0, nh, nw, rd, rh, rw, th, tw, qd, qh, qw]);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Weight gradient (split-K)

const WGRAD_FIELDS = ['total', 'nT', 'mT', 'sps', 'chunk', 'M', 'N', 'R', 'xBase', 'gBase', 'pBase', 'od0', 'id0', 'accumulate'];

/** Target workgroups in flight for split-K (enough to fill a large GPU several times). */
const SPLIT_TARGET_WORKGROUPS = 1024;
/** Shortest split-K chunk of the reduction, in voxels. */
const MIN_CHUNK = 512;
/** Cap on the split-K partial buffer. */
const MAX_PARTIAL_BYTES = 256 * 1024 * 1024;

/**
 * gradW = d(sum(gradOut * conv3d(x, w)))/dw: a [Cout] x [Cin*k^3] GEMM reducing over (N, Do, Ho, Wo). The
 * reduction is split into chunks whose partial sums go to a pooled buffer (accumulated across slabs in stream
 * order) and are then summed by a second kernel: deterministic, no float atomics.
 */
export function conv3dBackwardWeight(
  gpu: Gpu, x: GPUBuffer, gradOut: GPUBuffer, gradW: GPUBuffer, shape: Conv3dShape, options: Conv3dOptions = {},
): void {
  const what = 'conv3d backward weight';
  const g = geometry(shape, what);
  const K3 = g.k ** 3;
  const wSize = g.Cout * g.Cin * K3;
  checkBuffer(x, g.N * g.Cin * g.D * g.H * g.W, `${what} input`);
  checkBuffer(gradOut, g.N * g.Cout * g.Do * g.Ho * g.Wo, `${what} gradOut`);
  checkBuffer(gradW, wSize, `${what} gradW`);
  const budget = bindingBudget(gpu, options, what);
  checkWeightFits(g, budget, what);
  const direct = useDirect(gpu, options)
    ? planDirectWeightGrad(gpu, x, gradOut, g, budget, { blocking: options.directBlocking, chunks: options.splitK })
    : null;
  if (direct) {
    const parts = direct.slots > 1 ? gpu.pool.acquire(direct.slots * wSize * 4, `${what} partials`) : gradW;
    direct.run(parts);
    if (parts !== gradW) {
      sumSlots(gpu, parts, gradW, direct.slots, wSize, `${what} reduce`);
      gpu.pool.release(parts);
    }
    return;
  }
  const tile = options.tile ?? chooseConv3dTile(gpu, g.Cout, g.Cin * K3);
  const threads = checkTile(gpu, tile, what);
  const spec = options.specialize ?? !isSoftwareAdapter(gpu);
  const dims = geomConsts(g, spec);
  const prefetch = options.prefetch ?? !isSoftwareAdapter(gpu);
  const X: Vol = { c: g.Cin, d: g.D, hw: g.H * g.W };
  const O: Vol = { c: g.Cout, d: g.Do, hw: g.Ho * g.Wo };
  const map = forwardDepthMap(g);
  const plan = planSlabs(g.N, O, X, map, budget, what);

  // Split-K from the first (largest) slab: every later slab touches a subset of its partial slots.
  const R0 = plan.dc * O.hw;
  const tiles0 = Math.ceil(plan.ac / tile.bm) * Math.ceil(plan.bc * K3 / tile.bn) * plan.nc;
  let sps = options.splitK ?? Math.max(1, Math.min(Math.ceil(SPLIT_TARGET_WORKGROUPS / tiles0), Math.ceil(R0 / MIN_CHUNK)));
  if (!Number.isInteger(sps) || sps < 1) throw new RangeError(`${what}: splitK must be a positive integer, got ${sps}`);
  const maxSlots = Math.max(1, Math.floor(Math.min(budget, MAX_PARTIAL_BYTES / 4) / wSize));
  sps = Math.max(1, Math.min(sps, Math.floor(maxSlots / plan.nc), Math.ceil(R0 / tile.bk)));
  const chunk = Math.ceil(Math.ceil(R0 / sps) / tile.bk) * tile.bk;
  sps = Math.ceil(R0 / chunk);
  const slots = plan.nc * sps;
  if (slots > maxSlots) throw new RangeError(`${what}: ${plan.nc} samples per slab need ${slots} partial weight gradients, more than fit a binding`);
  const partial = slots > 1 ? gpu.pool.acquire(slots * wSize * 4, `${what} partials`) : gradW;

  const pipeline = gpu.pipeline(`conv3d:wgrad:${geomKey(g, spec)}:${tileKey(tile)}:${prefetch ? 'pf' : ''}`, () => gemmShader({
    tile, threads, prefetch,
    init: dims.init,
    decls: `${PARAMS(WGRAD_FIELDS, true)}
@group(0) @binding(1) var<storage, read> xs: array<f32>;
@group(0) @binding(2) var<storage, read> gs: array<f32>;
@group(0) @binding(3) var<storage, read_write> parts: array<f32>;
${dims.decl}`,
    privates: `var<private> colOk: bool; var<private> ckd: u32; var<private> ckh: u32; var<private> ckw: u32; var<private> xRow: u32;
var<private> gRow: u32; var<private> k0: u32; var<private> kLim: u32;`,
    decode: `let tn = lin % p.nT; var rest = lin / p.nT; let tm = rest % p.mT; rest = rest / p.mT;
  let sp = rest % p.sps; let nl = rest / p.sps;`,
    bColumn: `
  let c = n0 + bcol;
  colOk = c < p.N;
  let ci = c / K3; let r = c - ci * K3;
  ${splitKpos(g, 'r')}
  ckd = kd; ckh = kh; ckw = kw;
  xRow = p.xBase + nl * XS + ci * DHW;
  gRow = p.gBase + nl * OS;
  kLim = min(sp * p.chunk + p.chunk, p.R);`,
    tBegin: `sp * p.chunk / ${tile.bk}u`,
    tEnd: `(min(sp * p.chunk + p.chunk, p.R) + ${tile.bk - 1}u) / ${tile.bk}u`,
    tileSetup: `k0 = t * ${tile.bk}u;`,
    loadA: 'let k = k0 + kc; if (row < p.M && k < kLim) { return gs[gRow + row * DHWO + k]; } return 0.0;',
    loadB: `
  let k = k0 + kr;
  if (!colOk || k >= kLim) { return 0.0; }
  let od = k / HWO + p.od0; let rem = k % HWO; let oh = rem / WO; let ow = rem % WO;
  let id = i32(od * S + ckd) - P; let ih = i32(oh * S + ckh) - P; let iw = i32(ow * S + ckw) - P;
  if (u32(id) >= D || u32(ih) >= H || u32(iw) >= W) { return 0.0; }
  return xs[xRow + (u32(id) - p.id0) * HW + u32(ih) * W + u32(iw)];`,
    store: `let idx = (nl * p.sps + sp) * WSIZE + p.pBase + row * WROW + col;
    if (p.accumulate != 0u) { parts[idx] = parts[idx] + v; } else { parts[idx] = v; }`,
  }));
  for (const sl of slabs(g.N, O, X, map, plan)) {
    const xw = volWindow(gpu, x, X, sl.n0, sl.nc, sl.b0, sl.bc, sl.lo, sl.hi - sl.lo);
    const gw = volWindow(gpu, gradOut, O, sl.n0, sl.nc, sl.a0, sl.ac, sl.d0, sl.dc);
    const R = sl.dc * O.hw;
    const nT = Math.ceil(sl.bc * K3 / tile.bn);
    const mT = Math.ceil(sl.ac / tile.bm);
    const spsHere = Math.ceil(R / chunk);
    const total = nT * mT * spsHere * sl.nc;
    const params = packU32([
      total, nT, mT, spsHere, chunk, sl.ac, sl.bc * K3, R, xw.base, gw.base, sl.a0 * g.Cin * K3 + sl.b0 * K3, sl.d0, sl.lo,
      sl.firstReduction ? 0 : 1,
      ...dimValues(g),
    ]);
    // Slots are numbered nl * sps + sp with this slab's sps; the first slab's numbering must cover them all.
    if (spsHere !== sps && sl.nc > 1) throw new Error(`${what}: internal slab plan error`);
    gpu.dispatch({ pipeline, label: 'conv3d:wgrad', params, workgroups: total, bindings: [xw.binding, gw.binding, whole(partial, slots * wSize)] });
  }
  if (partial !== gradW) {
    sumSlots(gpu, partial, gradW, slots, wSize, `${what} reduce`);
    gpu.pool.release(partial);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Bias gradient

/** gradB[co] = sum over the batch and all output voxels of gradOut[n, co]; deterministic two-pass reduction. */
export function conv3dBackwardBias(
  gpu: Gpu, gradOut: GPUBuffer, gradB: GPUBuffer, shape: Conv3dShape, options: Conv3dOptions = {},
): void {
  const what = 'conv3d backward bias';
  const g = geometry(shape, what);
  checkBuffer(gradOut, g.N * g.Cout * g.Do * g.Ho * g.Wo, `${what} gradOut`);
  checkBuffer(gradB, g.Cout, `${what} gradB`);
  const budget = bindingBudget(gpu, options, what);
  const O: Vol = { c: g.Cout, d: g.Do, hw: g.Ho * g.Wo };
  const none = (): [number, number] => [0, 0];
  const plan = planSlabs(g.N, O, { c: 1, d: 1, hw: 0 }, none, budget, what);
  const R0 = plan.dc * O.hw;
  const wg = Math.min(256, gpu.limits.maxComputeInvocationsPerWorkgroup);
  let sps = options.splitK ?? Math.max(1, Math.min(Math.ceil(256 / plan.ac), Math.ceil(R0 / (16 * wg))));
  if (!Number.isInteger(sps) || sps < 1) throw new RangeError(`${what}: splitK must be a positive integer, got ${sps}`);
  sps = Math.min(sps, R0, Math.max(1, Math.floor(budget / g.Cout)));
  const chunk = Math.ceil(R0 / sps);
  sps = Math.ceil(R0 / chunk);
  const partial = sps > 1 ? gpu.pool.acquire(sps * g.Cout * 4, `${what} partials`) : gradB;
  const pipeline = gpu.pipeline(`conv3d:bgrad:${wg}`, () => /* wgsl */ `
${PARAMS(['total', 'M', 'nc', 'R', 'chunk', 'gBase', 'co0', 'accumulate', 'COUT', 'DHWO'])}
@group(0) @binding(1) var<storage, read> gs: array<f32>;
@group(0) @binding(2) var<storage, read_write> parts: array<f32>;
var<workgroup> red: array<f32, ${wg}>;
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let lin = wid.x + nwg.x * (wid.y + nwg.y * wid.z);
  if (lin >= p.total) { return; }
  let co = lin % p.M; let sp = lin / p.M;
  let COUT = p.COUT; let DHWO = p.DHWO;
  let k0 = sp * p.chunk; let k1 = min(k0 + p.chunk, p.R);
  var s = 0.0;
  for (var nl = 0u; nl < p.nc; nl++) {
    let base = p.gBase + nl * COUT * DHWO + co * DHWO;
    for (var k = k0 + lid; k < k1; k += ${wg}u) { s += gs[base + k]; }
  }
  red[lid] = s;
  workgroupBarrier();
  for (var h = ${wg / 2}u; h > 0u; h >>= 1u) {
    if (lid < h) { red[lid] += red[lid + h]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let idx = sp * COUT + p.co0 + co;
    if (p.accumulate != 0u) { parts[idx] = parts[idx] + red[0]; } else { parts[idx] = red[0]; }
  }
}`);
  for (const sl of slabs(g.N, O, { c: 1, d: 1, hw: 0 }, none, plan)) {
    const gw = volWindow(gpu, gradOut, O, sl.n0, sl.nc, sl.a0, sl.ac, sl.d0, sl.dc);
    const R = sl.dc * O.hw;
    const spsHere = Math.ceil(R / chunk);
    const total = sl.ac * spsHere;
    gpu.dispatch({
      pipeline, label: 'conv3d:bgrad', workgroups: total, bindings: [gw.binding, whole(partial, sps * g.Cout)],
      params: packU32([total, sl.ac, sl.nc, R, chunk, gw.base, sl.a0, sl.firstReduction ? 0 : 1, g.Cout, g.Do * g.Ho * g.Wo]),
    });
  }
  if (partial !== gradB) {
    sumSlots(gpu, partial, gradB, sps, g.Cout, `${what} reduce`);
    gpu.pool.release(partial);
  }
}
