/**
 * DoDNet/TGNet post-processing of binary masks, with nothing added: 6-connected components in 3D; the organ
 * keeps its largest component (the two largest for kidney, which has two), tumour components of at most 50
 * voxels are dropped. Tumour is not restricted to the organ. Channels a task does not annotate carry no
 * meaning for it and are cleared. Arrays are [D, H, W] C-order (W fastest).
 */
import { taskById, type TaskInfo } from '../data/tasks.js';
import type { DHW } from '../common/shape.js';

/** Tumour components of this many voxels or fewer are removed. */
export const TUMOUR_MAX_DROPPED_VOXELS = 50;
/**
 * The same rule as a volume: 50 voxels at DoDNet's training spacing 1.5 x 0.8 x 0.8 mm. A pipeline that predicts
 * on another grid drops tumour pieces up to this volume, so the rule means the same thing at any resolution (50
 * voxels of 11 x 11 x 22 mm would be 140 cm3, larger than most tumours).
 */
export const TUMOUR_MAX_DROPPED_MM3 = TUMOUR_MAX_DROPPED_VOXELS * 1.5 * 0.8 * 0.8;

/** Tumour pieces of at most this many voxels are dropped on a grid of `spacing` (mm, any axis order). */
export function tumourMaxDroppedVoxelsFor(spacing: readonly [number, number, number]): number {
  const voxel = spacing[0] * spacing[1] * spacing[2];
  if (!(voxel > 0 && Number.isFinite(voxel))) throw new Error(`tumourMaxDroppedVoxelsFor: spacing is [${spacing.join(', ')}]; expected three positive voxel sizes in mm`);
  return Math.floor(TUMOUR_MAX_DROPPED_MM3 / voxel + 1e-9);
}

export interface ComponentLabels {
  /** 0 for background, 1..count for the components, numbered in raster order of their first voxel (as scipy.ndimage.label). */
  labels: Int32Array;
  /** sizes[k] = voxels of component k + 1. */
  sizes: Int32Array;
  count: number;
}

function checkMask(mask: Uint8Array, shape: DHW, what: string): number {
  if (!Array.isArray(shape) || shape.length !== 3 || shape.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error(`${what}: shape is [${String(shape)}]; expected three positive integers [D, H, W]`);
  }
  const n = shape[0] * shape[1] * shape[2];
  if (!(mask instanceof Uint8Array) || mask.length !== n) {
    throw new Error(`${what}: mask has ${mask?.length} values; expected a Uint8Array of ${n} for [D, H, W] = [${shape.join(', ')}]`);
  }
  return n;
}

/**
 * Labels the 6-connected components of the non-zero voxels by breadth-first search with a typed-array queue
 * (no recursion, so a component as large as the volume cannot overflow the stack).
 */
export function labelComponents(mask: Uint8Array, shape: DHW): ComponentLabels {
  const n = checkMask(mask, shape, 'labelComponents');
  const [D, H, W] = shape;
  const plane = H * W;
  const labels = new Int32Array(n);
  const queue = new Int32Array(n);
  const sizes: number[] = [];
  for (let seed = 0; seed < n; seed++) {
    if (mask[seed] === 0 || labels[seed] !== 0) continue;
    const label = sizes.length + 1;
    labels[seed] = label;
    let head = 0;
    let tail = 0;
    queue[tail++] = seed;
    while (head < tail) {
      const i = queue[head++];
      const x = i % W;
      const y = ((i - x) / W) % H;
      const z = (i - x - y * W) / plane;
      // Each voxel is labelled when enqueued, so it enters the queue once and the queue never overflows n.
      if (x > 0 && mask[i - 1] !== 0 && labels[i - 1] === 0) { labels[i - 1] = label; queue[tail++] = i - 1; }
      if (x < W - 1 && mask[i + 1] !== 0 && labels[i + 1] === 0) { labels[i + 1] = label; queue[tail++] = i + 1; }
      if (y > 0 && mask[i - W] !== 0 && labels[i - W] === 0) { labels[i - W] = label; queue[tail++] = i - W; }
      if (y < H - 1 && mask[i + W] !== 0 && labels[i + W] === 0) { labels[i + W] = label; queue[tail++] = i + W; }
      if (z > 0 && mask[i - plane] !== 0 && labels[i - plane] === 0) { labels[i - plane] = label; queue[tail++] = i - plane; }
      if (z < D - 1 && mask[i + plane] !== 0 && labels[i + plane] === 0) { labels[i + plane] = label; queue[tail++] = i + plane; }
    }
    sizes.push(tail);
  }
  return { labels, sizes: Int32Array.from(sizes), count: sizes.length };
}

function selectComponents(components: ComponentLabels, keep: (label: number) => boolean): Uint8Array {
  const keepLabel = new Uint8Array(components.count + 1);
  for (let l = 1; l <= components.count; l++) keepLabel[l] = keep(l) ? 1 : 0;
  const { labels } = components;
  const out = new Uint8Array(labels.length);
  for (let i = 0; i < labels.length; i++) out[i] = keepLabel[labels[i]];
  return out;
}

/**
 * Keeps the `count` largest 6-connected components (ties: the one met first in raster order) and returns
 * the new 0/1 mask.
 */
export function keepLargestComponents(mask: Uint8Array, shape: DHW, count: number): Uint8Array {
  if (!Number.isInteger(count) || count < 0) throw new Error(`keepLargestComponents: count is ${count}; expected a non-negative integer`);
  const components = labelComponents(mask, shape);
  const order = Array.from({ length: components.count }, (_, k) => k + 1)
    .sort((a, b) => components.sizes[b - 1] - components.sizes[a - 1] || a - b);
  const kept = new Set(order.slice(0, count));
  return selectComponents(components, (l) => kept.has(l));
}

/** Drops every 6-connected component of at most `maxDroppedVoxels` voxels; returns the new 0/1 mask. */
export function removeSmallComponents(mask: Uint8Array, shape: DHW, maxDroppedVoxels: number): Uint8Array {
  if (!Number.isInteger(maxDroppedVoxels) || maxDroppedVoxels < 0) {
    throw new Error(`removeSmallComponents: maxDroppedVoxels is ${maxDroppedVoxels}; expected a non-negative integer`);
  }
  const components = labelComponents(mask, shape);
  return selectComponents(components, (l) => components.sizes[l - 1] > maxDroppedVoxels);
}

/** Organ components the post-processing keeps for a task: two for kidney (left and right), one otherwise. */
export function organComponentsFor(task: number | TaskInfo): number {
  const info = typeof task === 'number' ? taskById(task) : task;
  return info.key === 'kidney' ? 2 : 1;
}

export interface OrganTumourMasks {
  organ: Uint8Array;
  tumour: Uint8Array;
}

export interface PostprocessOptions {
  /** Organ components to keep; default organComponentsFor(task). */
  organComponents?: number;
  /** Tumour components of this many voxels or fewer are dropped; default 50. */
  tumourMaxDroppedVoxels?: number;
}

/**
 * The DESIGN's post-processing for one task. Organ: keep the largest component(s); tumour: drop pieces of
 * at most 50 voxels. A channel the task does not annotate (colon and lung: organ; spleen: tumour) is
 * returned empty, since the network's output there was never supervised for this dataset.
 */
export function postprocessTask(masks: OrganTumourMasks, shape: DHW, task: number | TaskInfo, options: PostprocessOptions = {}): OrganTumourMasks {
  const info = typeof task === 'number' ? taskById(task) : task;
  const n = checkMask(masks.organ, shape, 'postprocessTask (organ)');
  checkMask(masks.tumour, shape, 'postprocessTask (tumour)');
  const organ = info.organLabelled
    ? keepLargestComponents(masks.organ, shape, options.organComponents ?? organComponentsFor(info))
    : new Uint8Array(n);
  const tumour = info.tumourLabelled
    ? removeSmallComponents(masks.tumour, shape, options.tumourMaxDroppedVoxels ?? TUMOUR_MAX_DROPPED_VOXELS)
    : new Uint8Array(n);
  return { organ, tumour };
}

/** Label values of the maps that `tgnet predict` writes, the same for every task. */
export const PREDICTION_LABELS = Object.freeze({ background: 0, organ: 1, tumour: 2 });

/** Merges organ and tumour masks into one label map: 2 where tumour, else 1 where organ, else 0. */
export function masksToLabelMap(masks: OrganTumourMasks): Uint8Array {
  const { organ, tumour } = masks;
  if (organ.length !== tumour.length) throw new Error(`masksToLabelMap: organ has ${organ.length} voxels and tumour ${tumour.length}; expected the same`);
  const out = new Uint8Array(organ.length);
  for (let i = 0; i < out.length; i++) out[i] = tumour[i] ? PREDICTION_LABELS.tumour : organ[i] ? PREDICTION_LABELS.organ : PREDICTION_LABELS.background;
  return out;
}

/**
 * Reads a predicted label map (PREDICTION_LABELS) back into the channels the task's ground truth defines:
 * the organ includes the tumour inside it (label >= 1) except for hepatic vessel, whose organ channel is the
 * vessel alone (label 1), as in labelToTarget.
 */
export function labelMapToMasks(labelMap: ArrayLike<number>, task: number | TaskInfo): OrganTumourMasks {
  const info = typeof task === 'number' ? taskById(task) : task;
  const n = labelMap.length;
  const organ = new Uint8Array(n);
  const tumour = new Uint8Array(n);
  const vesselOnly = info.key === 'hepatic_vessel';
  for (let i = 0; i < n; i++) {
    const l = labelMap[i];
    if (l !== 0 && l !== 1 && l !== 2) throw new Error(`labelMapToMasks: voxel ${i} has label ${l}; expected 0 (background), 1 (organ) or 2 (tumour)`);
    organ[i] = (vesselOnly ? l === 1 : l >= 1) ? 1 : 0;
    tumour[i] = l === 2 ? 1 : 0;
  }
  return { organ, tumour };
}
