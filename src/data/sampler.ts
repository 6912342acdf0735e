/**
 * Training crops and batches: foreground-biased crop placement, DoDNet's scale/flip/intensity
 * augmentation, and a batch sampler that mixes tasks. Deterministic for a given seed.
 */
import type { Shape3 } from './nifti.js';
import { Random } from './random.js';
import { labelToTarget, taskById } from './tasks.js';
import {
  DEFAULT_AUGMENT,
  IMAGE_PAD_VALUE,
  LABEL_PAD_VALUE,
  augmentIntensity,
  dhwFromXyz,
  extractCrop,
  flipAxis,
  resizeDhw,
  type AugmentOptions,
  type DHW,
} from './augment.js';

/** One preprocessed case in memory; `shape` is NIfTI [x, y, z], so [D, H, W] = [z, y, x]. */
export interface TrainingCase {
  id: string;
  task: number;
  image: Float32Array;
  label: Uint8Array;
  shape: Shape3;
}

export interface CropOptions {
  /** Share of crops centred near a foreground voxel (default 0.8). */
  foregroundFraction?: number;
  augment?: AugmentOptions;
  imagePadValue?: number;
}

export interface Crop {
  image: Float32Array;
  label: Uint8Array;
  /** Where the (pre-scaling) region started in the case, [D, H, W]; may be negative when padded. */
  start: DHW;
  /** Region size before resizing to the crop size. */
  regionSize: DHW;
  flipped: [boolean, boolean, boolean];
  foregroundCentred: boolean;
}

/** Foreground voxel indices per label value, computed once per label array. */
const foregroundCache = new WeakMap<Uint8Array, Map<number, Int32Array>>();

export function foregroundIndex(label: Uint8Array): Map<number, Int32Array> {
  const hit = foregroundCache.get(label);
  if (hit) return hit;
  const counts = new Map<number, number>();
  for (let i = 0; i < label.length; i++) {
    const v = label[i];
    if (v !== 0) counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  const lists = new Map<number, Int32Array>();
  const fill = new Map<number, number>();
  for (const [v, n] of counts) {
    lists.set(v, new Int32Array(n));
    fill.set(v, 0);
  }
  for (let i = 0; i < label.length; i++) {
    const v = label[i];
    if (v !== 0) {
      const k = fill.get(v) as number;
      (lists.get(v) as Int32Array)[k] = i;
      fill.set(v, k + 1);
    }
  }
  const sorted = new Map([...lists.entries()].sort((a, b) => a[0] - b[0]));
  foregroundCache.set(label, sorted);
  return sorted;
}

/** Start of a region of `size` along an axis of length `n` so that it holds `centre` as near its middle as the volume allows. */
function startAround(centre: number, size: number, n: number): number {
  const start = centre - Math.floor(size / 2);
  if (n >= size) return Math.min(n - size, Math.max(0, start));
  // Volume shorter than the region: the region must cover it all; padding goes on both sides.
  return Math.min(0, Math.max(n - size, start));
}

function randomStart(rng: Random, size: number, n: number): number {
  return n >= size ? rng.int(0, n - size) : rng.int(n - size, 0);
}

/**
 * One augmented training crop of `cropSize` [D, H, W]. With probability `foregroundFraction` the
 * region is centred on a random voxel of a random foreground label value (each present value equally
 * likely, so small tumours get their share), jittered by up to a quarter of the region; otherwise it
 * is placed uniformly. Image padding uses -1, label padding 0.
 */
export function sampleCrop(c: TrainingCase, cropSize: DHW, rng: Random, options: CropOptions = {}): Crop {
  const aug = options.augment ?? DEFAULT_AUGMENT;
  const shape = dhwFromXyz(c.shape);
  const voxels = shape[0] * shape[1] * shape[2];
  if (c.image.length !== voxels || c.label.length !== voxels) {
    throw new Error(`case ${c.id}: image length ${c.image.length} / label length ${c.label.length}; expected ${voxels} for shape [x, y, z] = [${c.shape.join(', ')}]`);
  }
  const scale = rng.chance(aug.scaleProbability) ? rng.uniform(...aug.scaleRange) : 1;
  const regionSize = cropSize.map((n) => Math.max(1, Math.round(n * scale))) as DHW;

  const fg = foregroundIndex(c.label);
  const fgValues = [...fg.keys()];
  const foregroundCentred = fgValues.length > 0 && rng.chance(options.foregroundFraction ?? 0.8);
  let start: DHW;
  if (foregroundCentred) {
    const list = fg.get(rng.pick(fgValues)) as Int32Array;
    const idx = list[rng.int(0, list.length - 1)];
    const [, H, W] = shape;
    const centre: DHW = [Math.floor(idx / (H * W)), Math.floor(idx / W) % H, idx % W];
    start = centre.map((p, a) => {
      const jitter = Math.floor(regionSize[a] / 4);
      return startAround(p + rng.int(-jitter, jitter), regionSize[a], shape[a]);
    }) as DHW;
  } else {
    start = regionSize.map((s, a) => randomStart(rng, s, shape[a])) as DHW;
  }

  const padImage = options.imagePadValue ?? IMAGE_PAD_VALUE;
  let image = extractCrop(c.image, shape, start, regionSize, padImage);
  let label = extractCrop(c.label, shape, start, regionSize, LABEL_PAD_VALUE);
  if (scale !== 1) {
    image = resizeDhw(image, regionSize, cropSize, 'linear');
    label = Uint8Array.from(resizeDhw(label, regionSize, cropSize, 'nearest'));
  }
  const flipped: [boolean, boolean, boolean] = [false, false, false];
  if (aug.mirror) {
    for (const axis of [0, 1, 2] as const) {
      if (rng.chance(0.5)) {
        flipAxis(image, cropSize, axis);
        flipAxis(label, cropSize, axis);
        flipped[axis] = true;
      }
    }
  }
  augmentIntensity(image, rng, aug);
  return { image, label, start, regionSize, flipped, foregroundCentred };
}

export interface Batch {
  /** [N, 1, D, H, W] */
  image: Float32Array;
  /** [N, 2, D, H, W]: organ, tumour; -1 where the task does not annotate the channel. */
  target: Float32Array;
  taskIds: number[];
  caseIds: string[];
  /** [N, D, H, W] for convenience. */
  shape: [number, number, number, number];
}

export interface BatchSamplerOptions extends CropOptions {
  batchSize: number;
  cropSize: DHW;
  seed: number;
  /**
   * 'task' (default): pick a task uniformly, then a case of it, so small datasets are not drowned;
   * 'case': pick cases uniformly.
   */
  balance?: 'task' | 'case';
}

/** Endless random batches over cases of several tasks. */
export class BatchSampler {
  private readonly rng: Random;
  private readonly byTask: Map<number, TrainingCase[]>;
  private readonly tasks: number[];

  constructor(
    private readonly cases: readonly TrainingCase[],
    private readonly options: BatchSamplerOptions,
  ) {
    if (cases.length === 0) throw new Error('BatchSampler: no cases; expected at least one training case');
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) throw new Error(`BatchSampler: batchSize is ${options.batchSize}; expected a positive integer`);
    for (const [i, n] of options.cropSize.entries()) {
      if (!Number.isInteger(n) || n < 1) throw new Error(`BatchSampler: cropSize[${i}] is ${n}; expected a positive integer`);
    }
    this.rng = new Random(options.seed);
    this.byTask = new Map();
    for (const c of cases) {
      taskById(c.task);
      const list = this.byTask.get(c.task) ?? [];
      list.push(c);
      this.byTask.set(c.task, list);
    }
    this.tasks = [...this.byTask.keys()].sort((a, b) => a - b);
  }

  next(): Batch {
    const { batchSize: n, cropSize } = this.options;
    const voxels = cropSize[0] * cropSize[1] * cropSize[2];
    const image = new Float32Array(n * voxels);
    const target = new Float32Array(n * 2 * voxels);
    const taskIds: number[] = [];
    const caseIds: string[] = [];
    for (let i = 0; i < n; i++) {
      const c = this.options.balance === 'case' ? this.rng.pick(this.cases) : this.rng.pick(this.byTask.get(this.rng.pick(this.tasks)) as TrainingCase[]);
      const crop = sampleCrop(c, cropSize, this.rng, this.options);
      image.set(crop.image, i * voxels);
      labelToTarget(crop.label, c.task, target.subarray(i * 2 * voxels, (i + 1) * 2 * voxels));
      taskIds.push(c.task);
      caseIds.push(c.id);
    }
    return { image, target, taskIds, caseIds, shape: [n, cropSize[0], cropSize[1], cropSize[2]] };
  }
}
