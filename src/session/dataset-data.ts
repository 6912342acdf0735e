/**
 * Training data from datasets on disk (Node): the training cases preprocessed once into the cache and read on
 * demand through the case store, crops cut by worker threads; one fixed validation crop per validation case,
 * preprocessed through the same cache. `tgnet train` and `tgnet demo` both train on this.
 */
import { preprocessDatasetToStore, StreamingBatchSampler, type CaseStore } from '../data/case-store.js';
import type { DatasetCase } from '../data/datasets.js';
import { preprocessCaseCached, type PreprocessProgress } from '../data/preprocess-cache.js';
import type { DHW } from '../common/shape.js';
import { validationCrop, type ValidationCrop } from '../eval/validation-crops.js';
import type { TrainingData } from './training-session.js';

export interface DatasetDataOptions {
  /** The preprocessing cache. */
  cacheDir: string;
  /** The validation crop [D, H, W] (the recipe's crop). */
  crop: DHW;
  /** Voxel size [z, y, x] mm to resample to (default: DoDNet's 1.5 x 0.8 x 0.8). */
  targetSpacingZYX?: DHW;
  /** Cases held in memory at once (default 16). */
  maxCases?: number;
  /** Worker threads cutting the crops (default 0: the main thread). */
  workers?: number;
  /** With workers: batches built ahead (default 2). */
  queue?: number;
  /** Worker threads preprocessing the cases not cached yet (default 0: this thread). */
  preprocessWorkers?: number;
  /** After each training case is preprocessed or found in the cache. */
  onPreprocess?: (progress: PreprocessProgress) => void;
  /**
   * Where crops are cut from: 'memory' (cases read whole into the LRU), 'files' (only the rows a crop needs, read
   * from the cache files, by the workers when there are some) or 'auto' (files when the LRU cannot hold every case;
   * default).
   */
  cropSource?: 'auto' | 'memory' | 'files';
}

export interface DatasetData extends TrainingData {
  store: CaseStore;
  /** Seconds spent preprocessing (or reading the summaries of cached cases). */
  preprocessSeconds: number;
}

export async function datasetData(train: readonly DatasetCase[], validation: readonly DatasetCase[], options: DatasetDataOptions): Promise<DatasetData> {
  const spacing = options.targetSpacingZYX ? { targetSpacingZYX: options.targetSpacingZYX } : {};
  const t0 = performance.now();
  const store = await preprocessDatasetToStore(train, options.cacheDir, {
    ...spacing, maxCases: options.maxCases, preprocessWorkers: options.preprocessWorkers, onProgress: options.onPreprocess,
  });
  const preprocessSeconds = (performance.now() - t0) / 1000;
  const crops: ValidationCrop[] = [];
  for (const c of validation) {
    const p = await preprocessCaseCached(c, options.cacheDir, spacing);
    crops.push(validationCrop({ id: c.id, task: c.task, image: p.image, label: p.label, shape: p.shape }, options.crop));
  }
  return {
    store, preprocessSeconds, validation: crops, trainCases: store.cases.length,
    sampler: (sampling) => new StreamingBatchSampler(store, { ...sampling, workers: options.workers ?? 0, queue: options.queue, cropSource: options.cropSource ?? 'auto' }),
  };
}
