import { describe, expect, it } from 'vitest';
import { polyLr, scheduledLr } from '../../src/nn/lr-schedule.js';

describe('scheduledLr', () => {
  it('without warm-up is polyLr exactly, at every step', () => {
    for (const power of [0.9, 2]) {
      for (let s = 0; s <= 12; s++) expect(scheduledLr(0.01, s, 10, { power })).toBe(polyLr(0.01, s, 10, power));
    }
    expect(scheduledLr(0.01, 3, 10)).toBe(polyLr(0.01, 3, 10));
  });

  it('warms up linearly to lr0 at step W, then decays by poly over the remaining steps to 0', () => {
    const lrs = Array.from({ length: 12 }, (_, s) => scheduledLr(1, s, 10, { warmupSteps: 4 }));
    expect(lrs.slice(0, 4)).toEqual([0.2, 0.4, 0.6, 0.8].map((x) => expect.closeTo(x, 15)));
    expect(lrs[4]).toBe(1);
    for (let s = 4; s < 12; s++) expect(lrs[s]).toBe(polyLr(1, s - 4, 6));
    expect(lrs[10]).toBe(0);
    for (let s = 1; s <= 4; s++) expect(lrs[s]).toBeGreaterThan(lrs[s - 1]);
    for (let s = 5; s <= 10; s++) expect(lrs[s]).toBeLessThan(lrs[s - 1]);
  });

  it('cosine decay: lr0 after warm-up, half way at the middle, 0 at the end', () => {
    expect(scheduledLr(2, 0, 10, { decay: 'cosine' })).toBe(2);
    expect(scheduledLr(2, 5, 10, { decay: 'cosine' })).toBeCloseTo(1, 12);
    expect(scheduledLr(2, 10, 10, { decay: 'cosine' })).toBeCloseTo(0, 12);
    expect(scheduledLr(2, 15, 10, { decay: 'cosine' })).toBeCloseTo(0, 12);
    expect(scheduledLr(2, 1, 10, { decay: 'cosine', warmupSteps: 2 })).toBeCloseTo(4 / 3, 12);
    expect(scheduledLr(2, 6, 10, { decay: 'cosine', warmupSteps: 2 })).toBeCloseTo(1, 12);
  });

  it('rejects bad settings naming the value', () => {
    expect(() => scheduledLr(0.01, 0, 10, { warmupSteps: 10 })).toThrow(/warmupSteps must be an integer in \[0, totalSteps\) = \[0, 10\), got 10/);
    expect(() => scheduledLr(0.01, 0, 10, { warmupSteps: 1.5 })).toThrow(/got 1.5/);
    expect(() => scheduledLr(0.01, -1, 10)).toThrow(/step must be a non-negative number, got -1/);
    expect(() => scheduledLr(-1, 0, 10, { warmupSteps: 2 })).toThrow(/lr0 must be a finite non-negative number, got -1/);
    expect(() => scheduledLr(0.01, 0, 0)).toThrow(/totalSteps must be a positive integer, got 0/);
    expect(() => scheduledLr(0.01, 0, 10, { decay: 'step' as 'poly' })).toThrow(/decay must be 'poly' or 'cosine', got "step"/);
  });
});
