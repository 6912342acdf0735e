/** The page's CT check (web/src/core/ct-check.ts): what it warns about before a run, and what it lets through. */
import { describe, expect, it } from 'vitest';
import { generatePhantom } from '../../src/data/phantom.js';
import { ctWarnings } from '../../web/src/core/ct-check.js';
import type { XYZ } from '../../src/common/shape.js';

const volume = (data: Float32Array, shape: XYZ, spacing: XYZ) =>
  ({ data, shape, spacing, affine: [spacing[0], 0, 0, 0, 0, spacing[1], 0, 0, 0, 0, spacing[2], 0, 0, 0, 0, 1] });

describe('ctWarnings', () => {
  it('a phantom CT at the model\'s voxels passes; modality, values, size, voxel size and memory are each named', () => {
    const p = generatePhantom({ size: [16, 32, 32], seed: 1 });
    const ct = volume(Float32Array.from(p.hu), p.shape, p.spacing);
    expect(ctWarnings(ct, undefined, [11.25, 11.25, 22.5], false)).toEqual([]);
    expect(ctWarnings(ct, 'CT', null, true)).toEqual([]);
    expect(ctWarnings(ct, 'MR', null, true)).toEqual(['the DICOM series is MR, not CT: the model knows CT values in HU only']);
    expect(ctWarnings(ct, undefined, [0.8, 0.8, 1.5], false).join()).toMatch(/^its voxels \(22\.5×11\.25×11\.25 mm\) are 15\.0x off the model's \(1\.5×0\.8×0\.8 mm\) and resampling is off$/);
    expect(ctWarnings(ct, undefined, [0.8, 0.8, 1.5], true)).toEqual([]);
    const mri = volume(Float32Array.from(p.hu, (v) => v + 1000), p.shape, p.spacing);
    expect(ctWarnings(mri, undefined, null, true).join()).toMatch(/no air \(nothing near -1000 HU; the lowest value is -?\d+\)/);
    const scaled = volume(Float32Array.from(p.hu, (v) => v * 10), p.shape, p.spacing);
    expect(ctWarnings(scaled, undefined, null, true).join()).toMatch(/% of the values lie outside \[-1100, 3100\] .*: not HU/);
    // The size comes from the shape; the data is only sampled, so a small array stands for a huge volume here.
    const huge = { ...ct, shape: [512, 512, 1200] as [number, number, number], spacing: [0.7, 0.7, 0.5] as [number, number, number] };
    expect(ctWarnings(huge, undefined, null, true).join()).toMatch(/^315 M voxels need about 2\.9 GB in this tab, more than most tabs get \(about 262 M voxels fit\)/);
  });
});
