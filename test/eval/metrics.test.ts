/** Dice, surfaces, the exact EDT and HD95 against brute force, hand-computed cases and medpy/numpy goldens. */
import { describe, expect, it } from 'vitest';
import {
  dice, distanceTransform, EMPTY_MASK_CONVENTION, hd95, percentile, segmentationMetrics, squaredDistanceTransform, surfaceDistances, surfaceMask,
} from '../../src/eval/metrics.js';
import { rng } from '../helpers/gpu.js';
import type { DHW } from '../../src/common/shape.js';

type Pred = (z: number, y: number, x: number, i: number) => boolean;

function makeMask(shape: DHW, f: Pred): Uint8Array {
  const [D, H, W] = shape;
  const m = new Uint8Array(D * H * W);
  let i = 0;
  for (let z = 0; z < D; z++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++, i++) m[i] = f(z, y, x, i) ? 1 : 0;
  return m;
}

function randomMask(shape: DHW, seed: number, density: number): Uint8Array {
  const r = rng(seed);
  return makeMask(shape, () => r() < density);
}

function coords(i: number, shape: DHW): [number, number, number] {
  const [, H, W] = shape;
  return [Math.floor(i / (H * W)), Math.floor(i / W) % H, i % W];
}

/** min over feature voxels of the spaced Euclidean distance, by enumeration. */
function bruteForceEdt(features: Uint8Array, shape: DHW, spacing: DHW): Float64Array {
  const pts = [...features.keys()].filter((i) => features[i]).map((i) => coords(i, shape));
  return Float64Array.from(features, (_, i) => {
    const [z, y, x] = coords(i, shape);
    let best = Infinity;
    for (const [pz, py, px] of pts) best = Math.min(best, Math.hypot((z - pz) * spacing[0], (y - py) * spacing[1], (x - px) * spacing[2]));
    return best;
  });
}

/** Surface by definition: in the mask with a 6-neighbour outside the mask or the volume. */
function bruteForceSurface(mask: Uint8Array, shape: DHW): Uint8Array {
  const [D, H, W] = shape;
  return Uint8Array.from(mask, (v, i) => {
    if (!v) return 0;
    const [z, y, x] = coords(i, shape);
    const inside = (a: number, b: number, c: number) => a >= 0 && a < D && b >= 0 && b < H && c >= 0 && c < W && mask[(a * H + b) * W + c] === 1;
    return inside(z - 1, y, x) && inside(z + 1, y, x) && inside(z, y - 1, x) && inside(z, y + 1, x) && inside(z, y, x - 1) && inside(z, y, x + 1) ? 0 : 1;
  });
}

describe('dice', () => {
  it('is 2|A∩B| / (|A| + |B|)', () => {
    const a = Uint8Array.from([1, 1, 1, 0, 0, 1]);
    const b = Uint8Array.from([0, 1, 1, 1, 0, 0]);
    expect(dice(a, b)).toBeCloseTo((2 * 2) / (4 + 3), 12);
    expect(dice(a, a)).toBe(1);
    expect(dice(a, Uint8Array.from([0, 0, 0, 1, 1, 0]))).toBe(0);
  });

  it('follows the empty-mask convention and rejects mismatched lengths', () => {
    const empty = new Uint8Array(6);
    expect(dice(empty, empty)).toBe(EMPTY_MASK_CONVENTION.bothEmpty.dice);
    expect(EMPTY_MASK_CONVENTION.bothEmpty.dice).toBe(1);
    expect(dice(Uint8Array.from([0, 1, 0, 0, 0, 0]), empty)).toBe(0);
    expect(dice(empty, Uint8Array.from([0, 1, 0, 0, 0, 0]))).toBe(0);
    expect(() => dice(empty, new Uint8Array(5))).toThrow(/pred has 6 and truth 5 values/);
  });
});

describe('distance transform', () => {
  it('matches brute force on random small volumes, isotropic and anisotropic', () => {
    const cases: [DHW, DHW, number][] = [[[5, 6, 7], [1, 1, 1], 0.05], [[4, 9, 3], [2.5, 0.8, 0.7], 0.1], [[1, 8, 11], [3, 1, 0.5], 0.02], [[6, 1, 5], [1, 2, 1], 0.3]];
    for (const [k, [shape, spacing, density]] of cases.entries()) {
      const features = randomMask(shape, 100 + k, density);
      features[(shape[0] * shape[1] * shape[2]) >> 1] = 1;
      const fast = distanceTransform(features, shape, spacing);
      const slow = bruteForceEdt(features, shape, spacing);
      for (let i = 0; i < fast.length; i++) expect(Math.abs(fast[i] - slow[i]), `case ${k} voxel ${i}`).toBeLessThan(1e-9);
    }
  });

  it('is Infinity without features and 0 on them; bad spacing and shapes are named', () => {
    expect([...squaredDistanceTransform(new Uint8Array(8), [2, 2, 2])].every((v) => v === Infinity)).toBe(true);
    const one = new Uint8Array(27);
    one[13] = 1;
    const d = squaredDistanceTransform(one, [3, 3, 3], [2, 1, 1]);
    expect(d[13]).toBe(0);
    expect(d[4]).toBe(4); // one slice away at 2 mm
    expect(d[0]).toBe(4 + 1 + 1);
    expect(() => squaredDistanceTransform(one, [3, 3, 3], [1, 0, 1])).toThrow(/spacing is \[1,0,1\]; expected three positive numbers/);
    expect(() => squaredDistanceTransform(one, [3, 3, 2])).toThrow(/has 27 values; expected a Uint8Array of 18/);
  });
});

describe('surfaces', () => {
  it('surfaceMask equals the 6-neighbour definition (volume edge counts as outside)', () => {
    for (let seed = 0; seed < 4; seed++) {
      const shape: DHW = [4 + seed, 5, 6];
      const m = randomMask(shape, seed, 0.7);
      expect(surfaceMask(m, shape)).toEqual(bruteForceSurface(m, shape));
    }
    const full = new Uint8Array(27).fill(1);
    const s = surfaceMask(full, [3, 3, 3]);
    expect(s.reduce((a, b) => a + b, 0)).toBe(26); // all but the centre
  });

  it('surfaceDistances throws on an empty mask, as medpy', () => {
    const a = new Uint8Array(8);
    a[0] = 1;
    expect(() => surfaceDistances(a, new Uint8Array(8), [2, 2, 2])).toThrow(/a mask is empty/);
  });
});

describe('percentile (numpy linear)', () => {
  const values = [0.0, 1.0, 1.0, 1.4142135623730951, 2.0, 2.23606797749979, 3.0, 3.1622776601683795, 7.5];
  it('equals numpy.percentile bit for bit (test/eval/hd95_golden.py)', () => {
    const numpy: Record<string, number> = { 0: 0.0, 5: 0.4, 50: 2.0, 90: 4.029822128134704, 95: 5.76491106406735, 99: 7.15298221281347, 100: 7.5 };
    for (const [q, v] of Object.entries(numpy)) expect(percentile([...values].reverse(), Number(q)), `q ${q}`).toBe(v);
  });

  it('interpolates between order statistics and rejects bad q', () => {
    expect(percentile(Array.from({ length: 20 }, (_, i) => i), 95)).toBeCloseTo(18.05, 12);
    expect(percentile([3], 95)).toBe(3);
    expect(() => percentile([1], 101)).toThrow(/q is 101; expected a number in \[0, 100\]/);
    expect(() => percentile([], 50)).toThrow(/no values/);
  });
});

describe('hd95', () => {
  it('of two single voxels is their distance in mm (and in voxels with spacing 1)', () => {
    const shape: DHW = [4, 4, 6];
    const a = makeMask(shape, (z, y, x) => z === 1 && y === 2 && x === 1);
    const b = makeMask(shape, (z, y, x) => z === 2 && y === 2 && x === 4);
    expect(hd95(a, b, shape, [2, 1, 1])).toBeCloseTo(Math.sqrt(4 + 9), 12);
    expect(hd95(a, b, shape)).toBeCloseTo(Math.sqrt(1 + 9), 12);
  });

  it('of two cubes offset by k voxels along W: directed distances are 0 or k, HD95 = k once more than 5% differ', () => {
    // Two 1-voxel-thick plates (surface = the plate) of 4x4 voxels, k apart along W: every surface voxel is k from the other.
    const shape: DHW = [6, 6, 12];
    for (const k of [1, 3, 5]) {
      const a = makeMask(shape, (z, y, x) => z >= 1 && z < 5 && y >= 1 && y < 5 && x === 2);
      const b = makeMask(shape, (z, y, x) => z >= 1 && z < 5 && y >= 1 && y < 5 && x === 2 + k);
      expect(hd95(a, b, shape)).toBeCloseTo(k, 12);
      expect(hd95(a, b, shape, [1, 1, 0.5])).toBeCloseTo(k * 0.5, 12);
    }
    // Solid 4-cubes shifted by 2 along W: surface voxels lie in the shared slab or on faces 2 apart.
    const a = makeMask(shape, (z, y, x) => z >= 1 && z < 5 && y >= 1 && y < 5 && x >= 2 && x < 6);
    const b = makeMask(shape, (z, y, x) => z >= 1 && z < 5 && y >= 1 && y < 5 && x >= 4 && x < 8);
    const d = surfaceDistances(a, b, shape);
    expect(d.length).toBe(56); // 64 voxels minus the 2x2x2 interior
    expect(Math.max(...d)).toBe(2);
    expect(hd95(a, b, shape)).toBe(2);
    expect(hd95(a, a, shape)).toBe(0);
  });

  it('equals medpy.metric.binary.hd95 on the golden masks (test/eval/hd95_golden.py)', () => {
    const shape: DHW = [9, 11, 13];
    const masks: Record<string, Uint8Array> = {
      ellipsoid: makeMask(shape, (z, y, x) => ((z - 4) / 3.5) ** 2 + ((y - 5) / 4) ** 2 + ((x - 6) / 5) ** 2 <= 1),
      box: makeMask(shape, (z, y, x) => z >= 2 && z < 7 && y >= 3 && y < 10 && x >= 1 && x < 9),
      hashA: makeMask(shape, (_z, _y, _x, i) => ((i * 2654435761) % 2 ** 32) % 7 < 3),
      hashB: makeMask(shape, (_z, _y, _x, i) => ((i * 40503 + 17) % 65536) % 5 < 2),
      sparseA: makeMask(shape, (_z, _y, _x, i) => ((i * 2654435761) % 2 ** 32) % 29 === 0),
      sparseB: makeMask(shape, (_z, _y, _x, i) => ((i * 40503 + 17) % 65536) % 23 === 0),
      shifted: makeMask(shape, (z, y, x) => ((z - 3) / 2.5) ** 2 + ((y - 7) / 3) ** 2 + ((x - 9) / 3.5) ** 2 <= 1),
    };
    const golden: Record<string, number> = {
      'ellipsoid|box|1.0': 2.0, 'ellipsoid|box|2.5': 2.5,
      'hashA|hashB|1.0': 1.0, 'hashA|hashB|2.5': 0.8,
      'box|hashA|1.0': 4.0, 'box|hashA|2.5': 5.13994395697894,
      'sparseA|sparseB|1.0': 2.9174234614174734, 'sparseA|sparseB|2.5': 3.680034884360517,
      'ellipsoid|shifted|1.0': 4.543921785971146, 'ellipsoid|shifted|2.5': 5.111751167652823,
      'shifted|sparseB|1.0': 5.856048785303059, 'shifted|sparseB|2.5': 7.450228208051408,
    };
    for (const [key, expected] of Object.entries(golden)) {
      const [a, b, s] = key.split('|');
      const spacing: DHW = s === '1.0' ? [1, 1, 1] : [2.5, 0.8, 0.7];
      expect(hd95(masks[a], masks[b], shape, spacing), key).toBeCloseTo(expected, 10);
      expect(hd95(masks[b], masks[a], shape, spacing), `${key} (swapped)`).toBeCloseTo(expected, 10);
    }
  });

  it('matches a brute-force surface-distance HD95 on random masks', () => {
    for (let seed = 0; seed < 5; seed++) {
      const shape: DHW = [5 + seed, 7, 6];
      const spacing: DHW = [1.5 + seed * 0.5, 0.8, 0.7];
      const a = randomMask(shape, 10 + seed, 0.15 + 0.1 * seed);
      const b = randomMask(shape, 20 + seed, 0.1);
      const da = bruteForceEdt(bruteForceSurface(b, shape), shape, spacing);
      const db = bruteForceEdt(bruteForceSurface(a, shape), shape, spacing);
      const sa = bruteForceSurface(a, shape);
      const sb = bruteForceSurface(b, shape);
      const pooled = [...[...sa.keys()].filter((i) => sa[i]).map((i) => da[i]), ...[...sb.keys()].filter((i) => sb[i]).map((i) => db[i])];
      expect(hd95(a, b, shape, spacing), `seed ${seed}`).toBeCloseTo(percentile(pooled, 95), 10);
    }
  });

  it('follows the empty-mask convention: both empty 0, one empty NaN', () => {
    const shape: DHW = [3, 3, 3];
    const empty = new Uint8Array(27);
    const one = new Uint8Array(27);
    one[4] = 1;
    expect(hd95(empty, empty, shape)).toBe(EMPTY_MASK_CONVENTION.bothEmpty.hd95);
    expect(hd95(empty, empty, shape)).toBe(0);
    expect(hd95(one, empty, shape)).toBeNaN();
    expect(hd95(empty, one, shape, [2, 2, 2])).toBeNaN();
    const m = segmentationMetrics(empty, one, shape, [2, 1, 1]);
    expect(m).toEqual({ dice: 0, hd95Mm: NaN, hd95Voxels: NaN, predVoxels: 0, truthVoxels: 1 });
    expect(segmentationMetrics(empty, empty, shape, [2, 1, 1])).toEqual({ dice: 1, hd95Mm: 0, hd95Voxels: 0, predVoxels: 0, truthVoxels: 0 });
  });

  it('segmentationMetrics gives HD95 in mm and in voxels', () => {
    const shape: DHW = [4, 4, 6];
    const a = makeMask(shape, (z, y, x) => z === 1 && y === 2 && x === 1);
    const b = makeMask(shape, (z, y, x) => z === 1 && y === 2 && x === 4);
    const m = segmentationMetrics(a, b, shape, [2, 1, 0.5]);
    expect(m.hd95Mm).toBeCloseTo(1.5, 12);
    expect(m.hd95Voxels).toBeCloseTo(3, 12);
    expect(m.dice).toBe(0);
  });
});
