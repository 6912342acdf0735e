/** Sliding-window inference with fake predictors on the CPU: tiling, weighting, padding, flips, errors. */
import { describe, expect, it } from 'vitest';
import { gaussianImportanceMap, mirrorTile, slidingWindowInference, tileStarts, type PredictTiles } from '../../src/eval/sliding-window.js';
import { expectClose, randomArray } from '../helpers/gpu.js';
import type { DHW } from '../../src/common/shape.js';

const vox = (s: DHW): number => s[0] * s[1] * s[2];

/** Returns each tile unchanged in every channel. */
function identityPredictor(channels = 2): PredictTiles {
  return async (tiles, n, tile) => {
    const v = vox(tile);
    const out = new Float32Array(n * channels * v);
    for (let k = 0; k < n; k++) for (let c = 0; c < channels; c++) out.set(tiles.subarray(k * v, (k + 1) * v), (k * channels + c) * v);
    return out;
  };
}

describe('tileStarts', () => {
  it('follows nnU-Net: fewest steps of at most tile * (1 - overlap), first 0, last size - tile', () => {
    expect(tileStarts(20, 8, 0.5)).toEqual([0, 4, 8, 12]);
    expect(tileStarts(24, 16, 0.5)).toEqual([0, 8]);
    expect(tileStarts(18, 16, 0.5)).toEqual([0, 2]);
    expect(tileStarts(16, 16, 0.5)).toEqual([0]);
    expect(tileStarts(100, 30, 0.25)).toEqual([0, 18, 35, 52, 70]); // steps of 17.5, numpy rounding (52.5 -> 52)
    for (const [size, tile, overlap] of [[97, 16, 0.5], [50, 7, 0.3], [33, 32, 0.5], [64, 5, 0]] as const) {
      const s = tileStarts(size, tile, overlap);
      expect(s[0]).toBe(0);
      expect(s[s.length - 1]).toBe(size - tile);
      for (let i = 1; i < s.length; i++) expect(s[i] - s[i - 1]).toBeLessThanOrEqual(Math.ceil(tile * (1 - overlap)));
    }
    expect(() => tileStarts(10, 16, 0.5)).toThrow(/size is 10; expected an integer >= the tile size 16/);
    expect(() => tileStarts(20, 8, 1)).toThrow(/overlap is 1; expected a number in \[0, 1\)/);
  });
});

describe('gaussianImportanceMap', () => {
  it('peaks at 1 in the tile centre with sigma = tile / 8 per axis and no zeros', () => {
    const tile: DHW = [8, 16, 12];
    const g = gaussianImportanceMap(tile);
    const at = (z: number, y: number, x: number) => g[(z * 16 + y) * 12 + x];
    expect(at(4, 8, 6)).toBe(1);
    expect(Math.max(...g)).toBe(1);
    expect(Math.min(...g)).toBeGreaterThan(0);
    // One voxel off centre along D (sigma 1): exp(-1/2); along H (sigma 2): exp(-1/8).
    expect(at(5, 8, 6)).toBeCloseTo(Math.exp(-0.5), 6);
    expect(at(4, 9, 6)).toBeCloseTo(Math.exp(-1 / 8), 6);
    expect(at(0, 0, 0)).toBeCloseTo(Math.exp(-(16 / 2) - (64 / 8) - (36 / (2 * 1.5 ** 2))), 12);
  });
});

describe('mirrorTile', () => {
  it('mirrors the chosen axes and is its own inverse', () => {
    const tile: DHW = [2, 3, 4];
    const src = Float32Array.from({ length: 2 * vox(tile) }, (_, i) => i);
    const once = new Float32Array(src.length);
    const twice = new Float32Array(src.length);
    for (let flip = 0; flip < 8; flip++) {
      mirrorTile(src, once, tile, flip, 2);
      mirrorTile(once, twice, tile, flip, 2);
      expect(twice).toEqual(src);
    }
    mirrorTile(src, once, tile, 4, 1); // W only
    expect([...once.subarray(0, 4)]).toEqual([3, 2, 1, 0]);
    mirrorTile(src, once, tile, 1, 1); // D only
    expect(once[0]).toBe(12);
  });
});

describe('slidingWindowInference', () => {
  it('gives back the input exactly with an identity predictor (weights normalised), Gaussian or constant', async () => {
    const shape: DHW = [20, 24, 18];
    const volume = randomArray(vox(shape), 1, 0, 1);
    for (const importance of ['gaussian', 'constant'] as const) {
      const r = await slidingWindowInference(volume, shape, identityPredictor(), { tileShape: [8, 16, 8], importance, batchSize: 3 });
      expect(r.channels).toBe(2);
      expectClose(r.probabilities.subarray(0, vox(shape)), volume, 1e-6, 1e-5);
      expectClose(r.probabilities.subarray(vox(shape)), volume, 1e-6, 1e-5);
      expect(r.masks[0]).toEqual(Uint8Array.from(volume, (v) => (v > 0.5 ? 1 : 0)));
      expect(r.tileOrigins.length).toBe(4 * 2 * 4); // D 0,4,8,12; H 0,8; W 0,3,7,10
      expect(r.predictorCalls).toBe(Math.ceil(32 / 3));
    }
  });

  it('feeds every tile the volume crop at its origin, and the tiles cover every voxel', async () => {
    const shape: DHW = [11, 9, 14];
    const tile: DHW = [4, 4, 6];
    const n = vox(shape);
    const volume = Float32Array.from({ length: n }, (_, i) => i);
    const coverage = new Int32Array(n);
    const seen: number[] = [];
    const predictor: PredictTiles = async (tiles, k, t) => {
      for (let j = 0; j < tiles.length; j++) coverage[tiles[j]]++;
      seen.push(k);
      return new Float32Array(k * 2 * vox(t));
    };
    const r = await slidingWindowInference(volume, shape, predictor, { tileShape: tile, batchSize: 4 });
    const expected = new Int32Array(n);
    for (const [oz, oy, ox] of r.tileOrigins) {
      for (let z = 0; z < tile[0]; z++) for (let y = 0; y < tile[1]; y++) for (let x = 0; x < tile[2]; x++) expected[((oz + z) * shape[1] + oy + y) * shape[2] + ox + x]++;
    }
    expect(coverage).toEqual(expected);
    expect(Math.min(...coverage)).toBeGreaterThanOrEqual(1);
    const tiles = tileStarts(11, 4, 0.5).length * tileStarts(9, 4, 0.5).length * tileStarts(14, 6, 0.5).length;
    expect(r.tileOrigins.length).toBe(tiles);
    expect(tiles).toBe(5 * 4 * 4);
    expect(seen).toEqual(new Array<number>(tiles / 4).fill(4)); // batches of 4
    expect(r.probabilities.every((p) => p === 0)).toBe(true);
  });

  it('pads a volume smaller than a tile (centred, with padValue) and never lets the padding into the output', async () => {
    const shape: DHW = [5, 20, 3];
    const volume = randomArray(vox(shape), 2, 0, 1);
    let padSeen = 0;
    const identity = identityPredictor();
    const predictor: PredictTiles = async (tiles, k, t) => {
      padSeen += tiles.filter((v) => v === -7).length;
      return identity(tiles, k, t);
    };
    const r = await slidingWindowInference(volume, shape, predictor, { tileShape: [8, 8, 8], padValue: -7 });
    expect(r.tileOrigins.map((o) => o[0])).toEqual([-1, -1, -1, -1]); // floor((8 - 5) / 2) before
    expect(r.tileOrigins.map((o) => o[2])).toEqual([-2, -2, -2, -2]);
    expect(r.tileOrigins.map((o) => o[1])).toEqual([0, 4, 8, 12]);
    expect(padSeen).toBe(4 * (512 - 5 * 8 * 3));
    expectClose(r.probabilities.subarray(0, vox(shape)), volume, 1e-6, 1e-5);
  });

  it('undoes the mirroring of every flip: position-dependent predictor averaged over 8 flips', async () => {
    // One tile = the whole volume, constant weights: out(p) = in(p) * g(p in the tile it saw). Undone correctly,
    // the result is in(p) times the mean of g over p's 8 mirror images, a product of per-axis means.
    const shape: DHW = [4, 6, 5];
    const [D, H, W] = shape;
    const gz = (z: number) => 1 + z;
    const gy = (y: number) => 1 + y * y;
    const gx = (x: number) => 2 + x ** 3;
    const volume = randomArray(vox(shape), 3, 0.1, 1);
    const predictor: PredictTiles = async (tiles, n, t) => {
      const out = new Float32Array(n * 2 * vox(t));
      for (let k = 0; k < n; k++) {
        let i = 0;
        for (let z = 0; z < D; z++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++, i++) {
          const v = tiles[k * vox(t) + i];
          out[k * 2 * vox(t) + i] = v * gz(z) * gy(y) * gx(x);
          out[(k * 2 + 1) * vox(t) + i] = v;
        }
      }
      return out;
    };
    let calls = 0;
    const r = await slidingWindowInference(volume, shape, predictor, {
      tileShape: shape, flips: true, importance: 'constant', batchSize: 3, onProgress: (p) => { calls++; expect(p.total).toBe(8); },
    });
    expect(calls).toBe(3);
    const expected = new Float32Array(vox(shape));
    let i = 0;
    for (let z = 0; z < D; z++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++, i++) {
      expected[i] = volume[i] * ((gz(z) + gz(D - 1 - z)) / 2) * ((gy(y) + gy(H - 1 - y)) / 2) * ((gx(x) + gx(W - 1 - x)) / 2);
    }
    expectClose(r.probabilities.subarray(0, vox(shape)), expected, 1e-5, 1e-5);
    expectClose(r.probabilities.subarray(vox(shape)), volume, 1e-6, 1e-5);
  });

  it('applies a sigmoid to logits before averaging', async () => {
    const shape: DHW = [6, 6, 6];
    const p = randomArray(vox(shape), 4, 0.05, 0.95);
    const logits = Float32Array.from(p, (v) => Math.log(v / (1 - v)));
    const r = await slidingWindowInference(logits, shape, identityPredictor(), { tileShape: [4, 4, 4], output: 'logits', flips: true });
    expectClose(r.probabilities.subarray(0, vox(shape)), p, 1e-6, 1e-5);
  });

  it('names bad inputs and bad predictor output', async () => {
    const shape: DHW = [4, 4, 4];
    const volume = new Float32Array(64);
    const opts = { tileShape: [4, 4, 4] as DHW };
    await expect(slidingWindowInference(new Float32Array(63), shape, identityPredictor(), opts)).rejects.toThrow(/volume has 63 values; expected a Float32Array of 64/);
    await expect(slidingWindowInference(volume, [4, 4, 0], identityPredictor(), opts)).rejects.toThrow(/volume shape is \[4,4,0\]; expected three positive integers/);
    await expect(slidingWindowInference(volume, shape, identityPredictor(), { tileShape: [4, 4, 4], overlap: -0.1 })).rejects.toThrow(/overlap is -0.1/);
    await expect(slidingWindowInference(volume, shape, identityPredictor(), { tileShape: [4, 4, 4], batchSize: 0 })).rejects.toThrow(/batchSize is 0/);
    await expect(slidingWindowInference(volume, shape, identityPredictor(1), opts)).rejects.toThrow(/predictTiles returned 64 values for 1 tile\(s\) of \[4, 4, 4\]; expected a Float32Array of 128/);
    const nan: PredictTiles = async (_t, n) => new Float32Array(n * 128).fill(NaN);
    await expect(slidingWindowInference(volume, shape, nan, opts)).rejects.toThrow(/predictTiles gave NaN at channel 0/);
  });
});
