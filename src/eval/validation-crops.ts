/**
 * Validation Dice while training, cheap enough to run every few dozen steps: one fixed crop per validation
 * case, centred on the middle of its labelled structures, predicted in one forward pass per batch of crops.
 * It is a learning signal for the curves, not the evaluation: that runs the sliding window over whole volumes,
 * post-processes and measures Dice and HD95 on the input grid.
 */
import { extractCrop, IMAGE_PAD_VALUE, LABEL_PAD_VALUE } from '../data/augment.js';
import { labelToTarget, taskById, TASKS } from '../data/tasks.js';
import { sigmoid } from '../autograd/ops/elementwise.js';
import { tidy } from '../autograd/scope.js';
import { noGrad } from '../autograd/tape.js';
import { Tensor } from '../autograd/tensor.js';
import type { TGNet } from '../tgnet/model.js';
import { type DHW, type XYZ, dhwFromXyz } from '../common/shape.js';

export interface ValidationCrop {
  caseId: string;
  task: number;
  /** [D, H, W] crop of the preprocessed image. */
  image: Float32Array;
  /** [2, D, H, W] organ / tumour target, -1 where the task does not annotate the channel. */
  target: Float32Array;
}

/** A preprocessed case: image and label on one [x, y, z] grid (x fastest). */
export interface ValidationCase {
  id: string;
  task: number;
  image: Float32Array;
  label: Uint8Array;
  shape: XYZ;
}

/** The crop of `crop` [D, H, W] centred on the bounding box of the case's labelled voxels (the volume centre when none). */
export function validationCrop(c: ValidationCase, crop: DHW): ValidationCrop {
  const shape = dhwFromXyz(c.shape);
  const [D, H, W] = shape;
  if (c.image.length !== D * H * W || c.label.length !== D * H * W) {
    throw new Error(`validationCrop: case ${c.id} has ${c.image.length} image and ${c.label.length} label voxels; expected ${D * H * W} for [x, y, z] = [${c.shape.join(', ')}]`);
  }
  const lo = [D, H, W];
  const hi = [-1, -1, -1];
  for (let z = 0, i = 0; z < D; z++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++, i++) {
        if (c.label[i] === 0) continue;
        const p = [z, y, x];
        for (let a = 0; a < 3; a++) {
          if (p[a] < lo[a]) lo[a] = p[a];
          if (p[a] > hi[a]) hi[a] = p[a];
        }
      }
    }
  }
  const start = crop.map((size, a) => {
    const centre = hi[a] < 0 ? Math.floor(shape[a] / 2) : Math.floor((lo[a] + hi[a]) / 2);
    const s = centre - Math.floor(size / 2);
    return shape[a] >= size ? Math.min(shape[a] - size, Math.max(0, s)) : Math.floor((shape[a] - size) / 2);
  }) as [number, number, number];
  const image = extractCrop(c.image, shape, start, crop, IMAGE_PAD_VALUE);
  const label = extractCrop(c.label, shape, start, crop, LABEL_PAD_VALUE);
  return { caseId: c.id, task: c.task, image, target: labelToTarget(label, c.task) };
}

export interface ValidationDice {
  /** Per task key: mean Dice of the annotated channels over that task's crops. */
  perTask: Record<string, { organ?: number; tumour?: number }>;
  /** Means over all tasks' organ / tumour channels (NaN when none). */
  organ: number;
  tumour: number;
  /** Mean of every task channel. */
  mean: number;
}

function diceOf(prob: Float32Array, target: Float32Array, offset: number, n: number): number {
  let inter = 0;
  let p = 0;
  let t = 0;
  for (let i = 0; i < n; i++) {
    const pi = prob[offset + i] > 0.5 ? 1 : 0;
    const ti = target[offset + i];
    inter += pi * ti;
    p += pi;
    t += ti;
  }
  return p + t === 0 ? 1 : (2 * inter) / (p + t);
}

const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);

/** Thresholded Dice (0.5) of the model on fixed crops, `batch` crops per forward pass, without gradients. */
export async function validationDice(model: TGNet, crops: readonly ValidationCrop[], crop: DHW, batch = 2): Promise<ValidationDice> {
  const voxels = crop[0] * crop[1] * crop[2];
  const scores = new Map<number, { organ: number[]; tumour: number[] }>();
  for (let b = 0; b < crops.length; b += batch) {
    const group = crops.slice(b, b + batch);
    const input = new Float32Array(group.length * voxels);
    group.forEach((c, i) => {
      if (c.image.length !== voxels) throw new Error(`validationDice: crop of ${c.caseId} has ${c.image.length} voxels; expected ${voxels} for [${crop.join(', ')}]`);
      input.set(c.image, i * voxels);
    });
    const probs = noGrad(() => tidy(() => sigmoid(model.forward(Tensor.fromArray(input, [group.length, 1, ...crop]), group.map((c) => c.task)))));
    let values: Float32Array;
    try {
      values = await probs.toArray();
    } finally {
      probs.dispose();
    }
    group.forEach((c, i) => {
      const s = scores.get(c.task) ?? { organ: [], tumour: [] };
      const info = taskById(c.task);
      const sample = values.subarray(i * 2 * voxels, (i + 1) * 2 * voxels);
      if (info.organLabelled) s.organ.push(diceOf(sample, c.target, 0, voxels));
      if (info.tumourLabelled) s.tumour.push(diceOf(sample, c.target, voxels, voxels));
      scores.set(c.task, s);
    });
  }
  const perTask: ValidationDice['perTask'] = {};
  const organ: number[] = [];
  const tumour: number[] = [];
  for (const task of TASKS) {
    const s = scores.get(task.id);
    if (!s) continue;
    const entry: { organ?: number; tumour?: number } = {};
    if (s.organ.length) organ.push((entry.organ = mean(s.organ)));
    if (s.tumour.length) tumour.push((entry.tumour = mean(s.tumour)));
    perTask[task.key] = entry;
  }
  return { perTask, organ: mean(organ), tumour: mean(tumour), mean: mean([...organ, ...tumour]) };
}
