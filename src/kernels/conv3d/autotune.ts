/**
 * A small conv3d autotuner. For one convolution shape and pass (forward, data gradient, weight gradient) it
 * times a few candidate configurations (GEMM tiles and split-K; on software adapters also the direct kernels'
 * register blockings), checks each candidate's output against the default configuration's, and keeps the
 * fastest in a JSON cache keyed by adapter and shape. The launchers look the choice up (tuned-options.ts)
 * once `enableConv3dTuning` has loaded the cache for a Gpu; tuning is off by default, so results stay
 * deterministic unless asked for.
 *
 * The cache file is read and written only in Node, through modules loaded by a computed name, so this module
 * bundles for browsers (where `memoryTuningStore` keeps the choices for the page's lifetime).
 */
import type { Gpu } from '../runtime/gpu.js';
import { isSoftwareAdapter } from '../runtime/gpu.js';
import { nodeModule } from '../../common/node-files.js';
import { fillUniform } from '../runtime/fill.js';
import { bytesPerElement, fromHalfBits, requireDType, type DType } from '../runtime/precision.js';
import { cast } from '../elementwise.js';
import { conv3dBackwardData } from './backward-data.js';
import { conv3dBackwardWeight } from './backward-weight.js';
import { directBlocking, type DirectBlocking } from './direct/common.js';
import { conv3dForward } from './forward.js';
import { geometry, type Conv3dShape } from './geometry.js';
import type { Conv3dOptions } from './options.js';
import { checkTile, chooseConv3dTile, tileKey, type Conv3dTile } from './tiles.js';
import {
  addConv3dTunedChoice, adapterKey, conv3dShapeKey, setConv3dTunedChoices,
  type Conv3dPass, type Conv3dTunedChoice,
} from './tuned-options.js';

export {
  adapterKey, conv3dShapeKey, conv3dTuningEnabled, recordConv3dShapes, tunedConv3dOptions,
  type Conv3dPass, type Conv3dShapePass, type Conv3dTunedChoice,
} from './tuned-options.js';

/** Version of the cache file's layout; a file of another version is ignored (with a warning). */
export const TUNING_FORMAT_VERSION = 1;
const FORMAT_NAME = 'tgnet-conv3d-tuning';

/** One tuned (shape, pass) in the cache. */
export interface TuningEntry {
  /** The options the launchers get. */
  options: Conv3dTunedChoice;
  /** Human-readable name of the choice, e.g. `direct 2x8` or `gemm 64x64x8/4x4 splitK 4`. */
  choice: string;
  /** Median ms of the choice and of the default configuration when tuned. */
  ms: number;
  defaultMs: number;
  /** 'gpu' (timestamp queries) or 'wall' (host time around a queue sync). */
  timing: 'gpu' | 'wall';
  tunedAt: string;
}

/** The cache file: per adapter (adapterKey), per shape (conv3dShapeKey). */
export interface TuningFile {
  format: typeof FORMAT_NAME;
  version: number;
  adapters: Record<string, { adapter: Gpu['adapter']; shapes: Record<string, TuningEntry> }>;
}

/** Where the cache lives: a file in Node (`fileTuningStore`), memory elsewhere (`memoryTuningStore`). */
export interface TuningStore {
  /** For messages, e.g. the file's path. */
  readonly where: string;
  /** The stored text; null when there is none yet. */
  read(): Promise<string | null>;
  /** Replaces the stored text (a file: atomically). */
  write(text: string): Promise<void>;
}

export function memoryTuningStore(initial: string | null = null): TuningStore & { text: string | null } {
  return {
    where: 'memory',
    text: initial,
    async read() { return this.text; },
    async write(text) { this.text = text; },
  };
}

type NodeFs = typeof import('node:fs/promises');


/** The default cache path: $TGNET_TUNING_FILE, else ~/.cache/tgnet/conv3d-tuning.json. */
export async function defaultTuningFile(): Promise<string> {
  const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env;
  if (env?.TGNET_TUNING_FILE) return env.TGNET_TUNING_FILE;
  const os = await nodeModule<typeof import('node:os')>('node:os');
  const path = await nodeModule<typeof import('node:path')>('node:path');
  return path.join(os.homedir(), '.cache', 'tgnet', 'conv3d-tuning.json');
}

let tempCounter = 0;

/**
 * The cache as a JSON file (Node only): written to a sibling temporary name, flushed, renamed over the file
 * and the folder flushed, so a crash leaves the old file or the new one, never half of one.
 */
export function fileTuningStore(file: string): TuningStore {
  return {
    where: file,
    async read() {
      const fs = await nodeModule<NodeFs>('node:fs/promises');
      try {
        return await fs.readFile(file, 'utf8');
      } catch (e) {
        if ((e as { code?: string }).code === 'ENOENT') return null;
        throw e;
      }
    },
    async write(text) {
      const fs = await nodeModule<NodeFs>('node:fs/promises');
      const path = await nodeModule<typeof import('node:path')>('node:path');
      const dir = path.dirname(file);
      await fs.mkdir(dir, { recursive: true });
      const temp = `${file}.tmp-${process.pid}-${Date.now()}-${tempCounter++}`;
      try {
        const handle = await fs.open(temp, 'w');
        try {
          await handle.writeFile(text);
          await handle.sync();
        } finally {
          await handle.close();
        }
        await fs.rename(temp, file);
      } catch (e) {
        await fs.rm(temp, { force: true });
        throw new Error(`${file}: write failed (${(e as Error).message})`);
      }
      // The rename is durable once the folder is flushed; folders cannot be opened everywhere (Windows).
      try {
        const d = await fs.open(dir, 'r');
        try { await d.sync(); } finally { await d.close(); }
      } catch { /* best effort */ }
    },
  };
}

export interface TuningStoreOptions {
  /** The cache (default: `fileTuningStore(file ?? defaultTuningFile())`). */
  store?: TuningStore;
  /** Cache file path when no store is given (default $TGNET_TUNING_FILE or ~/.cache/tgnet/conv3d-tuning.json). */
  file?: string;
  /** Where warnings go (a corrupt file, another format version); default console.warn. */
  warn?: (message: string) => void;
}

/** Browsers (no Node) keep the choices in memory for the page's lifetime unless given a store. */
const pageStore = memoryTuningStore();

async function resolveStore(options: TuningStoreOptions): Promise<TuningStore> {
  if (options.store) return options.store;
  const node = (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node;
  if (!node && options.file === undefined) return pageStore;
  return fileTuningStore(options.file ?? await defaultTuningFile());
}

const emptyFile = (): TuningFile => ({ format: FORMAT_NAME, version: TUNING_FORMAT_VERSION, adapters: {} });

/**
 * Reads the cache; a missing file is empty, an unreadable or corrupt one or one of another version is
 * ignored with a warning. `writable` is false when the file is of a newer version (it is left alone).
 */
export async function readTuningFile(store: TuningStore, warn: (m: string) => void = console.warn): Promise<{ file: TuningFile; writable: boolean }> {
  let text: string | null;
  try {
    text = await store.read();
  } catch (e) {
    warn(`conv3d tuning: cannot read ${store.where} (${(e as Error).message}); ignoring it`);
    return { file: emptyFile(), writable: true };
  }
  if (text === null) return { file: emptyFile(), writable: true };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    warn(`conv3d tuning: ${store.where} is not JSON (${(e as Error).message}); ignoring it`);
    return { file: emptyFile(), writable: true };
  }
  const d = data as Partial<TuningFile> | null;
  if (!d || typeof d !== 'object' || d.format !== FORMAT_NAME || typeof d.version !== 'number') {
    warn(`conv3d tuning: ${store.where} is not a ${FORMAT_NAME} file; ignoring it`);
    return { file: emptyFile(), writable: true };
  }
  if (d.version !== TUNING_FORMAT_VERSION) {
    const newer = d.version > TUNING_FORMAT_VERSION;
    warn(`conv3d tuning: ${store.where} has format version ${d.version}, this tgnet reads version ${TUNING_FORMAT_VERSION}; ` +
      `ignoring it${newer ? ' (and not overwriting it)' : ''}`);
    return { file: emptyFile(), writable: !newer };
  }
  if (!d.adapters || typeof d.adapters !== 'object') {
    warn(`conv3d tuning: ${store.where} has no adapters table; ignoring it`);
    return { file: emptyFile(), writable: true };
  }
  return { file: d as TuningFile, writable: true };
}

function choicesOf(file: TuningFile, gpu: Gpu): Map<string, Conv3dTunedChoice> {
  const shapes = file.adapters[adapterKey(gpu)]?.shapes ?? {};
  return new Map(Object.entries(shapes).filter(([, e]) => e && typeof e.options === 'object').map(([k, e]) => [k, e.options]));
}

/**
 * Loads the cache once and turns the tuned look-up on for `gpu`'s launchers (those called without their
 * own tile, direct, directBlocking or splitK). Returns how many tuned (shape, pass) pairs this adapter has.
 */
export async function enableConv3dTuning(gpu: Gpu, options: TuningStoreOptions = {}): Promise<number> {
  const store = await resolveStore(options);
  const { file } = await readTuningFile(store, options.warn);
  const choices = choicesOf(file, gpu);
  setConv3dTunedChoices(gpu, choices);
  return choices.size;
}

/** Turns the tuned look-up off for `gpu` (launchers use their defaults again). */
export function disableConv3dTuning(gpu: Gpu): void {
  setConv3dTunedChoices(gpu, null);
}

/** The buffers a candidate runs on: x, w and gy filled with seeded values; `out` is the pass's result. */
export interface Conv3dTuningIo {
  x: GPUBuffer;
  w: GPUBuffer;
  gy: GPUBuffer;
  out: GPUBuffer;
}

/** One configuration to time. `launch` (tests) replaces the pass's launcher with these options. */
export interface Conv3dCandidate {
  label: string;
  options: Conv3dTunedChoice;
  launch?: (gpu: Gpu, io: Conv3dTuningIo, shape: Conv3dShape, options: Conv3dOptions) => void;
}

/** Records one pass with `options` into io.out. */
export function launchConv3dPass(gpu: Gpu, pass: Conv3dPass, io: Conv3dTuningIo, shape: Conv3dShape, options: Conv3dOptions): void {
  if (pass === 'forward') conv3dForward(gpu, io.x, io.w, null, io.out, shape, options);
  else if (pass === 'data') conv3dBackwardData(gpu, io.gy, io.w, io.out, shape, options);
  else conv3dBackwardWeight(gpu, io.x, io.gy, io.out, shape, options);
}

const blockingLabel = (b: DirectBlocking) => `${b.ct}x${b.vw}`;

/** A readable name of a choice. */
export function describeChoice(o: Conv3dTunedChoice): string {
  const parts = [o.direct ? 'direct' : 'gemm'];
  if (o.direct && o.directBlocking) parts.push(blockingLabel(o.directBlocking));
  if (!o.direct && o.tile) parts.push(tileKey(o.tile));
  if (o.splitK !== undefined) parts.push(`splitK ${o.splitK}`);
  return parts.join(' ');
}

/**
 * The direct kernels' register blockings worth timing: up to 4 channels x 2, 4 or 8 voxels, without 4 x 8 (it
 * spills and takes lavapipe 5-10 times longer to compile) and without more channels than the pass has.
 */
function directBlockings(channels: number): DirectBlocking[] {
  const out: DirectBlocking[] = [];
  for (const ct of [1, 2, 4]) {
    if (ct > 1 && ct > channels) continue;
    for (const vw of [2, 4, 8]) if (!(ct === 4 && vw === 8)) out.push({ ct, vw });
  }
  return out;
}

/** GEMM tiles worth timing for an M x N GEMM: the default and a few neighbours that fit the device. */
function gemmTiles(gpu: Gpu, M: number, N: number, software: boolean): Conv3dTile[] {
  const base = chooseConv3dTile(gpu, M, N, { software });
  const shapes: [number, number][] = software ? [[16, 2], [32, 4], [64, 4]] : [[128, 8], [64, 4], [64, 8], [32, 4], [16, 2]];
  const cols: [number, number][] = software ? [[32, 2], [64, 4]] : [[128, 8], [64, 4], [64, 8], [32, 4]];
  const tiles: Conv3dTile[] = [base];
  for (const [bm, tm] of shapes) {
    if (bm > 2 * Math.max(M, 8) && bm > base.bm) continue; // mostly idle rows
    for (const [bn, tn] of cols) for (const bk of software ? [8] : [8, 16]) tiles.push({ bm, bn, bk, tm, tn });
  }
  const seen = new Set<string>();
  const valid: Conv3dTile[] = [];
  for (const t of tiles) {
    const key = tileKey(t);
    if (seen.has(key)) continue;
    seen.add(key);
    try {
      checkTile(gpu, t, 'conv3d tuning', 0);
      valid.push(t);
    } catch {
      // outside the skeleton's rules or the device's limits
    }
  }
  return valid.slice(0, software ? 3 : 8);
}

/** [M, N] of a pass's GEMM (as the launchers choose their default tiles). */
function gemmSize(shape: Conv3dShape, pass: Conv3dPass): [number, number] {
  const g = geometry(shape, 'conv3d tuning');
  if (pass === 'forward') return [g.Cout, g.Do * g.Ho * g.Wo];
  if (pass === 'data') return [g.Cin, g.D * g.H * g.W];
  return [g.Cout, g.Cin * g.k ** 3];
}

/** The default configuration: what the launcher does given no options (spelt out, so no tuned look-up applies). */
export function defaultConv3dChoice(gpu: Gpu): Conv3dTunedChoice {
  return { direct: isSoftwareAdapter(gpu) };
}

/**
 * The first-round candidates of a (shape, pass): the default, GEMM tiles, and on software adapters the direct
 * kernels' blockings. (The weight gradient's split-K is tried in a second round on the winner.)
 */
export function conv3dCandidates(gpu: Gpu, shape: Conv3dShape, pass: Conv3dPass): Conv3dCandidate[] {
  const software = isSoftwareAdapter(gpu);
  const g = geometry(shape, 'conv3d tuning');
  const list: Conv3dTunedChoice[] = [defaultConv3dChoice(gpu)];
  if (software) {
    const channels = pass === 'data' ? g.Cin : g.Cout;
    const usual = directBlocking(channels);
    for (const b of directBlockings(channels)) {
      if (b.ct !== usual.ct || b.vw !== usual.vw) list.push({ direct: true, directBlocking: b });
    }
  }
  const [M, N] = gemmSize(shape, pass);
  for (const tile of gemmTiles(gpu, M, N, software)) list.push({ direct: false, tile });
  return list.map((options, i) => ({ label: i === 0 ? `default (${describeChoice(options)})` : describeChoice(options), options }));
}

/** Split-K values tried on the weight gradient's best first-round choice. */
const SPLIT_K_VALUES = [1, 2, 4, 8, 16, 32, 64];
/** Most launches per timed sample. */
const MAX_REPEAT = 64;

export interface TuneOptions extends TuningStoreOptions {
  /**
   * Element type of the activations (Conv3dOptions.dtype; default 'f32'): every candidate runs with it, and the
   * choice is cached under its own key (conv3dShapeKey), never shared between f32 and f16.
   */
  dtype?: DType;
  /** Timed runs per candidate (median); default 3 on software adapters, 5 on hardware. */
  repetitions?: number;
  /** Re-tune even when the cache has this (shape, pass). */
  force?: boolean;
  /** Replaces the candidate list (tests); the first is the reference every other one is checked against. */
  candidates?: Conv3dCandidate[];
  /** A candidate whose max |out - reference| exceeds this times max |reference| is rejected (default 1e-3). */
  tolerance?: number;
  /** A candidate replaces the default only when at least this fraction faster (default 0.05). */
  minGain?: number;
  /** Progress lines. */
  log?: (message: string) => void;
}

export interface CandidateResult {
  label: string;
  options: Conv3dTunedChoice;
  /** Median ms; null when rejected. */
  ms: number | null;
  /** Why it was rejected: wrong output (with the difference) or an error. */
  rejected?: string;
}

export interface TuneResult {
  key: string;
  pass: Conv3dPass;
  /** Taken from the cache without timing anything. */
  cached: boolean;
  entry: TuningEntry;
  candidates: CandidateResult[];
}


function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** ms of the work `record` records: the sum of its dispatches' GPU timestamps, else wall time to a queue sync. */
async function timeOnce(gpu: Gpu, record: () => void, useTimestamps: boolean): Promise<number> {
  if (useTimestamps) {
    await gpu.sync();
    gpu.startProfiling();
    record();
    const timings = await gpu.stopProfiling();
    return timings.reduce((s, t) => s + t.ms, 0);
  }
  await gpu.sync();
  const t0 = performance.now();
  record();
  await gpu.sync();
  return performance.now() - t0;
}

/** Fills `n` elements of `dtype` with fillUniform's values (f16: rounded from f32 through a scratch buffer). */
function fillUniformAs(gpu: Gpu, buffer: GPUBuffer, n: number, seed: number, amplitude: number, dtype: DType): void {
  if (dtype === 'f32') {
    fillUniform(gpu, buffer, n, seed, amplitude);
    return;
  }
  const scratch = gpu.pool.acquire(n * 4, 'conv3d tuning fill');
  try {
    fillUniform(gpu, scratch, n, seed, amplitude);
    cast(gpu, scratch, 'f32', buffer, dtype, n);
  } finally {
    gpu.pool.release(scratch);
  }
}

/** Bytes of `n` elements of `dtype`, rounded up to whole words (as bindings and reads need). */
const wordBytes = (n: number, dtype: DType) => Math.ceil((n * bytesPerElement(dtype)) / 4) * 4;

/**
 * Tunes one (shape, pass) for `options.dtype`'s activations: times every candidate (GPU timestamps when the adapter has 'timestamp-query', else
 * wall time around `gpu.sync()`; median of `repetitions`), rejects those whose output differs from the first
 * (default) candidate's, stores the fastest in the cache and, when tuning is enabled for `gpu`, in the
 * launchers' look-up. A (shape, pass) already in the cache is returned without timing unless `force`.
 */
export async function tuneConv3d(gpu: Gpu, shape: Conv3dShape, pass: Conv3dPass, options: TuneOptions = {}): Promise<TuneResult> {
  const g = geometry(shape, 'conv3d tuning');
  const dtype = options.dtype ?? 'f32';
  requireDType(gpu, dtype, 'conv3d tuning');
  const key = conv3dShapeKey(shape, pass, dtype);
  const warn = options.warn ?? console.warn;
  const log = options.log ?? (() => undefined);
  const store = await resolveStore(options);
  const aKey = adapterKey(gpu);
  if (!options.force && !options.candidates) {
    const { file } = await readTuningFile(store, warn);
    const hit = file.adapters[aKey]?.shapes[key];
    if (hit) {
      addConv3dTunedChoice(gpu, key, hit.options);
      return { key, pass, cached: true, entry: hit, candidates: [] };
    }
  }
  const software = isSoftwareAdapter(gpu);
  const repetitions = options.repetitions ?? (software ? 3 : 5);
  const tolerance = options.tolerance ?? 1e-3;
  const useTimestamps = gpu.features.has('timestamp-query');
  const nx = g.N * g.Cin * g.D * g.H * g.W;
  const nw = g.Cout * g.Cin * g.k ** 3;
  const ny = g.N * g.Cout * g.Do * g.Ho * g.Wo;
  const nOut = pass === 'forward' ? ny : pass === 'data' ? nx : nw;
  // The weight gradient is f32 whatever the activations are.
  const outDType: DType = pass === 'weight' ? 'f32' : dtype;
  const pool = gpu.pool;
  const io: Conv3dTuningIo = {
    x: pool.acquire(wordBytes(nx, dtype), 'conv3d tuning x'), w: pool.acquire(nw * 4, 'conv3d tuning w'),
    gy: pool.acquire(wordBytes(ny, dtype), 'conv3d tuning gy'), out: pool.acquire(wordBytes(nOut, outDType), 'conv3d tuning out'),
  };
  const results: CandidateResult[] = [];
  let confirmed: { defaultMs: number; bestMs: number } | null = null;
  const minGain = options.minGain ?? 0.05;
  const minSampleMs = software ? 4 : 1;
  try {
    fillUniformAs(gpu, io.x, nx, 1, 1, dtype);
    fillUniform(gpu, io.w, nw, 2, 1 / Math.sqrt(g.Cin * g.k ** 3));
    fillUniformAs(gpu, io.gy, ny, 3, 1, dtype);
    let reference: Float32Array | null = null;
    let scale = 0;
    let best = Infinity;
    // Launches per timed sample: small layers are repeated so a sample is well above the timer's resolution.
    let repeat = 1;
    const recordOf = (c: Conv3dCandidate) => () => {
      const launch = c.launch ?? ((gg, o, s, opts) => launchConv3dPass(gg, pass, o, s, opts));
      for (let i = 0; i < repeat; i++) launch(gpu, io, shape, { ...c.options, dtype });
    };
    const sample = async (c: Conv3dCandidate) => (await timeOnce(gpu, recordOf(c), useTimestamps)) / repeat;
    const run = async (c: Conv3dCandidate): Promise<CandidateResult> => {
      try {
        // First run: compiles the pipelines and gives the output to check.
        await timeOnce(gpu, recordOf(c), useTimestamps);
        const bytes = await gpu.read(io.out, wordBytes(nOut, outDType));
        const out = outDType === 'f16' ? fromHalfBits(new Uint16Array(bytes, 0, nOut)) : new Float32Array(bytes);
        if (!reference) {
          reference = out;
          for (const v of out) scale = Math.max(scale, Math.abs(v));
          repeat = Math.min(MAX_REPEAT, Math.max(1, Math.ceil(minSampleMs / Math.max(await sample(c), 1e-3))));
        } else {
          let diff = 0;
          for (let i = 0; i < nOut; i++) {
            const d = Math.abs(out[i] - reference[i]);
            if (!(d <= diff)) diff = Number.isNaN(d) ? Infinity : d;
          }
          if (diff > tolerance * Math.max(scale, 1e-30)) {
            return { label: c.label, options: c.options, ms: null, rejected: `output differs from the default's: max |diff| ${diff.toExponential(2)}, max |default| ${scale.toExponential(2)}` };
          }
        }
        const times: number[] = [];
        for (let r = 0; r < repetitions; r++) {
          times.push(await sample(c));
          // Far slower than the best so far: not worth more runs.
          if (r === 0 && times[0] > 3 * best) break;
        }
        const ms = median(times);
        best = Math.min(best, ms);
        return { label: c.label, options: c.options, ms };
      } catch (e) {
        if (!reference) throw new Error(`conv3d tuning ${key}: the default configuration failed: ${(e as Error).message}`);
        return { label: c.label, options: c.options, ms: null, rejected: `failed: ${(e as Error).message.split('\n')[0]}` };
      }
    };
    const candidates = options.candidates ?? conv3dCandidates(gpu, shape, pass);
    if (candidates.length === 0) throw new RangeError(`conv3d tuning ${key}: the candidate list is empty`);
    const report = (r: CandidateResult) => log(`  ${key}: ${r.label} ${r.ms !== null ? `${r.ms.toFixed(3)} ms` : `rejected (${r.rejected})`}`);
    for (const c of candidates) {
      const r = await run(c);
      results.push(r);
      report(r);
    }
    if (pass === 'weight' && !options.candidates) {
      const top = winner(results);
      for (const splitK of SPLIT_K_VALUES) {
        const opts = { ...top.options, splitK };
        const r = await run({ label: describeChoice(opts), options: opts });
        results.push(r);
        report(r);
      }
    }
    // The machine's load drifts while candidates run one after another: the best and the default are timed
    // again, alternately, and the best must beat the default by `minGain` to replace it.
    const top = winner(results);
    if (top !== results[0]) {
      const a: number[] = [];
      const b: number[] = [];
      for (let r = 0; r < repetitions; r++) {
        a.push(await sample(candidates[0]));
        b.push(await sample({ label: top.label, options: top.options, launch: candidates.find((c) => c.label === top.label)?.launch }));
      }
      confirmed = { defaultMs: median(a), bestMs: median(b) };
      log(`  ${key}: again, alternately: default ${confirmed.defaultMs.toFixed(3)} ms, ${top.label} ${confirmed.bestMs.toFixed(3)} ms`);
    }
  } finally {
    for (const b of [io.x, io.w, io.gy, io.out]) pool.release(b);
  }
  let top = winner(results);
  let defaultMs = results[0].ms as number;
  let ms = top.ms as number;
  if (confirmed) {
    defaultMs = confirmed.defaultMs;
    ms = confirmed.bestMs;
    if (!(ms < defaultMs * (1 - minGain))) {
      top = results[0];
      ms = defaultMs;
    }
  }
  const entry: TuningEntry = {
    options: top.options, choice: describeChoice(top.options), ms, defaultMs,
    timing: useTimestamps ? 'gpu' : 'wall', tunedAt: new Date().toISOString(),
  };
  await saveEntry(gpu, store, key, entry, warn);
  addConv3dTunedChoice(gpu, key, entry.options);
  return { key, pass, cached: false, entry, candidates: results };
}

/** The fastest accepted candidate; the default wins ties (it is first). */
function winner(results: CandidateResult[]): CandidateResult {
  let top = results[0];
  for (const r of results) if (r.ms !== null && r.ms < (top.ms as number)) top = r;
  return top;
}

/** Read-modify-write of the cache with one entry (re-read first: another process may have added entries). */
async function saveEntry(gpu: Gpu, store: TuningStore, key: string, entry: TuningEntry, warn: (m: string) => void): Promise<void> {
  const problems: string[] = [];
  const { file, writable } = await readTuningFile(store, (m) => problems.push(m));
  if (problems.length > 0 && writable) warn(`conv3d tuning: replacing ${store.where} (${problems.join('; ')}) with a version ${TUNING_FORMAT_VERSION} file`);
  if (!writable) {
    warn(`conv3d tuning: ${store.where} is of a newer format; the choice for ${key} is kept in memory only`);
    return;
  }
  const aKey = adapterKey(gpu);
  file.adapters[aKey] ??= { adapter: { ...gpu.adapter }, shapes: {} };
  file.adapters[aKey].shapes[key] = entry;
  await store.write(`${JSON.stringify(file, null, 2)}\n`);
}
