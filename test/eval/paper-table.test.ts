import { describe, expect, it } from 'vitest';
import { EMPTY_MASK_CONVENTION, type SegmentationMetrics } from '../../src/eval/metrics.js';
import { buildPaperTable, formatPaperTableMarkdown, formatPaperTableText, paperTableToJson, summaryJson } from '../../src/eval/paper-table.js';
import { summariseByTask, type CaseEvaluation } from '../../src/eval/report.js';

const m = (dice: number, hd95Voxels: number, hd95Mm = hd95Voxels * 2): SegmentationMetrics => ({ dice, hd95Voxels, hd95Mm } as SegmentationMetrics);

// liver (organ + tumour, 2 cases), colon (tumour only), spleen (organ only, one undefined HD95).
const cases: CaseEvaluation[] = [
  { case: 'liver_0', task: 0, organ: m(0.9, 2), tumour: m(0.5, 10) },
  { case: 'liver_1', task: 0, organ: m(0.8, 4), tumour: m(0.7, 6) },
  { case: 'colon_0', task: 4, tumour: m(0.4, 8) },
  { case: 'spleen_0', task: 6, organ: m(0.95, 1) },
  { case: 'spleen_1', task: 6, organ: m(0, Number.NaN, Number.NaN) },
];

describe('buildPaperTable', () => {
  const tasks = summariseByTask(cases);
  const table = buildPaperTable([{ model: 'tgnet', tasks }, { model: 'dodnet', tasks: tasks.filter((t) => t.taskKey !== 'colon') }]);

  it('has one column per annotated channel of the tasks present, in task order', () => {
    expect(table.columns.map((c) => `${c.taskKey}/${c.channel}`)).toEqual(['liver/organ', 'liver/tumour', 'colon/tumour', 'spleen/organ']);
    expect(table.columns[2].channelName).toBe('colon cancer');
  });

  it('reports mean Dice in % and mean HD95 in voxels, averages over the task channels', () => {
    const [tg] = table.rows;
    expect(tg.cells[0]?.dice).toBeCloseTo(85, 10);
    expect(tg.cells[0]?.hd95).toBeCloseTo(3, 10);
    expect(tg.cells[1]?.dice).toBeCloseTo(60, 10);
    expect(tg.cells[1]?.hd95).toBeCloseTo(8, 10);
    expect(tg.cells[3]?.dice).toBeCloseTo(47.5, 10);
    expect(tg.cells[3]?.hd95).toBeCloseTo(1, 10); // the undefined HD95 is left out
    expect(tg.averageDice).toBeCloseTo((85 + 60 + 40 + 47.5) / 4, 10);
    expect(tg.averageHd95).toBeCloseTo((3 + 8 + 8 + 1) / 4, 10);
  });

  it('leaves a missing task empty and averages what the model has', () => {
    const dod = table.rows[1];
    expect(dod.cells[2]).toBeNull();
    expect(dod.averageDice).toBeCloseTo((85 + 60 + 47.5) / 3, 10);
  });

  it('formats aligned text, Markdown and JSON', () => {
    const text = formatPaperTableText(table).split('\n');
    expect(text[0]).toMatch(/^model\s+liver\s+colon\s+spleen\s+average$/);
    expect(text[1]).toMatch(/^\s+organ\s+tumour\s+tumour\s+organ$/);
    expect(text[2]).toMatch(/^\s+(Dice\s+HD95\s*){5}$/);
    expect(text[3]).toMatch(/^-+$/);
    const bodyLines = text.slice(4, 6);
    expect(bodyLines[0]).toMatch(/^tgnet\s+85\.00\s+3\.00\s+60\.00\s+8\.00\s+40\.00\s+8\.00\s+47\.50\s+1\.00\s+58\.13\s+5\.00$/);
    expect(bodyLines[1]).toMatch(/^dodnet .* - +- +47\.50/);
    // Right-aligned columns end at the same offsets on every line; the rule spans them.
    expect(new Set([text[2].length, text[3].length, ...bodyLines.map((l) => l.length)]).size).toBe(1);
    // Each task name is centred over its columns: 'colon' sits between the ends of liver's and spleen's columns.
    const colonAt = text[0].indexOf('colon');
    expect(colonAt).toBeGreaterThan(bodyLines[0].indexOf('8.00') + 4);
    expect(colonAt + 5).toBeLessThan(bodyLines[0].indexOf('47.50'));

    const long = formatPaperTableText(table, { layout: 'long' }).split('\n');
    expect(long[0]).toMatch(/^task channel\s+tgnet\s+dodnet$/);
    expect(long[1]).toMatch(/^\s+Dice\s+HD95\s+Dice\s+HD95$/);
    expect(long[3]).toMatch(/^liver organ\s+85\.00\s+3\.00\s+85\.00\s+3\.00$/);
    expect(long[5]).toMatch(/^colon tumour\s+40\.00\s+8\.00\s+-\s+-$/);
    expect(long[7]).toMatch(/^average\s+58\.13\s+5\.00\s+64\.17\s+4\.00$/);
    expect(() => formatPaperTableText(table, { layout: 'tall' as 'long' })).toThrow(/layout is "tall"/);

    const md = formatPaperTableMarkdown(buildPaperTable([{ model: 'a|b', tasks }])).split('\n');
    expect(md[0]).toBe('| model | liver organ Dice | liver organ HD95 | liver tumour Dice | liver tumour HD95 | colon tumour Dice | colon tumour HD95 | spleen organ Dice | spleen organ HD95 | average Dice | average HD95 |');
    expect(md[1]).toBe(`| :--- |${' ---: |'.repeat(10)}`);
    expect(md[2].startsWith('| a\\|b | 85.00 | 3.00 |')).toBe(true);

    const json = paperTableToJson(buildPaperTable([{ model: 'x', tasks: summariseByTask([{ case: 's', task: 6, organ: m(0, Number.NaN) }]) }]));
    expect(json.rows[0].cells[0]).toEqual({ dice: 0, hd95: null });
    expect(json.rows[0].averageHd95).toBeNull();
    expect(JSON.parse(JSON.stringify(json))).toEqual(json);
  });

  it('rejects no models, an empty name and a task given twice', () => {
    expect(() => buildPaperTable([])).toThrow(/no models/);
    expect(() => buildPaperTable([{ model: '', tasks }])).toThrow(/model name/);
    expect(() => buildPaperTable([{ model: 'x', tasks: [tasks[0], tasks[0]] }])).toThrow(/'liver' twice/);
  });
});

describe('summaryJson', () => {
  it('has per-task means of the annotated channels, averages, units and the empty-mask convention', () => {
    const s = summaryJson(summariseByTask(cases));
    expect(Object.keys(s)).toEqual(['liver', 'colon', 'spleen', 'averages', 'diceUnit', 'hd95Unit', 'emptyMaskConvention']);
    expect(s.liver?.cases).toBe(2);
    expect(s.liver?.organ?.dice).toBeCloseTo(0.85, 12);
    expect(s.liver?.organ?.hd95).toBeCloseTo(3, 12);
    expect(s.liver?.organ?.hd95Mm).toBeCloseTo(6, 12);
    expect(s.colon?.organ).toBeUndefined();
    expect(s.colon?.tumour?.dice).toBeCloseTo(0.4, 12);
    expect(s.spleen?.tumour).toBeUndefined();
    expect(s.spleen?.organ).toEqual({ dice: 0.475, hd95: 1, hd95Mm: 2, hd95Undefined: 1 });
    expect(s.averages.channels).toBe(4);
    expect(s.averages.dice).toBeCloseTo((0.85 + 0.6 + 0.4 + 0.475) / 4, 12);
    expect(s.averages.hd95).toBeCloseTo(5, 12);
    expect(s.hd95Unit).toBe('voxels');
    expect(s.emptyMaskConvention).toBe(EMPTY_MASK_CONVENTION.description);
  });

  it('writes null, not NaN, when no case has a defined HD95', () => {
    const s = summaryJson(summariseByTask([{ case: 's', task: 6, organ: m(0, Number.NaN) }]));
    expect(s.spleen?.organ?.hd95).toBeNull();
    expect(s.averages.hd95).toBeNull();
    expect(JSON.stringify(s)).not.toMatch(/:NaN/);
  });
});
