/**
 * The tiled GEMM skeleton shared by the three conv3d implicit GEMMs and by matmul: a workgroup computes a
 * BM x BN block of C = A B, staging BK-deep slices of both operands in workgroup memory, and every invocation
 * accumulates a TM x TN register tile.
 * The caller supplies how an operand element is loaded (`loadA`, `loadB`: a dense matrix, or a gather from an
 * NCDHW tensor) and stored, and the skeleton does the tiling, the cooperative loads and the register blocking.
 *
 * The shader reads `p.total` (workgroups in the linear grid; `lin` < p.total is the workgroup's index in it),
 * `p.M` and `p.N` (rows and columns of this dispatch's C, for the bounds checks of the stores).
 */

/** A GEMM tile: BM x BN outputs per workgroup, BK-deep operand slices, TM x TN outputs per invocation. */
export interface GemmTile {
  bm: number;
  bn: number;
  bk: number;
  tm: number;
  tn: number;
}

export interface GemmParts {
  tile: GemmTile;
  /** Invocations per workgroup, (bm / tm) * (bn / tn) (see checkTile). */
  threads: number;
  /** Module-scope declarations beyond the signature's (constants, private sizes). */
  decls: string;
  /** First statements of main (initialises size variables of generic shaders). */
  init: string;
  /** Statements decoding `lin` (the linear workgroup index) into `tm`, `tn` (tile indices) and whatever else the kernel needs. */
  decode: string;
  /**
   * Per-invocation setup into private variables, after the decode; `n0 + bcol` is the one B column this
   * invocation loads in 'column' order (0 <= bcol < BN), so its per-column state belongs here.
   */
  setup: string;
  /**
   * The reduction runs over BK-deep tiles t in [tBegin, tEnd); `tileSetup` (statements using `t`) sets the
   * private variables that loadA/loadB use for tile t (e.g. its first reduction index, or its kernel offset).
   */
  tBegin: string;
  tEnd: string;
  tileSetup: string;
  /** Body of `fn loadA(row: u32, kc: u32) -> f32` (row: GEMM row m0 + .., kc: 0..BK-1 within the tile). */
  loadA: string;
  /** Body of `fn loadB(col: u32, kr: u32) -> f32` (col: GEMM column n0 + .., kr: 0..BK-1 within the tile). */
  loadB: string;
  /** Statements storing `v` for GEMM row `row` and column `col` (bounds already checked against p.M, p.N). */
  store: string;
  /** Private variables used by loadA/loadB/store (declarations). */
  privates: string;
  /**
   * Which index runs fastest across neighbouring invocations in the cooperative loads: A 'k' (rows of a
   * row-major A) or 'row' (a transposed A); B 'column' (each invocation keeps one column: row-major B and
   * gathers with per-column state) or 'k' (a transposed B). Default 'k' and 'column'.
   */
  aOrder?: 'k' | 'row';
  bOrder?: 'column' | 'k';
  /**
   * Which rows and columns of the block an invocation's TM x TN register tile covers: 'runs' of up to 4
   * consecutive ones, the runs strided across the block (default), or single ones 'strided' by BM / TM and
   * BN / TN. On lavapipe 4x4 register tiles ran 1.4x faster strided, 8x8 ones 1.3x faster in runs.
   */
  registerLayout?: 'runs' | 'strided';
  /** f32 words of padding per BK row of the workgroup tiles (against bank conflicts; default 0). */
  sharedPad?: number;
  /**
   * Load the next tile's operands into registers while computing on the current one (hides global-memory
   * latency on GPUs; software adapters skip it: it doubles the gather code that lavapipe has to compile).
   */
  prefetch: boolean;
}

export function gemmShader(g: GemmParts): string {
  const { bm, bn, bk, tm, tn } = g.tile;
  const T = g.threads;
  const TX = bn / tn;
  const TY = bm / tm;
  const VM = Math.min(4, tm);
  const VN = Math.min(4, tn);
  const pad = g.sharedPad ?? 0;
  const SA = bm + pad;
  const SB = bn + pad;
  const nA = Math.ceil((bm * bk) / T);
  const aGuard = (bm * bk) % T !== 0;
  const rowsPerPass = T / bn;
  const nB = (bk * bn) / T;
  const aByRow = g.aOrder === 'row';
  const bByK = g.bOrder === 'k';
  const strided = g.registerLayout === 'strided';
  const rowOf = (i: number) => (strided ? `${i * TY}u + ty` : `${Math.floor(i / VM) * TY * VM + (i % VM)}u + ty * ${VM}u`);
  const colOf = (j: number) => (strided ? `${j * TX}u + tx` : `${Math.floor(j / VN) * TX * VN + (j % VN)}u + tx * ${VN}u`);
  /** Element e of the A tile as (row, k) within the tile. */
  const aIdx = (e: string): [string, string] => (aByRow ? [`${e} % ${bm}u`, `${e} / ${bm}u`] : [`${e} / ${bk}u`, `${e} % ${bk}u`]);
  /** Element j of this invocation's B loads as (column, k) within the tile. */
  const bIdx = (j: number): [string, string] => {
    if (!bByK) return ['bcol', `brow + ${j * rowsPerPass}u`];
    const e = `(lid + ${j * T}u)`;
    return [`${e} / ${bk}u`, `${e} % ${bk}u`];
  };
  const loadGlobal = (t: string) => {
    const out: string[] = [`tileSetup(${t});`];
    for (let j = 0; j < nA; j++) {
      const [r, k] = aIdx(`(lid + ${j * T}u)`);
      const body = `ra${j} = loadA(m0 + ${r}, ${k});`;
      out.push(aGuard ? `if (lid + ${j * T}u < ${bm * bk}u) { ${body} }` : body);
    }
    for (let j = 0; j < nB; j++) {
      const [c, k] = bIdx(j);
      out.push(`rb${j} = loadB(n0 + ${c}, ${k});`);
    }
    return out.join('\n      ');
  };
  const storeShared = () => {
    const out: string[] = [];
    for (let j = 0; j < nA; j++) {
      const [r, k] = aIdx(`(lid + ${j * T}u)`);
      const body = `As[(${k}) * ${SA}u + ${r}] = ra${j};`;
      out.push(aGuard ? `if (lid + ${j * T}u < ${bm * bk}u) { ${body} }` : body);
    }
    for (let j = 0; j < nB; j++) {
      const [c, k] = bIdx(j);
      out.push(`Bs[(${k}) * ${SB}u + ${c}] = rb${j};`);
    }
    return out.join('\n    ');
  };
  const lines: string[] = [];
  for (let i = 0; i < tm; i++) lines.push(`let a${i} = As[kk * ${SA}u + ${rowOf(i)}];`);
  for (let j = 0; j < tn; j++) lines.push(`let b${j} = Bs[kk * ${SB}u + ${colOf(j)}];`);
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) lines.push(`c${i}_${j} = fma(a${i}, b${j}, c${i}_${j});`);
  const accDecl: string[] = [];
  for (let i = 0; i < tm; i++) accDecl.push(`var ${Array.from({ length: tn }, (_, j) => `c${i}_${j} = 0.0`).join('; var ')};`);
  const stores: string[] = [];
  for (let i = 0; i < tm; i++) {
    stores.push(`row = m0 + ${rowOf(i)};`);
    for (let j = 0; j < tn; j++) {
      stores.push(`col = n0 + ${colOf(j)}; if (live & (row < p.M) & (col < p.N)) { let v = c${i}_${j}; ${g.store} }`);
    }
  }
  return /* wgsl */ `
${g.decls}
${g.privates}
var<workgroup> As: array<f32, ${bk * SA}>;
var<workgroup> Bs: array<f32, ${bk * SB}>;

fn tileSetup(t: u32) {
  ${g.tileSetup}
}
fn loadA(row: u32, kc: u32) -> f32 {
  ${g.loadA}
}
fn loadB(col: u32, kr: u32) -> f32 {
  ${g.loadB}
}

@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  ${g.init}
  let linear = wid.x + nwg.x * (wid.y + nwg.y * wid.z);
  // Workgroups past the end of a folded grid run no tiles and store nothing (an early return would make
  // every later memory access a masked one on software adapters).
  let live = linear < p.total;
  let lin = min(linear, p.total - 1u);
  ${g.decode}
  let m0 = tm * ${bm}u;
  let n0 = tn * ${bn}u;
  let tx = lid % ${TX}u;
  let ty = lid / ${TX}u;
  let bcol = lid % ${bn}u;
  let brow = lid / ${bn}u;
  ${g.setup}
  let tBegin = ${g.tBegin};
  let tEnd = select(tBegin, ${g.tEnd}, live);
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
