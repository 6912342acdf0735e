/**
 * Resampling to a common spacing and the CT intensity window (browser-safe; the on-disk cache lives
 * in preprocess-cache.ts).
 *
 * Axis conventions, once and for all: volumes here are NIfTI-ordered, shape and spacing [x, y, z],
 * x fastest in memory. The network's [D, H, W] is the same memory read as C-order: D = z (slices),
 * H = y, W = x. Target spacings are given in [z, y, x] = [D, H, W] order to match the DESIGN text
 * ("1.5 x 0.8 x 0.8 mm") and are turned around explicitly where used.
 */
import type { NiftiVolume } from './nifti.js';
import type { DHW, XYZ } from '../common/shape.js';

/** DoDNet's target spacing, [z, y, x] in mm (slice spacing first). */
export const DEFAULT_TARGET_SPACING_ZYX: DHW = [1.5, 0.8, 0.8];
export const HU_WINDOW: readonly [number, number] = [-325, 325];
export const HU_SCALE = 325;

export interface ScalarVolume {
  data: Float32Array;
  /** [x, y, z] */
  shape: XYZ;
  /** [x, y, z] mm */
  spacing: XYZ;
  /** 4x4 row-major voxel-to-world; optional for synthetic data. */
  affine?: number[];
}

/** Output size per axis for a spacing change: round(n * old / new), at least 1. */
export function resampledShape(shape: XYZ, spacing: XYZ, targetSpacingXYZ: XYZ): XYZ {
  return shape.map((n, i) => Math.max(1, Math.round((n * spacing[i]) / targetSpacingXYZ[i]))) as [number, number, number];
}

export type Interpolation = 'linear' | 'nearest';

/**
 * Resamples to `outShape` [x, y, z]. Voxel centres are matched (align_corners = false, like
 * skimage/torch): output voxel i samples source coordinate (i + 0.5) * n_in / n_out - 0.5, clamped to
 * the volume. 'linear' is separable trilinear (three 1D passes); 'nearest' copies values unchanged,
 * so label values survive exactly.
 */
export function resampleToShape(data: Float32Array | Uint8Array, shape: XYZ, outShape: XYZ, mode: Interpolation): Float32Array {
  const [nx, ny, nz] = shape;
  if (data.length !== nx * ny * nz) throw new Error(`resample: data length is ${data.length}; expected ${nx * ny * nz} for shape ${shape.join('x')}`);
  for (const [i, n] of outShape.entries()) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`resample: output shape[${i}] is ${n}; expected a positive integer`);
  }
  return mode === 'nearest' ? resampleNearest(data, shape, outShape) : resampleLinear(data, shape, outShape);
}

function nearestIndex(nIn: number, nOut: number): Int32Array {
  const idx = new Int32Array(nOut);
  const r = nIn / nOut;
  for (let i = 0; i < nOut; i++) idx[i] = Math.min(nIn - 1, Math.max(0, Math.floor((i + 0.5) * r)));
  return idx;
}

function resampleNearest(data: Float32Array | Uint8Array, shape: XYZ, outShape: XYZ): Float32Array {
  const [nx, ny] = shape;
  const [ox, oy, oz] = outShape;
  const ix = nearestIndex(shape[0], ox);
  const iy = nearestIndex(shape[1], oy);
  const iz = nearestIndex(shape[2], oz);
  const out = new Float32Array(ox * oy * oz);
  let o = 0;
  for (let z = 0; z < oz; z++) {
    const zBase = iz[z] * nx * ny;
    for (let y = 0; y < oy; y++) {
      const base = zBase + iy[y] * nx;
      for (let x = 0; x < ox; x++) out[o++] = data[base + ix[x]];
    }
  }
  return out;
}

interface LinearWeights {
  lo: Int32Array;
  hi: Int32Array;
  w: Float32Array;
}

function linearWeights(nIn: number, nOut: number): LinearWeights {
  const lo = new Int32Array(nOut);
  const hi = new Int32Array(nOut);
  const w = new Float32Array(nOut);
  const r = nIn / nOut;
  for (let i = 0; i < nOut; i++) {
    const c = Math.min(nIn - 1, Math.max(0, (i + 0.5) * r - 0.5));
    const f = Math.floor(c);
    lo[i] = f;
    hi[i] = Math.min(nIn - 1, f + 1);
    w[i] = c - f;
  }
  return { lo, hi, w };
}

/**
 * Linear resampling straight to a mask: voxel = 1 where the float32 value resampleToShape(..., 'linear') gives is
 * above `threshold`, bit for bit, without that float32 volume: the last pass writes bytes. For probabilities
 * brought back to a full-size CT (a 512x512x900 float32 volume is 0.9 GB, the mask a quarter of it).
 */
export function resampleLinearToMask(data: Float32Array, shape: XYZ, outShape: XYZ, threshold: number): Uint8Array {
  const [nx, ny, nz] = shape;
  if (data.length !== nx * ny * nz) throw new Error(`resample: data length is ${data.length}; expected ${nx * ny * nz} for shape ${shape.join('x')}`);
  for (const [i, n] of outShape.entries()) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`resample: output shape[${i}] is ${n}; expected a positive integer`);
  }
  const [ox, oy, oz] = outShape;
  // The x and y passes on the input's slices (small next to the output when the output is the full CT).
  const planes = resampleLinear(data, shape, [ox, oy, nz]);
  const plane = ox * oy;
  const out = new Uint8Array(plane * oz);
  if (oz === nz) {
    for (let i = 0; i < out.length; i++) out[i] = planes[i] > threshold ? 1 : 0;
    return out;
  }
  const { lo, hi, w } = linearWeights(nz, oz);
  for (let z = 0; z < oz; z++) {
    const a0 = lo[z] * plane;
    const b0 = hi[z] * plane;
    const wz = w[z];
    const d0 = z * plane;
    for (let i = 0; i < plane; i++) {
      const a = planes[a0 + i];
      // fround: the value resampleToShape would have stored in its float32 output.
      out[d0 + i] = Math.fround(a + (planes[b0 + i] - a) * wz) > threshold ? 1 : 0;
    }
  }
  return out;
}

function resampleLinear(data: Float32Array | Uint8Array, shape: XYZ, outShape: XYZ): Float32Array {
  const [nx, ny, nz] = shape;
  const [ox, oy, oz] = outShape;
  // Pass 1: along x. [nx,ny,nz] -> [ox,ny,nz]
  let cur: Float32Array | Uint8Array = data;
  if (ox !== nx) {
    const { lo, hi, w } = linearWeights(nx, ox);
    const next = new Float32Array(ox * ny * nz);
    const rows = ny * nz;
    for (let r = 0; r < rows; r++) {
      const src = r * nx;
      const dst = r * ox;
      for (let x = 0; x < ox; x++) {
        const a = cur[src + lo[x]];
        next[dst + x] = a + (cur[src + hi[x]] - a) * w[x];
      }
    }
    cur = next;
  }
  // Pass 2: along y. [ox,ny,nz] -> [ox,oy,nz]
  if (oy !== ny) {
    const { lo, hi, w } = linearWeights(ny, oy);
    const next = new Float32Array(ox * oy * nz);
    for (let z = 0; z < nz; z++) {
      const srcZ = z * ox * ny;
      const dstZ = z * ox * oy;
      for (let y = 0; y < oy; y++) {
        const a0 = srcZ + lo[y] * ox;
        const b0 = srcZ + hi[y] * ox;
        const wy = w[y];
        const d0 = dstZ + y * ox;
        for (let x = 0; x < ox; x++) {
          const a = cur[a0 + x];
          next[d0 + x] = a + (cur[b0 + x] - a) * wy;
        }
      }
    }
    cur = next;
  }
  // Pass 3: along z. [ox,oy,nz] -> [ox,oy,oz]
  if (oz !== nz) {
    const { lo, hi, w } = linearWeights(nz, oz);
    const plane = ox * oy;
    const next = new Float32Array(plane * oz);
    for (let z = 0; z < oz; z++) {
      const a0 = lo[z] * plane;
      const b0 = hi[z] * plane;
      const wz = w[z];
      const d0 = z * plane;
      for (let i = 0; i < plane; i++) {
        const a = cur[a0 + i];
        next[d0 + i] = a + (cur[b0 + i] - a) * wz;
      }
    }
    cur = next;
  }
  return cur instanceof Float32Array && cur !== data ? cur : Float32Array.from(cur);
}

/**
 * Affine of the resampled grid: axis j's column is scaled by n_in / n_out and the origin moves to the
 * centre of the new voxel 0, which sits at source coordinate 0.5 * n_in / n_out - 0.5.
 */
export function resampledAffine(affine: readonly number[], shape: XYZ, outShape: XYZ): number[] {
  const r = shape.map((n, i) => n / outShape[i]);
  const shift = r.map((ri) => 0.5 * ri - 0.5);
  const out = affine.slice();
  for (let row = 0; row < 3; row++) {
    let origin = affine[4 * row + 3];
    for (let j = 0; j < 3; j++) {
      out[4 * row + j] = affine[4 * row + j] * r[j];
      origin += affine[4 * row + j] * shift[j];
    }
    out[4 * row + 3] = origin;
  }
  return out;
}

export interface ResampleOptions {
  /** Target spacing [z, y, x] mm; default 1.5 x 0.8 x 0.8. */
  targetSpacingZYX?: DHW;
  mode: Interpolation;
}

/**
 * Resamples a volume to a target spacing. The returned spacing is the exact one of the new grid
 * (old extent / new size), which differs from the target by the rounding of the size.
 */
export function resampleToSpacing<V extends ScalarVolume>(volume: V, options: ResampleOptions): ScalarVolume {
  const [tz, ty, tx] = options.targetSpacingZYX ?? DEFAULT_TARGET_SPACING_ZYX;
  for (const [name, s] of [['z', tz], ['y', ty], ['x', tx]] as const) {
    if (!(s > 0)) throw new Error(`resample: target spacing ${name} is ${s}; expected a positive number of mm`);
  }
  const outShape = resampledShape(volume.shape, volume.spacing, [tx, ty, tz]);
  const data = resampleToShape(volume.data, volume.shape, outShape, options.mode);
  const spacing = volume.spacing.map((s, i) => (s * volume.shape[i]) / outShape[i]) as [number, number, number];
  const result: ScalarVolume = { data, shape: outShape, spacing };
  if (volume.affine) result.affine = resampledAffine(volume.affine, volume.shape, outShape);
  return result;
}

/** Clips HU to [-325, 325] and divides by 325 (DoDNet), in place; returns the same array. */
export function windowHu(data: Float32Array, window: readonly [number, number] = HU_WINDOW, scale = HU_SCALE): Float32Array {
  const [lo, hi] = window;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    data[i] = (v < lo ? lo : v > hi ? hi : v) / scale;
  }
  return data;
}

/**
 * Which array axis runs along world z (the patient's long axis), judged from the affine; a volume
 * stored slice-first (KiTS19 keeps its slices on the first array axis) answers 0.
 */
export function sliceAxisOf(affine: readonly number[]): 0 | 1 | 2 {
  let best: 0 | 1 | 2 = 2;
  let bestScore = -1;
  for (const j of [0, 1, 2] as const) {
    const col = [affine[j], affine[4 + j], affine[8 + j]];
    const norm = Math.hypot(col[0], col[1], col[2]) || 1;
    const score = Math.abs(col[2]) / norm;
    if (score > bestScore + 1e-9) {
      best = j;
      bestScore = score;
    }
  }
  return best;
}

/**
 * Permutes array axes so that the slice axis is the last NIfTI axis (z = D), keeping the other two in
 * order; affine columns and spacing move with them, so world positions are unchanged. Returns the
 * input itself when nothing needs to move.
 */
export function sliceAxisLast<V extends ScalarVolume>(volume: V): V {
  if (!volume.affine) return volume;
  const axis = sliceAxisOf(volume.affine);
  if (axis === 2) return volume;
  const order: XYZ = axis === 0 ? [1, 2, 0] : [0, 2, 1];
  return permuteAxes(volume, order);
}

/** New axis i is old axis order[i]. */
export function permuteAxes<V extends ScalarVolume>(volume: V, order: XYZ): V {
  const { shape, data } = volume;
  const sorted = [...order].sort();
  if (sorted.join() !== '0,1,2') throw new Error(`permuteAxes: order is [${order.join(', ')}]; expected a permutation of [0, 1, 2]`);
  const newShape = order.map((o) => shape[o]) as [number, number, number];
  const oldStrides = [1, shape[0], shape[0] * shape[1]];
  const s = order.map((o) => oldStrides[o]);
  const out = new Float32Array(data.length);
  let i = 0;
  for (let z = 0; z < newShape[2]; z++) {
    for (let y = 0; y < newShape[1]; y++) {
      const base = z * s[2] + y * s[1];
      for (let x = 0; x < newShape[0]; x++) out[i++] = data[base + x * s[0]];
    }
  }
  const result = { ...volume, data: out, shape: newShape, spacing: order.map((o) => volume.spacing[o]) as [number, number, number] };
  if (volume.affine) {
    const a = volume.affine;
    const na = a.slice();
    for (let row = 0; row < 3; row++) for (let j = 0; j < 3; j++) na[4 * row + j] = a[4 * row + order[j]];
    result.affine = na;
  }
  // The source header's geometry no longer describes the array; drop it so writers use the affine.
  if ('header' in result) delete (result as Partial<NiftiVolume>).header;
  return result;
}

export interface PreprocessedCase {
  /** Windowed and scaled image, [x, y, z], x fastest ( = [D, H, W] C-order ). */
  image: Float32Array;
  /** Label values as stored in the dataset (not yet mapped to channels). */
  label: Uint8Array;
  shape: XYZ;
  spacing: XYZ;
  affine: number[];
}

export interface PreprocessOptions {
  targetSpacingZYX?: DHW;
  window?: readonly [number, number];
  /** Reorder axes so the slice axis is last (default true). */
  sliceAxisLast?: boolean;
}

/** Image and label of one case to the target spacing and window; image and label must share a grid. */
export function preprocessVolumes(image: ScalarVolume, label: ScalarVolume, name: string, options: PreprocessOptions = {}): PreprocessedCase {
  if (image.shape.some((n, i) => n !== label.shape[i])) {
    throw new Error(`${name}: image shape ${image.shape.join('x')} and label shape ${label.shape.join('x')} differ; expected the same grid`);
  }
  let img = image;
  let lab = label;
  if ((options.sliceAxisLast ?? true) && image.affine) {
    // The image decides; the label follows the same permutation so the two stay on one grid.
    const axis = sliceAxisOf(image.affine);
    if (axis !== 2) {
      const order: XYZ = axis === 0 ? [1, 2, 0] : [0, 2, 1];
      img = permuteAxes(img, order);
      lab = permuteAxes(lab, order);
    }
  }
  const target = options.targetSpacingZYX ?? DEFAULT_TARGET_SPACING_ZYX;
  const imgR = resampleToSpacing(img, { targetSpacingZYX: target, mode: 'linear' });
  const labR = resampleToSpacing(lab, { targetSpacingZYX: target, mode: 'nearest' });
  windowHu(imgR.data, options.window ?? HU_WINDOW);
  const labelBytes = new Uint8Array(labR.data.length);
  for (let i = 0; i < labR.data.length; i++) {
    const v = labR.data[i];
    if (!(v >= 0 && v <= 255 && Number.isInteger(v))) {
      throw new Error(`${name}: label voxel ${i} is ${v}; expected an integer label in [0, 255]`);
    }
    labelBytes[i] = v;
  }
  return {
    image: imgR.data,
    label: labelBytes,
    shape: imgR.shape,
    spacing: imgR.spacing,
    affine: imgR.affine ?? [imgR.spacing[0], 0, 0, 0, 0, imgR.spacing[1], 0, 0, 0, 0, imgR.spacing[2], 0, 0, 0, 0, 1],
  };
}
