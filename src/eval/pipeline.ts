/**
 * A CT volume in, a label map on the same voxel grid out: the training preprocessing (slice axis last,
 * resampling to the training spacing, HU window [-325, 325] / 325), sliding-window TGNet inference, the
 * probabilities resampled back to the input grid, threshold, and post-processing.
 */
import { DEFAULT_TARGET_SPACING_ZYX, HU_WINDOW, permuteAxes, resampleLinearToMask, resampleToShape, resampleToSpacing, sliceAxisOf, windowHu, type ScalarVolume } from '../data/preprocess.js';
import { taskById } from '../data/tasks.js';
import type { TGNet } from '../tgnet/model.js';
import { masksToLabelMap, postprocessTask, tumourMaxDroppedVoxelsFor, type OrganTumourMasks, type PostprocessOptions } from './postprocess.js';
import { predictVolume, type PredictVolumeOptions } from './sliding-window.js';
import { type DHW, type XYZ, dhwFromXyz } from '../common/shape.js';

export interface SegmentCtOptions extends PredictVolumeOptions {
  /**
   * Spacing [z, y, x] mm the model was trained at; the volume is resampled to it for inference and the
   * probabilities back to the input grid. null keeps the input grid. Default 1.5 x 0.8 x 0.8 (DoDNet).
   */
  targetSpacingZYX?: DHW | null;
  /** Move the slice axis last as the training preprocessing does (default true; needs an affine). */
  sliceAxisLast?: boolean;
  /** HU window before dividing by its upper bound; default [-325, 325]. */
  window?: readonly [number, number];
  /** Apply postprocessTask (default true). */
  postprocess?: boolean;
  postprocessOptions?: PostprocessOptions;
}

export interface CtSegmentation extends OrganTumourMasks {
  /** 0 background, 1 organ, 2 tumour (PREDICTION_LABELS), on the input's grid [x, y, z] (= [D, H, W] memory). */
  labelMap: Uint8Array;
  /** The grid inference ran on, [D, H, W]. */
  inferenceShape: DHW;
  tiles: number;
  predictorCalls: number;
  seconds: number;
}

/** Segments one CT volume (NIfTI order [x, y, z], values in HU) for one task. */
export async function segmentCt(model: TGNet, volume: ScalarVolume, task: number, options: SegmentCtOptions = {}): Promise<CtSegmentation> {
  const info = taskById(task);
  const t0 = performance.now();
  const n = volume.shape[0] * volume.shape[1] * volume.shape[2];
  if (!(volume.data instanceof Float32Array) || volume.data.length !== n) {
    throw new Error(`segmentCt: volume data has ${volume.data?.length} values; expected ${n} for shape ${volume.shape.join('x')}`);
  }
  const threshold = options.threshold ?? 0.5;

  // Orientation: the same permutation as preprocessVolumes, undone on the way out.
  let order: XYZ | null = null;
  if ((options.sliceAxisLast ?? true) && volume.affine) {
    const axis = sliceAxisOf(volume.affine);
    if (axis !== 2) order = axis === 0 ? [1, 2, 0] : [0, 2, 1];
  }
  const oriented = order ? permuteAxes(volume, order) : volume;
  const target = options.targetSpacingZYX === undefined ? DEFAULT_TARGET_SPACING_ZYX : options.targetSpacingZYX;
  const input = target ? resampleToSpacing(oriented, { targetSpacingZYX: target, mode: 'linear' }) : { ...oriented, data: Float32Array.from(oriented.data) };
  windowHu(input.data, options.window ?? HU_WINDOW);

  const inferenceShape = dhwFromXyz(input.shape);
  const prediction = await predictVolume(model, input.data, inferenceShape, info.id, options);

  let masks: OrganTumourMasks;
  if (input.shape.every((s, i) => s === oriented.shape[i]) && !order) {
    masks = { organ: prediction.organ, tumour: prediction.tumour };
  } else {
    // Back to the input grid: probabilities (not masks) are interpolated, then thresholded there.
    const m = input.data.length;
    const back = [0, 1].map((c) => {
      const channel = prediction.probabilities.subarray(c * m, (c + 1) * m);
      // Straight to bytes where no permutation follows: no float32 volume of the input's size per channel.
      if (!order) return resampleLinearToMask(channel, input.shape, oriented.shape, threshold);
      let probs = resampleToShape(channel, input.shape, oriented.shape, 'linear');
      if (order) {
        const inverse: [number, number, number] = [0, 0, 0];
        order.forEach((o, i) => { inverse[o] = i; });
        probs = permuteAxes({ data: probs, shape: oriented.shape, spacing: oriented.spacing }, inverse).data;
      }
      const mask = new Uint8Array(n);
      for (let i = 0; i < n; i++) mask[i] = probs[i] > threshold ? 1 : 0;
      return mask;
    });
    masks = { organ: back[0], tumour: back[1] };
  }
  const outShape = dhwFromXyz(volume.shape);
  if (options.postprocess ?? true) {
    // The small-tumour rule is a volume (DoDNet's 50 voxels at its spacing), applied on the output grid.
    const tumourMaxDroppedVoxels = tumourMaxDroppedVoxelsFor(volume.spacing);
    masks = postprocessTask(masks, outShape, info, { tumourMaxDroppedVoxels, ...options.postprocessOptions });
  }
  return {
    ...masks,
    labelMap: masksToLabelMap(masks),
    inferenceShape,
    tiles: prediction.tileOrigins.length,
    predictorCalls: prediction.predictorCalls,
    seconds: (performance.now() - t0) / 1000,
  };
}
