/**
 * Training on datasets larger than memory (Node only): a CaseStore keeps only a small summary of every
 * preprocessed case (id, task, shape, a compact foreground index) and reads a case's image and label
 * from the preprocessing cache when a crop needs it, holding at most `maxCases` cases (and `maxBytes`)
 * in an LRU. StreamingBatchSampler draws the same batches as BatchSampler for the same seed.
 */
import { open } from 'node:fs/promises';
import { constants as zlibConstants, gunzipSync } from 'node:zlib';
import { affineFromHeader, isGzip, readNiftiHeader, type NiftiHeader } from './nifti.js';
import type { DatasetCase } from './datasets.js';
import { isDicomInput, readDicomInput } from './dicom-file.js';
import { readCachedVolumes, type PreprocessCacheOptions, type PreprocessProgress } from './preprocess-cache.js';
import { preprocessCollection, type CaseSummary } from './case-cache.js';
import { CROP_READ_MODES, CachedFileReader, caseFilesOf, renderCropFromFiles, type CropReadMode } from './crop-reader.js';
import { Random } from './random.js';
import { CropWorkerPool, defaultCropWorkerScript } from './crop-workers.js';
import {
  BatchBuilder, CasePicker, checkSamplerPosition, planCrop, renderCrop, type Batch, type BatchSamplerOptions, type CropPlan, type SamplerPosition,
  type TrainingCase,
} from './sampler.js';

/**
 * The first bytes of a NIfTI file, gunzipped as far as they go: enough for the header without reading (or
 * decompressing) the whole volume.
 */
async function niftiHeaderPrefix(path: string): Promise<NiftiHeader> {
  let head: Uint8Array;
  try {
    const file = await open(path, 'r');
    try {
      const buf = new Uint8Array(HEADER_READ_BYTES);
      const { bytesRead } = await file.read(buf, 0, buf.length, 0);
      head = buf.subarray(0, bytesRead);
    } finally {
      await file.close();
    }
  } catch (e) {
    throw new Error(`${path}: cannot read NIfTI file (${(e as Error).message})`);
  }
  if (isGzip(head)) {
    try {
      // SYNC_FLUSH: return what the prefix decodes to instead of failing on the missing end of the stream.
      head = new Uint8Array(gunzipSync(head, { finishFlush: zlibConstants.Z_SYNC_FLUSH }));
    } catch (e) {
      throw new Error(`${path}: gzip data is corrupt (${(e as Error).message})`);
    }
  }
  return readNiftiHeader(head, path);
}

const HEADER_READ_BYTES = 64 * 1024;

/** Shape and affine of a NIfTI file from its header, or of a DICOM series (folder or zip: read whole, it has no one header). */
async function geometryOf(path: string): Promise<{ dims: number; shape: number[]; affine: number[] }> {
  if (await isDicomInput(path)) {
    const v = await readDicomInput(path);
    return { dims: 3, shape: [...v.shape], affine: v.affine };
  }
  const h = await niftiHeaderPrefix(path);
  return { dims: h.dim[0], shape: h.dim.slice(1, 4), affine: affineFromHeader(h) };
}

/**
 * Checks every case's image and label from their headers alone, before any preprocessing: each a 3-D volume
 * (not a 2-D image of shape [X, Y, 1], not several frames), and the label on the image's grid (same shape, same
 * affine within `tolerance` mm). Errors name the case, both files and the values.
 */
export async function checkCaseGeometry(cases: readonly DatasetCase[], tolerance = 1e-3): Promise<void> {
  for (const c of cases) {
    const [image, label] = [await geometryOf(c.image), await geometryOf(c.label)];
    for (const [path, g] of [[c.image, image], [c.label, label]] as const) {
      if (g.dims < 3 || g.shape.some((n) => n < 2)) {
        throw new Error(`case ${c.id}: ${path} has shape [${g.shape.join(', ')}], a 2-D image; expected a 3-D CT volume (at least 2 voxels along x, y and z)`);
      }
    }
    const si = image.shape;
    const sl = label.shape;
    if (si.some((n, i) => n !== sl[i])) {
      throw new Error(`case ${c.id}: label ${c.label} has shape [${sl.join(', ')}] but image ${c.image} has [${si.join(', ')}]; expected the label on the image's grid`);
    }
    const ai = image.affine;
    const al = label.affine;
    const worst = ai.reduce((m, v, i) => Math.max(m, Math.abs(v - al[i])), 0);
    if (!(worst <= tolerance)) {
      const rows = (a: number[]) => `[${[0, 1, 2].map((r) => a.slice(4 * r, 4 * r + 4).map((v) => +v.toFixed(4)).join(' ')).join('; ')}]`;
      throw new Error(`case ${c.id}: label ${c.label} has affine ${rows(al)} but image ${c.image} has ${rows(ai)} (they differ by up to ${+worst.toFixed(4)} mm); expected the label on the image's grid`);
    }
  }
}

export { compactForegroundIndex, DEFAULT_FOREGROUND_SAMPLES } from './case-cache.js';

/** What the store keeps in memory for every case: enough to pick a case and a crop centre (see CaseSummary). */
export type StoredCaseInfo = CaseSummary;

export interface CaseStoreOptions {
  /** Most cases held in memory at once, counting one being read (default 16). */
  maxCases?: number;
  /** Most image + label bytes held at once; one case is always allowed even if larger (default: no limit). */
  maxBytes?: number;
  /** Read cases into SharedArrayBuffers, so crop worker threads use them without a copy (default false). */
  shared?: boolean;
}

export interface CaseStoreStats {
  /** Cases read from disk. */
  loads: number;
  /** Requests answered from memory. */
  hits: number;
  /** Cases held or being read now. */
  live: number;
  /** Most cases ever held or being read at once. */
  peakLive: number;
  liveBytes: number;
}

function caseBytes(info: StoredCaseInfo): number {
  return info.shape[0] * info.shape[1] * info.shape[2] * 5;
}

export class CaseStore {
  readonly cases: readonly StoredCaseInfo[];
  private readonly byId = new Map<string, StoredCaseInfo>();
  private readonly maxCases: number;
  private readonly maxBytes: number;
  /** Held cases, least recently used first (Map keeps insertion order). */
  private readonly held = new Map<string, TrainingCase>();
  private readonly pending = new Map<string, Promise<TrainingCase>>();
  private heldBytes = 0;
  private pendingBytes = 0;
  private counters = { loads: 0, hits: 0, peakLive: 0 };
  private shared: boolean;

  constructor(cases: readonly StoredCaseInfo[], options: CaseStoreOptions = {}) {
    const maxCases = options.maxCases ?? 16;
    if (!Number.isInteger(maxCases) || maxCases < 1) throw new Error(`CaseStore: maxCases is ${maxCases}; expected a positive integer`);
    const maxBytes = options.maxBytes ?? Infinity;
    if (!(maxBytes > 0)) throw new Error(`CaseStore: maxBytes is ${maxBytes}; expected a positive number`);
    for (const c of cases) {
      if (this.byId.has(c.id)) throw new Error(`CaseStore: case id ${JSON.stringify(c.id)} appears twice`);
      this.byId.set(c.id, c);
    }
    this.cases = cases;
    this.maxCases = maxCases;
    this.maxBytes = maxBytes;
    this.shared = options.shared ?? false;
  }

  /** Cases read from now on go to shared memory (see CaseStoreOptions.shared); those held stay as they are. */
  shareMemory(): void {
    this.shared = true;
  }

  info(id: string): StoredCaseInfo {
    const info = this.byId.get(id);
    if (!info) throw new Error(`CaseStore: no case with id ${JSON.stringify(id)}`);
    return info;
  }

  /** True when every case fits in the store at once (its case and byte bounds), so none is ever read twice. */
  get holdsAll(): boolean {
    return this.cases.length <= this.maxCases && this.cases.reduce((n, c) => n + caseBytes(c), 0) <= this.maxBytes;
  }

  get stats(): CaseStoreStats {
    return { ...this.counters, live: this.held.size + this.pending.size, liveBytes: this.heldBytes + this.pendingBytes };
  }

  /** The case's image and label, from memory or read from the cache (errors name the file). */
  async load(id: string): Promise<TrainingCase> {
    const hit = this.held.get(id);
    if (hit) {
      this.held.delete(id);
      this.held.set(id, hit);
      this.counters.hits++;
      return hit;
    }
    const inFlight = this.pending.get(id);
    if (inFlight) {
      this.counters.hits++;
      return inFlight;
    }
    const info = this.info(id);
    const bytes = caseBytes(info);
    // Evict before reading, so the bound holds while the new case is in memory too.
    this.evictFor(bytes);
    const promise = readCachedVolumes(info.stem, info.shape, { shared: this.shared }).then(({ image, label }): TrainingCase => (
      { id: info.id, task: info.task, shape: info.shape, image, label, foreground: info.foreground }
    ));
    this.pending.set(id, promise);
    this.pendingBytes += bytes;
    this.counters.loads++;
    this.counters.peakLive = Math.max(this.counters.peakLive, this.held.size + this.pending.size);
    try {
      const c = await promise;
      this.held.set(id, c);
      this.heldBytes += bytes;
      return c;
    } finally {
      this.pending.delete(id);
      this.pendingBytes -= bytes;
    }
  }

  /** Drops every held case. */
  clear(): void {
    this.held.clear();
    this.heldBytes = 0;
  }

  private evictFor(bytes: number): void {
    for (const [id, c] of this.held) {
      const live = this.held.size + this.pending.size;
      const liveBytes = this.heldBytes + this.pendingBytes;
      if (live < this.maxCases && liveBytes + bytes <= this.maxBytes) break;
      this.held.delete(id);
      this.heldBytes -= c.image.length * 5;
    }
  }
}

export interface StoreOptions extends PreprocessCacheOptions, CaseStoreOptions {
  /** Foreground positions kept per label value and case (default DEFAULT_FOREGROUND_SAMPLES). */
  foregroundSamples?: number;
  /** Worker threads preprocessing the cases not cached yet (default 0: this thread; see preprocessCollection). */
  preprocessWorkers?: number;
  /** With preprocessWorkers: the built preprocess-worker.js (default: defaultPreprocessWorkerScript()). */
  preprocessWorkerScript?: URL | string;
  /** After each case, cached or made. */
  onProgress?: (progress: PreprocessProgress) => void;
}

/**
 * Preprocesses the cases not in the cache yet (one at a time, or one per worker) and keeps only every case's
 * summary, so peak memory is a case per preprocessing thread rather than the dataset; cached cases are summarised
 * without reading their volumes.
 */
export async function preprocessDatasetToStore(cases: readonly DatasetCase[], cacheDir: string, options: StoreOptions = {}): Promise<CaseStore> {
  const { preprocessWorkers, preprocessWorkerScript, ...rest } = options;
  const infos = await preprocessCollection(cases, cacheDir, { ...rest, workers: preprocessWorkers, workerScript: preprocessWorkerScript });
  return new CaseStore(infos, options);
}

export interface StreamingBatchSamplerOptions extends BatchSamplerOptions {
  /** Build batches in the background while the current one is used (default true). */
  prefetch?: boolean;
  /**
   * Worker threads that cut and augment the crops (default 0: this thread, one batch built ahead). The main
   * thread still makes every random draw (planCrop), so the batches are the same for any number of workers.
   */
  workers?: number;
  /** With workers: batches built ahead of the one handed out, a bounded queue (default 2). */
  queue?: number;
  /** With workers: the built crop-worker.js (default: defaultCropWorkerScript()). */
  workerScript?: URL | string;
  /**
   * Where crops are cut from: 'memory', whole cases held in the store's LRU; 'files', the cache files by positioned
   * reads of only the rows a crop needs (see crop-reader.ts), by the workers themselves when there are any, so
   * memory follows the crops in flight, not the cases; 'auto', 'memory' while the store can hold every case at
   * once, else 'files'. Default 'memory'. The batches are the same bytes whichever it is.
   */
  cropSource?: 'auto' | 'memory' | 'files';
  /** With 'files': what a crop reads, rows (default) or whole slices (see CropReadMode). */
  read?: CropReadMode;
}

/** A batch's random draws, made before any of its crops is built: the cases, the plans and where the stream ends. */
interface PlannedBatch {
  items: { ref: StoredCaseInfo; plan: CropPlan }[];
  end: number;
}

/**
 * BatchSampler over a CaseStore: same options, same case picking and crops (same seed, same batches
 * while every case's foreground fits the store's compact index), but cases are read on demand.
 *
 * Batches are built ahead of the caller: in this thread one at a time, or with `workers` several at once, their
 * crops in worker threads. Either way the generator is advanced only here, batch after batch, in order (planCrop),
 * so the batches do not depend on the number of workers. `position()` therefore reports the generator's state
 * where the first batch not yet handed out began (saved with each batch as it is planned), not its live state: a
 * run resumed from it draws exactly the batches it had not used.
 */
export class StreamingBatchSampler {
  private rng: Random;
  private readonly picker: CasePicker<StoredCaseInfo>;
  /** Batches being built, oldest first. */
  private readonly ahead: Promise<BuiltBatch>[] = [];
  private started = false;
  private consumed: SamplerPosition;
  /** Batches handed out by next() (a promise each), counting from the restored position. */
  private handedOut = 0;
  /** Of those, how many have been delivered, in stream order (what `consumed` describes). */
  private consumedSeq = 0;
  /** The restored position's batch count (0 for a fresh stream). */
  private startBatches = 0;
  private readonly pool: CropWorkerPool | null;
  private readonly queue: number;
  /** With cropSource 'files': this thread's reader (no workers), else null. */
  private readonly reader: CachedFileReader | null;
  /** Crops are cut from the cache files rather than from whole cases in the store. */
  readonly fromFiles: boolean;

  constructor(
    private readonly store: CaseStore,
    private readonly options: StreamingBatchSamplerOptions,
  ) {
    this.picker = new CasePicker(store.cases, options, 'StreamingBatchSampler');
    const workers = options.workers ?? 0;
    if (!Number.isInteger(workers) || workers < 0) throw new Error(`StreamingBatchSampler: workers is ${workers}; expected a non-negative integer (0: build crops in this thread)`);
    this.queue = options.queue ?? 2;
    if (!Number.isInteger(this.queue) || this.queue < 1) throw new Error(`StreamingBatchSampler: queue is ${this.queue}; expected a positive integer (batches built ahead)`);
    this.rng = new Random(options.seed);
    this.consumed = { batches: 0, state: this.rng.currentState };
    const source = options.cropSource ?? 'memory';
    if (!['auto', 'memory', 'files'].includes(source)) throw new Error(`StreamingBatchSampler: cropSource is ${JSON.stringify(source)}; expected 'auto', 'memory' or 'files'`);
    if (options.read !== undefined && !CROP_READ_MODES.includes(options.read)) throw new Error(`StreamingBatchSampler: read is ${JSON.stringify(options.read)}; expected 'rows' or 'slabs'`);
    this.fromFiles = source === 'files' || (source === 'auto' && !store.holdsAll);
    this.reader = this.fromFiles && workers === 0 ? new CachedFileReader() : null;
    if (workers > 0) {
      if (!this.fromFiles) store.shareMemory();
      this.pool = new CropWorkerPool(workers, options.workerScript ?? defaultCropWorkerScript());
    } else {
      this.pool = null;
    }
  }

  /** Worker threads building crops (0: this thread). */
  get workers(): number {
    return this.pool?.count ?? 0;
  }

  /** Bytes read from the cache files for crops so far (cropSource 'files'; 0 otherwise). */
  get bytesRead(): number {
    return this.pool?.bytesRead ?? this.reader?.bytesRead ?? 0;
  }

  next(): Promise<Batch> {
    this.started = true;
    let current: Promise<BuiltBatch>;
    if (this.pool) {
      current = this.ahead.shift() ?? this.submit();
      // The bounded queue: up to `queue` batches planned and being built behind the one handed out.
      while (this.options.prefetch !== false && this.ahead.length < this.queue) this.ahead.push(this.quiet(this.submit()));
    } else {
      current = this.ahead.shift() ?? this.build();
      // Batches are built strictly one after another in this thread.
      if (this.options.prefetch !== false) this.ahead.push(this.quiet(current.then(() => this.build())));
    }
    const seq = this.handedOut++;
    return current.then(({ batch, end }) => {
      // Handed-out batches may be awaited out of order; the position is that of the latest in stream order.
      if (seq + 1 > this.consumedSeq) {
        this.consumedSeq = seq + 1;
        this.consumed = { batches: this.startBatches + seq + 1, state: end };
      }
      return batch;
    });
  }

  /** Where the stream stands for the caller: batches handed out, and the state the next one starts from. */
  position(): SamplerPosition {
    return { ...this.consumed };
  }

  /**
   * Continues from a saved `position()`. Only before the first `next()`: a batch already being built ahead
   * draws from the old stream.
   */
  restorePosition(position: SamplerPosition): void {
    checkSamplerPosition(position, 'StreamingBatchSampler.restorePosition');
    if (this.started) throw new Error('StreamingBatchSampler.restorePosition: batches were already drawn; restore a new sampler before its first next()');
    this.rng = Random.fromState(position.state);
    this.consumed = { ...position };
    this.startBatches = position.batches;
  }

  /** Stops the crop workers (if any); batches still being built are dropped. Call when training ends. */
  async close(): Promise<void> {
    this.ahead.length = 0;
    await this.pool?.close();
    await this.reader?.close();
  }

  /** A prefetched batch that fails after training stops must not be an unhandled rejection; a caller that asks for it still gets the error. */
  private quiet(p: Promise<BuiltBatch>): Promise<BuiltBatch> {
    p.catch(() => undefined);
    return p;
  }

  private plan(): PlannedBatch {
    const { batchSize: n, cropSize } = this.options;
    const items: PlannedBatch['items'] = [];
    for (let i = 0; i < n; i++) {
      const ref = this.picker.pick(this.rng);
      items.push({ ref, plan: planCrop(ref, cropSize, this.rng, this.options) });
    }
    return { items, end: this.rng.currentState };
  }

  /** Plans the next batch and builds it here, crop by crop. */
  private async build(): Promise<BuiltBatch> {
    const { items, end } = this.plan();
    const batch = new BatchBuilder(this.options.batchSize, this.options.cropSize);
    for (const { ref, plan } of items) {
      if (this.reader) {
        batch.add(ref, await renderCropFromFiles(caseFilesOf(ref.id, ref.stem, ref.shape), this.options.cropSize, plan, this.reader, this.options));
      } else {
        const c = await this.store.load(ref.id);
        batch.add(c, renderCrop(c, this.options.cropSize, plan, this.options));
      }
    }
    return { batch: batch.finish(), end };
  }

  /** Plans the next batch now and builds its crops in the workers, all at once. */
  private submit(): Promise<BuiltBatch> {
    const pool = this.pool as CropWorkerPool;
    const { items, end } = this.plan();
    const { cropSize, imagePadValue, read } = this.options;
    const crops = items.map(async ({ ref, plan }) => {
      const { image, label, target } = this.fromFiles
        ? await pool.renderFromFiles({ ...caseFilesOf(ref.id, ref.stem, ref.shape), task: ref.task }, cropSize, plan, { imagePadValue, read })
        : await pool.render(await this.store.load(ref.id), cropSize, plan, imagePadValue);
      return { crop: { image, label, start: plan.start, regionSize: plan.regionSize, flipped: plan.flipped, foregroundCentred: plan.foregroundCentred }, target };
    });
    return Promise.all(crops).then((built) => {
      const batch = new BatchBuilder(this.options.batchSize, this.options.cropSize);
      built.forEach(({ crop, target }, i) => batch.add(items[i].ref, crop, target));
      return { batch: batch.finish(), end };
    });
  }
}

/** A batch and the generator state right after it was drawn (where the next batch starts). */
interface BuiltBatch {
  batch: Batch;
  end: number;
}
