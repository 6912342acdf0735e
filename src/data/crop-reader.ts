/**
 * Crops cut straight from the preprocessing cache's raw files (Node only): a crop reads only the rows (or whole
 * slices) its region overlaps, by positioned reads, so memory follows the crops being built and not the size or
 * number of the cases. The crop is bit for bit the one cut from the whole case in memory (renderCropFromBox).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { renderCropFromBox, type CaseBox, type Crop, type CropOptions, type CropPlan } from './sampler.js';
import { dhwFromXyz, type DHW, type XYZ } from '../common/shape.js';

/** A cached case's raw files: `image` little-endian float32, `label` uint8, both [x, y, z] = `shape` (x fastest). */
export interface CaseFiles {
  id: string;
  image: string;
  label: string;
  shape: XYZ;
}

/** The raw files of the cache entry at `stem` (see cacheStem). */
export function caseFilesOf(id: string, stem: string, shape: XYZ): CaseFiles {
  return { id, image: `${stem}.image.f32`, label: `${stem}.label.u8`, shape };
}

/**
 * Positioned reads from files; injectable so tests can count (or fault) what a crop reads.
 * `read` fills all of `into` from byte `position` of `path` or throws naming the path.
 */
export interface PositionedReader {
  read(path: string, into: Uint8Array, position: number): Promise<void>;
  /** The file's size in bytes (errors name the path). */
  size(path: string): Promise<number>;
}

/**
 * 'rows': per slice, the rows [y0, y1) the region overlaps (whole rows, one read a slice: the x span alone would
 * mean a read per row); 'slabs': whole slices z0..z1 (one read in all, more bytes).
 */
export type CropReadMode = 'rows' | 'slabs';

export const CROP_READ_MODES: readonly CropReadMode[] = ['rows', 'slabs'];

interface OpenFile {
  opening: Promise<{ file: FileHandle; size: number }>;
  /** Calls using the file now; an evicted file is closed when the last one ends. */
  users: number;
  evicted: boolean;
}

/** Reads through a small LRU of open files, counting what it reads. */
export class CachedFileReader implements PositionedReader {
  /** Bytes and read calls since construction. */
  bytesRead = 0;
  reads = 0;
  private readonly files = new Map<string, OpenFile>();

  constructor(private readonly maxOpen = 64) {
    if (!Number.isInteger(maxOpen) || maxOpen < 1) throw new Error(`CachedFileReader: maxOpen is ${maxOpen}; expected a positive integer`);
  }

  size(path: string): Promise<number> {
    return this.using(path, async ({ size }) => size);
  }

  read(path: string, into: Uint8Array, position: number): Promise<void> {
    return this.using(path, async ({ file }) => {
      let done = 0;
      while (done < into.byteLength) {
        let bytesRead: number;
        try {
          ({ bytesRead } = await file.read(into, done, into.byteLength - done, position + done));
        } catch (e) {
          throw new Error(`${path}: read of ${into.byteLength} bytes at offset ${position} failed (${(e as Error).message})`);
        }
        if (bytesRead === 0) throw new Error(`${path}: ended after ${position + done} bytes; expected ${into.byteLength} bytes at offset ${position} (truncated cache file?)`);
        done += bytesRead;
      }
      this.bytesRead += into.byteLength;
      this.reads++;
    });
  }

  /** Closes every open file (each once the calls using it end). */
  async close(): Promise<void> {
    const all = [...this.files.values()];
    this.files.clear();
    for (const f of all) this.evict(f);
    await Promise.all(all.map((f) => f.opening.then(() => undefined, () => undefined)));
  }

  private async using<T>(path: string, use: (f: { file: FileHandle; size: number }) => Promise<T>): Promise<T> {
    const f = this.open(path);
    f.users++;
    try {
      return await use(await f.opening);
    } finally {
      if (--f.users === 0 && f.evicted) this.closeFile(f);
    }
  }

  private open(path: string): OpenFile {
    const hit = this.files.get(path);
    if (hit) {
      this.files.delete(path);
      this.files.set(path, hit);
      return hit;
    }
    const opening = (async () => {
      let file: FileHandle;
      try {
        file = await open(path, 'r');
      } catch (e) {
        throw new Error(`${path}: cannot read cached case file (${(e as Error).message})`);
      }
      return { file, size: (await file.stat()).size };
    })();
    const f: OpenFile = { opening, users: 0, evicted: false };
    // A failed open is not kept: the next crop tries again (the cache may have been rebuilt meanwhile).
    opening.catch(() => {
      if (this.files.get(path) === f) this.files.delete(path);
    });
    this.files.set(path, f);
    for (const [oldest, g] of this.files) {
      if (this.files.size <= this.maxOpen) break;
      this.files.delete(oldest);
      this.evict(g);
    }
    return f;
  }

  private evict(f: OpenFile): void {
    f.evicted = true;
    if (f.users === 0) this.closeFile(f);
  }

  private closeFile(f: OpenFile): void {
    f.opening.then(({ file }) => file.close(), () => undefined).catch(() => undefined);
  }
}

/**
 * Blocking positioned reads (readSync) through a small LRU of open files, for worker threads: a worker has nothing
 * else to do meanwhile, and skipping the thread pool's round trips reads a crop's rows in about half the time.
 */
export class SyncFileReader implements PositionedReader {
  bytesRead = 0;
  reads = 0;
  private readonly files = new Map<string, { fd: number; size: number }>();

  constructor(private readonly maxOpen = 64) {
    if (!Number.isInteger(maxOpen) || maxOpen < 1) throw new Error(`SyncFileReader: maxOpen is ${maxOpen}; expected a positive integer`);
  }

  async size(path: string): Promise<number> {
    return this.open(path).size;
  }

  async read(path: string, into: Uint8Array, position: number): Promise<void> {
    const { fd } = this.open(path);
    let done = 0;
    while (done < into.byteLength) {
      let bytesRead: number;
      try {
        bytesRead = readSync(fd, into, done, into.byteLength - done, position + done);
      } catch (e) {
        throw new Error(`${path}: read of ${into.byteLength} bytes at offset ${position} failed (${(e as Error).message})`);
      }
      if (bytesRead === 0) throw new Error(`${path}: ended after ${position + done} bytes; expected ${into.byteLength} bytes at offset ${position} (truncated cache file?)`);
      done += bytesRead;
    }
    this.bytesRead += into.byteLength;
    this.reads++;
  }

  async close(): Promise<void> {
    for (const { fd } of this.files.values()) closeSync(fd);
    this.files.clear();
  }

  private open(path: string): { fd: number; size: number } {
    const hit = this.files.get(path);
    if (hit) {
      this.files.delete(path);
      this.files.set(path, hit);
      return hit;
    }
    let f: { fd: number; size: number };
    try {
      const fd = openSync(path, 'r');
      f = { fd, size: fstatSync(fd).size };
    } catch (e) {
      throw new Error(`${path}: cannot read cached case file (${(e as Error).message})`);
    }
    this.files.set(path, f);
    // Nothing else holds a descriptor between calls (they are synchronous), so the oldest can close at once.
    for (const [oldest, g] of this.files) {
      if (this.files.size <= this.maxOpen) break;
      this.files.delete(oldest);
      closeSync(g.fd);
    }
    return f;
  }
}

/**
 * The part of the case a plan's region overlaps that a crop reads, as a box [origin, origin + shape): slices
 * z0..z1 always; rows y0..y1 ('rows') or all of them ('slabs'); every column (a row is read whole).
 */
export function cropReadBox(caseShape: DHW, plan: Pick<CropPlan, 'start' | 'regionSize'>, mode: CropReadMode = 'rows'): { origin: DHW; shape: DHW } {
  if (!CROP_READ_MODES.includes(mode)) throw new Error(`cropReadBox: mode is ${JSON.stringify(mode)}; expected 'rows' or 'slabs'`);
  const [D, H, W] = caseShape;
  const clamp = (v: number, n: number) => Math.min(n, Math.max(0, v));
  const z0 = clamp(plan.start[0], D);
  const z1 = Math.max(z0, clamp(plan.start[0] + plan.regionSize[0], D));
  let y0 = 0;
  let y1 = H;
  if (mode === 'rows') {
    y0 = clamp(plan.start[1], H);
    y1 = Math.max(y0, clamp(plan.start[1] + plan.regionSize[1], H));
  }
  return { origin: [z0, y0, 0], shape: [z1 - z0, y1 - y0, W] };
}

/** Checks a cache file's size against the case's shape, naming the file. */
async function checkSize(reader: PositionedReader, path: string, bytes: number, shape: XYZ): Promise<void> {
  const size = await reader.size(path);
  if (size !== bytes) throw new Error(`${path}: ${size} bytes; expected ${bytes} for shape [x, y, z] = [${shape.join(', ')}] (truncated or stale cache file?)`);
}

/**
 * Reads a box of a cached case (see cropReadBox): one positioned read per slice, or one in all when the box spans
 * whole slices (they are then contiguous in the file).
 */
export async function readCaseBox(files: CaseFiles, box: { origin: DHW; shape: DHW }, reader: PositionedReader): Promise<CaseBox> {
  const [D, H, W] = dhwFromXyz(files.shape);
  const [z0, y0] = box.origin;
  const [bd, bh, bw] = box.shape;
  if (bw !== W || box.origin[2] !== 0 || z0 < 0 || y0 < 0 || z0 + bd > D || y0 + bh > H) {
    throw new Error(`readCaseBox: box at [${box.origin.join(', ')}] of [${box.shape.join(', ')}] does not fit case ${files.id} of [D, H, W] = [${D}, ${H}, ${W}]; expected whole rows inside the case`);
  }
  const voxels = D * H * W;
  await Promise.all([checkSize(reader, files.image, voxels * 4, files.shape), checkSize(reader, files.label, voxels, files.shape)]);
  const image = new Float32Array(bd * bh * bw);
  const label = new Uint8Array(bd * bh * bw);
  const imageBytes = new Uint8Array(image.buffer);
  const reads: Promise<void>[] = [];
  const span = (z: number, slices: number) => {
    const first = (z0 + z) * H * W + y0 * W;
    const count = slices * bh * bw;
    const at = z * bh * bw;
    reads.push(reader.read(files.image, imageBytes.subarray(at * 4, (at + count) * 4), first * 4));
    reads.push(reader.read(files.label, label.subarray(at, at + count), first));
  };
  if (bh === H) {
    if (bd > 0) span(0, bd);
  } else {
    for (let z = 0; z < bd; z++) span(z, 1);
  }
  await Promise.all(reads);
  return { image, label, shape: [bd, bh, bw], origin: [z0, y0, 0] };
}

export interface FileCropOptions extends Pick<CropOptions, 'imagePadValue'> {
  /** What a crop reads (default 'rows'). */
  read?: CropReadMode;
}

/** renderCrop of a cached case, reading only the box the plan's region needs. */
export async function renderCropFromFiles(files: CaseFiles, cropSize: DHW, plan: CropPlan, reader: PositionedReader, options: FileCropOptions = {}): Promise<Crop> {
  const box = cropReadBox(dhwFromXyz(files.shape), plan, options.read ?? 'rows');
  return renderCropFromBox(await readCaseBox(files, box, reader), cropSize, plan, options);
}
