/**
 * Crops and augmentation on [D, H, W] arrays (C-order, W fastest; the same memory as a NIfTI
 * [x, y, z] volume with D = z, H = y, W = x). Everything random takes a `Random`, so a seed fixes it.
 */
import { Random } from './random.js';
import { resampleToShape } from './preprocess.js';
import { type DHW, xyzFromDhw } from '../common/shape.js';

/** Image pad value: the bottom of the HU window after /325 (air and anything below -325 HU). */
export const IMAGE_PAD_VALUE = -1;
export const LABEL_PAD_VALUE = 0;

/**
 * Copies the box [start, start + size) of a [D, H, W] volume into a new array of `size`; parts of the
 * box outside the volume (negative start, or past the end) are filled with `padValue`.
 */
export function extractCrop<T extends Float32Array | Uint8Array>(source: T, shape: DHW, start: DHW, size: DHW, padValue: number): T {
  const [D, H, W] = shape;
  if (source.length !== D * H * W) throw new Error(`extractCrop: source length is ${source.length}; expected ${D * H * W} for [D, H, W] = [${shape.join(', ')}]`);
  for (const [i, n] of size.entries()) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`extractCrop: size[${i}] is ${n}; expected a positive integer`);
  }
  const [sd, sh, sw] = size;
  const out = (source instanceof Uint8Array ? new Uint8Array(sd * sh * sw) : new Float32Array(sd * sh * sw)) as T;
  if (padValue !== 0) out.fill(padValue);
  const [d0, h0, w0] = start;
  // The overlap of the box with the volume, in crop coordinates; rows are copied with `set`.
  const wLo = Math.max(0, -w0);
  const wHi = Math.min(sw, W - w0);
  if (wHi <= wLo) return out;
  for (let d = Math.max(0, -d0); d < Math.min(sd, D - d0); d++) {
    for (let h = Math.max(0, -h0); h < Math.min(sh, H - h0); h++) {
      const src = ((d + d0) * H + (h + h0)) * W + w0;
      out.set(source.subarray(src + wLo, src + wHi), (d * sh + h) * sw + wLo);
    }
  }
  return out;
}

/** Reverses one axis (0 = D, 1 = H, 2 = W) of a [D, H, W] array in place. */
export function flipAxis(data: Float32Array | Uint8Array, shape: DHW, axis: 0 | 1 | 2): void {
  const [D, H, W] = shape;
  if (data.length !== D * H * W) throw new Error(`flipAxis: data length is ${data.length}; expected ${D * H * W}`);
  // Native reverse and block copies: a crop of millions of voxels flips in a few milliseconds, not tens.
  if (axis === 2) {
    for (let base = 0; base < data.length; base += W) data.subarray(base, base + W).reverse();
    return;
  }
  // Axis 1 swaps rows within each slice, axis 0 whole slices: blocks of `block` values, `count` of them per group.
  const block = axis === 1 ? W : H * W;
  const count = axis === 1 ? H : D;
  const groups = axis === 1 ? D : 1;
  const temp = data instanceof Uint8Array ? new Uint8Array(block) : new Float32Array(block);
  for (let g = 0; g < groups; g++) {
    const origin = g * count * block;
    for (let k = 0; k < count >> 1; k++) {
      const a = origin + k * block;
      const b = origin + (count - 1 - k) * block;
      temp.set(data.subarray(a, a + block));
      data.copyWithin(a, b, b + block);
      data.set(temp, b);
    }
  }
}

/** Resizes a [D, H, W] crop: 'linear' for images, 'nearest' for labels (values kept exactly). */
export function resizeDhw(data: Float32Array | Uint8Array, shape: DHW, outShape: DHW, mode: 'linear' | 'nearest'): Float32Array {
  return resampleToShape(data, xyzFromDhw(shape), xyzFromDhw(outShape), mode);
}

export interface AugmentOptions {
  /** Flip each of D, H, W with probability 0.5 (or as `mirrorChoice` says). */
  mirror: boolean;
  /**
   * How the flips are drawn when `mirror` is on: 'each-axis' (default) flips each axis on its own coin; 'dodnet'
   * draws one of eight outcomes as DoDNet's loader does, no flip with probability 0.3 and each of the seven
   * non-empty combinations of axes with 0.1.
   */
  mirrorChoice?: 'each-axis' | 'dodnet';
  /** Zoom: with this probability the crop is taken from a region `size * s` and resized to `size`. */
  scaleProbability: number;
  scaleRange: [number, number];
  noiseProbability: number;
  /** Noise variance drawn from this range per sample. */
  noiseVarianceRange: [number, number];
  brightnessProbability: number;
  brightnessRange: [number, number];
  contrastProbability: number;
  contrastRange: [number, number];
  gammaProbability: number;
  gammaRange: [number, number];
}

/** DoDNet's settings: flips, scaling 0.7-1.4 with p 0.2, and batchgenerators' intensity defaults. */
export const DEFAULT_AUGMENT: AugmentOptions = {
  mirror: true,
  scaleProbability: 0.2,
  scaleRange: [0.7, 1.4],
  noiseProbability: 0.1,
  noiseVarianceRange: [0, 0.1],
  brightnessProbability: 0.15,
  brightnessRange: [0.7, 1.3],
  contrastProbability: 0.15,
  contrastRange: [0.65, 1.5],
  gammaProbability: 0.3,
  gammaRange: [0.7, 1.5],
};

export const NO_AUGMENT: AugmentOptions = {
  ...DEFAULT_AUGMENT,
  mirror: false,
  scaleProbability: 0,
  noiseProbability: 0,
  brightnessProbability: 0,
  contrastProbability: 0,
  gammaProbability: 0,
};

/**
 * DoDNet's training augmentation (its MOTSDataSet): zoom 0.7-1.4 with probability 0.2, resized back to the crop,
 * its table of flips, and no intensity changes; the crops are foreground-centred 80 % of the time (the samplers'
 * default foregroundFraction).
 */
export const DODNET_AUGMENT: AugmentOptions = {
  ...NO_AUGMENT,
  mirror: true,
  mirrorChoice: 'dodnet',
  scaleProbability: 0.2,
  scaleRange: [0.7, 1.4],
};

/** Named augmentation recipes: 'default' is DEFAULT_AUGMENT, 'dodnet' DODNET_AUGMENT. */
export type AugmentRecipe = 'default' | 'dodnet';

export const AUGMENT_RECIPES: readonly AugmentRecipe[] = ['default', 'dodnet'];

/** The settings a recipe name (or explicit settings) stands for; unknown names are refused, naming them. */
export function resolveAugment(augment: AugmentOptions | AugmentRecipe | undefined): AugmentOptions {
  if (augment === undefined || augment === 'default') return DEFAULT_AUGMENT;
  if (augment === 'dodnet') return DODNET_AUGMENT;
  if (typeof augment === 'string') throw new Error(`augment is ${JSON.stringify(augment)}; expected one of ${AUGMENT_RECIPES.map((r) => `'${r}'`).join(', ')} or AugmentOptions`);
  return augment;
}

/** DoDNet's flip outcomes after "no flip": [D, H, W] flipped, each drawn with probability 0.1. */
const DODNET_FLIPS: readonly (readonly [boolean, boolean, boolean])[] = [
  [false, false, true], [false, true, false], [true, false, false],
  [false, true, true], [true, false, true], [true, true, false], [true, true, true],
];

/** The flips of one crop, [D, H, W]; draws nothing when `mirror` is off. */
export function planFlips(rng: Random, options: AugmentOptions): [boolean, boolean, boolean] {
  if (!options.mirror) return [false, false, false];
  const choice = options.mirrorChoice ?? 'each-axis';
  if (choice === 'dodnet') {
    const u = rng.next();
    if (u < 0.3) return [false, false, false];
    // 0.3 + 0.1 k <= u < 0.3 + 0.1 (k + 1): outcome k; the clamp keeps u just below 1 on the last one.
    return [...DODNET_FLIPS[Math.min(DODNET_FLIPS.length - 1, Math.floor((u - 0.3) / 0.1))]];
  }
  if (choice !== 'each-axis') throw new Error(`augment.mirrorChoice is ${JSON.stringify(choice)}; expected 'each-axis' or 'dodnet'`);
  const flipped: [boolean, boolean, boolean] = [false, false, false];
  for (const axis of [0, 1, 2] as const) flipped[axis] = rng.chance(0.5);
  return flipped;
}

export function addGaussianNoise(data: Float32Array, rng: Random, std: number): void {
  for (let i = 0; i < data.length; i++) data[i] += rng.normal(0, std);
}

export function multiplyBrightness(data: Float32Array, factor: number): void {
  for (let i = 0; i < data.length; i++) data[i] *= factor;
}

function minMax(data: Float32Array): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** Scales deviations from the mean by `factor`, then clips to the crop's original range (as batchgenerators). */
export function adjustContrast(data: Float32Array, factor: number): void {
  let sum = 0;
  for (let i = 0; i < data.length; i++) sum += data[i];
  const mean = sum / data.length;
  const [lo, hi] = minMax(data);
  for (let i = 0; i < data.length; i++) {
    const v = (data[i] - mean) * factor + mean;
    data[i] = v < lo ? lo : v > hi ? hi : v;
  }
}

/** Gamma on values rescaled to [0, 1], mapped back to the original range. */
export function adjustGamma(data: Float32Array, gamma: number): void {
  const [lo, hi] = minMax(data);
  const range = hi - lo;
  if (!(range > 0)) return;
  for (let i = 0; i < data.length; i++) data[i] = Math.pow((data[i] - lo) / range, gamma) * range + lo;
}

/**
 * What augmentIntensity does to one crop, decided in advance: every random draw is made here, so the work itself
 * (applyIntensity) can run anywhere (a worker thread) and the generator moves on as if it had run. null: not applied.
 */
export interface IntensityPlan {
  /** Gaussian noise: its standard deviation and the generator state its per-voxel draws start from. */
  noise: { std: number; state: number } | null;
  brightness: number | null;
  contrast: number | null;
  gamma: number | null;
}

/**
 * The draws of augmentIntensity on `voxels` values, in its order; the per-voxel noise draws are skipped over
 * (Random.skipNormals) and replayed by applyIntensity from the saved state.
 */
export function planIntensity(rng: Random, voxels: number, options: AugmentOptions = DEFAULT_AUGMENT): IntensityPlan {
  if (!Number.isInteger(voxels) || voxels < 0) throw new Error(`planIntensity: voxels is ${voxels}; expected a non-negative integer`);
  let noise: IntensityPlan['noise'] = null;
  if (rng.chance(options.noiseProbability)) {
    const std = Math.sqrt(rng.uniform(...options.noiseVarianceRange));
    noise = { std, state: rng.currentState };
    rng.skipNormals(voxels);
  }
  const brightness = rng.chance(options.brightnessProbability) ? rng.uniform(...options.brightnessRange) : null;
  const contrast = rng.chance(options.contrastProbability) ? rng.uniform(...options.contrastRange) : null;
  let gamma: number | null = null;
  if (rng.chance(options.gammaProbability)) {
    // Half the draws below 1, half above, as batchgenerators does for ranges straddling 1.
    const [g0, g1] = options.gammaRange;
    const straddles = g0 < 1 && g1 > 1;
    gamma = !straddles ? rng.uniform(g0, g1) : rng.chance(0.5) ? rng.uniform(g0, 1) : rng.uniform(1, g1);
  }
  return { noise, brightness, contrast, gamma };
}

/** Applies a planned intensity augmentation in augmentIntensity's order (noise, brightness, contrast, gamma). */
export function applyIntensity(data: Float32Array, plan: IntensityPlan): void {
  if (plan.noise) addGaussianNoise(data, Random.fromState(plan.noise.state), plan.noise.std);
  if (plan.brightness !== null) multiplyBrightness(data, plan.brightness);
  if (plan.contrast !== null) adjustContrast(data, plan.contrast);
  if (plan.gamma !== null) adjustGamma(data, plan.gamma);
}

/** The intensity augmentations in a fixed order, each with its probability. */
export function augmentIntensity(data: Float32Array, rng: Random, options: AugmentOptions = DEFAULT_AUGMENT): void {
  applyIntensity(data, planIntensity(rng, data.length, options));
}
