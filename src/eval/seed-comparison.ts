/**
 * Models compared over several training seeds: per task channel the mean Dice and its seed-to-seed spread, and,
 * for each pair of models, whether the difference between them is larger than that spread. With three seeds a
 * t-test says little, so the rule is plain: a difference counts when the models' ranges over the seeds do not
 * overlap (every seed of one model above every seed of the other); the standard deviations are shown beside.
 */
import type { TaskSummary } from './report.js';
import { buildPaperTable, type PaperTableColumn } from './paper-table.js';

/** One model trained with one seed, evaluated on the held-out cases. */
export interface SeedRun {
  model: string;
  seed: number;
  tasks: readonly TaskSummary[];
}

/** Dice (%) of one model on one task channel over the seeds. */
export interface SeedSpread {
  /** Per seed, in the order of `seeds`; NaN where the seed has no result. */
  values: number[];
  mean: number;
  /** Sample standard deviation (n - 1); NaN with one seed. */
  sd: number;
  min: number;
  max: number;
}

export interface SeedComparisonRow {
  model: string;
  /** Aligned with `columns`. */
  cells: SeedSpread[];
  /** The average Dice over the task channels, per seed, then its spread. */
  average: SeedSpread;
}

/** A difference between two models on one channel (or the average), and whether it exceeds the seeds' spread. */
export interface SeedDifference {
  /** Task channel ('liver tumour') or 'average'. */
  channel: string;
  better: string;
  worse: string;
  /** Mean Dice of `better` minus that of `worse`, percentage points. */
  difference: number;
  /** Every seed of `better` above every seed of `worse`. */
  exceedsSpread: boolean;
}

export interface SeedComparison {
  seeds: number[];
  columns: PaperTableColumn[];
  /** A name per column: its channel name, with the task where two tasks' channels share one (liver tumour). */
  names: string[];
  rows: SeedComparisonRow[];
  differences: SeedDifference[];
}

function spread(values: number[]): SeedSpread {
  const finite = values.filter((v) => Number.isFinite(v));
  const n = finite.length;
  const mean = n ? finite.reduce((s, v) => s + v, 0) / n : Number.NaN;
  const sd = n > 1 ? Math.sqrt(finite.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1)) : Number.NaN;
  return { values, mean, sd, min: n ? Math.min(...finite) : Number.NaN, max: n ? Math.max(...finite) : Number.NaN };
}

/** The comparison of every model over the seeds each was trained with (every model needs every seed). */
export function compareOverSeeds(runs: readonly SeedRun[]): SeedComparison {
  if (runs.length === 0) throw new Error('compareOverSeeds: got no runs; expected { model, seed, tasks } per model and seed');
  const models = [...new Set(runs.map((r) => r.model))];
  const seeds = [...new Set(runs.map((r) => r.seed))].sort((a, b) => a - b);
  for (const model of models) {
    for (const seed of seeds) {
      const n = runs.filter((r) => r.model === model && r.seed === seed).length;
      if (n !== 1) throw new Error(`compareOverSeeds: model '${model}' has ${n} runs with seed ${seed}; expected exactly one per model and seed`);
    }
  }
  const table = buildPaperTable(runs.map((r) => ({ model: `${r.model}@${r.seed}`, tasks: r.tasks })));
  const rowOf = (model: string, seed: number) => table.rows[runs.findIndex((r) => r.model === model && r.seed === seed)];
  const rows = models.map((model): SeedComparisonRow => ({
    model,
    cells: table.columns.map((_, j) => spread(seeds.map((seed) => rowOf(model, seed).cells[j]?.dice ?? Number.NaN))),
    average: spread(seeds.map((seed) => rowOf(model, seed).averageDice)),
  }));
  const differences: SeedDifference[] = [];
  const names = table.columns.map((c) => (table.columns.filter((o) => o.channelName === c.channelName).length > 1 ? `${c.channelName} (${c.taskKey})` : c.channelName));
  const channels = [...names, 'average'];
  for (let a = 0; a < rows.length; a++) {
    for (let b = a + 1; b < rows.length; b++) {
      channels.forEach((channel, j) => {
        const sa = j < table.columns.length ? rows[a].cells[j] : rows[a].average;
        const sb = j < table.columns.length ? rows[b].cells[j] : rows[b].average;
        if (!Number.isFinite(sa.mean) || !Number.isFinite(sb.mean)) return;
        const [hi, lo, better, worse] = sa.mean >= sb.mean ? [sa, sb, rows[a].model, rows[b].model] : [sb, sa, rows[b].model, rows[a].model];
        differences.push({ channel, better, worse, difference: hi.mean - lo.mean, exceedsSpread: hi.min > lo.max });
      });
    }
  }
  return { seeds, columns: table.columns, names, rows, differences };
}

const cell = (s: SeedSpread): string => (Number.isFinite(s.mean) ? `${s.mean.toFixed(1)} ± ${Number.isFinite(s.sd) ? s.sd.toFixed(1) : '-'}` : '-');

/** A line per task channel, a column per model (mean ± sd of Dice %), then the differences that exceed the spread. */
export function formatSeedComparisonText(c: SeedComparison): string {
  const header = ['task channel', ...c.rows.map((r) => r.model)];
  const body = [
    ...c.names.map((name, j) => [name, ...c.rows.map((r) => cell(r.cells[j]))]),
    ['average', ...c.rows.map((r) => cell(r.average))],
  ];
  const widths = header.map((h, j) => Math.max(h.length, ...body.map((r) => r[j].length)));
  const line = (cells: string[]) => cells.map((v, j) => (j === 0 ? v.padEnd(widths[j]) : v.padStart(widths[j]))).join('  ').trimEnd();
  const real = c.differences.filter((d) => d.exceedsSpread);
  return [
    `Dice % over ${c.seeds.length} training seeds (${c.seeds.join(', ')}): mean ± sample standard deviation`,
    line(header), '-'.repeat(widths.reduce((s, w) => s + w + 2, -2)), ...body.map(line), '',
    real.length
      ? `differences larger than the seed-to-seed spread (every seed of one above every seed of the other):\n${real.map((d) => `  ${d.channel}: ${d.better} over ${d.worse} by ${d.difference.toFixed(1)} points`).join('\n')}`
      : 'no difference between the models is larger than the seed-to-seed spread (their ranges over the seeds overlap on every channel)',
  ].join('\n');
}

/** The same as a Markdown table and list. */
export function formatSeedComparisonMarkdown(c: SeedComparison): string {
  const row = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const real = c.differences.filter((d) => d.exceedsSpread);
  return [
    `Dice % over ${c.seeds.length} training seeds (${c.seeds.join(', ')}), mean ± sample standard deviation:`, '',
    row(['task channel', ...c.rows.map((r) => r.model)]), row([':---', ...c.rows.map(() => '---:')]),
    ...c.names.map((name, j) => row([name, ...c.rows.map((r) => cell(r.cells[j]))])),
    row(['**average**', ...c.rows.map((r) => cell(r.average))]), '',
    real.length
      ? `Differences larger than the seed-to-seed spread (ranges over the seeds do not overlap):\n\n${real.map((d) => `- ${d.channel}: ${d.better} over ${d.worse} by ${d.difference.toFixed(1)} points`).join('\n')}`
      : 'No difference between the models is larger than the seed-to-seed spread.',
  ].join('\n');
}
