import { describe, it, expect } from 'vitest';
import {
  permuteAxes,
  preprocessVolumes,
  resampledAffine,
  resampledShape,
  resampleToShape,
  resampleToSpacing,
  sliceAxisLast,
  sliceAxisOf,
  windowHu,
  type ScalarVolume,
} from '../../src/data/preprocess.js';
import type { XYZ } from '../../src/common/shape.js';

function applyAffine(a: number[], p: number[]): number[] {
  return [0, 1, 2].map((r) => a[4 * r] * p[0] + a[4 * r + 1] * p[1] + a[4 * r + 2] * p[2] + a[4 * r + 3]);
}

describe('resampling', () => {
  it('linear: hand-computed 1D upsampling with matched voxel centres', () => {
    // Source coordinates of 4 outputs from 2 inputs: -0.25, 0.25, 0.75, 1.25 -> clamped 0, 0.25, 0.75, 1.
    const out = resampleToShape(new Float32Array([0, 10]), [2, 1, 1], [4, 1, 1], 'linear');
    expect(Array.from(out)).toEqual([0, 2.5, 7.5, 10]);
    // Downsampling 4 -> 2 averages neighbour pairs: coordinates 0.5 and 2.5.
    expect(Array.from(resampleToShape(new Float32Array([0, 1, 2, 3]), [4, 1, 1], [2, 1, 1], 'linear'))).toEqual([0.5, 2.5]);
  });

  it('linear: 2x2x2 cube upsampled along z only, by hand', () => {
    // value = x + 10 y + 100 z; z 2 -> 3 samples at z = 0, 0.5, 1 (source coordinates (k+0.5)*2/3-0.5 = -1/6, 0.5, 7/6, clamped).
    const src = new Float32Array(8);
    for (let z = 0; z < 2; z++) for (let y = 0; y < 2; y++) for (let x = 0; x < 2; x++) src[x + 2 * y + 4 * z] = x + 10 * y + 100 * z;
    const out = resampleToShape(src, [2, 2, 2], [2, 2, 3], 'linear');
    const at = (x: number, y: number, z: number) => out[x + 2 * y + 4 * z];
    expect([at(0, 0, 0), at(1, 0, 1), at(0, 1, 1), at(1, 1, 2)]).toEqual([0, 51, 60, 111]);
  });

  it('linear equals direct trilinear interpolation in 3D', () => {
    const shape: XYZ = [5, 4, 3];
    const out: XYZ = [7, 3, 5];
    const src = new Float32Array(60).map((_, i) => Math.sin(i * 1.7) * 100);
    const got = resampleToShape(src, shape, out, 'linear');
    const coord = (i: number, nIn: number, nOut: number) => Math.min(nIn - 1, Math.max(0, (i + 0.5) * (nIn / nOut) - 0.5));
    for (let z = 0; z < out[2]; z++) for (let y = 0; y < out[1]; y++) for (let x = 0; x < out[0]; x++) {
      const c = [coord(x, 5, 7), coord(y, 4, 3), coord(z, 3, 5)];
      let sum = 0;
      for (const dz of [0, 1]) for (const dy of [0, 1]) for (const dx of [0, 1]) {
        const f = c.map(Math.floor);
        const idx = [Math.min(4, f[0] + dx), Math.min(3, f[1] + dy), Math.min(2, f[2] + dz)];
        const w = (dx ? c[0] - f[0] : 1 - c[0] + f[0]) * (dy ? c[1] - f[1] : 1 - c[1] + f[1]) * (dz ? c[2] - f[2] : 1 - c[2] + f[2]);
        sum += w * src[idx[0] + 5 * idx[1] + 20 * idx[2]];
      }
      expect(got[x + 7 * y + 21 * z]).toBeCloseTo(sum, 3);
    }
  });

  it('nearest keeps label values exactly and picks the covering voxel', () => {
    const labels = new Uint8Array([0, 1, 2, 3, 7, 2, 1, 0, 5, 5, 0, 2]);
    const out = resampleToShape(labels, [3, 2, 2], [7, 5, 3], 'nearest');
    const allowed = new Set(labels);
    for (const v of out) expect(allowed.has(v)).toBe(true);
    // 3 -> 7 along x: floor((i + 0.5) * 3 / 7) = floor(0.21, 0.64, 1.07, 1.5, 1.93, 2.36, 2.79)
    expect(Array.from(out.subarray(0, 7))).toEqual([0, 0, 1, 1, 1, 2, 2]);
    expect(new Set(out)).toEqual(allowed);
  });

  it('resampleToSpacing: [x, y, z] shape from a [z, y, x] target spacing, exact output spacing, affine keeps world positions', () => {
    const vol: ScalarVolume = {
      data: new Float32Array(10 * 8 * 6),
      shape: [10, 8, 6],
      spacing: [0.9, 0.9, 2.5],
      affine: [-0.9, 0, 0, 4, 0, -0.9, 0, 5, 0, 0, 2.5, -6, 0, 0, 0, 1],
    };
    const r = resampleToSpacing(vol, { targetSpacingZYX: [1.5, 0.8, 0.8], mode: 'linear' });
    expect(r.shape).toEqual(resampledShape(vol.shape, vol.spacing, [0.8, 0.8, 1.5]));
    expect(r.shape).toEqual([11, 9, 10]);
    expect(r.spacing[2]).toBeCloseTo(1.5, 6);
    expect(r.spacing[0]).toBeCloseTo(9 / 11, 6);
    // The first and last output voxel centres sit inside the source extent, symmetric about its centre.
    const a = r.affine as number[];
    const centreIn = applyAffine(vol.affine as number[], [4.5, 3.5, 2.5]);
    const centreOut = applyAffine(a, [5, 4, 4.5]);
    centreOut.forEach((c, i) => expect(c).toBeCloseTo(centreIn[i], 6));
    expect(resampledAffine(vol.affine as number[], vol.shape, vol.shape)).toEqual(vol.affine);
  });

  it('rejects bad inputs with named fields', () => {
    expect(() => resampleToShape(new Float32Array(5), [2, 2, 1], [2, 2, 1], 'linear')).toThrow(/data length is 5; expected 4/);
    expect(() => resampleToSpacing({ data: new Float32Array(1), shape: [1, 1, 1], spacing: [1, 1, 1] }, { targetSpacingZYX: [0, 1, 1], mode: 'linear' })).toThrow(/target spacing z is 0/);
  });
});

describe('intensity window', () => {
  it('clips to [-325, 325] and divides by 325', () => {
    expect(Array.from(windowHu(new Float32Array([-1000, -325, 0, 65, 325, 3000])))).toEqual([-1, -1, 0, Math.fround(0.2), 1, 1]);
  });
});

describe('axis order', () => {
  it('sliceAxisLast moves a slice-first (KiTS-like) volume so world positions are unchanged', () => {
    // Slice axis stored first: array axis 0 runs along world z.
    const shape: XYZ = [3, 4, 5];
    const data = new Float32Array(60).map((_, i) => i);
    const affine = [0, 0, 0.8, 1, 0, 0.7, 0, 2, 3, 0, 0, 3, 0, 0, 0, 1];
    expect(sliceAxisOf(affine)).toBe(0);
    const vol = { data, shape, spacing: [3, 0.7, 0.8] as XYZ, affine };
    const moved = sliceAxisLast(vol);
    expect(moved.shape).toEqual([4, 5, 3]);
    expect(moved.spacing).toEqual([0.7, 0.8, 3]);
    expect(sliceAxisOf(moved.affine as number[])).toBe(2);
    // Same value at the same world point.
    for (const [i, j, k] of [[0, 0, 0], [2, 3, 4], [1, 2, 3]]) {
      const value = data[i + 3 * j + 12 * k];
      const world = applyAffine(affine, [i, j, k]);
      const [a, b, c] = [j, k, i];
      expect(moved.data[a + 4 * b + 20 * c]).toBe(value);
      expect(applyAffine(moved.affine as number[], [a, b, c])).toEqual(world);
    }
    expect(sliceAxisLast(moved)).toBe(moved);
    expect(() => permuteAxes(vol, [0, 0, 1])).toThrow(/expected a permutation/);
  });
});

describe('preprocessVolumes', () => {
  it('resamples image (linear, windowed) and label (nearest) onto one grid', () => {
    const shape: XYZ = [8, 8, 4];
    const n = 256;
    const image = new Float32Array(n).map((_, i) => (i % 2 ? 1000 : -1000));
    const label = new Float32Array(n).map((_, i) => (i % 3 === 0 ? 2 : i % 3 === 1 ? 1 : 0));
    const affine = [1.6, 0, 0, 0, 0, 1.6, 0, 0, 0, 0, 3, 0, 0, 0, 0, 1];
    const pre = preprocessVolumes({ data: image, shape, spacing: [1.6, 1.6, 3], affine }, { data: label, shape, spacing: [1.6, 1.6, 3], affine }, 'case');
    expect(pre.shape).toEqual([16, 16, 8]);
    expect(pre.label.length).toBe(16 * 16 * 8);
    expect(new Set(pre.label)).toEqual(new Set([0, 1, 2]));
    for (const v of pre.image) expect(v >= -1 && v <= 1).toBe(true);
    expect(() => preprocessVolumes({ data: image, shape, spacing: [1, 1, 1] }, { data: new Float32Array(4), shape: [2, 2, 1], spacing: [1, 1, 1] }, 'mismatch.nii')).toThrow(/mismatch\.nii: image shape 8x8x4 and label shape 2x2x1 differ/);
    const badLabel = new Float32Array(n).fill(0.5);
    expect(() => preprocessVolumes({ data: image, shape, spacing: [1, 1, 1] }, { data: badLabel, shape, spacing: [1, 1, 1] }, 'frac.nii')).toThrow(/frac\.nii: label voxel 0 is 0\.5; expected an integer label/);
  });
});
