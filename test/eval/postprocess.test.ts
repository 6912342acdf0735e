/** Connected components vs a brute-force union-find, and DoDNet's per-task post-processing rules. */
import { describe, expect, it } from 'vitest';
import {
  keepLargestComponents, labelComponents, labelMapToMasks, masksToLabelMap, organComponentsFor, postprocessTask, removeSmallComponents,
  TUMOUR_MAX_DROPPED_VOXELS,
} from '../../src/eval/postprocess.js';
import { rng } from '../helpers/gpu.js';
import type { DHW } from '../../src/common/shape.js';

const vox = (s: DHW): number => s[0] * s[1] * s[2];

/** Reference labelling: union-find over every pair of face-adjacent foreground voxels, numbered by first voxel. */
function referenceLabels(mask: Uint8Array, shape: DHW): Int32Array {
  const [D, H, W] = shape;
  const parent = Int32Array.from(mask, (_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i])));
  const union = (a: number, b: number) => { parent[find(a)] = find(b); };
  for (let z = 0; z < D; z++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const i = (z * H + y) * W + x;
    if (!mask[i]) continue;
    if (x + 1 < W && mask[i + 1]) union(i, i + 1);
    if (y + 1 < H && mask[i + W]) union(i, i + W);
    if (z + 1 < D && mask[i + H * W]) union(i, i + H * W);
  }
  const names = new Map<number, number>();
  return Int32Array.from(mask, (m, i) => {
    if (!m) return 0;
    const root = find(i);
    if (!names.has(root)) names.set(root, names.size + 1);
    return names.get(root)!;
  });
}

/** A mask with axis-aligned boxes [z0, z1) x [y0, y1) x [x0, x1) set. */
function boxes(shape: DHW, list: [number, number, number, number, number, number][]): Uint8Array {
  const [, H, W] = shape;
  const m = new Uint8Array(vox(shape));
  for (const [z0, z1, y0, y1, x0, x1] of list) for (let z = z0; z < z1; z++) for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[(z * H + y) * W + x] = 1;
  return m;
}

const count = (m: Uint8Array): number => m.reduce((s, v) => s + v, 0);

describe('labelComponents', () => {
  it('equals a brute-force union-find on random small volumes (same labels, same raster numbering, sizes)', () => {
    for (let seed = 0; seed < 12; seed++) {
      const shape: DHW = [3 + (seed % 4), 4 + (seed % 3), 5 + (seed % 5)];
      const r = rng(seed);
      const density = 0.2 + 0.05 * seed;
      const mask = Uint8Array.from({ length: vox(shape) }, () => (r() < density ? 1 : 0));
      const got = labelComponents(mask, shape);
      const ref = referenceLabels(mask, shape);
      expect(got.labels, `seed ${seed}`).toEqual(ref);
      expect(got.count).toBe(Math.max(0, ...ref));
      for (let l = 1; l <= got.count; l++) expect(got.sizes[l - 1]).toBe(ref.filter((v) => v === l).length);
    }
  });

  it('uses 6-connectivity: diagonal neighbours are separate components', () => {
    const shape: DHW = [2, 2, 2];
    const mask = Uint8Array.from([1, 0, 0, 1, 0, 1, 1, 0]); // (0,0,0), (0,1,1), (1,0,1), (1,1,0)
    expect(labelComponents(mask, shape).count).toBe(4);
  });

  it('labels a component filling a large volume without recursion', () => {
    const shape: DHW = [40, 64, 64];
    const c = labelComponents(new Uint8Array(vox(shape)).fill(1), shape);
    expect(c.count).toBe(1);
    expect(c.sizes[0]).toBe(vox(shape));
  });

  it('names a mask of the wrong length', () => {
    expect(() => labelComponents(new Uint8Array(7), [2, 2, 2])).toThrow(/labelComponents: mask has 7 values; expected a Uint8Array of 8/);
  });
});

describe('post-processing rules', () => {
  const shape: DHW = [8, 12, 12];
  // Three separate blobs of 36, 24 and 12 voxels.
  const organ = boxes(shape, [[0, 3, 0, 3, 0, 4], [5, 8, 0, 2, 0, 4], [0, 1, 6, 9, 6, 10]]);

  it('keeps the largest organ component, the two largest for kidney', () => {
    expect(count(organ)).toBe(36 + 24 + 12);
    expect(organComponentsFor(1)).toBe(2);
    expect(organComponentsFor(0)).toBe(1);
    const empty = new Uint8Array(vox(shape));
    const liver = postprocessTask({ organ, tumour: empty }, shape, 0);
    expect(liver.organ).toEqual(boxes(shape, [[0, 3, 0, 3, 0, 4]]));
    const kidney = postprocessTask({ organ, tumour: empty }, shape, 1);
    expect(kidney.organ).toEqual(boxes(shape, [[0, 3, 0, 3, 0, 4], [5, 8, 0, 2, 0, 4]]));
    expect(keepLargestComponents(organ, shape, 5)).toEqual(organ);
  });

  it('drops tumour components of at most 50 voxels and keeps 51', () => {
    const tumour = boxes(shape, [[0, 2, 0, 5, 0, 5], [4, 7, 6, 9, 6, 12], [4, 5, 0, 1, 0, 1]]); // 50, 54 (3x3x6), 1
    const out = postprocessTask({ organ: new Uint8Array(vox(shape)), tumour }, shape, 0);
    expect(out.tumour).toEqual(boxes(shape, [[4, 7, 6, 9, 6, 12]]));
    expect(TUMOUR_MAX_DROPPED_VOXELS).toBe(50);
    const t51 = boxes(shape, [[0, 2, 0, 5, 0, 5], [2, 3, 0, 1, 0, 1]]); // 50 + 1 touching = 51
    expect(count(removeSmallComponents(t51, shape, 50))).toBe(51);
    // Tumour is not restricted to the organ: a tumour outside every organ voxel survives.
    expect(count(postprocessTask({ organ, tumour: t51 }, shape, 0).tumour)).toBe(51);
  });

  it('clears the channel a task does not annotate and nothing else', () => {
    const tumour = boxes(shape, [[4, 7, 6, 9, 6, 12]]);
    const colon = postprocessTask({ organ, tumour }, shape, 4);
    expect(count(colon.organ)).toBe(0);
    expect(colon.tumour).toEqual(tumour);
    const spleen = postprocessTask({ organ, tumour }, shape, 6);
    expect(count(spleen.tumour)).toBe(0);
    expect(count(spleen.organ)).toBe(36);
    expect(() => postprocessTask({ organ, tumour: new Uint8Array(3) }, shape, 0)).toThrow(/postprocessTask \(tumour\): mask has 3 values/);
    expect(() => postprocessTask({ organ, tumour }, shape, 9)).toThrow(/task id is 9/);
  });

  it('label maps: tumour over organ, read back per task (hepatic vessel: organ = label 1 only)', () => {
    const o = Uint8Array.from([0, 1, 1, 0]);
    const t = Uint8Array.from([0, 0, 1, 1]);
    const map = masksToLabelMap({ organ: o, tumour: t });
    expect([...map]).toEqual([0, 1, 2, 2]);
    expect(labelMapToMasks(map, 0)).toEqual({ organ: Uint8Array.from([0, 1, 1, 1]), tumour: Uint8Array.from([0, 0, 1, 1]) });
    expect(labelMapToMasks(map, 2)).toEqual({ organ: Uint8Array.from([0, 1, 0, 0]), tumour: Uint8Array.from([0, 0, 1, 1]) });
    expect(() => labelMapToMasks([0, 3], 0)).toThrow(/voxel 1 has label 3; expected 0 \(background\), 1 \(organ\) or 2 \(tumour\)/);
  });
});
