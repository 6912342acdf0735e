/**
 * Training crops and batches: foreground-biased crop placement, DoDNet's scale/flip/intensity
 * augmentation, and a batch sampler that mixes tasks. Deterministic for a given seed.
 */
import { Random } from './random.js';
import { labelToTarget, taskById } from './tasks.js';
import {
  IMAGE_PAD_VALUE, LABEL_PAD_VALUE, applyIntensity, extractCrop, flipAxis, planFlips, planIntensity, resizeDhw, resolveAugment, type AugmentOptions, type AugmentRecipe, type IntensityPlan,
} from './augment.js';
import { type DHW, type XYZ, dhwFromXyz } from '../common/shape.js';

/** One preprocessed case in memory; `shape` is NIfTI [x, y, z], so [D, H, W] = [z, y, x]. */
export interface TrainingCase {
  id: string;
  task: number;
  image: Float32Array;
  label: Uint8Array;
  shape: XYZ;
  /**
   * Foreground positions per label value to centre crops on; default: every foreground voxel of
   * `label`. A streamed case passes the store's compact (possibly subsampled) index so that no full
   * index is rebuilt on every load.
   */
  foreground?: ReadonlyMap<number, Int32Array>;
}

export interface CropOptions {
  /** Share of crops centred near a foreground voxel (default 0.8). */
  foregroundFraction?: number;
  /**
   * Share of crops centred near a voxel of the case's own tumour label (lesion-aware sampling), drawn before and
   * apart from `foregroundFraction`; the rest are placed as `foregroundFraction` says. Needs the case's task
   * (CropSource.task) and a tumour in the case; otherwise, and at 0 (the default), no draw is made, so the
   * stream is DoDNet's.
   */
  tumourFraction?: number;
  /** Settings, or a recipe's name: 'default' (DEFAULT_AUGMENT, also when absent) or 'dodnet' (DODNET_AUGMENT). */
  augment?: AugmentOptions | AugmentRecipe;
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

/** What a crop needs to be placed: its id, shape and foreground index (not its voxels). */
export interface CropSource {
  id: string;
  /** NIfTI [x, y, z]. */
  shape: XYZ;
  foreground: ReadonlyMap<number, Int32Array>;
  /** The case's task id: which label value is its tumour (for CropOptions.tumourFraction). */
  task?: number;
}

/**
 * The label value of a task's own tumour in its dataset: 2 where the dataset also labels an organ (liver, kidney,
 * hepatic vessel, pancreas), 1 where it labels only the tumour (colon, lung), none for spleen.
 */
export function tumourLabelValue(task: number): number | undefined {
  const info = taskById(task);
  if (!info.tumourLabelled) return undefined;
  return info.organLabelled ? 2 : 1;
}

/**
 * Every random decision of one crop, made in advance (planCrop), so that the crop itself (renderCrop) can be cut
 * and augmented anywhere, e.g. in a worker thread, while the generator has already moved on exactly as
 * sampleCrop would have moved it.
 */
export interface CropPlan {
  /** The zoom drawn (1: none); the region is resized to the crop size whenever it is not 1. */
  scale: number;
  /** Where the (pre-scaling) region starts in the case, [D, H, W]; may be negative when padded. */
  start: DHW;
  /** Region size before resizing to the crop size. */
  regionSize: DHW;
  flipped: [boolean, boolean, boolean];
  foregroundCentred: boolean;
  intensity: IntensityPlan;
}

/**
 * The draws of one augmented training crop of `cropSize` [D, H, W]. With probability `tumourFraction` (when the
 * case holds its task's tumour) the region is centred on a random voxel of that tumour; else, with probability
 * `foregroundFraction`, on a random voxel of a random foreground label value (each present value equally likely,
 * so small tumours get their share); either way jittered by up to a quarter of the region. Otherwise it is
 * placed uniformly.
 */
export function planCrop(c: CropSource, cropSize: DHW, rng: Random, options: CropOptions = {}): CropPlan {
  const aug = resolveAugment(options.augment);
  const shape = dhwFromXyz(c.shape);
  const scale = rng.chance(aug.scaleProbability) ? rng.uniform(...aug.scaleRange) : 1;
  const regionSize = cropSize.map((n) => Math.max(1, Math.round(n * scale))) as [number, number, number];

  const fg = c.foreground;
  const fgValues = [...fg.keys()];
  const tumourFraction = options.tumourFraction ?? 0;
  const tumourValue = tumourFraction > 0 && c.task !== undefined ? tumourLabelValue(c.task) : undefined;
  const tumourList = tumourValue === undefined ? undefined : fg.get(tumourValue);
  // No draw unless a tumour can be chosen: with tumourFraction 0 the stream is the one without the option.
  const tumourCentred = tumourList !== undefined && tumourList.length > 0 && rng.chance(tumourFraction);
  const foregroundCentred = tumourCentred || (fgValues.length > 0 && rng.chance(options.foregroundFraction ?? 0.8));
  let start: DHW;
  if (foregroundCentred) {
    const list = tumourCentred ? tumourList : fg.get(rng.pick(fgValues)) as Int32Array;
    const idx = list[rng.int(0, list.length - 1)];
    const [, H, W] = shape;
    const centre: DHW = [Math.floor(idx / (H * W)), Math.floor(idx / W) % H, idx % W];
    start = centre.map((p, a) => {
      const jitter = Math.floor(regionSize[a] / 4);
      return startAround(p + rng.int(-jitter, jitter), regionSize[a], shape[a]);
    }) as [number, number, number];
  } else {
    start = regionSize.map((s, a) => randomStart(rng, s, shape[a])) as [number, number, number];
  }
  const flipped = planFlips(rng, aug);
  const intensity = planIntensity(rng, cropSize[0] * cropSize[1] * cropSize[2], aug);
  return { scale, start, regionSize, flipped, foregroundCentred, intensity };
}

/** Checks that a case's arrays hold its shape's voxels, naming the case. */
function checkCaseArrays(c: TrainingCase): void {
  const voxels = c.shape[0] * c.shape[1] * c.shape[2];
  if (c.image.length !== voxels || c.label.length !== voxels) {
    throw new Error(`case ${c.id}: image length ${c.image.length} / label length ${c.label.length}; expected ${voxels} for shape [x, y, z] = [${c.shape.join(', ')}]`);
  }
}

/** Cuts, resizes, flips and augments the crop a plan describes; no random draws. Image padding uses -1, label padding 0. */
export function renderCrop(c: TrainingCase, cropSize: DHW, plan: CropPlan, options: Pick<CropOptions, 'imagePadValue'> = {}): Crop {
  checkCaseArrays(c);
  return renderCropFromBox({ image: c.image, label: c.label, shape: dhwFromXyz(c.shape), origin: [0, 0, 0] }, cropSize, plan, options);
}

/**
 * A box of a case's voxels: [D, H, W] arrays of `shape` whose first voxel is the case's voxel `origin`. A box that
 * holds every voxel of the plan's region that lies inside the case gives the crop of the whole case bit for bit
 * (a crop read from the cache files is cut this way: see crop-reader.ts).
 */
export interface CaseBox {
  image: Float32Array;
  label: Uint8Array;
  shape: DHW;
  origin: DHW;
}

/** renderCrop on a box of the case (see CaseBox); the plan's coordinates are the case's. */
export function renderCropFromBox(box: CaseBox, cropSize: DHW, plan: CropPlan, options: Pick<CropOptions, 'imagePadValue'> = {}): Crop {
  const { start, regionSize, flipped, foregroundCentred } = plan;
  const padImage = options.imagePadValue ?? IMAGE_PAD_VALUE;
  const local = start.map((p, a) => p - box.origin[a]) as [number, number, number];
  let image = extractCrop(box.image, box.shape, local, regionSize, padImage);
  let label = extractCrop(box.label, box.shape, local, regionSize, LABEL_PAD_VALUE);
  if (plan.scale !== 1) {
    image = resizeDhw(image, regionSize, cropSize, 'linear');
    label = Uint8Array.from(resizeDhw(label, regionSize, cropSize, 'nearest'));
  }
  for (const axis of [0, 1, 2] as const) {
    if (flipped[axis]) {
      flipAxis(image, cropSize, axis);
      flipAxis(label, cropSize, axis);
    }
  }
  applyIntensity(image, plan.intensity);
  return { image, label, start: [...start], regionSize: [...regionSize], flipped: [...flipped], foregroundCentred };
}

/**
 * One augmented training crop of `cropSize` [D, H, W]: planCrop's draws, then renderCrop's work (see both).
 */
export function sampleCrop(c: TrainingCase, cropSize: DHW, rng: Random, options: CropOptions = {}): Crop {
  checkCaseArrays(c);
  const plan = planCrop({ id: c.id, shape: c.shape, foreground: c.foreground ?? foregroundIndex(c.label), task: c.task }, cropSize, rng, options);
  return renderCrop(c, cropSize, plan, options);
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

/** The id and task of a case: all that picking a case for a batch needs. */
export interface CaseRef {
  id: string;
  task: number;
}

/**
 * Validates the options and picks cases exactly as BatchSampler does; shared with StreamingBatchSampler
 * so that both draw the same random stream for the same seed.
 */
export class CasePicker<T extends CaseRef> {
  private readonly byTask = new Map<number, T[]>();
  private readonly tasks: number[];

  constructor(
    private readonly cases: readonly T[],
    private readonly options: BatchSamplerOptions,
    who = 'BatchSampler',
  ) {
    if (cases.length === 0) throw new Error(`${who}: no cases; expected at least one training case`);
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) throw new Error(`${who}: batchSize is ${options.batchSize}; expected a positive integer`);
    for (const [i, n] of options.cropSize.entries()) {
      if (!Number.isInteger(n) || n < 1) throw new Error(`${who}: cropSize[${i}] is ${n}; expected a positive integer`);
    }
    for (const c of cases) {
      taskById(c.task);
      const list = this.byTask.get(c.task) ?? [];
      list.push(c);
      this.byTask.set(c.task, list);
    }
    this.tasks = [...this.byTask.keys()].sort((a, b) => a - b);
  }

  pick(rng: Random): T {
    return this.options.balance === 'case' ? rng.pick(this.cases) : rng.pick(this.byTask.get(rng.pick(this.tasks)) as T[]);
  }
}

/** Fills a Batch crop by crop; shared by both samplers so the layout has one definition. */
export class BatchBuilder {
  private readonly voxels: number;
  private readonly image: Float32Array;
  private readonly target: Float32Array;
  private readonly taskIds: number[] = [];
  private readonly caseIds: string[] = [];

  constructor(private readonly batchSize: number, private readonly cropSize: DHW) {
    this.voxels = cropSize[0] * cropSize[1] * cropSize[2];
    this.image = new Float32Array(batchSize * this.voxels);
    this.target = new Float32Array(batchSize * 2 * this.voxels);
  }

  /** Adds a crop; its target is `target` when given (labelToTarget of the crop's label, made elsewhere), else made here. */
  add(c: CaseRef, crop: Crop, target?: Float32Array): void {
    const i = this.taskIds.length;
    const v = this.voxels;
    if (i >= this.batchSize) throw new Error(`BatchBuilder.add: the batch already holds ${i} crops; expected at most batchSize ${this.batchSize}`);
    this.image.set(crop.image, i * v);
    const slot = this.target.subarray(i * 2 * v, (i + 1) * 2 * v);
    if (target) {
      if (target.length !== 2 * v) throw new Error(`BatchBuilder.add: target of case ${c.id} has length ${target.length}; expected ${2 * v} (2 channels x ${v} voxels)`);
      slot.set(target);
    } else {
      labelToTarget(crop.label, c.task, slot);
    }
    this.taskIds.push(c.task);
    this.caseIds.push(c.id);
  }

  finish(): Batch {
    const [D, H, W] = this.cropSize;
    return { image: this.image, target: this.target, taskIds: this.taskIds, caseIds: this.caseIds, shape: [this.batchSize, D, H, W] };
  }
}

/**
 * Where a sampler stands in its random stream: enough to continue it exactly (case picks, crop placement and
 * augmentation all draw from one generator, so its state at the start of the next batch fixes the rest).
 */
export interface SamplerPosition {
  /** Batches handed out so far. */
  batches: number;
  /** The generator's state (Random.currentState) at the start of the next batch. */
  state: number;
}

/** Checks a position handed to `restorePosition`, naming the field. */
export function checkSamplerPosition(p: SamplerPosition, who: string): void {
  if (!p || !Number.isSafeInteger(p.batches) || p.batches < 0) throw new Error(`${who}: position.batches is ${JSON.stringify(p?.batches)}; expected a non-negative integer`);
  if (!Number.isSafeInteger(p.state) || p.state < -0x80000000 || p.state > 0x7fffffff) {
    throw new Error(`${who}: position.state is ${JSON.stringify(p.state)}; expected a 32-bit integer from position()`);
  }
}

/** Endless random batches over cases of several tasks. */
export class BatchSampler {
  private rng: Random;
  private batches = 0;
  private readonly picker: CasePicker<TrainingCase>;

  constructor(
    cases: readonly TrainingCase[],
    private readonly options: BatchSamplerOptions,
  ) {
    this.picker = new CasePicker(cases, options);
    this.rng = new Random(options.seed);
  }

  next(): Batch {
    const { batchSize: n, cropSize } = this.options;
    const batch = new BatchBuilder(n, cropSize);
    for (let i = 0; i < n; i++) {
      const c = this.picker.pick(this.rng);
      batch.add(c, sampleCrop(c, cropSize, this.rng, this.options));
    }
    this.batches++;
    return batch.finish();
  }

  /** Where the stream stands now (after the batches handed out). */
  position(): SamplerPosition {
    return { batches: this.batches, state: this.rng.currentState };
  }

  /** Continues from a saved `position()`: the next batches are those the saved sampler would have drawn. */
  restorePosition(position: SamplerPosition): void {
    checkSamplerPosition(position, 'BatchSampler.restorePosition');
    this.rng = Random.fromState(position.state);
    this.batches = position.batches;
  }
}
