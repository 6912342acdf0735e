/**
 * A collection in the preprocessing cache, summarised (Node only): per case what picking a case and placing a crop
 * need (id, task, shape, a compact foreground index), made without holding any volume once the case is cached. The
 * foreground index is kept beside the entry (`<stem>.fg.bin`), so a cached collection of hundreds of cases is
 * summarised from a few kilobytes per case. preprocessCollection preprocesses the cases not yet cached, in worker
 * threads when asked, with progress; an interrupted run resumes where it stopped (finished cases are found).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { writeFileAtomic } from '../common/node-files.js';
import type { XYZ } from '../common/shape.js';
import type { DatasetCase } from './datasets.js';
import { cacheKeyOf, cacheStem, findCacheEntry, preprocessCaseFiles, writeCacheEntry, type CacheKey, type PreprocessProgress } from './preprocess-cache.js';
import type { PreprocessOptions } from './preprocess.js';
import { foregroundIndex } from './sampler.js';

/** Default cap on foreground positions kept per label value and case. */
export const DEFAULT_FOREGROUND_SAMPLES = 4096;

/**
 * A foreground index with at most `maxPerValue` positions per label value. Below the cap it is the full
 * index, so crops are then exactly those of BatchSampler; above it, an even stride keeps the spread
 * of centres over the whole structure while the summary stays small for ~1000 cases.
 */
export function compactForegroundIndex(label: Uint8Array, maxPerValue = DEFAULT_FOREGROUND_SAMPLES): Map<number, Int32Array> {
  if (!Number.isInteger(maxPerValue) || maxPerValue < 1) throw new Error(`compactForegroundIndex: maxPerValue is ${maxPerValue}; expected a positive integer`);
  const out = new Map<number, Int32Array>();
  for (const [value, list] of foregroundIndex(label)) {
    if (list.length <= maxPerValue) {
      // A copy, so the summary does not keep the full index (and the label it is cached on) alive.
      out.set(value, list.slice());
    } else {
      const kept = new Int32Array(maxPerValue);
      for (let k = 0; k < maxPerValue; k++) kept[k] = list[Math.floor((k * list.length) / maxPerValue)];
      out.set(value, kept);
    }
  }
  return out;
}

/** What is kept in memory for every case of a cached collection: enough to pick a case and place a crop. */
export interface CaseSummary {
  id: string;
  task: number;
  /** NIfTI [x, y, z]. */
  shape: XYZ;
  /** Cache path without extension (see cacheStem). */
  stem: string;
  /** Up to `foregroundSamples` voxel indices per foreground label value, evenly spread over all of them. */
  foreground: ReadonlyMap<number, Int32Array>;
}

export interface CollectionOptions extends PreprocessOptions {
  /** Foreground positions kept per label value and case (default DEFAULT_FOREGROUND_SAMPLES). */
  foregroundSamples?: number;
  /** Worker threads preprocessing the cases not cached yet (default 0: this thread, one case at a time). */
  workers?: number;
  /** With workers: the built preprocess-worker.js (default: defaultPreprocessWorkerScript()). */
  workerScript?: URL | string;
  /** Called after each case, cached or made, in the order they finish. */
  onProgress?: (progress: PreprocessProgress) => void;
}

const FG_MAGIC = 0x47464754; // 'TGFG' little-endian

/**
 * The foreground sidecar: a JSON header (the entry's key, so a sidecar from an older build of the entry is never
 * believed; the cap; per value its count) padded to 4 bytes, then the positions as little-endian int32.
 */
function encodeForeground(key: CacheKey, cap: number, fg: ReadonlyMap<number, Int32Array>): Uint8Array {
  const header = new TextEncoder().encode(JSON.stringify({ key, cap, values: [...fg].map(([v, list]) => [v, list.length]) }));
  const headerBytes = 8 + Math.ceil(header.length / 4) * 4;
  let total = headerBytes;
  for (const list of fg.values()) total += list.byteLength;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, FG_MAGIC, true);
  view.setUint32(4, header.length, true);
  out.fill(0x20, 8, headerBytes);
  out.set(header, 8);
  let at = headerBytes;
  for (const list of fg.values()) {
    for (let i = 0; i < list.length; i++) view.setInt32(at + 4 * i, list[i], true);
    at += list.byteLength;
  }
  return out;
}

/** The sidecar's index when it belongs to this build of the entry (same key) and cap; else undefined. */
function decodeForeground(bytes: Uint8Array, key: CacheKey, cap: number): Map<number, Int32Array> | undefined {
  if (bytes.length < 8) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== FG_MAGIC) return undefined;
  const length = view.getUint32(4, true);
  let header: { key: CacheKey; cap: number; values: [number, number][] };
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))) as typeof header;
  } catch {
    return undefined;
  }
  if (header.cap !== cap || JSON.stringify(header.key) !== JSON.stringify(key)) return undefined;
  let at = 8 + Math.ceil(length / 4) * 4;
  const out = new Map<number, Int32Array>();
  for (const [value, count] of header.values) {
    if (at + count * 4 > bytes.length) return undefined;
    const list = new Int32Array(count);
    for (let i = 0; i < count; i++) list[i] = view.getInt32(at + 4 * i, true);
    out.set(value, list);
    at += count * 4;
  }
  return out;
}

function foregroundPath(stem: string): string {
  return `${stem}.fg.bin`;
}

/** The case's summary when its cache entry is complete, reading only the sidecar (or, without one, the label file). */
async function cachedSummary(c: DatasetCase, stem: string, key: CacheKey, cap: number): Promise<CaseSummary | undefined> {
  const meta = await findCacheEntry(stem, key);
  if (!meta) return undefined;
  let foreground: Map<number, Int32Array> | undefined;
  try {
    foreground = decodeForeground(new Uint8Array(await readFile(foregroundPath(stem))), key, cap);
  } catch {
    foreground = undefined;
  }
  if (!foreground) {
    // An entry written before the sidecar existed, or for another cap: the label alone gives the index.
    let label: Uint8Array;
    try {
      label = new Uint8Array(await readFile(`${stem}.label.u8`));
    } catch {
      return undefined;
    }
    foreground = compactForegroundIndex(label, cap);
    await writeFileAtomic(foregroundPath(stem), encodeForeground(key, cap, foreground));
  }
  return { id: c.id, task: c.task, shape: meta.shape, stem, foreground };
}

function checkCap(cap: number): number {
  if (!Number.isInteger(cap) || cap < 1) throw new Error(`foregroundSamples is ${cap}; expected a positive integer`);
  return cap;
}

/**
 * One case's summary: from its cache entry when complete, else preprocessed from its source files and written
 * to the cache (data files, sidecar, then the meta that makes the entry count). Holds the volumes only while
 * making a missing entry.
 */
export async function summarizeCase(c: DatasetCase, cacheDir: string, options: Omit<CollectionOptions, 'workers' | 'workerScript' | 'onProgress'> = {}): Promise<CaseSummary & { cached: boolean }> {
  const cap = checkCap(options.foregroundSamples ?? DEFAULT_FOREGROUND_SAMPLES);
  const stem = cacheStem(cacheDir, c.id);
  const key = await cacheKeyOf(c, options);
  const hit = await cachedSummary(c, stem, key, cap);
  if (hit) return { ...hit, cached: true };
  const pre = await preprocessCaseFiles(c, options);
  const foreground = compactForegroundIndex(pre.label, cap);
  await writeCacheEntry(stem, key, pre, () => writeFileAtomic(foregroundPath(stem), encodeForeground(key, cap, foreground)));
  return { id: c.id, task: c.task, shape: pre.shape, stem, foreground, cached: false };
}

/** A case for a preprocess worker, and its answer. */
export interface PreprocessJob {
  job: number;
  case: DatasetCase;
  cacheDir: string;
  options: Omit<CollectionOptions, 'workers' | 'workerScript' | 'onProgress'>;
}
export type PreprocessReply = { job: number; summary: CaseSummary & { cached: boolean }; error?: undefined } | { job: number; error: string };

/** The built preprocess worker script (next to this module compiled, else the checkout's dist/), or null. */
export function defaultPreprocessWorkerScript(): URL | null {
  const candidates = [new URL('./preprocess-worker.js', import.meta.url), new URL('../../dist/src/data/preprocess-worker.js', import.meta.url)];
  return candidates.find((u) => existsSync(u)) ?? null;
}

/**
 * Every case's summary, in the order given, preprocessing into the cache those not in it yet: in this thread, or in
 * `workers` worker threads (one case each at a time; a case's volumes are a few hundred MB to a GB while it is
 * made). Progress comes after each case. Cases already cached are only summarised, so a run stopped half way
 * resumes with the cases it had not finished.
 */
export async function preprocessCollection(cases: readonly DatasetCase[], cacheDir: string, options: CollectionOptions = {}): Promise<CaseSummary[]> {
  const { workers = 0, workerScript, onProgress, ...rest } = options;
  if (!Number.isInteger(workers) || workers < 0) throw new Error(`preprocessCollection: workers is ${workers}; expected a non-negative integer (0: this thread)`);
  const cap = checkCap(rest.foregroundSamples ?? DEFAULT_FOREGROUND_SAMPLES);
  const out: (CaseSummary | undefined)[] = new Array(cases.length);
  let done = 0;
  const report = (i: number, cached: boolean, t0: number) => onProgress?.({ done: ++done, total: cases.length, id: cases[i].id, cached, seconds: (performance.now() - t0) / 1000 });
  // The cached ones first, here: a resumed run then hands the workers only what is left.
  const missing: number[] = [];
  for (let i = 0; i < cases.length; i++) {
    const t0 = performance.now();
    const hit = await cachedSummary(cases[i], cacheStem(cacheDir, cases[i].id), await cacheKeyOf(cases[i], rest), cap);
    if (hit) {
      out[i] = hit;
      report(i, true, t0);
    } else {
      missing.push(i);
    }
  }
  if (workers === 0 || missing.length === 0) {
    for (const i of missing) {
      const t0 = performance.now();
      const { cached, ...summary } = await summarizeCase(cases[i], cacheDir, rest);
      out[i] = summary;
      report(i, cached, t0);
    }
  } else {
    const script = workerScript ?? defaultPreprocessWorkerScript();
    if (script === null) throw new Error('preprocessCollection: the preprocess worker script (dist/src/data/preprocess-worker.js) is missing; run npm run build, or preprocess in this thread (workers: 0)');
    if (!existsSync(script)) throw new Error(`preprocessCollection: worker script ${String(script)} does not exist; expected a built preprocess-worker.js`);
    const count = Math.min(workers, missing.length);
    let next = 0;
    let failed = false;
    const run = async (): Promise<void> => {
      const worker = new Worker(script);
      try {
        // After a failure the others finish the case in hand and take no more: the caller already has the error.
        while (next < missing.length && !failed) {
          const i = missing[next++];
          const t0 = performance.now();
          const { cached, ...summary } = await ask(worker, { job: i, case: cases[i], cacheDir, options: rest });
          out[i] = summary;
          report(i, cached, t0);
        }
      } catch (e) {
        failed = true;
        throw e;
      } finally {
        await worker.terminate();
      }
    };
    await Promise.all(Array.from({ length: count }, run));
  }
  return out as CaseSummary[];
}

/** Sends one case to a worker and waits for its summary; a worker that dies fails the case with the reason. */
function ask(worker: Worker, job: PreprocessJob): Promise<CaseSummary & { cached: boolean }> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    const onMessage = (reply: PreprocessReply) => {
      if (reply.job !== job.job) return;
      cleanup();
      if (reply.error !== undefined) reject(new Error(reply.error));
      else resolve(reply.summary);
    };
    const onError = (e: Error) => {
      cleanup();
      reject(new Error(`preprocess worker failed on case ${job.case.id}: ${e.message}`));
    };
    const onExit = (code: number) => {
      cleanup();
      reject(new Error(`preprocess worker exited with code ${code} on case ${job.case.id}`));
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
    worker.postMessage(job);
  });
}

/** Worker threads to preprocess with by default: the cores but one, at least one. */
export function defaultPreprocessWorkers(): number {
  return Math.max(1, availableParallelism() - 1);
}
