/**
 * One case's evaluation: a predicted label map (PREDICTION_LABELS: 1 organ, 2 tumour) against the dataset's
 * own label map, read through the task table (labelToTarget), on the channels the task annotates.
 */
import { labelToTarget, taskById } from '../data/tasks.js';
import { segmentationMetrics } from './metrics.js';
import { labelMapToMasks, type OrganTumourMasks } from './postprocess.js';
import type { CaseEvaluation } from './report.js';
import type { DHW } from '../common/shape.js';

/**
 * Dice and HD95 of organ and tumour for one case. `shape` and `spacing` are [D, H, W] (NIfTI [x, y, z]
 * reversed: spacing [sz, sy, sx]); both label maps are in that memory order.
 */
export function evaluateCase(
  name: string, predLabels: ArrayLike<number>, truthLabels: Float32Array | Uint8Array, shape: DHW, spacing: DHW, task: number,
): CaseEvaluation {
  const info = taskById(task);
  const n = shape[0] * shape[1] * shape[2];
  if (predLabels.length !== n || truthLabels.length !== n) {
    throw new Error(`${name}: prediction has ${predLabels.length} voxels and truth ${truthLabels.length}; expected ${n} each for [D, H, W] = [${shape.join(', ')}]`);
  }
  return evaluateCaseMasks(name, labelMapToMasks(predLabels, info), truthLabels, shape, spacing, task);
}

/**
 * The same from the two predicted channels themselves, as DoDNet evaluates its sigmoid outputs. A label map holds
 * one class per voxel, so where the channels overlap (hepatic vessel inside a predicted liver tumour) it keeps
 * only the tumour; the masks keep both.
 */
export function evaluateCaseMasks(
  name: string, pred: OrganTumourMasks, truthLabels: Float32Array | Uint8Array, shape: DHW, spacing: DHW, task: number,
): CaseEvaluation {
  const info = taskById(task);
  const n = shape[0] * shape[1] * shape[2];
  if (pred.organ.length !== n || pred.tumour.length !== n || truthLabels.length !== n) {
    throw new Error(`${name}: predicted organ/tumour masks have ${pred.organ.length}/${pred.tumour.length} voxels and truth ${truthLabels.length}; expected ${n} each for [D, H, W] = [${shape.join(', ')}]`);
  }
  const target = labelToTarget(truthLabels, info);
  const channel = (c: number): Uint8Array => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = target[c * n + i] === 1 ? 1 : 0;
    return out;
  };
  const result: CaseEvaluation = { case: name, task: info.id };
  if (info.organLabelled) result.organ = segmentationMetrics(pred.organ, channel(0), shape, spacing);
  if (info.tumourLabelled) result.tumour = segmentationMetrics(pred.tumour, channel(1), shape, spacing);
  return result;
}
