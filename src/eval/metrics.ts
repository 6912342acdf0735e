/**
 * Dice and HD95 of binary masks, HD95 exactly as medpy.metric.binary.hd95 computes it:
 *   surface(M) = M minus its erosion by the 6-connected cross (scipy binary_erosion, border_value 0, so
 *                voxels on the volume's edge are surface);
 *   d(A -> B)  = for each surface voxel of A, the Euclidean distance (mm, from the voxel spacing) to the
 *                nearest surface voxel of B (distance_transform_edt of ~surface(B), sampled at surface(A));
 *   HD95       = numpy.percentile of d(A -> B) and d(B -> A) pooled, q = 95, default linear interpolation.
 * The distance transform is exact (separable squared EDT of Felzenszwalb & Huttenlocher, O(n)).
 * Arrays are [D, H, W] C-order (W fastest); spacing is [D, H, W] in mm.
 */
import type { DHW } from '../common/shape.js';

/**
 * What Dice and HD95 return when a mask is empty (medpy raises instead). Both empty: the prediction is
 * perfect (Dice 1, HD95 0). Exactly one empty: Dice 0 and HD95 NaN, since there is no surface to measure
 * from; reports show NaN as "n/a" (JSON null) and leave it out of means, counting it separately.
 */
export const EMPTY_MASK_CONVENTION = Object.freeze({
  bothEmpty: Object.freeze({ dice: 1, hd95: 0 }),
  oneEmpty: Object.freeze({ dice: 0, hd95: Number.NaN }),
  description: 'both masks empty: Dice 1, HD95 0; exactly one empty: Dice 0, HD95 NaN (reported as n/a / null and excluded from means)',
});

function checkShape(shape: DHW, what: string): number {
  if (!Array.isArray(shape) || shape.length !== 3 || shape.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error(`${what}: shape is [${String(shape)}]; expected three positive integers [D, H, W]`);
  }
  return shape[0] * shape[1] * shape[2];
}

function checkMask(mask: Uint8Array, n: number, shape: DHW, what: string): void {
  if (!(mask instanceof Uint8Array) || mask.length !== n) {
    throw new Error(`${what}: has ${mask?.length} values; expected a Uint8Array of ${n} for [D, H, W] = [${shape.join(', ')}]`);
  }
}

function checkSpacing(spacing: DHW, what: string): void {
  if (!Array.isArray(spacing) || spacing.length !== 3 || spacing.some((s) => !(s > 0 && Number.isFinite(s)))) {
    throw new Error(`${what}: spacing is [${String(spacing)}]; expected three positive numbers [D, H, W] in mm`);
  }
}

function countNonZero(mask: Uint8Array): number {
  let c = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i] !== 0) c++;
  return c;
}

/** 2|A ∩ B| / (|A| + |B|) over non-zero voxels; EMPTY_MASK_CONVENTION when both are empty. */
export function dice(pred: Uint8Array, truth: Uint8Array): number {
  if (!(pred instanceof Uint8Array) || !(truth instanceof Uint8Array) || pred.length !== truth.length) {
    throw new Error(`dice: pred has ${pred?.length} and truth ${truth?.length} values; expected two Uint8Arrays of the same length`);
  }
  let inter = 0;
  let a = 0;
  let b = 0;
  for (let i = 0; i < pred.length; i++) {
    const p = pred[i] !== 0;
    const t = truth[i] !== 0;
    if (p) a++;
    if (t) b++;
    if (p && t) inter++;
  }
  if (a + b === 0) return EMPTY_MASK_CONVENTION.bothEmpty.dice;
  return (2 * inter) / (a + b);
}

/**
 * Surface voxels: in the mask with at least one of their 6 neighbours outside it or outside the volume
 * (mask XOR erosion by the connectivity-1 structure, out-of-volume counted as background).
 */
export function surfaceMask(mask: Uint8Array, shape: DHW): Uint8Array {
  const n = checkShape(shape, 'surfaceMask');
  checkMask(mask, n, shape, 'surfaceMask mask');
  const [D, H, W] = shape;
  const plane = H * W;
  const out = new Uint8Array(n);
  let i = 0;
  for (let z = 0; z < D; z++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++, i++) {
        if (mask[i] === 0) continue;
        const interior = x > 0 && x < W - 1 && y > 0 && y < H - 1 && z > 0 && z < D - 1
          && mask[i - 1] !== 0 && mask[i + 1] !== 0 && mask[i - W] !== 0 && mask[i + W] !== 0
          && mask[i - plane] !== 0 && mask[i + plane] !== 0;
        if (!interior) out[i] = 1;
      }
    }
  }
  return out;
}

/**
 * 1D squared distance transform along one line (Felzenszwalb & Huttenlocher, "Distance Transforms of
 * Sampled Functions"): d[p] = min_q ((p - q) * step)^2 + f[q], the lower envelope of parabolas rooted at
 * the finite samples. Infinite samples are skipped, so a line without features stays Infinity.
 */
function squaredDt1d(f: Float64Array, d: Float64Array, len: number, step: number, v: Int32Array, zb: Float64Array): void {
  let k = -1;
  for (let q = 0; q < len; q++) {
    const fq = f[q];
    if (fq === Infinity) continue;
    const pq = q * step;
    if (k < 0) {
      k = 0;
      v[0] = q;
      zb[0] = -Infinity;
      zb[1] = Infinity;
      continue;
    }
    let s: number;
    for (;;) {
      const r = v[k];
      const pr = r * step;
      s = (fq + pq * pq - (f[r] + pr * pr)) / (2 * (pq - pr));
      // zb[0] is -Infinity, so k never drops below 0.
      if (s <= zb[k]) k--;
      else break;
    }
    k++;
    v[k] = q;
    zb[k] = s;
    zb[k + 1] = Infinity;
  }
  if (k < 0) {
    d.fill(Infinity, 0, len);
    return;
  }
  k = 0;
  for (let p = 0; p < len; p++) {
    const pp = p * step;
    while (zb[k + 1] < pp) k++;
    const dq = pp - v[k] * step;
    d[p] = dq * dq + f[v[k]];
  }
}

/**
 * Exact squared Euclidean distance (mm^2) from every voxel to the nearest non-zero voxel of `features`,
 * with anisotropic `spacing` [D, H, W]; Infinity everywhere when there is no feature. (scipy's
 * distance_transform_edt(x) measures to the nearest zero of x, i.e. this with features = (x == 0).)
 */
export function squaredDistanceTransform(features: Uint8Array, shape: DHW, spacing: DHW = [1, 1, 1]): Float64Array {
  const n = checkShape(shape, 'squaredDistanceTransform');
  checkMask(features, n, shape, 'squaredDistanceTransform features');
  checkSpacing(spacing, 'squaredDistanceTransform');
  const [D, H, W] = shape;
  const dist = new Float64Array(n);
  for (let i = 0; i < n; i++) dist[i] = features[i] !== 0 ? 0 : Infinity;
  const maxLen = Math.max(D, H, W);
  const f = new Float64Array(maxLen);
  const d = new Float64Array(maxLen);
  const v = new Int32Array(maxLen);
  const zb = new Float64Array(maxLen + 1);
  // One pass per axis over every line along it; the order of the passes does not change the result.
  const passes: [number, number, number][] = [[W, 1, spacing[2]], [H, W, spacing[1]], [D, H * W, spacing[0]]];
  for (const [len, stride, step] of passes) {
    if (len === 1) continue;
    for (let start = 0; start < n; start++) {
      // `start` is the first voxel of a line when its coordinate along this axis is 0.
      if (Math.floor(start / stride) % len !== 0) continue;
      for (let p = 0; p < len; p++) f[p] = dist[start + p * stride];
      squaredDt1d(f, d, len, step, v, zb);
      for (let p = 0; p < len; p++) dist[start + p * stride] = d[p];
    }
  }
  return dist;
}

/** Euclidean distance (mm) to the nearest non-zero voxel of `features`; see squaredDistanceTransform. */
export function distanceTransform(features: Uint8Array, shape: DHW, spacing: DHW = [1, 1, 1]): Float64Array {
  const sq = squaredDistanceTransform(features, shape, spacing);
  for (let i = 0; i < sq.length; i++) sq[i] = Math.sqrt(sq[i]);
  return sq;
}

/** Inclusive bounding box [lo, hi) per axis of the non-zero voxels of either mask; null when both are empty. */
function unionBox(a: Uint8Array, b: Uint8Array, shape: DHW): { lo: number[]; hi: number[] } | null {
  const [D, H, W] = shape;
  const lo = [D, H, W];
  const hi = [0, 0, 0];
  let i = 0;
  for (let z = 0; z < D; z++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++, i++) {
        if (a[i] === 0 && b[i] === 0) continue;
        if (z < lo[0]) lo[0] = z;
        if (y < lo[1]) lo[1] = y;
        if (x < lo[2]) lo[2] = x;
        if (z >= hi[0]) hi[0] = z + 1;
        if (y >= hi[1]) hi[1] = y + 1;
        if (x >= hi[2]) hi[2] = x + 1;
      }
    }
  }
  return hi[0] === 0 ? null : { lo, hi };
}

function cropMask(mask: Uint8Array, shape: DHW, lo: number[], hi: number[]): Uint8Array {
  const [, H, W] = shape;
  const [cd, ch, cw] = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
  const out = new Uint8Array(cd * ch * cw);
  for (let z = 0; z < cd; z++) {
    for (let y = 0; y < ch; y++) {
      const src = ((z + lo[0]) * H + (y + lo[1])) * W + lo[2];
      out.set(mask.subarray(src, src + cw), (z * ch + y) * cw);
    }
  }
  return out;
}

/**
 * medpy's __surface_distances(a, b): for every surface voxel of `a` (raster order), the distance in mm to
 * the nearest surface voxel of `b`. Both masks must be non-empty (medpy raises too).
 */
export function surfaceDistances(a: Uint8Array, b: Uint8Array, shape: DHW, spacing: DHW = [1, 1, 1]): Float64Array {
  const n = checkShape(shape, 'surfaceDistances');
  checkMask(a, n, shape, 'surfaceDistances first mask');
  checkMask(b, n, shape, 'surfaceDistances second mask');
  checkSpacing(spacing, 'surfaceDistances');
  if (countNonZero(a) === 0 || countNonZero(b) === 0) {
    throw new Error('surfaceDistances: a mask is empty; expected both masks to contain foreground (see EMPTY_MASK_CONVENTION for hd95)');
  }
  return directedDistances(a, b, shape, [spacing])[0][0];
}

/**
 * Both directed surface distances, once per spacing. Every surface voxel of either mask lies in the bounding
 * box of their union, and so does the nearest one to it, so the transform runs on that box only: exact and
 * much cheaper than the whole CT.
 */
function directedDistances(a: Uint8Array, b: Uint8Array, shape: DHW, spacings: readonly DHW[]): [Float64Array, Float64Array][] {
  const box = unionBox(a, b, shape);
  if (!box) return spacings.map(() => [new Float64Array(0), new Float64Array(0)]);
  const sub: DHW = [box.hi[0] - box.lo[0], box.hi[1] - box.lo[1], box.hi[2] - box.lo[2]];
  const ca = cropMask(surfaceMask(a, shape), shape, box.lo, box.hi);
  const cb = cropMask(surfaceMask(b, shape), shape, box.lo, box.hi);
  const pick = (from: Uint8Array, dt: Float64Array): Float64Array => {
    const out: number[] = [];
    for (let i = 0; i < from.length; i++) if (from[i] !== 0) out.push(Math.sqrt(dt[i]));
    return Float64Array.from(out);
  };
  return spacings.map((s) => [pick(ca, squaredDistanceTransform(cb, sub, s)), pick(cb, squaredDistanceTransform(ca, sub, s))]);
}

/**
 * numpy.percentile(values, q) with the default 'linear' method: virtual index (n - 1) * q / 100 into the
 * sorted values, interpolated with numpy's _lerp (which computes from the upper end when the weight is
 * >= 0.5), so that results agree to the last bit.
 */
export function percentile(values: ArrayLike<number>, q: number): number {
  if (!(q >= 0 && q <= 100)) throw new Error(`percentile: q is ${q}; expected a number in [0, 100]`);
  const n = values.length;
  if (n === 0) throw new Error('percentile: no values; expected at least one');
  const sorted = Float64Array.from(values).sort();
  if (Number.isNaN(sorted[n - 1])) return Number.NaN;
  const virtual = (n - 1) * (q / 100);
  const prev = Math.floor(virtual);
  if (prev >= n - 1) return sorted[n - 1];
  const gamma = virtual - prev;
  const a = sorted[prev];
  const b = sorted[prev + 1];
  const diff = b - a;
  return gamma >= 0.5 ? b - diff * (1 - gamma) : a + diff * gamma;
}

/**
 * 95th percentile of the pooled surface distances in both directions (medpy.metric.binary.hd95), in mm for
 * `spacing` (voxels when spacing is [1, 1, 1]); EMPTY_MASK_CONVENTION when a mask is empty.
 */
export function hd95(pred: Uint8Array, truth: Uint8Array, shape: DHW, spacing: DHW = [1, 1, 1]): number {
  return hd95Both(pred, truth, shape, [spacing])[0];
}

/** HD95 for several spacings at once, sharing the surface extraction. */
function hd95Both(pred: Uint8Array, truth: Uint8Array, shape: DHW, spacings: DHW[]): number[] {
  const n = checkShape(shape, 'hd95');
  checkMask(pred, n, shape, 'hd95 pred');
  checkMask(truth, n, shape, 'hd95 truth');
  for (const s of spacings) checkSpacing(s, 'hd95');
  const a = countNonZero(pred);
  const b = countNonZero(truth);
  if (a === 0 && b === 0) return spacings.map(() => EMPTY_MASK_CONVENTION.bothEmpty.hd95);
  if (a === 0 || b === 0) return spacings.map(() => EMPTY_MASK_CONVENTION.oneEmpty.hd95);
  return directedDistances(pred, truth, shape, spacings).map(([ab, ba]) => {
    const pooled = new Float64Array(ab.length + ba.length);
    pooled.set(ab);
    pooled.set(ba, ab.length);
    return percentile(pooled, 95);
  });
}

export interface SegmentationMetrics {
  dice: number;
  /** HD95 in mm from the voxel spacing. */
  hd95Mm: number;
  /** HD95 in voxels (spacing 1), as the paper's tables. */
  hd95Voxels: number;
  predVoxels: number;
  truthVoxels: number;
}

/** Dice and HD95 (mm and voxels) of one binary prediction against its ground truth. */
export function segmentationMetrics(pred: Uint8Array, truth: Uint8Array, shape: DHW, spacing: DHW): SegmentationMetrics {
  const [hd95Mm, hd95Voxels] = hd95Both(pred, truth, shape, [spacing, [1, 1, 1]]);
  return { dice: dice(pred, truth), hd95Mm, hd95Voxels, predVoxels: countNonZero(pred), truthVoxels: countNonZero(truth) };
}
