/**
 * The run's report.html: one self-contained page (inline CSS, images as data: URIs, the curves SVG inline, no
 * external requests) with the configuration, the Table-1-style results, the training curves and, per validation
 * case, its metrics and three slice images with truth and prediction outlined.
 */
import { taskById } from '../data/tasks.js';
import { EMPTY_MASK_CONVENTION, type SegmentationMetrics } from './metrics.js';
import { buildPaperTable, type ModelResults, type PaperTable } from './paper-table.js';
import { pngDataUri } from './png.js';
import type { CaseEvaluation } from './report.js';
import { DEFAULT_HU_WINDOW, OVERLAY_COLOURS, SLICE_PLANES, type HuWindow, type SlicePlane } from './slices.js';

export interface ReportCase {
  name: string;
  evaluation: CaseEvaluation;
  /** PNG bytes per plane (renderCaseSlices); planes left out are not shown. */
  images: Partial<Record<SlicePlane, Uint8Array>>;
  /** Voxel [x, y, z] the planes pass through (CaseSlices.centre), named in the captions. */
  centre?: readonly [number, number, number];
}

export interface ReportHtmlInput {
  title: string;
  /** Run configuration shown as a key/value table (variant, width, crop, steps, optimizer, seed, wall time...). */
  config: Readonly<Record<string, string | number | boolean>>;
  /** The results table: a built PaperTable, or the models' per-task summaries to build it from. */
  table: PaperTable | readonly ModelResults[];
  /** trainingCurvesSvg output, embedded as is (it must be trusted SVG markup). */
  curvesSvg?: string;
  cases: readonly ReportCase[];
  notes?: readonly string[];
  /** The CT window the slices were rendered with, named in the legend (default DEFAULT_HU_WINDOW). */
  huWindow?: HuWindow;
  /** ISO time stamp shown under the title. */
  generatedAt?: string;
}

/** Text made safe for HTML element content and quoted attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

const fmt = (v: number | undefined, digits = 2): string => (v === undefined ? '-' : Number.isFinite(v) ? v.toFixed(digits) : 'n/a');
const rgb = (c: readonly number[]): string => `rgb(${c.join(',')})`;

const CSS = `
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px auto;max-width:1320px;padding:0 16px;color:#1d1d1f;background:#fafafa}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;font-size:13px;margin-bottom:16px}
table{border-collapse:collapse;font-size:13px;background:#fff}
th,td{border:1px solid #d8d8d8;padding:4px 8px}th{background:#f0f0f2;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
table.results{font-size:12px}table.results th,table.results td{padding:3px 5px}table.results tbody th{text-align:left}
table.config td:first-child{font-weight:600;color:#444}
.scroll{overflow-x:auto}
.legend{display:flex;flex-wrap:wrap;gap:18px;font-size:13px;margin:6px 0 12px}
.swatch{display:inline-block;width:22px;height:4px;vertical-align:middle;margin-right:6px;border-radius:1px}
.case{display:flex;gap:16px;align-items:flex-start;background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 12px;margin-bottom:12px}
.case .meta{flex:0 0 360px;font-size:13px}.case .meta th,.case .meta td{white-space:nowrap}.case .meta .name{font-weight:600;font-size:14px;word-break:break-all}
.case .meta table{margin-top:6px}
.case figure{margin:0;text-align:center;font-size:12px;color:#555}
.case img{display:block;image-rendering:pixelated;background:#000;border:1px solid #ccc}
.images{display:flex;gap:10px;flex-wrap:wrap;align-items:flex-end}
.notes li{font-size:13px;margin:2px 0}
.curves svg{max-width:100%;height:auto;border:1px solid #ddd;background:#fff}
`;

function configTable(config: ReportHtmlInput['config']): string {
  const rows = Object.entries(config).map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(String(v))}</td></tr>`);
  return `<table class="config">${rows.join('')}</table>`;
}

/** The Table-1-style results as an HTML table: task, then channel, then metric header rows, a row per model. */
export function paperTableHtml(table: PaperTable): string {
  const taskCells: string[] = ['<th rowspan="3">model</th>'];
  for (let j = 0; j < table.columns.length; ) {
    let k = j;
    while (k < table.columns.length && table.columns[k].task === table.columns[j].task) k++;
    taskCells.push(`<th colspan="${2 * (k - j)}">${escapeHtml(table.columns[j].taskKey)}</th>`);
    j = k;
  }
  taskCells.push('<th colspan="2" rowspan="2">average</th>');
  const channelCells = table.columns.map((c) => `<th colspan="2" title="${escapeHtml(c.channelName)}">${c.channel}</th>`);
  const metricCells = [...table.columns, null].map(() => '<th>Dice</th><th>HD95</th>');
  const body = table.rows.map((r) => {
    const cells = r.cells.map((c) => `<td class="num">${fmt(c?.dice)}</td><td class="num">${fmt(c?.hd95)}</td>`).join('');
    return `<tr><th>${escapeHtml(r.model)}</th>${cells}<td class="num">${fmt(r.averageDice)}</td><td class="num">${fmt(r.averageHd95)}</td></tr>`;
  });
  return [
    '<div class="scroll"><table class="results">',
    `<thead><tr>${taskCells.join('')}</tr><tr>${channelCells.join('')}</tr><tr>${metricCells.join('')}</tr></thead>`,
    `<tbody>${body.join('')}</tbody></table></div>`,
    `<p class="sub">Dice in ${table.diceUnit} (mean over cases), HD95 in ${table.hd95Unit}; n/a = HD95 undefined for every case; - = no result. Empty masks: ${escapeHtml(EMPTY_MASK_CONVENTION.description)}.</p>`,
  ].join('\n');
}

function legend(window: HuWindow): string {
  const items: [string, readonly number[]][] = [
    ['truth organ', OVERLAY_COLOURS.truthOrgan],
    ['truth tumour', OVERLAY_COLOURS.truthTumour],
    ['predicted organ', OVERLAY_COLOURS.predictionOrgan],
    ['predicted tumour', OVERLAY_COLOURS.predictionTumour],
  ];
  return `<div class="legend">${items.map(([label, c]) => `<span><span class="swatch" style="background:${rgb(c)}"></span>${label}</span>`).join('')}<span style="color:#666">truth 2 px, prediction 1 px on top; radiological view (patient's right on the image's left), CT window [${window.low}, ${window.high}] HU</span></div>`;
}

function metricRows(e: CaseEvaluation): string {
  const info = taskById(e.task);
  const row = (label: string, m: SegmentationMetrics | undefined): string =>
    m ? `<tr><td>${escapeHtml(label)}</td><td class="num">${fmt(m.dice * 100)}</td><td class="num">${fmt(m.hd95Voxels)}</td><td class="num">${fmt(m.hd95Mm)}</td></tr>` : '';
  return `<table><tr><th></th><th>Dice %</th><th>HD95 vox</th><th>HD95 mm</th></tr>${row(info.organName || 'organ', e.organ)}${row(info.tumourName || 'tumour', e.tumour)}</table>`;
}

/** The voxel axis each plane holds fixed. */
const PLANE_AXIS: Record<SlicePlane, string> = { axial: 'z', coronal: 'y', sagittal: 'x' };
const PLANE_AXIS_INDEX: Record<SlicePlane, number> = { axial: 2, coronal: 1, sagittal: 0 };

function caseBlock(c: ReportCase): string {
  const info = taskById(c.evaluation.task);
  const figures = SLICE_PLANES.filter((p) => c.images[p]).map((p) => {
    const png = c.images[p] as Uint8Array;
    const at = c.centre ? ` (${PLANE_AXIS[p]} ${c.centre[PLANE_AXIS_INDEX[p]]})` : '';
    return `<figure><img src="${pngDataUri(png)}" alt="${escapeHtml(`${c.name} ${p}`)}"><figcaption>${p}${at}</figcaption></figure>`;
  });
  return [
    '<div class="case">',
    `<div class="meta"><div class="name">${escapeHtml(c.name)}</div><div>task: ${escapeHtml(info.key)}</div>${metricRows(c.evaluation)}</div>`,
    `<div class="images">${figures.join('')}</div>`,
    '</div>',
  ].join('');
}

/** The whole report page. */
export function reportHtml(input: ReportHtmlInput): string {
  const table = Array.isArray(input.table) ? buildPaperTable(input.table as readonly ModelResults[]) : (input.table as PaperTable);
  const parts = [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(input.title)}</title>`,
    `<style>${CSS}</style></head><body>`,
    `<h1>${escapeHtml(input.title)}</h1>`,
    input.generatedAt ? `<div class="sub">generated ${escapeHtml(input.generatedAt)}</div>` : '',
    '<h2>Configuration</h2>',
    configTable(input.config),
    '<h2>Results</h2>',
    paperTableHtml(table),
    input.curvesSvg ? `<h2>Training curves</h2><div class="curves">${input.curvesSvg}</div>` : '',
    input.notes?.length ? `<h2>Notes</h2><ul class="notes">${input.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>` : '',
    `<h2>Validation cases (${input.cases.length})</h2>`,
    legend(input.huWindow ?? DEFAULT_HU_WINDOW),
    ...input.cases.map(caseBlock),
    '</body></html>',
  ];
  return parts.filter((p) => p !== '').join('\n');
}
