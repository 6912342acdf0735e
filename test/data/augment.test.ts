import { describe, it, expect } from 'vitest';
import { DEFAULT_AUGMENT, NO_AUGMENT, adjustContrast, adjustGamma, augmentIntensity, extractCrop, flipAxis } from '../../src/data/augment.js';
import { BatchSampler, foregroundIndex, sampleCrop, tumourLabelValue, type TrainingCase } from '../../src/data/sampler.js';
import { Random } from '../../src/data/random.js';
import type { DHW } from '../../src/common/shape.js';

/** value = 100 d + 10 h + w, so every voxel tells where it came from. */
function coded(shape: DHW): Float32Array {
  const [D, H, W] = shape;
  const out = new Float32Array(D * H * W);
  for (let d = 0; d < D; d++) for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) out[(d * H + h) * W + w] = 100 * d + 10 * h + w;
  return out;
}

describe('Random', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = new Random(42);
    const b = new Random(42);
    const c = new Random(43);
    const sa = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(sa);
    expect(Array.from({ length: 5 }, () => c.next())).not.toEqual(sa);
    for (const x of sa) expect(x >= 0 && x < 1).toBe(true);
    const r = new Random(1);
    const ints = Array.from({ length: 2000 }, () => r.int(-2, 2));
    expect(new Set(ints)).toEqual(new Set([-2, -1, 0, 1, 2]));
  });
});

describe('extractCrop', () => {
  const shape: DHW = [3, 4, 5];
  const src = coded(shape);

  it('copies an interior box exactly', () => {
    const crop = extractCrop(src, shape, [1, 1, 2], [2, 2, 3], -1);
    expect(Array.from(crop)).toEqual([112, 113, 114, 122, 123, 124, 212, 213, 214, 222, 223, 224]);
  });

  it('pads outside the volume with the pad value on every side', () => {
    const crop = extractCrop(src, shape, [-1, -1, 3], [2, 2, 3], -1);
    // d = -1 plane is all padding; in d = 0, h = -1 is padding; w = 3, 4 inside, w = 5 outside.
    expect(Array.from(crop)).toEqual([-1, -1, -1, -1, -1, -1, -1, -1, -1, 3, 4, -1]);
    const label = extractCrop(new Uint8Array(60).fill(7), shape, [2, 3, 4], [2, 2, 2], 0);
    expect(label).toBeInstanceOf(Uint8Array);
    expect(Array.from(label)).toEqual([7, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('a crop larger than the volume holds the whole volume at its offset', () => {
    const crop = extractCrop(src, shape, [-1, 0, -2], [5, 4, 9], -1);
    expect(crop[(1 * 4 + 0) * 9 + 2]).toBe(0);
    expect(crop[(3 * 4 + 3) * 9 + 6]).toBe(234);
    expect(crop.filter((v) => v !== -1).length).toBe(60); // all data values are >= 0, so -1 marks padding only
  });
});

describe('flipAxis', () => {
  it('reverses exactly one axis and is its own inverse', () => {
    const shape: DHW = [2, 3, 4];
    for (const axis of [0, 1, 2] as const) {
      const data = coded(shape);
      flipAxis(data, shape, axis);
      for (let d = 0; d < 2; d++) for (let h = 0; h < 3; h++) for (let w = 0; w < 4; w++) {
        const src = [d, h, w];
        src[axis] = shape[axis] - 1 - src[axis];
        expect(data[(d * 3 + h) * 4 + w]).toBe(100 * src[0] + 10 * src[1] + src[2]);
      }
      flipAxis(data, shape, axis);
      expect(data).toEqual(coded(shape));
    }
  });
});

describe('intensity augmentation', () => {
  it('contrast keeps the mean and the range; gamma keeps the range', () => {
    const data = new Float32Array([-1, -0.5, 0, 0.5, 1, 0.2]);
    const mean = data.reduce((a, b) => a + b) / data.length;
    const c = data.slice();
    adjustContrast(c, 0.5);
    expect(c.reduce((a, b) => a + b) / c.length).toBeCloseTo(mean, 6);
    expect(Math.max(...c) - Math.min(...c)).toBeCloseTo(1, 6);
    const g = data.slice();
    adjustGamma(g, 2);
    expect(Math.min(...g)).toBeCloseTo(-1, 6);
    expect(Math.max(...g)).toBeCloseTo(1, 6);
    expect(g[2]).toBeCloseTo(-0.5, 6); // ((0 + 1) / 2)^2 * 2 - 1
  });

  it('is deterministic per seed and does nothing with NO_AUGMENT', () => {
    const base = new Float32Array(500).map((_, i) => Math.sin(i));
    const all = { ...DEFAULT_AUGMENT, noiseProbability: 1, brightnessProbability: 1, contrastProbability: 1, gammaProbability: 1 };
    const a = base.slice();
    const b = base.slice();
    const c = base.slice();
    augmentIntensity(a, new Random(5), all);
    augmentIntensity(b, new Random(5), all);
    augmentIntensity(c, new Random(6), all);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(a).not.toEqual(base);
    const d = base.slice();
    augmentIntensity(d, new Random(5), NO_AUGMENT);
    expect(d).toEqual(base);
  });
});

function makeCase(id: string, task: number, shapeXYZ: [number, number, number], foreground: (x: number, y: number, z: number) => number): TrainingCase {
  const [X, Y, Z] = shapeXYZ;
  const image = new Float32Array(X * Y * Z);
  const label = new Uint8Array(X * Y * Z);
  for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) {
    const i = x + X * (y + Y * z);
    label[i] = foreground(x, y, z);
    image[i] = label[i] ? 0.5 : 0;
  }
  return { id, task, image, label, shape: shapeXYZ };
}

describe('sampleCrop', () => {
  const blob = makeCase('c', 0, [40, 30, 20], (x, y, z) => (Math.abs(x - 30) < 3 && Math.abs(y - 5) < 3 && Math.abs(z - 15) < 2 ? (x === 30 ? 2 : 1) : 0));

  it('foreground-centred crops contain foreground; positions are consistent with the data', () => {
    const rng = new Random(3);
    for (let k = 0; k < 20; k++) {
      const crop = sampleCrop(blob, [8, 12, 12], rng, { foregroundFraction: 1, augment: NO_AUGMENT });
      expect(crop.foregroundCentred).toBe(true);
      expect(crop.label.some((v) => v > 0)).toBe(true);
      // Without augmentation the crop is exactly the region at `start`.
      const expected = extractCrop(blob.label, [20, 30, 40], crop.start, [8, 12, 12], 0);
      expect(crop.label).toEqual(expected);
    }
  });

  it('pads with -1 (image) and 0 (label) when the volume is smaller than the crop', () => {
    const small = makeCase('s', 1, [4, 4, 2], () => 1);
    const crop = sampleCrop(small, [4, 8, 8], new Random(1), { augment: NO_AUGMENT });
    expect(crop.image.length).toBe(256);
    expect(crop.image.filter((v) => v === 0.5).length).toBe(32);
    expect(crop.image.filter((v) => v === -1).length).toBe(256 - 32);
    expect(crop.label.filter((v) => v === 1).length).toBe(32);
    for (const s of crop.start) expect(s).toBeLessThanOrEqual(0);
  });

  it('is deterministic per seed with full augmentation, including scaling and flips', () => {
    const aug = { ...DEFAULT_AUGMENT, scaleProbability: 1 };
    const a = sampleCrop(blob, [8, 12, 12], new Random(9), { augment: aug });
    const b = sampleCrop(blob, [8, 12, 12], new Random(9), { augment: aug });
    expect(a.image).toEqual(b.image);
    expect(a.label).toEqual(b.label);
    expect(a.regionSize).not.toEqual([8, 12, 12]);
    expect(a.image.length).toBe(8 * 12 * 12);
    for (const v of a.label) expect([0, 1, 2]).toContain(v);
  });

  it('flip bookkeeping: a flipped crop equals the unflipped region reversed on the flagged axes', () => {
    const aug = { ...NO_AUGMENT, mirror: true };
    for (let seed = 0; seed < 8; seed++) {
      const crop = sampleCrop(blob, [8, 12, 12], new Random(seed), { augment: aug, foregroundFraction: 1 });
      const region = extractCrop(blob.label, [20, 30, 40], crop.start, [8, 12, 12], 0);
      crop.flipped.forEach((f, axis) => f && flipAxis(region, [8, 12, 12], axis as 0 | 1 | 2));
      expect(crop.label).toEqual(region);
    }
  });

  it('tumour-centred crops (tumourFraction) hold the case\'s own tumour; share 0 leaves the stream as it was', () => {
    const rng = new Random(4);
    for (let k = 0; k < 20; k++) {
      const crop = sampleCrop(blob, [4, 6, 6], rng, { tumourFraction: 1, foregroundFraction: 0, augment: NO_AUGMENT });
      expect(crop.foregroundCentred).toBe(true);
      expect(crop.label.some((v) => v === 2)).toBe(true);
    }
    // Without a share, or without a tumour in the case, no draw is made: the same crops as DoDNet's sampling.
    const spleen = { ...blob, id: 'spleen', task: 6 };
    const colon = makeCase('colon', 4, [40, 30, 20], (x, y, z) => (Math.abs(x - 30) < 2 && Math.abs(y - 5) < 2 && Math.abs(z - 15) < 2 ? 1 : 0));
    const noTumour = makeCase('liver', 0, [40, 30, 20], (x, y, z) => (Math.abs(x - 30) < 3 && Math.abs(y - 5) < 3 && Math.abs(z - 15) < 2 ? 1 : 0));
    for (const c of [blob, spleen, noTumour]) {
      for (let seed = 0; seed < 6; seed++) {
        const plain = sampleCrop(c, [8, 12, 12], new Random(seed), { augment: DEFAULT_AUGMENT });
        const zero = sampleCrop(c, [8, 12, 12], new Random(seed), { augment: DEFAULT_AUGMENT, tumourFraction: 0 });
        expect(zero.image).toEqual(plain.image);
        if (c !== blob) expect(sampleCrop(c, [8, 12, 12], new Random(seed), { augment: DEFAULT_AUGMENT, tumourFraction: 1 }).image).toEqual(plain.image);
      }
    }
    // A colon case labels only its tumour, as 1.
    for (let seed = 0; seed < 10; seed++) {
      expect(sampleCrop(colon, [4, 6, 6], new Random(seed), { tumourFraction: 1, foregroundFraction: 0, augment: NO_AUGMENT }).label.some((v) => v === 1)).toBe(true);
    }
    expect([0, 1, 2, 3, 4, 5, 6].map(tumourLabelValue)).toEqual([2, 2, 2, 2, 1, 1, undefined]);
  });

  it('foregroundIndex lists voxels per label value', () => {
    const idx = foregroundIndex(new Uint8Array([0, 2, 1, 0, 2]));
    expect([...idx.keys()]).toEqual([1, 2]);
    expect(Array.from(idx.get(2) ?? [])).toEqual([1, 4]);
  });
});

describe('BatchSampler', () => {
  const cases = [
    makeCase('liver', 0, [24, 24, 12], (x, y) => (x > 10 && y > 10 ? (x > 18 ? 2 : 1) : 0)),
    makeCase('colon', 4, [24, 24, 12], (x, y) => (x < 5 && y < 5 ? 1 : 0)),
    makeCase('spleen', 6, [24, 24, 12], (x) => (x === 12 ? 1 : 0)),
  ];

  it('yields [N,1,D,H,W] images and [N,2,D,H,W] targets with -1 on unannotated channels', () => {
    const sampler = new BatchSampler(cases, { batchSize: 6, cropSize: [8, 16, 16], seed: 11 });
    const batch = sampler.next();
    const v = 8 * 16 * 16;
    expect(batch.shape).toEqual([6, 8, 16, 16]);
    expect(batch.image.length).toBe(6 * v);
    expect(batch.target.length).toBe(12 * v);
    batch.taskIds.forEach((task, n) => {
      const organ = batch.target.subarray((2 * n) * v, (2 * n + 1) * v);
      const tumour = batch.target.subarray((2 * n + 1) * v, (2 * n + 2) * v);
      expect(organ.every((x) => x === -1)).toBe(task === 4);
      expect(tumour.every((x) => x === -1)).toBe(task === 6);
      if (task === 0) expect(organ.every((x) => x === 0 || x === 1)).toBe(true);
    });
    expect(batch.caseIds.length).toBe(6);
  });

  it('mixes tasks and is reproducible from the seed', () => {
    const a = new BatchSampler(cases, { batchSize: 4, cropSize: [8, 16, 16], seed: 2 });
    const b = new BatchSampler(cases, { batchSize: 4, cropSize: [8, 16, 16], seed: 2 });
    const tasks = new Set<number>();
    for (let k = 0; k < 5; k++) {
      const x = a.next();
      const y = b.next();
      expect(x.image).toEqual(y.image);
      expect(x.target).toEqual(y.target);
      expect(x.taskIds).toEqual(y.taskIds);
      x.taskIds.forEach((t) => tasks.add(t));
    }
    expect(tasks).toEqual(new Set([0, 4, 6]));
    expect(new BatchSampler(cases, { batchSize: 4, cropSize: [8, 16, 16], seed: 3 }).next().image).not.toEqual(new BatchSampler(cases, { batchSize: 4, cropSize: [8, 16, 16], seed: 2 }).next().image);
  });

  it('rejects bad settings', () => {
    expect(() => new BatchSampler([], { batchSize: 1, cropSize: [1, 1, 1], seed: 0 })).toThrow(/no cases/);
    expect(() => new BatchSampler(cases, { batchSize: 0, cropSize: [1, 1, 1], seed: 0 })).toThrow(/batchSize is 0/);
    expect(() => new BatchSampler([{ ...cases[0], task: 9 }], { batchSize: 1, cropSize: [1, 1, 1], seed: 0 })).toThrow(/task id is 9/);
  });
});
