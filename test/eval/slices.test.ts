import { decode } from 'fast-png';
import { describe, expect, it } from 'vitest';
import { DEFAULT_HU_WINDOW, OVERLAY_COLOURS, pickSliceCentre, renderCaseSliceImages, renderCaseSlices, type CaseSliceInput } from '../../src/eval/slices.js';
import type { RgbImage } from '../../src/eval/png.js';

const shape: [number, number, number] = [8, 8, 4];
const n = 8 * 8 * 4;
const at = (x: number, y: number, z: number): number => x + 8 * (y + 8 * z);

function input(overrides: Partial<CaseSliceInput> = {}): CaseSliceInput {
  return { hu: new Int16Array(n), shape, spacing: [1, 1, 2], task: 6, truthLabels: new Uint8Array(n), predictionLabels: new Uint8Array(n), ...overrides };
}

const pixel = (img: RgbImage, c: number, r: number): number[] => Array.from(img.data.subarray(3 * (r * img.width + c), 3 * (r * img.width + c) + 3));

/** A box of label `value` over [x0, x1) x [y0, y1) x [z0, z1). */
function box(value: number, [x0, x1]: number[], [y0, y1]: number[], [z0, z1]: number[], into: Uint8Array = new Uint8Array(n)): Uint8Array {
  for (let z = z0; z < z1; z++) for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) into[at(x, y, z)] = value;
  return into;
}

describe('pickSliceCentre', () => {
  it('takes the volume centre when all masks are empty', () => {
    expect(pickSliceCentre([{ organ: new Uint8Array(n) }], shape)).toEqual([4, 4, 2]);
  });

  it('passes through a structure of two parts rather than between them', () => {
    // Two "kidneys" at x 0-1 and 6-7: the centroid x = 3.5 is in neither.
    const organ = box(1, [0, 2], [2, 5], [1, 3]);
    box(1, [6, 8], [2, 5], [1, 3], organ);
    const [x, y, z] = pickSliceCentre([{ organ }], shape);
    expect([0, 1, 6, 7]).toContain(x);
    expect(organ[at(x, y, z)]).toBe(1);
  });

  it('prefers the slice through the tumour', () => {
    const organ = box(1, [1, 7], [1, 7], [0, 4]);
    const tumour = box(1, [5, 6], [2, 3], [3, 4]);
    expect(pickSliceCentre([{ organ, tumour }], shape)).toEqual([5, 2, 3]);
  });
});

describe('renderCaseSliceImages', () => {
  it('maps the HU window onto grey and keeps physical proportions at a common scale', () => {
    const hu = new Int16Array(n).fill(-1000);
    hu[at(3, 3, 2)] = 0;
    hu[at(4, 3, 2)] = 325;
    hu[at(5, 3, 2)] = -325;
    // mm per pixel = max(8, 8, 8 / 1.5) / 16 = 0.5: axial 16 x 16, coronal 16 x 16 (z: 4 slices x 2 mm).
    const { images, centre } = renderCaseSliceImages(input({ hu }), { targetSize: 16 });
    expect(centre).toEqual([4, 4, 2]);
    expect([images.axial.width, images.axial.height, images.coronal.width, images.coronal.height, images.sagittal.width, images.sagittal.height]).toEqual([16, 16, 16, 16, 16, 16]);
    const ax = renderCaseSliceImages(input({ hu }), { targetSize: 16 }).images.axial;
    // Voxel (x, y) covers pixels 2x..2x+1, 2y..2y+1 in the axial image (x to the right, y down).
    expect(pixel(ax, 6, 6)).toEqual([128, 128, 128]);
    expect(pixel(ax, 9, 7)).toEqual([255, 255, 255]);
    expect(pixel(ax, 11, 6)).toEqual([0, 0, 0]);
    expect(pixel(ax, 0, 0)).toEqual([0, 0, 0]);
    const wide = renderCaseSliceImages(input({ hu }), { targetSize: 16, window: { low: -1000, high: 0 } }).images.axial;
    expect(pixel(wide, 0, 0)).toEqual([0, 0, 0]);
    expect(pixel(wide, 6, 6)).toEqual([255, 255, 255]);
    expect(DEFAULT_HU_WINDOW).toEqual({ low: -325, high: 325 });
  });

  it('shows the patient\'s right on the left and superior at the top, following the affine\'s signs', () => {
    const hu = new Int16Array(n).fill(-1000);
    for (let y = 0; y < 8; y++) for (let z = 0; z < 4; z++) hu[at(0, y, z)] = 1000; // x = 0: the patient's right (default affine)
    for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) hu[at(x, y, 3)] = 1000; // z = 3: most superior
    const std = renderCaseSliceImages(input({ hu }), { targetSize: 16 }).images;
    expect(pixel(std.axial, 0, 8)[0]).toBe(255);
    expect(pixel(std.axial, 15, 8)[0]).toBe(0);
    expect(pixel(std.coronal, 8, 0)[0]).toBe(255); // superior at the top
    expect(pixel(std.coronal, 8, 15)[0]).toBe(0);
    expect(pixel(std.sagittal, 8, 0)[0]).toBe(255);
    // An affine whose x runs to the patient's right and z to the feet flips both.
    const affine = [1, 0, 0, 0, 0, -1, 0, 0, 0, 0, -2, 0, 0, 0, 0, 1];
    const flipped = renderCaseSliceImages(input({ hu, affine }), { targetSize: 16 }).images;
    expect(pixel(flipped.axial, 15, 8)[0]).toBe(255);
    expect(pixel(flipped.axial, 0, 8)[0]).toBe(0);
    expect(pixel(flipped.coronal, 8, 15)[0]).toBe(255);
  });

  it('outlines truth and prediction in their colours, edges only, prediction on top', () => {
    const truthLabels = box(1, [2, 6], [2, 6], [0, 4]); // spleen
    const predictionLabels = box(1, [2, 6], [2, 6], [0, 4]);
    const ax = renderCaseSliceImages(input({ truthLabels, predictionLabels }), { targetSize: 16 }).images.axial;
    // Box covers pixels 4..11; prediction 1 px outline on the outermost ring, truth 2 px shows just inside it.
    expect(pixel(ax, 4, 8)).toEqual([...OVERLAY_COLOURS.predictionOrgan]);
    expect(pixel(ax, 5, 8)).toEqual([...OVERLAY_COLOURS.truthOrgan]);
    expect(pixel(ax, 6, 8)).toEqual([128, 128, 128]); // interior: CT (0 HU)
    expect(pixel(ax, 3, 8)).toEqual([128, 128, 128]); // outside
  });

  it('draws only the channels the task annotates', () => {
    // Colon annotates the tumour only: a predicted organ (label 1) is not drawn, a predicted tumour is.
    const truthLabels = box(1, [1, 3], [1, 3], [0, 4]);
    const predictionLabels = box(1, [4, 8], [4, 8], [0, 4]);
    box(2, [1, 3], [1, 3], [0, 4], predictionLabels);
    const ax = renderCaseSliceImages(input({ task: 4, truthLabels, predictionLabels }), { targetSize: 16 }).images.axial;
    const colours = new Set<string>();
    for (let p = 0; p < ax.width * ax.height; p++) colours.add(Array.from(ax.data.subarray(3 * p, 3 * p + 3)).join(','));
    expect(colours.has(OVERLAY_COLOURS.predictionTumour.join(','))).toBe(true);
    expect(colours.has(OVERLAY_COLOURS.truthTumour.join(','))).toBe(true);
    expect(colours.has(OVERLAY_COLOURS.predictionOrgan.join(','))).toBe(false);
    expect(colours.has(OVERLAY_COLOURS.truthOrgan.join(','))).toBe(false);
  });

  it('rejects mismatched arrays, bad spacing and a bad window', () => {
    expect(() => renderCaseSliceImages(input({ hu: new Int16Array(5) }))).toThrow(/hu has 5 values; expected 256/);
    expect(() => renderCaseSliceImages(input({ spacing: [1, 0, 1] }))).toThrow(/spacing/);
    expect(() => renderCaseSliceImages(input(), { window: { low: 10, high: 10 } })).toThrow(/HU window/);
    expect(() => renderCaseSliceImages(input({ affine: [1, 2] }))).toThrow(/affine has 2 values/);
    expect(() => renderCaseSliceImages(input({ task: 9 }))).toThrow(/task id is 9/);
  });
});

describe('renderCaseSlices', () => {
  it('returns a decodable PNG per plane', () => {
    const out = renderCaseSlices(input({ truthLabels: box(1, [2, 6], [2, 6], [1, 3]) }), { targetSize: 32 });
    for (const plane of ['axial', 'coronal', 'sagittal'] as const) {
      const img = decode(out[plane]);
      expect(img.channels).toBe(3);
      expect(Math.max(img.width, img.height)).toBe(32);
    }
    expect(out.centre).toEqual([3, 3, 1]);
  });
});
