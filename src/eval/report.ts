/**
 * Evaluation reports: one row per case with Dice and HD95 (mm and voxels) for the organ and tumour channels
 * the case's task annotates, and per task the mean ± standard deviation over cases, as text and as JSON.
 */
import { taskById, TASKS } from '../data/tasks.js';
import { EMPTY_MASK_CONVENTION, type SegmentationMetrics } from './metrics.js';

export interface CaseEvaluation {
  /** Case name (usually the file name). */
  case: string;
  task: number;
  /** Absent when the task does not annotate the channel. */
  organ?: SegmentationMetrics;
  tumour?: SegmentationMetrics;
}

/** Mean and population standard deviation (numpy's default ddof = 0) of the finite values. */
export interface MetricSummary {
  mean: number;
  std: number;
  /** Values that entered the mean. */
  count: number;
  /** NaN values left out (HD95 with exactly one empty mask). */
  undefinedCount: number;
}

export interface ChannelSummary {
  dice: MetricSummary;
  hd95Mm: MetricSummary;
  hd95Voxels: MetricSummary;
}

export interface TaskSummary {
  task: number;
  taskKey: string;
  cases: number;
  organ?: ChannelSummary;
  tumour?: ChannelSummary;
}

export function summariseMetric(values: readonly number[]): MetricSummary {
  const finite = values.filter((v) => Number.isFinite(v));
  const count = finite.length;
  const mean = count ? finite.reduce((s, v) => s + v, 0) / count : Number.NaN;
  const std = count ? Math.sqrt(finite.reduce((s, v) => s + (v - mean) ** 2, 0) / count) : Number.NaN;
  return { mean, std, count, undefinedCount: values.length - count };
}

function summariseChannel(metrics: SegmentationMetrics[]): ChannelSummary | undefined {
  if (metrics.length === 0) return undefined;
  return {
    dice: summariseMetric(metrics.map((m) => m.dice)),
    hd95Mm: summariseMetric(metrics.map((m) => m.hd95Mm)),
    hd95Voxels: summariseMetric(metrics.map((m) => m.hd95Voxels)),
  };
}

/** Per-task summaries, in task-id order, of the tasks that have cases. */
export function summariseByTask(cases: readonly CaseEvaluation[]): TaskSummary[] {
  // An unknown task id would otherwise drop its cases from every summary without a word.
  for (const c of cases) {
    if (!TASKS.some((t) => t.id === c.task)) throw new Error(`report: case '${c.case}' has task id ${c.task}; expected an integer in [0, ${TASKS.length - 1}]`);
  }
  const out: TaskSummary[] = [];
  for (const t of TASKS) {
    const mine = cases.filter((c) => c.task === t.id);
    if (mine.length === 0) continue;
    const summary: TaskSummary = { task: t.id, taskKey: t.key, cases: mine.length };
    const organ = summariseChannel(mine.flatMap((c) => (c.organ ? [c.organ] : [])));
    const tumour = summariseChannel(mine.flatMap((c) => (c.tumour ? [c.tumour] : [])));
    if (organ) summary.organ = organ;
    if (tumour) summary.tumour = tumour;
    out.push(summary);
  }
  return out;
}

const fmt = (v: number, digits: number): string => (Number.isNaN(v) ? 'n/a' : v.toFixed(digits));
const fmtStat = (s: MetricSummary, digits: number): string =>
  (s.count === 0 ? 'n/a' : `${s.mean.toFixed(digits)} ± ${s.std.toFixed(digits)}`) + (s.undefinedCount ? ` (${s.undefinedCount} n/a)` : '');

function table(rows: string[][]): string {
  const widths = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  return rows.map((r) => r.map((cell, j) => (j === 0 ? cell.padEnd(widths[j]) : cell.padStart(widths[j]))).join('  ').trimEnd()).join('\n');
}

/** The report as a text table: cases, then per-task mean ± std, then the empty-mask convention. */
export function formatReport(cases: readonly CaseEvaluation[]): string {
  const header = ['case', 'task', 'organ Dice', 'organ HD95 mm', 'organ HD95 vox', 'tumour Dice', 'tumour HD95 mm', 'tumour HD95 vox'];
  const cell = (m: SegmentationMetrics | undefined): string[] => (m ? [fmt(m.dice, 4), fmt(m.hd95Mm, 2), fmt(m.hd95Voxels, 2)] : ['-', '-', '-']);
  const caseRows = cases.map((c) => [c.case, taskById(c.task).key, ...cell(c.organ), ...cell(c.tumour)]);
  const summaries = summariseByTask(cases);
  const statCells = (s: ChannelSummary | undefined): string[] => (s ? [fmtStat(s.dice, 4), fmtStat(s.hd95Mm, 2), fmtStat(s.hd95Voxels, 2)] : ['-', '-', '-']);
  const summaryRows = summaries.map((s) => [`mean ± std (${s.cases} cases)`, s.taskKey, ...statCells(s.organ), ...statCells(s.tumour)]);
  return [
    table([header, ...caseRows]),
    '',
    table([header.map((h, j) => (j === 0 ? 'summary' : h)), ...summaryRows]),
    '',
    `empty masks: ${EMPTY_MASK_CONVENTION.description}; '-' = channel not annotated by the task`,
  ].join('\n');
}

/** JSON-safe copy: NaN (undefined HD95) becomes null. */
function jsonNumbers<T>(value: T): T {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v))) as T;
}

export interface EvaluationReportJson {
  emptyMaskConvention: string;
  cases: CaseEvaluation[];
  tasks: TaskSummary[];
}

/** The report as plain JSON data (NaN written as null). */
export function reportToJson(cases: readonly CaseEvaluation[]): EvaluationReportJson {
  return jsonNumbers({ emptyMaskConvention: EMPTY_MASK_CONVENTION.description, cases: [...cases], tasks: summariseByTask(cases) });
}
