import { describe, expect, it } from 'vitest';
import { emaSmooth, niceTicks, panelsSvg, trainingCurvesSvg } from '../../src/eval/curves-svg.js';

/** The `d` attribute of every path, as lists of [x, y] vertices. */
function paths(svg: string): number[][][] {
  return [...svg.matchAll(/<path d="([^"]*)"/g)].map((m) => [...m[1].matchAll(/[ML](-?[\d.]+),(-?[\d.]+)/g)].map((v) => [Number(v[1]), Number(v[2])]));
}

/** Every opened element is closed, in order (the SVG is well-formed enough for a browser's XML parser). */
function balanced(svg: string): boolean {
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
    if (m[3]) continue;
    if (m[1]) {
      if (stack.pop() !== m[2]) return false;
    } else stack.push(m[2]);
  }
  return stack.length === 0;
}

describe('emaSmooth and niceTicks', () => {
  it('bias-corrects the EMA so the first value is kept', () => {
    const s = emaSmooth([2, 4, Number.NaN, 4], 0.5);
    expect(s[0]).toBe(2);
    expect(s[1]).toBeCloseTo((0.25 * 2 + 0.5 * 4) / 0.75, 12);
    expect(s[2]).toBeNaN();
    expect(s[3]).toBeCloseTo((0.125 * 2 + 0.25 * 4 + 0.5 * 4) / 0.875, 12);
    expect(() => emaSmooth([1], 0)).toThrow(/alpha is 0/);
  });

  it('picks 1-2-5 steps inside the range', () => {
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(1, 300, 8)).toEqual([50, 100, 150, 200, 250, 300]);
    expect(niceTicks(0.93, 1.27)).toEqual([1, 1.1, 1.2]);
    expect(niceTicks(3, 3)).toEqual([3]);
    expect(niceTicks(0, 2, 8, true)).toEqual([0, 1, 2]);
    expect(niceTicks(0.5, 3.5, 8, true)).toEqual([1, 2, 3]);
  });
});

describe('trainingCurvesSvg', () => {
  const loss = Array.from({ length: 50 }, (_, i) => ({ step: i + 1, value: 2 / (i + 1) }));
  const valDice = [10, 20, 30, 40, 50].map((step, i) => ({ step, value: 0.1 * (i + 1) }));

  it('draws loss raw + smoothed and the Dice series as lines in their panels, with a legend and axes', () => {
    const svg = trainingCurvesSvg({ loss, valDice, valDicePerTask: { 'liver & co': valDice }, title: 'run <1>' });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(balanced(svg)).toBe(true);
    const lines = paths(svg);
    expect(lines.map((l) => l.length)).toEqual([50, 50, 5, 5]);
    // Loss falls: y (downwards) grows along the raw line; Dice rises: y shrinks.
    expect(lines[0][49][1]).toBeGreaterThan(lines[0][0][1]);
    expect(lines[2][4][1]).toBeLessThan(lines[2][0][1]);
    // Both panels share the step axis: step 50 sits at the same x.
    expect(lines[0][49][0]).toBeCloseTo(lines[2][4][0], 5);
    // Dice panel is fixed to [0, 1]: 0.5 sits at the top of the frame.
    const frames = [...svg.matchAll(/<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)" class="frame"/g)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(frames).toHaveLength(2);
    expect(lines[2][4][1]).toBeCloseTo(frames[1][0] + frames[1][1] / 2, 0);
    for (const label of ['Training loss', 'Validation Dice', '>loss<', 'mean val Dice', 'liver &amp; co', 'run &lt;1&gt;', '>step<', '>Dice<']) expect(svg).toContain(label);
    expect(svg).toMatch(/loss \(EMA 0\.2\)/);
    expect(svg).not.toMatch(/NaN|undefined|Infinity/);
    // Every style rule is scoped to the SVG, so inlining it in a page restyles nothing else.
    const rules = /<style>(.*)<\/style>/s.exec(svg)?.[1].split('}').filter(Boolean) ?? [];
    expect(rules.length).toBeGreaterThan(5);
    for (const r of rules) expect(r.startsWith('.tg-curves ')).toBe(true);
    expect(svg).toContain('class="tg-curves"');
  });

  it('handles a single point and empty series', () => {
    const svg = trainingCurvesSvg({ loss: [{ step: 7, value: 0.5 }], valDice: [] });
    expect(balanced(svg)).toBe(true);
    expect(svg).not.toMatch(/NaN|undefined|Infinity/);
    expect(svg).toContain('mean val Dice (no data)');
    expect(svg).toContain('no data yet');
    expect((svg.match(/<circle /g) ?? []).length).toBe(2); // the raw and the smoothed loss point
    // Step ticks are whole steps.
    const stepTicks = [...svg.matchAll(/class="tick" text-anchor="middle">([^<]*)</g)].map((m) => m[1]);
    expect(stepTicks).toEqual(['6', '7', '8', '6', '7', '8']);
    const empty = trainingCurvesSvg({ loss: [], valDice: [] });
    expect(empty).not.toMatch(/NaN|undefined|Infinity/);
    expect(paths(empty)).toHaveLength(0);
  });

  it('breaks a line at a non-finite value', () => {
    const svg = panelsSvg([{ title: 't', yLabel: 'y', series: [{ name: 's', points: [{ step: 1, value: 1 }, { step: 2, value: Number.NaN }, { step: 3, value: 2 }, { step: 4, value: 3 }] }] }]);
    const d = /<path d="([^"]*)"/.exec(svg)?.[1] ?? '';
    expect(d.match(/M/g)).toHaveLength(2);
    expect(svg).not.toContain('NaN');
  });
});
