/**
 * Segmenting one CT in the page exactly as `tgnet predict` does (src/cli/predict.ts): the checkpoint's
 * architecture and training crop, sliding window with overlap 0.5 and Gaussian weights, optional 8-flip
 * averaging, DoDNet's post-processing, and a uint8 label map (0 background, 1 organ, 2 tumour) written as
 * NIfTI in the input's geometry. With the same input, weights and options the mask matches the CLI's voxel for
 * voxel (the browser test checks it).
 */
import { warmUpPipelines } from '../../../src/eval/warm-up.js';
import type { NiftiVolume } from '../../../src/data/nifti.js';
import { writeNifti } from '../../../src/data/nifti.js';
import { labelToTarget, taskById } from '../../../src/data/tasks.js';
import { loadModelFromCheckpoint, type CheckpointConfig } from '../../../src/eval/load-model.js';
import { segmentationMetrics } from '../../../src/eval/metrics.js';
import { segmentCt, type CtSegmentation } from '../../../src/eval/pipeline.js';
import { labelMapToMasks } from '../../../src/eval/postprocess.js';
import { DEFAULT_TILE_SHAPE, type SlidingWindowProgress } from '../../../src/eval/sliding-window.js';
import { isGridSide, TOTAL_STRIDE, type TGNet } from '../../../src/tgnet/model.js';
import { dodnetModelInfo, type WebModelInfo } from './model-info.js';
import type { DHW } from '../../../src/common/shape.js';

export interface LoadedWeights {
  model: TGNet;
  config: CheckpointConfig;
  /** File name or description, for messages. */
  name: string;
  /** Training volume and spacing when known (the default model's JSON, or a run trained in the page). */
  info: WebModelInfo | null;
  parameters: number;
}

/**
 * Builds the model a checkpoint describes (architecture from its metadata or tensor names): a .safetensors, a
 * .pth from `tgnet export`, or DoDNet's own .pth, which also fixes the voxel size the input is resampled to.
 */
export function loadWeights(bytes: Uint8Array, name: string, info: WebModelInfo | null): LoadedWeights {
  const { model, config, metadata } = loadModelFromCheckpoint(bytes, name);
  const known = info ?? (metadata.importedFrom?.startsWith('DoDNet') ? dodnetModelInfo(name, [...tileShapeOf(config)] as DHW) : null);
  return { model, config, name, info: known, parameters: model.parameterCount() };
}

export class SegmentationCancelled extends Error {
  constructor() {
    super('segmentation cancelled');
    this.name = 'SegmentationCancelled';
  }
}

export interface SegmentRequest {
  volume: NiftiVolume;
  task: number;
  /** Spacing [z, y, x] mm to run at (the model's training spacing), or null for the input grid. */
  spacingZYX: DHW | null;
  flips: boolean;
  onProgress?: (p: SlidingWindowProgress) => void;
  /** The kernels compiled before the first tile (the first run of a model only). */
  onCompileProgress?: (done: number, total: number) => void;
  /** Polled after every tile pass; true stops the run with SegmentationCancelled. */
  cancelled?: () => boolean;
}

/** The tile the CLI would use: the checkpoint's training crop, else the sliding window's default. */
export function tileShapeOf(config: CheckpointConfig): DHW {
  return config.crop ?? DEFAULT_TILE_SHAPE;
}

export async function segmentVolume(weights: LoadedWeights, request: SegmentRequest): Promise<CtSegmentation> {
  const { volume } = request;
  if (volume.shape.some((n) => n < 2)) {
    throw new Error(`the CT has shape [${volume.shape.join(', ')}], a 2-D image; expected a 3-D volume (at least 2 voxels along x, y and z)`);
  }
  const tileShape = tileShapeOf(weights.config);
  if (!tileShape.every(isGridSide)) throw new Error(`${weights.name}: crop [${tileShape.join(', ')}] is not made of multiples of ${TOTAL_STRIDE}`);
  // Compiled asynchronously, several at once, before the first tile: the tab never waits on a compile in a tile pass.
  await warmUpPipelines(weights.model, { crop: tileShape, batch: 1, optimizer: null, inference: true, onProgress: request.onCompileProgress });
  return segmentCt(weights.model, volume, request.task, {
    tileShape, overlap: 0.5, flips: request.flips, batchSize: 1, targetSpacingZYX: request.spacingZYX, postprocess: true,
    onProgress: (p) => {
      // Thrown between tile passes, when no GPU work of the pass is pending, so nothing is left half done.
      if (request.cancelled?.()) throw new SegmentationCancelled();
      request.onProgress?.(p);
    },
  });
}

/** The label map as `tgnet predict --out mask.nii.gz` writes it (uint8, the input's geometry, gzip). */
export function maskNiftiBytes(volume: NiftiVolume, labelMap: Uint8Array, task: number): Uint8Array {
  return writeNifti({ ...volume, data: Float32Array.from(labelMap) }, {
    datatype: 'uint8', sclSlope: 1, sclInter: 0, gzip: true, description: `tgnet ${taskById(task).key} prediction`, name: 'mask.nii.gz',
  });
}

export interface StructureScore {
  structure: string;
  channel: 'organ' | 'tumour';
  predictedMl: number;
  truthMl: number | null;
  dice: number | null;
  hd95Mm: number | null;
}

/**
 * Volume per structure the task annotates and, with a label file of the task's dataset on the same grid, Dice and
 * HD95 against it (the channels as DoDNet scores them: a label map's organ includes its tumour).
 */
export function scoreStructures(volume: NiftiVolume, seg: CtSegmentation, task: number, label: NiftiVolume | null): StructureScore[] {
  const info = taskById(task);
  const [sx, sy, sz] = volume.spacing;
  const voxelMl = (sx * sy * sz) / 1000;
  let truth: { organ: Uint8Array; tumour: Uint8Array } | null = null;
  if (label) {
    if (label.shape.some((n, i) => n !== volume.shape[i])) {
      throw new Error(`the label file has shape ${label.shape.join('x')} but the CT ${volume.shape.join('x')}; expected the same grid`);
    }
    // The dataset's own label values, mapped to channels as training maps them (DoDNet's id2trainId).
    const n = label.data.length;
    const target = labelToTarget(label.data, info);
    const organ = new Uint8Array(n);
    const tumour = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      organ[i] = target[i] === 1 ? 1 : 0;
      tumour[i] = target[n + i] === 1 ? 1 : 0;
    }
    truth = { organ, tumour };
  }
  const pred = labelMapToMasks(seg.labelMap, info);
  const dhw: DHW = [volume.shape[2], volume.shape[1], volume.shape[0]];
  const spacingDhw: DHW = [sz, sy, sx];
  const out: StructureScore[] = [];
  for (const channel of ['organ', 'tumour'] as const) {
    const labelled = channel === 'organ' ? info.organLabelled : info.tumourLabelled;
    if (!labelled) continue;
    const p = pred[channel];
    let predicted = 0;
    for (let i = 0; i < p.length; i++) predicted += p[i];
    const row: StructureScore = {
      structure: channel === 'organ' ? info.organName : info.tumourName, channel,
      predictedMl: predicted * voxelMl, truthMl: null, dice: null, hd95Mm: null,
    };
    if (truth) {
      const m = segmentationMetrics(p, truth[channel], dhw, spacingDhw);
      row.truthMl = m.truthVoxels * voxelMl;
      row.dice = m.dice;
      row.hd95Mm = Number.isFinite(m.hd95Mm) ? m.hd95Mm : null;
    }
    out.push(row);
  }
  return out;
}
