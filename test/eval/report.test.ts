/** Per-case / per-task reports and evaluateCase's task-aware reading of label maps. */
import { describe, expect, it } from 'vitest';
import { evaluateCase } from '../../src/eval/evaluate.js';
import type { SegmentationMetrics } from '../../src/eval/metrics.js';
import { formatReport, reportToJson, summariseByTask, summariseMetric, type CaseEvaluation } from '../../src/eval/report.js';

const m = (dice: number, hd95Mm: number, hd95Voxels = hd95Mm): SegmentationMetrics => ({ dice, hd95Mm, hd95Voxels, predVoxels: 10, truthVoxels: 10 });

const cases: CaseEvaluation[] = [
  { case: 'liver_000.nii.gz', task: 0, organ: m(0.9, 2), tumour: m(0.5, 10) },
  { case: 'liver_001.nii.gz', task: 0, organ: m(0.8, 4), tumour: m(0, NaN) },
  { case: 'spleen_000.nii.gz', task: 6, organ: m(0.95, 1.5, 2) },
];

describe('report', () => {
  it('summarises mean and population std per task, leaving NaN out and counting it', () => {
    expect(summariseMetric([1, 3])).toEqual({ mean: 2, std: 1, count: 2, undefinedCount: 0 });
    const [liver, spleen] = summariseByTask(cases);
    expect(liver.taskKey).toBe('liver');
    expect(liver.cases).toBe(2);
    expect(liver.organ!.dice.mean).toBeCloseTo(0.85, 12);
    expect(liver.organ!.dice.std).toBeCloseTo(0.05, 12);
    expect(liver.tumour!.hd95Mm).toEqual({ mean: 10, std: 0, count: 1, undefinedCount: 1 });
    expect(spleen.tumour).toBeUndefined();
    expect(spleen.organ!.hd95Voxels.mean).toBe(2);
    expect(() => summariseByTask([{ case: 'x', task: 12 }])).toThrow(/case 'x' has task id 12; expected an integer in \[0, 6\]/);
  });

  it('prints a table with n/a for undefined HD95, - for unannotated channels, and the convention', () => {
    const text = formatReport(cases);
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^case\s+task\s+organ Dice\s+organ HD95 mm\s+organ HD95 vox\s+tumour Dice/);
    expect(lines.find((l) => l.startsWith('liver_001'))).toMatch(/0\.8000\s+4\.00\s+4\.00\s+0\.0000\s+n\/a\s+n\/a$/);
    expect(lines.find((l) => l.startsWith('spleen_000'))).toMatch(/0\.9500\s+1\.50\s+2\.00\s+-\s+-\s+-$/);
    expect(text).toMatch(/mean ± std \(2 cases\)\s+liver\s+0\.8500 ± 0\.0500/);
    expect(text).toMatch(/10\.00 ± 0\.00 \(1 n\/a\)/);
    expect(text).toMatch(/both masks empty: Dice 1, HD95 0; exactly one empty: Dice 0, HD95 NaN/);
  });

  it('writes JSON with null for NaN', () => {
    const json = reportToJson(cases);
    const text = JSON.stringify(json);
    expect(JSON.parse(text)).toEqual(json); // plain data: survives a round trip unchanged
    expect(json.cases[1].tumour!.hd95Mm).toBeNull();
    expect(json.tasks.map((t) => t.taskKey)).toEqual(['liver', 'spleen']);
    expect(json.emptyMaskConvention).toMatch(/HD95 NaN/);
  });
});

describe('evaluateCase', () => {
  it('reads predictions as 1 organ / 2 tumour and the truth through the task table', () => {
    const shape = [1, 1, 6] as const;
    // Colon: the dataset labels its tumour 1; the prediction map writes tumour as 2.
    const colon = evaluateCase('c', Uint8Array.from([0, 2, 2, 0, 0, 0]), Uint8Array.from([0, 1, 1, 0, 0, 0]), shape, [1, 1, 1], 4);
    expect(colon.organ).toBeUndefined();
    expect(colon.tumour!.dice).toBe(1);
    // Liver: the organ includes its tumour on both sides.
    const liver = evaluateCase('l', Uint8Array.from([1, 1, 2, 0, 0, 0]), Uint8Array.from([1, 2, 2, 0, 0, 0]), shape, [1, 1, 2], 0);
    expect(liver.organ!.dice).toBe(1);
    expect(liver.tumour!.dice).toBeCloseTo((2 * 1) / 3, 12);
    expect(liver.tumour!.hd95Mm).toBeCloseTo(1.8, 12); // distances {0, 0, 2 mm}: index 1.9 of the sorted values
    expect(() => evaluateCase('bad.nii.gz', new Uint8Array(5), new Uint8Array(6), shape, [1, 1, 1], 0)).toThrow(/bad.nii.gz: prediction has 5 voxels and truth 6/);
  });
});
