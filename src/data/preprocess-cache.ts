/**
 * On-disk cache of preprocessed cases (Node only), so training resamples each CT once.
 * Per case: `<id>.image.f32` (raw little-endian float32), `<id>.label.u8`, and `<id>.json` with the
 * shape, spacing, affine and the settings and source files it was made from; a cache entry whose
 * settings or source files (size, mtime) differ is rebuilt. case-cache.ts adds `<id>.fg.bin` (the case's compact
 * foreground index) and summarises a collection from these without reading the volumes; crop-reader.ts cuts crops
 * from the raw files by positioned reads.
 */
import { open, readFile, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { readNiftiFile } from './nifti-file.js';
import { readCtInput } from './dicom-file.js';
import { DEFAULT_TARGET_SPACING_ZYX, HU_WINDOW, preprocessVolumes, type PreprocessedCase, type PreprocessOptions } from './preprocess.js';
import type { DatasetCase } from './datasets.js';
import { writeFileAtomic } from '../common/node-files.js';
import type { DHW, XYZ } from '../common/shape.js';

const CACHE_VERSION = 1;

export interface CachedCase extends PreprocessedCase {
  id: string;
  task: number;
}

/** A cache entry's `<stem>.json`: what the data files hold and what they were made from. */
export interface CacheMeta {
  version: number;
  id: string;
  task: number;
  shape: XYZ;
  spacing: XYZ;
  affine: number[];
  targetSpacingZYX: DHW;
  window: [number, number];
  sliceAxisLast: boolean;
  sources: { path: string; size: number; mtimeMs: number }[];
}

export interface PreprocessProgress {
  /** 1-based index of the case just finished. */
  done: number;
  total: number;
  id: string;
  /** True when the case came from the cache. */
  cached: boolean;
  seconds: number;
}

export interface PreprocessCacheOptions extends PreprocessOptions {
  onProgress?: (progress: PreprocessProgress) => void;
}

/** Path of a cached case without its extension: `<stem>.json`, `<stem>.image.f32`, `<stem>.label.u8`. */
export function cacheStem(cacheDir: string, id: string): string {
  // Ids look like `Task03_Liver/liver_0`; keep the dataset folder as a subfolder.
  return join(cacheDir, ...id.split('/'));
}

async function sourceInfo(path: string): Promise<{ path: string; size: number; mtimeMs: number }> {
  try {
    const s = await stat(path);
    return { path, size: s.size, mtimeMs: Math.floor(s.mtimeMs) };
  } catch (err) {
    throw new Error(`${path}: cannot stat source file (${(err as Error).message})`);
  }
}

/** What a cache entry must have been made from: the settings and the source files' sizes and times. */
export type CacheKey = Omit<CacheMeta, 'shape' | 'spacing' | 'affine'>;

function sameSettings(meta: CacheMeta, want: CacheKey): boolean {
  return (
    meta.version === want.version &&
    meta.task === want.task &&
    meta.sliceAxisLast === want.sliceAxisLast &&
    JSON.stringify(meta.targetSpacingZYX) === JSON.stringify(want.targetSpacingZYX) &&
    JSON.stringify(meta.window) === JSON.stringify(want.window) &&
    JSON.stringify(meta.sources) === JSON.stringify(want.sources)
  );
}

/** The key a case's cache entry must match (stats the source files, naming them when missing). */
export async function cacheKeyOf(c: DatasetCase, options: PreprocessOptions = {}): Promise<CacheKey> {
  return {
    version: CACHE_VERSION,
    id: c.id,
    task: c.task,
    targetSpacingZYX: [...(options.targetSpacingZYX ?? DEFAULT_TARGET_SPACING_ZYX)] as XYZ,
    window: [...(options.window ?? HU_WINDOW)] as [number, number],
    sliceAxisLast: options.sliceAxisLast ?? true,
    sources: [await sourceInfo(c.image), await sourceInfo(c.label)],
  };
}

/** Reads and preprocesses a case from its source files (NIfTI or DICOM image, NIfTI label). */
export async function preprocessCaseFiles(c: DatasetCase, options: PreprocessOptions = {}): Promise<PreprocessedCase> {
  const image = (await readCtInput(c.image)).volume;
  const label = await readNiftiFile(c.label);
  return preprocessVolumes(image, label, c.image, options);
}

/**
 * Writes a cache entry: data files first (each to a temp name, synced, renamed), meta last, so a crash in between
 * leaves no meta and the entry is simply rebuilt. `beforeMeta` writes what else must exist once the meta does.
 */
export async function writeCacheEntry(stemPath: string, want: CacheKey, pre: PreprocessedCase, beforeMeta?: () => Promise<void>): Promise<CacheMeta> {
  // A stale meta must not describe the new data files while they are being replaced.
  await rm(`${stemPath}.json`, { force: true });
  const meta: CacheMeta = { ...want, shape: pre.shape, spacing: pre.spacing, affine: pre.affine };
  await writeFileAtomic(`${stemPath}.image.f32`, new Uint8Array(pre.image.buffer, pre.image.byteOffset, pre.image.byteLength));
  await writeFileAtomic(`${stemPath}.label.u8`, pre.label);
  await beforeMeta?.();
  await writeFileAtomic(`${stemPath}.json`, JSON.stringify(meta) + '\n');
  return meta;
}

/**
 * The meta of a complete cache entry made from `want`, checked without reading the volumes: the data files exist
 * with the sizes its shape implies. undefined when there is no such entry (it is then rebuilt).
 */
export async function findCacheEntry(stemPath: string, want: CacheKey): Promise<CacheMeta | undefined> {
  let meta: CacheMeta;
  try {
    meta = JSON.parse(await readFile(`${stemPath}.json`, 'utf8')) as CacheMeta;
  } catch {
    return undefined;
  }
  if (!sameSettings(meta, want)) return undefined;
  const voxels = meta.shape[0] * meta.shape[1] * meta.shape[2];
  try {
    const [image, label] = await Promise.all([stat(`${stemPath}.image.f32`), stat(`${stemPath}.label.u8`)]);
    if (image.size !== voxels * 4 || label.size !== voxels) return undefined;
  } catch {
    return undefined;
  }
  return meta;
}

/** Loads one case from the cache, or preprocesses it from its NIfTI files and stores it. */
export async function preprocessCaseCached(c: DatasetCase, cacheDir: string, options: PreprocessOptions = {}): Promise<CachedCase & { cached: boolean }> {
  const stemPath = cacheStem(cacheDir, c.id);
  const want = await cacheKeyOf(c, options);
  const cached = await tryLoad(stemPath, want);
  if (cached) return { ...cached, cached: true };
  const pre = await preprocessCaseFiles(c, options);
  await writeCacheEntry(stemPath, want, pre);
  return { ...pre, id: c.id, task: c.task, cached: false };
}

async function readExactly(path: string, into: Uint8Array, shape: XYZ): Promise<void> {
  let file: FileHandle;
  try {
    file = await open(path, 'r');
  } catch (err) {
    throw new Error(`${path}: cannot read cached case file (${(err as Error).message})`);
  }
  try {
    const size = (await file.stat()).size;
    if (size !== into.byteLength) {
      throw new Error(`${path}: ${size} bytes; expected ${into.byteLength} for shape [x, y, z] = [${shape.join(', ')}] (truncated or stale cache file?)`);
    }
    let done = 0;
    while (done < into.byteLength) {
      const { bytesRead } = await file.read(into, done, into.byteLength - done, done);
      if (bytesRead === 0) throw new Error(`${path}: ended after ${done} of ${into.byteLength} bytes (file shrank while reading)`);
      done += bytesRead;
    }
  } finally {
    await file.close();
  }
}

/**
 * Reads the image and label files of a cached case of `shape` [x, y, z]; throws naming the file when
 * one is missing or has the wrong size (e.g. truncated).
 */
export async function readCachedVolumes(stemPath: string, shape: XYZ, options: { shared?: boolean } = {}): Promise<{ image: Float32Array; label: Uint8Array }> {
  const voxels = shape[0] * shape[1] * shape[2];
  // Shared memory lets crop workers read the case without a copy per crop (see CropWorkerPool).
  const Memory = options.shared ? SharedArrayBuffer : ArrayBuffer;
  const image = new Float32Array(new Memory(voxels * 4));
  const label = new Uint8Array(new Memory(voxels));
  // Read straight into the typed arrays: no intermediate Buffer, so a load costs one copy of the case.
  await readExactly(`${stemPath}.image.f32`, new Uint8Array(image.buffer), shape);
  await readExactly(`${stemPath}.label.u8`, label, shape);
  return { image, label };
}

async function tryLoad(stemPath: string, want: CacheKey): Promise<CachedCase | undefined> {
  const meta = await findCacheEntry(stemPath, want);
  if (!meta) return undefined;
  let volumes: { image: Float32Array; label: Uint8Array };
  try {
    volumes = await readCachedVolumes(stemPath, meta.shape);
  } catch {
    // Missing or truncated data files: the entry is rebuilt.
    return undefined;
  }
  const { image, label } = volumes;
  return { id: meta.id, task: meta.task, image, label, shape: meta.shape, spacing: meta.spacing, affine: meta.affine };
}

/** Preprocesses (or loads from the cache) every case, reporting progress after each. */
export async function preprocessDataset(cases: readonly DatasetCase[], cacheDir: string, options: PreprocessCacheOptions = {}): Promise<CachedCase[]> {
  const out: CachedCase[] = [];
  for (let i = 0; i < cases.length; i++) {
    const t0 = performance.now();
    const { cached, ...rest } = await preprocessCaseCached(cases[i], cacheDir, options);
    out.push(rest);
    options.onProgress?.({ done: i + 1, total: cases.length, id: cases[i].id, cached, seconds: (performance.now() - t0) / 1000 });
  }
  return out;
}
