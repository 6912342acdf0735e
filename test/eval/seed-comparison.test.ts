/**
 * The comparison over seeds against numbers worked by hand: means, sample standard deviations (n - 1), and the
 * rule that a difference counts only when the models' ranges over the seeds do not overlap.
 */
import { describe, expect, it } from 'vitest';
import { compareOverSeeds, formatSeedComparisonMarkdown, formatSeedComparisonText, type SeedRun } from '../../src/eval/seed-comparison.js';
import type { TaskSummary } from '../../src/eval/report.js';

const metric = (mean: number) => ({ mean, std: 0, count: 1, undefinedCount: 0 });
const channel = (dice: number) => ({ dice: metric(dice), hd95Mm: metric(1), hd95Voxels: metric(1) });
/** The liver task (organ and tumour), Dice as fractions. */
const liver = (organ: number, tumour: number): TaskSummary[] => [{ task: 0, taskKey: 'liver', cases: 1, organ: channel(organ), tumour: channel(tumour) }];

describe('compareOverSeeds', () => {
  const runs: SeedRun[] = [
    { model: 'dodnet', seed: 0, tasks: liver(0.90, 0.20) },
    { model: 'dodnet', seed: 1, tasks: liver(0.92, 0.30) },
    { model: 'dodnet', seed: 2, tasks: liver(0.94, 0.40) },
    { model: 'tgnet', seed: 0, tasks: liver(0.91, 0.45) },
    { model: 'tgnet', seed: 1, tasks: liver(0.93, 0.50) },
    { model: 'tgnet', seed: 2, tasks: liver(0.95, 0.55) },
  ];

  it('means and sample standard deviations per task channel and of the average', () => {
    const c = compareOverSeeds(runs);
    expect(c.seeds).toEqual([0, 1, 2]);
    expect(c.columns.map((col) => `${col.taskKey} ${col.channel}`)).toEqual(['liver organ', 'liver tumour']);
    const [dodnet, tgnet] = c.rows;
    expect(dodnet.model).toBe('dodnet');
    expect(dodnet.cells[0].mean).toBeCloseTo(92, 10);
    expect(dodnet.cells[0].sd).toBeCloseTo(2, 10);
    expect(dodnet.cells[1].values.map((v) => Number(v.toFixed(6)))).toEqual([20, 30, 40]);
    expect(dodnet.cells[1].sd).toBeCloseTo(10, 10);
    expect(tgnet.cells[1].mean).toBeCloseTo(50, 10);
    expect(tgnet.cells[1].sd).toBeCloseTo(5, 10);
    // The average of organ and tumour per seed: 55, 61, 67 for dodnet.
    expect(dodnet.average.values.map((v) => Number(v.toFixed(6)))).toEqual([55, 61, 67]);
    expect(dodnet.average.sd).toBeCloseTo(6, 10);
  });

  it('a difference exceeds the spread only when the ranges over the seeds do not overlap', () => {
    const c = compareOverSeeds(runs);
    const organ = c.differences.find((d) => d.channel === 'liver')!;
    expect(organ).toMatchObject({ better: 'tgnet', worse: 'dodnet', exceedsSpread: false });
    expect(organ.difference).toBeCloseTo(1, 10);
    const tumour = c.differences.find((d) => d.channel === 'liver tumour')!;
    // tgnet's 45..55 lies above dodnet's 20..40 on every seed.
    expect(tumour).toMatchObject({ better: 'tgnet', worse: 'dodnet', exceedsSpread: true });
    expect(tumour.difference).toBeCloseTo(20, 10);
    const text = formatSeedComparisonText(c);
    expect(text).toMatch(/over 3 training seeds \(0, 1, 2\)/);
    expect(text).toMatch(/liver tumour\s+30\.0 ± 10\.0\s+50\.0 ± 5\.0/);
    expect(text).toMatch(/liver tumour: tgnet over dodnet by 20\.0 points/);
    expect(text).not.toMatch(/liver: tgnet over dodnet/);
    expect(formatSeedComparisonMarkdown(c)).toMatch(/\| liver tumour \| 30\.0 ± 10\.0 \| 50\.0 ± 5\.0 \|/);
  });

  it('with overlapping ranges everywhere it says so', () => {
    const close: SeedRun[] = runs.map((r) => (r.model === 'tgnet' ? { ...r, tasks: liver(0.92, 0.3 + 0.01 * r.seed) } : r));
    expect(formatSeedComparisonText(compareOverSeeds(close))).toMatch(/no difference between the models is larger than the seed-to-seed spread/);
  });

  it('names a channel with its task where two tasks share the channel\'s name (the liver tumour of liver and hepatic vessel)', () => {
    const vessel = (tumour: number): TaskSummary => ({ task: 2, taskKey: 'hepatic_vessel', cases: 1, organ: channel(0.8), tumour: channel(tumour) });
    const c = compareOverSeeds(runs.map((r) => ({ ...r, tasks: [...r.tasks, vessel(0.1 * (r.seed + 1))] })));
    expect(c.names).toEqual(['liver', 'liver tumour (liver)', 'hepatic vessel', 'liver tumour (hepatic_vessel)']);
    expect(formatSeedComparisonText(c)).toMatch(/liver tumour \(hepatic_vessel\)\s+20\.0 ± 10\.0/);
  });

  it('refuses a model without every seed, or a seed twice', () => {
    expect(() => compareOverSeeds(runs.slice(0, 5))).toThrow(/model 'tgnet' has 0 runs with seed 2; expected exactly one per model and seed/);
    expect(() => compareOverSeeds([...runs, runs[0]])).toThrow(/model 'dodnet' has 2 runs with seed 0/);
    expect(() => compareOverSeeds([])).toThrow(/got no runs/);
  });
});
