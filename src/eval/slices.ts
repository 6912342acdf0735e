/**
 * Axial, coronal and sagittal views of one case for the run report: CT in grey through an HU window, the
 * ground truth and the prediction outlined on top, each channel the task annotates in its own colour.
 *
 * Orientation (radiological, as a CT viewer shows it): axial and coronal put the patient's right on the image's
 * left; axial puts anterior at the top; coronal and sagittal put superior at the top; sagittal puts anterior on
 * the left. Which way each voxel axis runs is read from the signs of the affine's diagonal (RAS world), so an
 * oblique affine is treated as its nearest axis-aligned one. Without an affine the phantom's / a DICOM-converted
 * CT's convention is assumed: x towards the patient's left, y towards the back, z towards the head.
 *
 * All three planes share one mm-per-pixel scale (nearest-neighbour), so anatomy keeps its physical proportions
 * and the three images are comparable.
 */
import { labelToTarget, taskById, type TaskInfo } from '../data/tasks.js';
import { encodePng, type RgbImage } from './png.js';
import { labelMapToMasks } from './postprocess.js';
import type { XYZ } from '../common/shape.js';

export type SlicePlane = 'axial' | 'coronal' | 'sagittal';
export const SLICE_PLANES: readonly SlicePlane[] = ['axial', 'coronal', 'sagittal'];

/** HU window mapped onto black..white. */
export interface HuWindow {
  low: number;
  high: number;
}
/** The abdominal soft-tissue window [-325, 325] HU (level 0, width 650). */
export const DEFAULT_HU_WINDOW: Readonly<HuWindow> = Object.freeze({ low: -325, high: 325 });

type Rgb = readonly [number, number, number];
/** Outline colours, also used by the report's legend. */
export const OVERLAY_COLOURS: Readonly<Record<'truthOrgan' | 'truthTumour' | 'predictionOrgan' | 'predictionTumour', Rgb>> = Object.freeze({
  truthOrgan: [0, 230, 0],
  truthTumour: [255, 225, 0],
  predictionOrgan: [255, 40, 40],
  predictionTumour: [255, 0, 255],
});

export interface CaseSliceInput {
  /** CT in HU, NIfTI order [x, y, z], x fastest. */
  hu: ArrayLike<number>;
  /** [nx, ny, nz] voxels. */
  shape: XYZ;
  /** [sx, sy, sz] mm. */
  spacing: XYZ;
  /** Task id; only the channels it annotates are drawn. */
  task: number;
  /** Ground truth in the task dataset's own label values (as evaluateCase takes it), same order as hu. */
  truthLabels: Float32Array | Uint8Array;
  /** Predicted label map (PREDICTION_LABELS: 0 background, 1 organ, 2 tumour), same order as hu. */
  predictionLabels: ArrayLike<number>;
  /** 4 x 4 row-major voxel-to-RAS affine (16 numbers); only its diagonal signs are used. */
  affine?: readonly number[];
}

export interface SliceRenderOptions {
  window?: HuWindow;
  /**
   * Pixels along the longer in-plane side of the axial image (default 224); coronal and sagittal share its scale,
   * except that a volume longer than 1.5x its width along z is scaled down so those views stay within 1.5x this.
   */
  targetSize?: number;
}

export interface CaseSlices {
  /** PNG bytes per plane. */
  axial: Uint8Array;
  coronal: Uint8Array;
  sagittal: Uint8Array;
  /** Voxel [x, y, z] the three planes pass through. */
  centre: [number, number, number];
}

function checkVolume(input: CaseSliceInput): number {
  const { shape, spacing, affine } = input;
  if (!Array.isArray(shape) || shape.length !== 3 || shape.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error(`renderCaseSlices: shape is [${String(shape)}]; expected three positive integers [nx, ny, nz]`);
  }
  if (!Array.isArray(spacing) || spacing.length !== 3 || spacing.some((s) => !(s > 0 && Number.isFinite(s)))) {
    throw new Error(`renderCaseSlices: spacing is [${String(spacing)}]; expected three positive numbers [sx, sy, sz] in mm`);
  }
  const n = shape[0] * shape[1] * shape[2];
  const arrays: [string, ArrayLike<number>][] = [['hu', input.hu], ['truthLabels', input.truthLabels], ['predictionLabels', input.predictionLabels]];
  for (const [what, a] of arrays) {
    if (!a || a.length !== n) throw new Error(`renderCaseSlices: ${what} has ${a?.length} values; expected ${n} for [nx, ny, nz] = [${shape.join(', ')}]`);
  }
  if (affine !== undefined && (affine.length !== 16 || affine.some((v) => !Number.isFinite(v)))) {
    throw new Error(`renderCaseSlices: affine has ${affine.length} values; expected 16 finite numbers (4 x 4 row-major)`);
  }
  return n;
}

/**
 * The voxel the planes pass through: per axis, the slice holding the most voxels of the union of all overlay
 * masks (tumour voxels weighted 3x so a slice through the lesion wins over a similar organ area), ties going to
 * the one nearest the union's centroid. A centroid alone can miss a structure of two parts (both kidneys).
 * The volume centre when every mask is empty.
 */
export function pickSliceCentre(masks: { organ?: Uint8Array; tumour?: Uint8Array }[], shape: readonly [number, number, number]): [number, number, number] {
  const [nx, ny, nz] = shape;
  const n = nx * ny * nz;
  const weight = new Uint8Array(n);
  for (const m of masks) {
    if (m.organ) for (let i = 0; i < n; i++) if (m.organ[i]) weight[i] = Math.max(weight[i], 1);
    if (m.tumour) for (let i = 0; i < n; i++) if (m.tumour[i]) weight[i] = 3;
  }
  const profiles = [new Float64Array(nx), new Float64Array(ny), new Float64Array(nz)];
  const sums = [0, 0, 0];
  let total = 0;
  for (let z = 0, i = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++) {
        const w = weight[i];
        if (!w) continue;
        profiles[0][x] += w;
        profiles[1][y] += w;
        profiles[2][z] += w;
        sums[0] += w * x;
        sums[1] += w * y;
        sums[2] += w * z;
        total += w;
      }
    }
  }
  if (total === 0) return [Math.floor(nx / 2), Math.floor(ny / 2), Math.floor(nz / 2)];
  return profiles.map((p, axis) => {
    const centroid = sums[axis] / total;
    let best = 0;
    for (let k = 1; k < p.length; k++) {
      if (p[k] > p[best] || (p[k] === p[best] && Math.abs(k - centroid) < Math.abs(best - centroid))) best = k;
    }
    return best;
  }) as [number, number, number];
}

interface PlaneAxes {
  /** Voxel axes (0 x, 1 y, 2 z) along the image's columns and rows, and the axis held fixed. */
  horizontal: number;
  vertical: number;
  fixed: number;
  flipHorizontal: boolean;
  flipVertical: boolean;
}

function planeAxes(plane: SlicePlane, affine: readonly number[] | undefined): PlaneAxes {
  // Whether voxel index i, j, k increases towards the patient's left (x), posterior (y), superior (z).
  const towardsLeft = affine ? affine[0] < 0 : true;
  const towardsPosterior = affine ? affine[5] < 0 : true;
  const towardsSuperior = affine ? affine[10] > 0 : true;
  switch (plane) {
    case 'axial':
      return { horizontal: 0, vertical: 1, fixed: 2, flipHorizontal: !towardsLeft, flipVertical: !towardsPosterior };
    case 'coronal':
      return { horizontal: 0, vertical: 2, fixed: 1, flipHorizontal: !towardsLeft, flipVertical: towardsSuperior };
    case 'sagittal':
      return { horizontal: 1, vertical: 2, fixed: 0, flipHorizontal: !towardsPosterior, flipVertical: towardsSuperior };
  }
}

/** Per pixel, the linear voxel index it shows (nearest neighbour at `mmPerPixel`). */
function samplingGrid(axes: PlaneAxes, shape: readonly number[], spacing: readonly number[], fixedIndex: number, mmPerPixel: number): { width: number; height: number; voxel: Int32Array } {
  const stride = [1, shape[0], shape[0] * shape[1]];
  const pixels = (axis: number): number => Math.max(1, Math.round((shape[axis] * spacing[axis]) / mmPerPixel));
  const width = pixels(axes.horizontal);
  const height = pixels(axes.vertical);
  const indexAlong = (axis: number, pixel: number, flip: boolean): number => {
    const k = Math.min(shape[axis] - 1, Math.floor(((pixel + 0.5) * mmPerPixel) / spacing[axis]));
    return flip ? shape[axis] - 1 - k : k;
  };
  const column = Int32Array.from({ length: width }, (_, c) => indexAlong(axes.horizontal, c, axes.flipHorizontal) * stride[axes.horizontal]);
  const base = fixedIndex * stride[axes.fixed];
  const voxel = new Int32Array(width * height);
  for (let r = 0; r < height; r++) {
    const rowOffset = base + indexAlong(axes.vertical, r, axes.flipVertical) * stride[axes.vertical];
    for (let c = 0; c < width; c++) voxel[r * width + c] = rowOffset + column[c];
  }
  return { width, height, voxel };
}

/** Pixels of `mask` within `width` pixels (4-neighbour steps) of a pixel outside it or of the image edge. */
function outline(mask: Uint8Array, width: number, height: number, thickness: number): Uint8Array {
  const out = new Uint8Array(mask.length);
  for (let r = 0; r < height; r++) {
    for (let c = 0; c < width; c++) {
      const p = r * width + c;
      if (!mask[p]) continue;
      for (let d = 1; d <= thickness && !out[p]; d++) {
        const outside = (rr: number, cc: number): boolean => rr < 0 || cc < 0 || rr >= height || cc >= width || !mask[rr * width + cc];
        if (outside(r - d, c) || outside(r + d, c) || outside(r, c - d) || outside(r, c + d)) out[p] = 1;
      }
    }
  }
  return out;
}

/** A mask drawn as an outline (a volume mask, or its samples on one plane). */
interface Overlay {
  mask: Uint8Array;
  colour: Rgb;
  /** Outline thickness in pixels, inward from the mask's edge. */
  width: number;
}

/** One plane as an RGB image: windowed CT, then each overlay's outline in order (later ones on top). */
function renderPlane(
  plane: SlicePlane, input: CaseSliceInput, overlays: readonly Overlay[], centre: readonly number[], mmPerPixel: number, window: HuWindow,
): RgbImage {
  const axes = planeAxes(plane, input.affine);
  const { width, height, voxel } = samplingGrid(axes, input.shape, input.spacing, centre[axes.fixed], mmPerPixel);
  const data = new Uint8Array(width * height * 3);
  const scale = 255 / (window.high - window.low);
  for (let p = 0; p < voxel.length; p++) {
    const g = Math.round(Math.min(255, Math.max(0, (input.hu[voxel[p]] - window.low) * scale)));
    data[3 * p] = g;
    data[3 * p + 1] = g;
    data[3 * p + 2] = g;
  }
  const sampled = new Uint8Array(voxel.length);
  for (const o of overlays) {
    for (let p = 0; p < voxel.length; p++) sampled[p] = o.mask[voxel[p]];
    const edge = outline(sampled, width, height, o.width);
    for (let p = 0; p < edge.length; p++) {
      if (!edge[p]) continue;
      data[3 * p] = o.colour[0];
      data[3 * p + 1] = o.colour[1];
      data[3 * p + 2] = o.colour[2];
    }
  }
  return { width, height, data, channels: 3 };
}

/** The masks drawn for a task: truth and prediction per annotated channel, truth first (2 px) so the 1 px prediction outline on top leaves it visible where both agree. */
function caseOverlays(input: CaseSliceInput, info: TaskInfo): { overlays: Overlay[]; truth: { organ?: Uint8Array; tumour?: Uint8Array }; prediction: { organ?: Uint8Array; tumour?: Uint8Array } } {
  const n = input.hu.length;
  const target = labelToTarget(input.truthLabels, info);
  const truthChannel = (c: number): Uint8Array => {
    const out = new Uint8Array(n);
    for (let i = 0, j = c * n; i < n; i++, j++) out[i] = target[j] === 1 ? 1 : 0;
    return out;
  };
  const predicted = labelMapToMasks(input.predictionLabels, info);
  const truth: { organ?: Uint8Array; tumour?: Uint8Array } = {};
  const prediction: { organ?: Uint8Array; tumour?: Uint8Array } = {};
  if (info.organLabelled) {
    truth.organ = truthChannel(0);
    prediction.organ = predicted.organ;
  }
  if (info.tumourLabelled) {
    truth.tumour = truthChannel(1);
    prediction.tumour = predicted.tumour;
  }
  const overlays: Overlay[] = [];
  if (truth.organ) overlays.push({ mask: truth.organ, colour: OVERLAY_COLOURS.truthOrgan, width: 2 });
  if (truth.tumour) overlays.push({ mask: truth.tumour, colour: OVERLAY_COLOURS.truthTumour, width: 2 });
  if (prediction.organ) overlays.push({ mask: prediction.organ, colour: OVERLAY_COLOURS.predictionOrgan, width: 1 });
  if (prediction.tumour) overlays.push({ mask: prediction.tumour, colour: OVERLAY_COLOURS.predictionTumour, width: 1 });
  return { overlays, truth, prediction };
}

/** The three planes of one case as RGB images (before PNG encoding), with the voxel they pass through. */
export function renderCaseSliceImages(input: CaseSliceInput, options: SliceRenderOptions = {}): { images: Record<SlicePlane, RgbImage>; centre: [number, number, number] } {
  checkVolume(input);
  const info = taskById(input.task);
  const window = options.window ?? DEFAULT_HU_WINDOW;
  if (!(Number.isFinite(window.low) && Number.isFinite(window.high) && window.high > window.low)) {
    throw new Error(`renderCaseSlices: HU window is [${window.low}, ${window.high}]; expected finite low < high`);
  }
  const targetSize = options.targetSize ?? 224;
  if (!Number.isInteger(targetSize) || targetSize < 8 || targetSize > 4096) {
    throw new Error(`renderCaseSlices: targetSize is ${targetSize}; expected an integer number of pixels in [8, 4096]`);
  }
  const { overlays, truth, prediction } = caseOverlays(input, info);
  const centre = pickSliceCentre([truth, prediction], input.shape);
  const extent = input.shape.map((n, a) => n * input.spacing[a]);
  const mmPerPixel = Math.max(extent[0], extent[1], extent[2] / 1.5) / targetSize;
  const images = Object.fromEntries(SLICE_PLANES.map((plane) => [plane, renderPlane(plane, input, overlays, centre, mmPerPixel, window)])) as Record<SlicePlane, RgbImage>;
  return { images, centre };
}

/** The three planes of one case as PNG bytes. */
export function renderCaseSlices(input: CaseSliceInput, options: SliceRenderOptions = {}): CaseSlices {
  const { images, centre } = renderCaseSliceImages(input, options);
  return {
    axial: encodePng(images.axial, 'axial slice'),
    coronal: encodePng(images.coronal, 'coronal slice'),
    sagittal: encodePng(images.sagittal, 'sagittal slice'),
    centre,
  };
}
