/**
 * The held-out evaluation: the evaluation protocol on whole volumes of a run's held-out cases, as `tgnet predict`
 * + `tgnet evaluate` would run it on each: read the CT and its label, segment with the sliding window (the training
 * crop as the tile) and the post-processing, write the mask as NIfTI in the input's geometry, measure Dice and
 * HD95, and render the slices the report shows. Not to be confused with the training signal, Dice on one fixed
 * crop per case while training (eval/validation-crops.ts).
 */
import { basename, join } from 'node:path';
import type { DatasetCase } from '../data/datasets.js';
import type { NiftiVolume } from '../data/nifti.js';
import { readNiftiFile, writeNiftiFile } from '../data/nifti-file.js';
import { readCtInput } from '../data/dicom-file.js';
import { taskById } from '../data/tasks.js';
import { evaluateCaseMasks } from '../eval/evaluate.js';
import { segmentCt } from '../eval/pipeline.js';
import type { CaseEvaluation } from '../eval/report.js';
import { renderCaseSlices, type CaseSlices } from '../eval/slices.js';
import type { TGNet } from '../tgnet/model.js';
import type { DHW } from '../common/shape.js';

export interface HeldOutCaseResult {
  name: string;
  task: number;
  evaluation: CaseEvaluation;
  /** Where the predicted label map was written. */
  predictionPath: string;
  slices: CaseSlices;
  seconds: number;
}

export interface SegmentCaseOptions {
  /** Sliding-window tile [D, H, W]: the training crop. */
  tileShape: DHW;
  /** Spacing [z, y, x] mm the model was trained at (null: the input grid). */
  targetSpacingZYX: DHW | null;
  flips?: boolean;
  batchSize?: number;
}

export interface HeldOutEvaluationOptions extends SegmentCaseOptions {
  /** Folder for `<case>.nii.gz` predictions. */
  predictionsDir: string;
  onCase?: (done: number, total: number, result: HeldOutCaseResult) => void;
}

const caseName = (c: DatasetCase): string => basename(c.image.replace(/[\\/]+$/, '')).replace(/\.(nii(\.gz)?|zip)$/i, '');

export interface SegmentedCase {
  name: string;
  task: number;
  evaluation: CaseEvaluation;
  image: NiftiVolume;
  label: NiftiVolume;
  /** 0 background, 1 organ, 2 tumour on the image's grid. */
  labelMap: Uint8Array;
  seconds: number;
}

/** The protocol on one case, writing nothing: read CT and label, segment, measure Dice and HD95 on the input grid. */
export async function segmentAndEvaluateCase(model: TGNet, c: DatasetCase, options: SegmentCaseOptions): Promise<SegmentedCase> {
  const t0 = performance.now();
  const info = taskById(c.task);
  const image = (await readCtInput(c.image)).volume;
  const label = await readNiftiFile(c.label);
  if (label.shape.some((n, i) => n !== image.shape[i])) {
    throw new Error(`${c.label}: shape ${label.shape.join('x')} differs from its image ${c.image} (${image.shape.join('x')}); expected the same grid`);
  }
  const segmentation = await segmentCt(model, image, info.id, {
    tileShape: options.tileShape, targetSpacingZYX: options.targetSpacingZYX, flips: options.flips ?? false, batchSize: options.batchSize ?? 1,
  });
  const name = caseName(c);
  const [sx, sy, sz] = image.spacing;
  const dhw: DHW = [image.shape[2], image.shape[1], image.shape[0]];
  const evaluation = evaluateCaseMasks(name, { organ: segmentation.organ, tumour: segmentation.tumour }, label.data, dhw, [sz, sy, sx], info.id);
  return { name, task: info.id, evaluation, image, label, labelMap: segmentation.labelMap, seconds: (performance.now() - t0) / 1000 };
}

export async function evaluateHeldOutCases(model: TGNet, cases: readonly DatasetCase[], options: HeldOutEvaluationOptions): Promise<HeldOutCaseResult[]> {
  const results: HeldOutCaseResult[] = [];
  for (const c of cases) {
    const t0 = performance.now();
    const { name, task, evaluation, image, label, labelMap } = await segmentAndEvaluateCase(model, c, options);
    const info = taskById(task);
    const predictionPath = join(options.predictionsDir, `${name}.nii.gz`);
    await writeNiftiFile(predictionPath, { data: Float32Array.from(labelMap), shape: image.shape, spacing: image.spacing, affine: image.affine, header: image.header },
      { datatype: 'uint8', gzip: true, description: `tgnet ${model.variant} ${info.key} prediction` });
    const slices = renderCaseSlices({
      hu: image.data, shape: image.shape, spacing: image.spacing, task: info.id, truthLabels: label.data,
      predictionLabels: labelMap, affine: image.affine,
    });
    const result = { name, task: info.id, evaluation, predictionPath, slices, seconds: (performance.now() - t0) / 1000 };
    results.push(result);
    options.onCase?.(results.length, cases.length, result);
  }
  return results;
}
