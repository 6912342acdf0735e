/**
 * The 'dodnet' augmentation recipe: zoom 0.7-1.4 with probability 0.2 resized back to the crop, DoDNet's table of
 * flips, no intensity changes, 80 % foreground-centred crops; 'default' is what no recipe gave before; unknown names
 * are refused. Proportions are checked over many draws of a fixed seed, within a few standard deviations.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_AUGMENT, DODNET_AUGMENT, flipAxis, planFlips, resolveAugment, type AugmentRecipe } from '../../src/data/augment.js';
import { Random } from '../../src/data/random.js';
import { BatchSampler, foregroundIndex, planCrop, sampleCrop, type CropSource, type TrainingCase } from '../../src/data/sampler.js';

/** A [D, H, W] = [40, 48, 48] case with a small foreground blob (label 1) and a smaller one (label 2). */
function makeCase(): TrainingCase {
  const [D, H, W] = [40, 48, 48];
  const image = new Float32Array(D * H * W);
  const label = new Uint8Array(D * H * W);
  for (let i = 0; i < image.length; i++) image[i] = ((i * 2654435761) % 1000) / 500 - 1;
  for (let d = 10; d < 16; d++) for (let h = 20; h < 26; h++) for (let w = 5; w < 11; w++) label[(d * H + h) * W + w] = 1;
  for (let d = 30; d < 32; d++) for (let h = 40; h < 42; h++) for (let w = 40; w < 42; w++) label[(d * H + h) * W + w] = 2;
  return { id: 'blob', task: 0, image, label, shape: [W, H, D] };
}

const N = 4000;
/** Within `k` binomial standard deviations of p over N draws. */
const near = (count: number, p: number, k = 4) => expect(Math.abs(count / N - p)).toBeLessThan(k * Math.sqrt((p * (1 - p)) / N));

describe("augment: 'dodnet'", () => {
  it('is DODNET_AUGMENT: zoom 0.7-1.4 at 0.2, DoDNet flips, no intensity; default is DEFAULT_AUGMENT', () => {
    expect(resolveAugment('dodnet')).toBe(DODNET_AUGMENT);
    expect(resolveAugment('default')).toBe(DEFAULT_AUGMENT);
    expect(resolveAugment(undefined)).toBe(DEFAULT_AUGMENT);
    expect(DODNET_AUGMENT).toMatchObject({
      mirror: true, mirrorChoice: 'dodnet', scaleProbability: 0.2, scaleRange: [0.7, 1.4],
      noiseProbability: 0, brightnessProbability: 0, contrastProbability: 0, gammaProbability: 0,
    });
    expect(() => resolveAugment('nnunet' as AugmentRecipe)).toThrow(/augment is "nnunet"; expected one of 'default', 'dodnet' or AugmentOptions/);
    expect(() => planFlips(new Random(1), { ...DODNET_AUGMENT, mirrorChoice: 'random' as 'dodnet' })).toThrow(/mirrorChoice is "random"; expected 'each-axis' or 'dodnet'/);
  });

  it('over many draws: 80 % foreground-centred, 20 % zoomed in [0.7, 1.4), flips by the table, no intensity change', () => {
    const c = makeCase();
    const source: CropSource = { id: c.id, shape: c.shape, foreground: foregroundIndex(c.label) };
    const rng = new Random(2026);
    let centred = 0, zoomed = 0;
    const flips = new Map<string, number>();
    for (let k = 0; k < N; k++) {
      const plan = planCrop(source, [16, 24, 24], rng, { augment: 'dodnet' });
      if (plan.foregroundCentred) centred++;
      if (plan.scale !== 1) {
        zoomed++;
        expect(plan.scale).toBeGreaterThanOrEqual(0.7);
        expect(plan.scale).toBeLessThan(1.4);
        expect(plan.regionSize).toEqual([16, 24, 24].map((n) => Math.max(1, Math.round(n * plan.scale))));
      } else {
        expect(plan.regionSize).toEqual([16, 24, 24]);
      }
      expect(plan.intensity).toEqual({ noise: null, brightness: null, contrast: null, gamma: null });
      const key = plan.flipped.map((f) => (f ? 1 : 0)).join('');
      flips.set(key, (flips.get(key) ?? 0) + 1);
    }
    near(centred, 0.8);
    near(zoomed, 0.2);
    near(flips.get('000') ?? 0, 0.3);
    for (const key of ['001', '010', '100', '011', '101', '110', '111']) near(flips.get(key) ?? 0, 0.1);
  });

  it('a centred crop holds foreground; the crop is the crop size, its label values kept exactly through the zoom', () => {
    const c = makeCase();
    const rng = new Random(7);
    let centredWithForeground = 0, centred = 0;
    for (let k = 0; k < 300; k++) {
      const crop = sampleCrop(c, [16, 24, 24], rng, { augment: 'dodnet' });
      expect(crop.image.length).toBe(16 * 24 * 24);
      expect(new Set(crop.label).size).toBeLessThanOrEqual(3);
      expect([...new Set(crop.label)].every((v) => v === 0 || v === 1 || v === 2)).toBe(true);
      if (crop.foregroundCentred) {
        centred++;
        if (crop.label.some((v) => v !== 0)) centredWithForeground++;
      }
    }
    expect(centredWithForeground).toBe(centred);
  });

  it("'default' draws exactly what no augment option drew, and 'dodnet' batches replay from a saved position", () => {
    const c = makeCase();
    const a = new BatchSampler([c], { batchSize: 2, cropSize: [8, 16, 16], seed: 4 });
    const b = new BatchSampler([c], { batchSize: 2, cropSize: [8, 16, 16], seed: 4, augment: 'default' });
    for (let k = 0; k < 4; k++) expect(Buffer.from(a.next().image.buffer).equals(Buffer.from(b.next().image.buffer))).toBe(true);
    const d = new BatchSampler([c], { batchSize: 2, cropSize: [8, 16, 16], seed: 4, augment: 'dodnet' });
    d.next();
    const position = d.position();
    const want = d.next();
    const resumed = new BatchSampler([c], { batchSize: 2, cropSize: [8, 16, 16], seed: 99, augment: 'dodnet' });
    resumed.restorePosition(position);
    expect(Buffer.from(resumed.next().image.buffer).equals(Buffer.from(want.image.buffer))).toBe(true);
  });
});

describe('flipAxis (the flips of every recipe)', () => {
  it('reverses each axis of float and byte arrays, odd and even lengths, as a per-voxel reference does', () => {
    for (const shape of [[3, 4, 5], [4, 5, 6], [1, 1, 7], [2, 1, 1], [5, 3, 2]] as [number, number, number][]) {
      const [D, H, W] = shape;
      for (const axis of [0, 1, 2] as const) {
        const f = Float32Array.from({ length: D * H * W }, (_, i) => i * 0.5 - 3);
        const b = Uint8Array.from({ length: D * H * W }, (_, i) => (i * 7) % 256);
        const want = (src: ArrayLike<number>) => {
          const out: number[] = [];
          for (let d = 0; d < D; d++) for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) {
            const [sd, sh, sw] = [axis === 0 ? D - 1 - d : d, axis === 1 ? H - 1 - h : h, axis === 2 ? W - 1 - w : w];
            out.push(src[(sd * H + sh) * W + sw]);
          }
          return out;
        };
        const [wf, wb] = [want(f), want(b)];
        flipAxis(f, shape, axis);
        flipAxis(b, shape, axis);
        expect(Array.from(f), `${shape.join('x')} axis ${axis}`).toEqual(wf);
        expect(Array.from(b), `${shape.join('x')} axis ${axis}`).toEqual(wb);
      }
    }
    expect(() => flipAxis(new Float32Array(5), [1, 2, 3], 0)).toThrow(/flipAxis: data length is 5; expected 6/);
  });
});
