/** Channel-wise evaluation (DoDNet's) and the small-tumour rule as a physical volume. */
import { describe, expect, it } from 'vitest';
import { evaluateCase, evaluateCaseMasks } from '../../src/eval/evaluate.js';
import { masksToLabelMap, TUMOUR_MAX_DROPPED_MM3, TUMOUR_MAX_DROPPED_VOXELS, tumourMaxDroppedVoxelsFor } from '../../src/eval/postprocess.js';

describe('evaluateCaseMasks', () => {
  it('scores overlapping organ and tumour predictions per channel, where a label map loses the organ', () => {
    // Hepatic vessel task (2): organ = vessel (label 1), tumour = liver tumour (label 2); a 1x1x8 strip.
    const shape = [1, 1, 8] as const;
    const truth = Uint8Array.from([1, 1, 1, 0, 0, 2, 2, 0]);
    const organ = Uint8Array.from([1, 1, 1, 0, 0, 0, 0, 0]);
    const tumour = Uint8Array.from([1, 1, 1, 0, 0, 1, 1, 0]); // the tumour channel also covers the vessel
    const byMasks = evaluateCaseMasks('v', { organ, tumour }, truth, shape, [1, 1, 1], 2);
    expect(byMasks.organ?.dice).toBe(1);
    expect(byMasks.tumour?.dice).toBeCloseTo((2 * 2) / (5 + 2), 12);
    const byLabelMap = evaluateCase('v', masksToLabelMap({ organ, tumour }), truth, shape, [1, 1, 1], 2);
    expect(byLabelMap.organ?.dice).toBe(0);
    expect(byLabelMap.tumour?.dice).toBeCloseTo(byMasks.tumour?.dice ?? NaN, 12);
  });

  it('agrees with the label-map evaluation when the channels nest (liver: tumour inside organ)', () => {
    const shape = [1, 2, 4] as const;
    const truth = Uint8Array.from([0, 1, 1, 2, 0, 1, 2, 2]);
    const organ = Uint8Array.from([0, 1, 1, 1, 1, 1, 1, 0]);
    const tumour = Uint8Array.from([0, 0, 0, 1, 0, 0, 1, 0]);
    const a = evaluateCaseMasks('l', { organ, tumour }, truth, shape, [2, 1, 1], 0);
    const b = evaluateCase('l', masksToLabelMap({ organ, tumour }), truth, shape, [2, 1, 1], 0);
    expect(a).toEqual(b);
  });

  it('refuses masks of the wrong size, naming the case', () => {
    const m = new Uint8Array(3);
    expect(() => evaluateCaseMasks('c7', { organ: m, tumour: m }, new Uint8Array(4), [1, 2, 2], [1, 1, 1], 0)).toThrow(/c7: predicted organ\/tumour masks have 3\/3 voxels and truth 4; expected 4/);
  });
});

describe('tumourMaxDroppedVoxelsFor', () => {
  it('is 50 voxels at DoDNet\'s spacing and the same volume on other grids', () => {
    expect(TUMOUR_MAX_DROPPED_MM3).toBeCloseTo(48, 12);
    expect(tumourMaxDroppedVoxelsFor([0.8, 0.8, 1.5])).toBe(TUMOUR_MAX_DROPPED_VOXELS);
    expect(tumourMaxDroppedVoxelsFor([1, 1, 1])).toBe(48);
    expect(tumourMaxDroppedVoxelsFor([2, 2, 3])).toBe(4);
    expect(tumourMaxDroppedVoxelsFor([11.25, 11.25, 22.5])).toBe(0);
    expect(() => tumourMaxDroppedVoxelsFor([1, 0, 1])).toThrow(/spacing is \[1, 0, 1\]; expected three positive voxel sizes in mm/);
  });
});
