/**
 * Results in the layout of Table 1 of TGNet (Wu et al., ISBI 2022): one row per model, per task the Dice (%)
 * and HD95 (voxels) of each channel the task annotates (organ, tumour), then the average Dice and average HD95
 * over all those task channels. As plain text for a terminal, Markdown, JSON, and the demo's summary.json.
 */
import { taskById, TASKS, type TaskKey } from '../data/tasks.js';
import { EMPTY_MASK_CONVENTION } from './metrics.js';
import type { ChannelSummary, TaskSummary } from './report.js';

export type PaperTableChannel = 'organ' | 'tumour';

/** One model's per-task summaries (summariseByTask over its validation cases). */
export interface ModelResults {
  model: string;
  tasks: readonly TaskSummary[];
}

export interface PaperTableColumn {
  task: number;
  taskKey: TaskKey;
  channel: PaperTableChannel;
  /** What the channel is for this task, e.g. 'hepatic vessel' or 'liver tumour'. */
  channelName: string;
}

export interface PaperTableCell {
  /** Mean Dice over the cases, in %. */
  dice: number;
  /** Mean HD95 over the cases with a defined HD95, in voxels (NaN when none). */
  hd95: number;
}

export interface PaperTableRow {
  model: string;
  /** Aligned with PaperTable.columns; null where the model has no result for that task channel. */
  cells: (PaperTableCell | null)[];
  /** Means over the row's cells with a finite value (Dice %, HD95 voxels); NaN when none. */
  averageDice: number;
  averageHd95: number;
}

export interface PaperTable {
  /** Task channels in task-id order, organ before tumour: the tasks any model has, the channels each annotates. */
  columns: PaperTableColumn[];
  rows: PaperTableRow[];
  diceUnit: '%';
  hd95Unit: 'voxels';
}

const mean = (values: readonly number[]): number => {
  const finite = values.filter((v) => Number.isFinite(v));
  return finite.length ? finite.reduce((s, v) => s + v, 0) / finite.length : Number.NaN;
};

function channelOf(summary: TaskSummary, channel: PaperTableChannel): ChannelSummary | undefined {
  return channel === 'organ' ? summary.organ : summary.tumour;
}

/** Table 1 layout from each model's per-task summaries. */
export function buildPaperTable(models: readonly ModelResults[]): PaperTable {
  if (!models || models.length === 0) throw new Error('buildPaperTable: got no models; expected at least one { model, tasks }');
  const present = new Set<number>();
  for (const m of models) {
    if (typeof m.model !== 'string' || m.model === '') throw new Error(`buildPaperTable: model name is ${JSON.stringify(m.model)}; expected a non-empty string`);
    const seen = new Set<number>();
    for (const t of m.tasks) {
      const info = taskById(t.task);
      if (seen.has(info.id)) throw new Error(`buildPaperTable: model '${m.model}' has task '${info.key}' twice; expected one summary per task`);
      seen.add(info.id);
      present.add(info.id);
    }
  }
  const columns: PaperTableColumn[] = [];
  for (const t of TASKS) {
    if (!present.has(t.id)) continue;
    if (t.organLabelled) columns.push({ task: t.id, taskKey: t.key, channel: 'organ', channelName: t.organName });
    if (t.tumourLabelled) columns.push({ task: t.id, taskKey: t.key, channel: 'tumour', channelName: t.tumourName });
  }
  const rows = models.map((m): PaperTableRow => {
    const cells = columns.map((col): PaperTableCell | null => {
      const summary = m.tasks.find((t) => t.task === col.task);
      const channel = summary && channelOf(summary, col.channel);
      if (!channel) return null;
      return { dice: channel.dice.mean * 100, hd95: channel.hd95Voxels.mean };
    });
    const filled = cells.filter((c): c is PaperTableCell => c !== null);
    return { model: m.model, cells, averageDice: mean(filled.map((c) => c.dice)), averageHd95: mean(filled.map((c) => c.hd95)) };
  });
  return { columns, rows, diceUnit: '%', hd95Unit: 'voxels' };
}

const fmt = (v: number | undefined): string => (v === undefined ? '-' : Number.isFinite(v) ? v.toFixed(2) : 'n/a');

/** Header cells: task over its channels, then metric per column; and the body, as strings. */
function tableCells(table: PaperTable): { taskHeader: string[]; metricHeader: string[]; body: string[][] } {
  const taskHeader = ['model'];
  const metricHeader = [''];
  for (const col of table.columns) {
    const ch = col.channel === 'organ' ? 'organ' : 'tumour';
    taskHeader.push(col.taskKey, col.taskKey);
    metricHeader.push(`${ch} Dice`, `${ch} HD95`);
  }
  taskHeader.push('average', 'average');
  metricHeader.push('Dice', 'HD95');
  const body = table.rows.map((r) => [r.model, ...r.cells.flatMap((c) => [fmt(c?.dice), fmt(c?.hd95)]), fmt(r.averageDice), fmt(r.averageHd95)]);
  return { taskHeader, metricHeader, body };
}

interface HeaderCell {
  label: string;
  span: number;
}

/**
 * Text grid with spanning header cells (centred over their columns, which widen to fit them); the first column
 * left-aligned, the others right-aligned, two spaces apart.
 */
function textGrid(headers: HeaderCell[][], body: string[][]): string[] {
  const columns = body[0]?.length ?? headers[headers.length - 1].reduce((s, h) => s + h.span, 0);
  const widths = Array.from({ length: columns }, (_, j) => Math.max(0, ...body.map((r) => r[j].length)));
  for (const row of headers) {
    let j = 0;
    for (const h of row) {
      const have = widths.slice(j, j + h.span).reduce((s, w) => s + w, 0) + 2 * (h.span - 1);
      if (h.label.length > have) widths[j + h.span - 1] += h.label.length - have;
      j += h.span;
    }
  }
  const headerLine = (row: HeaderCell[]): string => {
    let j = 0;
    const cells = row.map((h) => {
      const w = widths.slice(j, j + h.span).reduce((s, x) => s + x, 0) + 2 * (h.span - 1);
      const first = j === 0;
      j += h.span;
      if (first) return h.label.padEnd(w);
      const left = Math.floor((w - h.label.length) / 2);
      return (' '.repeat(left) + h.label).padEnd(w);
    });
    return cells.join('  ').trimEnd();
  };
  const bodyLine = (cells: string[]): string => cells.map((c, j) => (j === 0 ? c.padEnd(widths[j]) : c.padStart(widths[j]))).join('  ').trimEnd();
  const lines = headers.map(headerLine);
  const rule = '-'.repeat(widths.reduce((s, w) => s + w, 0) + 2 * (columns - 1));
  return [...lines, rule, ...body.map(bodyLine)];
}

export interface PaperTableTextOptions {
  /**
   * 'wide' (default): Table 1's layout, a line per model, a column per task channel and metric.
   * 'long': transposed for a narrow terminal, a line per task channel, a Dice and an HD95 column per model.
   */
  layout?: 'wide' | 'long';
}

/** Aligned plain text for a terminal, the units on the last line. */
export function formatPaperTableText(table: PaperTable, options: PaperTableTextOptions = {}): string {
  const layout = options.layout ?? 'wide';
  if (layout !== 'wide' && layout !== 'long') throw new Error(`formatPaperTableText: layout is ${JSON.stringify(layout)}; expected 'wide' or 'long'`);
  const units = `Dice in ${table.diceUnit}, HD95 in ${table.hd95Unit}; n/a = undefined HD95, - = no result`;
  if (layout === 'long') {
    const headers: HeaderCell[][] = [
      [{ label: 'task channel', span: 1 }, ...table.rows.map((r) => ({ label: r.model, span: 2 }))],
      [{ label: '', span: 1 }, ...table.rows.flatMap(() => [{ label: 'Dice', span: 1 }, { label: 'HD95', span: 1 }])],
    ];
    const body = table.columns.map((col, j) => [`${col.taskKey} ${col.channel}`, ...table.rows.flatMap((r) => [fmt(r.cells[j]?.dice), fmt(r.cells[j]?.hd95)])]);
    body.push(['average', ...table.rows.flatMap((r) => [fmt(r.averageDice), fmt(r.averageHd95)])]);
    return [...textGrid(headers, body), '', units].join('\n');
  }
  const taskRow: HeaderCell[] = [{ label: 'model', span: 1 }];
  const channelRow: HeaderCell[] = [{ label: '', span: 1 }];
  for (let j = 0; j < table.columns.length; ) {
    let k = j;
    while (k < table.columns.length && table.columns[k].task === table.columns[j].task) k++;
    taskRow.push({ label: table.columns[j].taskKey, span: 2 * (k - j) });
    for (let c = j; c < k; c++) channelRow.push({ label: table.columns[c].channel, span: 2 });
    j = k;
  }
  taskRow.push({ label: 'average', span: 2 });
  channelRow.push({ label: '', span: 2 });
  const metricRow: HeaderCell[] = [{ label: '', span: 1 }, ...Array.from({ length: table.columns.length + 1 }, () => [{ label: 'Dice', span: 1 }, { label: 'HD95', span: 1 }]).flat()];
  const { body } = tableCells(table);
  return [...textGrid([taskRow, channelRow, metricRow], body), '', units].join('\n');
}

const escapeMarkdown = (s: string): string => s.replace(/[\\|*_`<>[\]]/g, (c) => `\\${c}`);

/** GitHub-flavoured Markdown table, one header row naming task and metric, numbers right-aligned. */
export function formatPaperTableMarkdown(table: PaperTable): string {
  const { taskHeader, metricHeader, body } = tableCells(table);
  const header = taskHeader.map((t, j) => (j === 0 ? 'model' : `${t} ${metricHeader[j]}`));
  const row = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [
    row(header.map(escapeMarkdown)),
    row(header.map((_, j) => (j === 0 ? ':---' : '---:'))),
    ...body.map((r) => row(r.map(escapeMarkdown))),
    '',
    `Dice in ${table.diceUnit}, HD95 in ${table.hd95Unit}; n/a = undefined HD95, - = no result.`,
  ].join('\n');
}

/** JSON-safe copy: NaN written as null. */
export function jsonNumbers<T>(value: T): T {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v))) as T;
}

/** The table as plain JSON data (NaN as null). */
export function paperTableToJson(table: PaperTable): PaperTable {
  return jsonNumbers(table);
}

export interface SummaryChannel {
  /** Mean Dice over the validation cases, as a fraction in [0, 1]. */
  dice: number | null;
  /** Mean HD95 in voxels over the cases where it is defined; null when none is. */
  hd95: number | null;
  hd95Mm: number | null;
  /** Cases whose HD95 is undefined (exactly one empty mask), left out of the HD95 means. */
  hd95Undefined: number;
}

export interface SummaryTask {
  cases: number;
  organ?: SummaryChannel;
  tumour?: SummaryChannel;
}

export interface SummaryAverages {
  /** Means over all task channels of the channel means (as Table 1's average columns). */
  dice: number | null;
  hd95: number | null;
  hd95Mm: number | null;
  /** Task channels averaged. */
  channels: number;
}

/** The demo's summary.json: task keys (liver, kidney, ...) at the top level next to these fields. */
export type RunSummaryJson = Partial<Record<TaskKey, SummaryTask>> & {
  averages: SummaryAverages;
  diceUnit: 'fraction';
  hd95Unit: 'voxels';
  emptyMaskConvention: string;
};

const orNull = (v: number): number | null => (Number.isFinite(v) ? v : null);

/** summary.json from the per-task summaries of the validation cases. */
export function summaryJson(tasks: readonly TaskSummary[]): RunSummaryJson {
  const summary: Partial<Record<TaskKey, SummaryTask>> = {};
  const dices: number[] = [];
  const hd95s: number[] = [];
  const hd95Mms: number[] = [];
  for (const t of tasks) {
    const info = taskById(t.task);
    if (summary[info.key]) throw new Error(`summaryJson: task '${info.key}' appears twice; expected one summary per task`);
    const entry: SummaryTask = { cases: t.cases };
    for (const channel of ['organ', 'tumour'] as const) {
      const c = channelOf(t, channel);
      if (!c) continue;
      entry[channel] = { dice: orNull(c.dice.mean), hd95: orNull(c.hd95Voxels.mean), hd95Mm: orNull(c.hd95Mm.mean), hd95Undefined: c.hd95Voxels.undefinedCount };
      dices.push(c.dice.mean);
      hd95s.push(c.hd95Voxels.mean);
      hd95Mms.push(c.hd95Mm.mean);
    }
    summary[info.key] = entry;
  }
  return {
    ...summary,
    averages: { dice: orNull(mean(dices)), hd95: orNull(mean(hd95s)), hd95Mm: orNull(mean(hd95Mms)), channels: dices.length },
    diceUnit: 'fraction',
    hd95Unit: 'voxels',
    emptyMaskConvention: EMPTY_MASK_CONVENTION.description,
  };
}
