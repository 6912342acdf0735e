/**
 * Sliding-window inference over a whole CT volume, as nnU-Net / DoDNet do it: tiles of the training crop
 * size with 50% overlap, each tile's probabilities weighted by a Gaussian importance map (tile borders see
 * less context, so they count less), optional averaging over the 8 mirrorings of the three axes, and a 0.5
 * threshold. Arrays are [D, H, W] C-order (W fastest), the same memory as a NIfTI [x, y, z] volume.
 *
 * The core is generic over a `predictTiles` callback so it runs without a GPU in tests; `predictVolume`
 * plugs TGNet into it.
 */
import { extractCrop, IMAGE_PAD_VALUE } from '../data/augment.js';
import { sigmoid } from '../autograd/index.js';
import { tidy } from '../autograd/scope.js';
import { noGrad } from '../autograd/tape.js';
import { Tensor } from '../autograd/tensor.js';
import { isGridSide, TOTAL_STRIDE, type TGNet } from '../tgnet/model.js';
import type { DHW } from '../common/shape.js';

/** What `predictTiles` returns per tile and channel: probabilities in [0, 1], or logits (sigmoid applied here). */
export type TileOutputKind = 'probabilities' | 'logits';

/**
 * Predicts `n` tiles at once. `tiles` holds n tiles of `tileShape`, one after another ([n, d, h, w]); the
 * result must hold [n, channels, d, h, w] values.
 */
export type PredictTiles = (tiles: Float32Array, n: number, tileShape: DHW) => Promise<Float32Array>;

export interface SlidingWindowProgress {
  /** Predictor inputs finished (a tile counts once per mirroring when flips are on). */
  done: number;
  total: number;
  /** Tile positions in the volume. */
  tiles: number;
  seconds: number;
}

export interface SlidingWindowOptions {
  /** Tile size [D, H, W], the training crop size. */
  tileShape: DHW;
  /** Fraction of a tile shared with its neighbour along each axis, in [0, 1); default 0.5. */
  overlap?: number;
  /** Average the probabilities over all 8 combinations of mirroring D, H and W (test-time augmentation). */
  flips?: boolean;
  /** Predictor inputs per `predictTiles` call; default 1. */
  batchSize?: number;
  /** Output channels per tile; default 2 (organ, tumour). */
  channels?: number;
  /** What `predictTiles` returns; default 'probabilities'. Logits go through a sigmoid before averaging. */
  output?: TileOutputKind;
  /** 'gaussian' (default) weights tile centres more; 'constant' averages tiles uniformly. */
  importance?: 'gaussian' | 'constant';
  /** Gaussian sigma as a fraction of the tile size per axis; default 1/8 (nnU-Net). */
  sigmaScale?: number;
  /** A voxel is foreground when its averaged probability is above this; default 0.5. */
  threshold?: number;
  /** Value of tile voxels outside the volume; default -1, the bottom of the normalised HU window (air). */
  padValue?: number;
  onProgress?: (progress: SlidingWindowProgress) => void;
}

export interface SlidingWindowResult {
  /** Averaged probabilities [channels, D, H, W]. */
  probabilities: Float32Array;
  /** One binary mask [D, H, W] per channel: probability > threshold. */
  masks: Uint8Array[];
  shape: DHW;
  channels: number;
  /** Tile origins [d, h, w] in volume coordinates (negative where a volume smaller than the tile is padded). */
  tileOrigins: DHW[];
  /** Number of `predictTiles` calls made. */
  predictorCalls: number;
}

/** The 8 mirrorings as bit masks: bit 0 mirrors D, bit 1 H, bit 2 W; 0 is the identity. */
const ALL_FLIPS = [0, 1, 2, 3, 4, 5, 6, 7] as const;

const where = 'slidingWindowInference';

function checkShape3(shape: DHW, what: string, context = where): void {
  if (!Array.isArray(shape) || shape.length !== 3 || shape.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error(`${context}: ${what} is [${String(shape)}]; expected three positive integers [D, H, W]`);
  }
}

/**
 * Tile starts along one axis of `size` voxels (size >= tile), nnU-Net's rule: the fewest steps of at most
 * tile * (1 - overlap) voxels that reach the end, spread evenly (rounded as numpy), first at 0 and last at size - tile.
 */
export function tileStarts(size: number, tile: number, overlap: number): number[] {
  if (!Number.isInteger(tile) || tile < 1) throw new Error(`tileStarts: tile is ${tile}; expected a positive integer`);
  if (!Number.isInteger(size) || size < tile) throw new Error(`tileStarts: size is ${size}; expected an integer >= the tile size ${tile} (pad first)`);
  if (!(overlap >= 0 && overlap < 1)) throw new Error(`tileStarts: overlap is ${overlap}; expected a number in [0, 1)`);
  const targetStep = tile * (1 - overlap);
  const steps = Math.ceil((size - tile) / targetStep) + 1;
  if (steps === 1) return [0];
  const actualStep = (size - tile) / (steps - 1);
  return Array.from({ length: steps }, (_, i) => roundHalfEven(i * actualStep));
}

/** numpy.round: halves go to the even neighbour, so tile positions agree with nnU-Net's. */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const frac = v - f;
  if (frac !== 0.5) return Math.round(v);
  return f % 2 === 0 ? f : f + 1;
}

/**
 * nnU-Net's importance map: a separable Gaussian centred on voxel floor(t / 2) with sigma = t * sigmaScale
 * per axis, scaled to a maximum of 1. Values that underflow to 0 are raised to the smallest positive one,
 * so that every voxel of every tile keeps some weight and no normaliser can be 0.
 */
export function gaussianImportanceMap(tileShape: DHW, sigmaScale = 1 / 8): Float32Array {
  checkShape3(tileShape, 'tileShape', 'gaussianImportanceMap');
  if (!(sigmaScale > 0 && Number.isFinite(sigmaScale))) throw new Error(`gaussianImportanceMap: sigmaScale is ${sigmaScale}; expected a positive number`);
  const axes = tileShape.map((t) => {
    const c = Math.floor(t / 2);
    const sigma = t * sigmaScale;
    return Float64Array.from({ length: t }, (_, i) => Math.exp(-((i - c) ** 2) / (2 * sigma * sigma)));
  });
  const [d, h, w] = tileShape;
  const map = new Float32Array(d * h * w);
  let max = 0;
  let i = 0;
  for (let z = 0; z < d; z++) {
    for (let y = 0; y < h; y++) {
      const zy = axes[0][z] * axes[1][y];
      for (let x = 0; x < w; x++) {
        const v = zy * axes[2][x];
        map[i++] = v;
        if (v > max) max = v;
      }
    }
  }
  let minPositive = Infinity;
  for (let j = 0; j < map.length; j++) {
    map[j] /= max;
    if (map[j] > 0 && map[j] < minPositive) minPositive = map[j];
  }
  for (let j = 0; j < map.length; j++) if (map[j] === 0) map[j] = minPositive;
  return map;
}

/**
 * Copies `src` ([channels, d, h, w]) into `dst` mirrored along the axes whose bits are set in `flip`
 * (bit 0 D, bit 1 H, bit 2 W). Mirroring is its own inverse, so the same call undoes it.
 */
export function mirrorTile(src: Float32Array, dst: Float32Array, tileShape: DHW, flip: number, channels = 1): void {
  const [d, h, w] = tileShape;
  const vox = d * h * w;
  if (src.length < channels * vox || dst.length < channels * vox) {
    throw new Error(`mirrorTile: arrays of ${src.length} and ${dst.length} values; expected ${channels * vox} for ${channels} x [${tileShape.join(', ')}]`);
  }
  const fd = (flip & 1) !== 0;
  const fh = (flip & 2) !== 0;
  const fw = (flip & 4) !== 0;
  for (let c = 0; c < channels; c++) {
    const base = c * vox;
    for (let z = 0; z < d; z++) {
      const zz = fd ? d - 1 - z : z;
      for (let y = 0; y < h; y++) {
        const yy = fh ? h - 1 - y : y;
        const s = base + (z * h + y) * w;
        const t = base + (zz * h + yy) * w;
        if (fw) {
          for (let x = 0; x < w; x++) dst[t + w - 1 - x] = src[s + x];
        } else {
          dst.set(src.subarray(s, s + w), t);
        }
      }
    }
  }
}

interface WorkItem {
  origin: DHW;
  flip: number;
}

/**
 * Runs `predictTiles` over tiles covering the volume and returns the importance-weighted average of the
 * per-voxel probabilities and their thresholded masks. A volume smaller than a tile along some axis is
 * padded (centred, with `padValue`) up to the tile there; the padding never reaches the outputs.
 */
export async function slidingWindowInference(
  volume: Float32Array, shape: DHW, predictTiles: PredictTiles, options: SlidingWindowOptions,
): Promise<SlidingWindowResult> {
  checkShape3(shape, 'volume shape');
  checkShape3(options?.tileShape, 'tileShape');
  const [D, H, W] = shape;
  const n = D * H * W;
  if (!(volume instanceof Float32Array) || volume.length !== n) {
    throw new Error(`${where}: volume has ${volume?.length} values; expected a Float32Array of ${n} for [D, H, W] = [${shape.join(', ')}]`);
  }
  if (typeof predictTiles !== 'function') throw new Error(`${where}: predictTiles is ${typeof predictTiles}; expected a function`);
  const tile = options.tileShape;
  const overlap = options.overlap ?? 0.5;
  if (!(overlap >= 0 && overlap < 1)) throw new Error(`${where}: overlap is ${overlap}; expected a number in [0, 1)`);
  const batchSize = options.batchSize ?? 1;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`${where}: batchSize is ${batchSize}; expected a positive integer`);
  const channels = options.channels ?? 2;
  if (!Number.isInteger(channels) || channels < 1) throw new Error(`${where}: channels is ${channels}; expected a positive integer`);
  const output = options.output ?? 'probabilities';
  if (output !== 'probabilities' && output !== 'logits') throw new Error(`${where}: output is ${JSON.stringify(output)}; expected 'probabilities' or 'logits'`);
  const importance = options.importance ?? 'gaussian';
  if (importance !== 'gaussian' && importance !== 'constant') throw new Error(`${where}: importance is ${JSON.stringify(importance)}; expected 'gaussian' or 'constant'`);
  const threshold = options.threshold ?? 0.5;
  if (!Number.isFinite(threshold)) throw new Error(`${where}: threshold is ${threshold}; expected a finite number`);
  const padValue = options.padValue ?? IMAGE_PAD_VALUE;

  const tileVox = tile[0] * tile[1] * tile[2];
  const weights = importance === 'gaussian' ? gaussianImportanceMap(tile, options.sigmaScale ?? 1 / 8) : new Float32Array(tileVox).fill(1);

  // Tiles are placed on the padded volume (each axis at least a tile long, the volume centred in it);
  // origins are kept in volume coordinates, so the crop below pads and the accumulation clips.
  const padBefore = shape.map((s, a) => Math.max(0, Math.floor((tile[a] - s) / 2)));
  const starts = shape.map((s, a) => tileStarts(Math.max(s, tile[a]), tile[a], overlap).map((p) => p - padBefore[a]));
  const tileOrigins: DHW[] = [];
  for (const z of starts[0]) for (const y of starts[1]) for (const x of starts[2]) tileOrigins.push([z, y, x]);
  const flips = options.flips ? ALL_FLIPS : [0];
  const items: WorkItem[] = [];
  for (const origin of tileOrigins) for (const flip of flips) items.push({ origin, flip });

  const acc = new Float32Array(channels * n);
  const weightSum = new Float32Array(n);
  const flipScale = 1 / flips.length;
  const input = new Float32Array(batchSize * tileVox);
  const mirrored = new Float32Array(channels * tileVox);
  const t0 = performance.now();
  let calls = 0;

  for (let b0 = 0; b0 < items.length; b0 += batchSize) {
    const batch = items.slice(b0, b0 + batchSize);
    for (const [k, item] of batch.entries()) {
      const crop = extractCrop(volume, [D, H, W], [...item.origin], [...tile], padValue);
      if (item.flip === 0) input.set(crop, k * tileVox);
      else mirrorTile(crop, input.subarray(k * tileVox, (k + 1) * tileVox), tile, item.flip);
    }
    const out = await predictTiles(batch.length === batchSize ? input : input.subarray(0, batch.length * tileVox), batch.length, tile);
    calls++;
    const expected = batch.length * channels * tileVox;
    if (!(out instanceof Float32Array) || out.length !== expected) {
      throw new Error(`${where}: predictTiles returned ${out instanceof Float32Array ? `${out.length} values` : String(out)} for ${batch.length} tile(s) of [${tile.join(', ')}]; expected a Float32Array of ${expected} ([n, ${channels}, d, h, w])`);
    }
    for (const [k, item] of batch.entries()) {
      let probs = out.subarray(k * channels * tileVox, (k + 1) * channels * tileVox);
      if (item.flip !== 0) {
        mirrorTile(probs, mirrored, tile, item.flip, channels);
        probs = mirrored;
      }
      accumulateTile(probs, item, { shape, tile, channels, weights, acc, weightSum, flipScale, logits: output === 'logits' });
    }
    options.onProgress?.({ done: Math.min(items.length, b0 + batch.length), total: items.length, tiles: tileOrigins.length, seconds: (performance.now() - t0) / 1000 });
  }

  const masks: Uint8Array[] = [];
  for (let c = 0; c < channels; c++) {
    const mask = new Uint8Array(n);
    const p = acc.subarray(c * n, (c + 1) * n);
    for (let i = 0; i < n; i++) {
      p[i] /= weightSum[i];
      mask[i] = p[i] > threshold ? 1 : 0;
    }
    masks.push(mask);
  }
  return { probabilities: acc, masks, shape: [D, H, W], channels, tileOrigins, predictorCalls: calls };
}

interface AccumulateArgs {
  shape: DHW;
  tile: DHW;
  channels: number;
  weights: Float32Array;
  acc: Float32Array;
  weightSum: Float32Array;
  flipScale: number;
  logits: boolean;
}

/** Adds one tile's weighted probabilities (and, for its first mirroring, its weights) inside the volume. */
function accumulateTile(probs: Float32Array, item: WorkItem, a: AccumulateArgs): void {
  const [D, H, W] = a.shape;
  const [td, th, tw] = a.tile;
  const [oz, oy, ox] = item.origin;
  const n = D * H * W;
  const tileVox = td * th * tw;
  const xLo = Math.max(0, -ox);
  const xHi = Math.min(tw, W - ox);
  for (let z = Math.max(0, -oz); z < Math.min(td, D - oz); z++) {
    for (let y = Math.max(0, -oy); y < Math.min(th, H - oy); y++) {
      const tRow = (z * th + y) * tw;
      const vRow = ((z + oz) * H + (y + oy)) * W + ox;
      if (item.flip === 0) for (let x = xLo; x < xHi; x++) a.weightSum[vRow + x] += a.weights[tRow + x];
      for (let c = 0; c < a.channels; c++) {
        const tBase = c * tileVox + tRow;
        const vBase = c * n + vRow;
        for (let x = xLo; x < xHi; x++) {
          let p = probs[tBase + x];
          if (a.logits) p = 1 / (1 + Math.exp(-p));
          if (!Number.isFinite(p)) {
            throw new Error(`${where}: predictTiles gave ${p} at channel ${c}, tile voxel [${z}, ${y}, ${x}] of the tile at [${item.origin.join(', ')}] (flip ${item.flip}); expected finite values`);
          }
          a.acc[vBase + x] += p * a.weights[tRow + x] * a.flipScale;
        }
      }
    }
  }
}

export interface PredictVolumeOptions extends Omit<SlidingWindowOptions, 'tileShape' | 'channels' | 'output'> {
  /** Tile size [D, H, W], multiples of 16; default the training crop 64 x 192 x 192. */
  tileShape?: DHW;
}

/** The training crop size [D, H, W] (DESIGN: 64 x 192 x 192), the default tile. */
export const DEFAULT_TILE_SHAPE: DHW = [64, 192, 192];

export interface VolumePrediction extends SlidingWindowResult {
  /** masks[0] and masks[1]. */
  organ: Uint8Array;
  tumour: Uint8Array;
}

/**
 * Segments a preprocessed volume ([D, H, W], HU windowed and scaled as in training) with TGNet for one
 * task: tiles are batched through `model.forward` without recording gradients, the sigmoid runs on the GPU,
 * and only the probabilities are read back.
 */
export async function predictVolume(
  model: TGNet, volume: Float32Array, shape: DHW, taskId: number, options: PredictVolumeOptions = {},
): Promise<VolumePrediction> {
  if (!Number.isInteger(taskId) || taskId < 0 || taskId >= model.numTasks) {
    throw new Error(`predictVolume: task id is ${taskId}; expected an integer in [0, ${model.numTasks - 1}]`);
  }
  const tileShape = options.tileShape ?? DEFAULT_TILE_SHAPE;
  checkShape3(tileShape, 'tileShape', 'predictVolume');
  if (!tileShape.every(isGridSide)) {
    throw new Error(`predictVolume: tileShape is [${tileShape.join(', ')}]; expected multiples of ${TOTAL_STRIDE} (TGNet halves each axis four times)`);
  }
  const predictTiles: PredictTiles = async (tiles, n, tile) => {
    const probs = noGrad(() => tidy(() => {
      const x = Tensor.fromArray(tiles, [n, 1, ...tile]);
      return sigmoid(model.forward(x, new Array<number>(n).fill(taskId)));
    }));
    try {
      return await probs.toArray();
    } finally {
      probs.dispose();
    }
  };
  const result = await slidingWindowInference(volume, shape, predictTiles, { ...options, tileShape, channels: 2, output: 'probabilities' });
  return { ...result, organ: result.masks[0], tumour: result.masks[1] };
}
