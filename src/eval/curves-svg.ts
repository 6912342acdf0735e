/**
 * Training curves as a standalone SVG: training loss over steps (raw and EMA-smoothed) above the validation
 * Dice over steps (mean, optionally per task), sharing the step axis; ticks at 1-2-5 steps, a legend per panel.
 * No library: the drawing is a few lines and paths, and the output must embed in an offline HTML page.
 */

export interface CurvePoint {
  step: number;
  value: number;
}

export interface CurveSeries {
  name: string;
  points: readonly CurvePoint[];
  /** CSS colour; a palette colour when absent. */
  colour?: string;
  /** Stroke width in px (default 1.8). */
  width?: number;
  opacity?: number;
}

export interface CurvePanel {
  title: string;
  yLabel: string;
  series: readonly CurveSeries[];
  /** Fixed y range (e.g. [0, 1] for Dice); fitted to the data when absent. */
  yRange?: readonly [number, number];
}

export interface TrainingCurves {
  /** Training loss per step. */
  loss: readonly CurvePoint[];
  /** Mean validation Dice (fraction) per evaluation step. */
  valDice: readonly CurvePoint[];
  /** Validation Dice per task key, drawn thin. */
  valDicePerTask?: Readonly<Record<string, readonly CurvePoint[]>>;
  /** EMA weight of the newest loss value for the smoothed curve (default: chosen from the number of points). */
  smoothing?: number;
  title?: string;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];

const escapeXml = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

/** Exponential moving average, bias-corrected so the first values are not pulled towards 0. Non-finite values are carried over, not averaged in. */
export function emaSmooth(values: readonly number[], alpha: number): number[] {
  if (!(alpha > 0 && alpha <= 1)) throw new Error(`emaSmooth: alpha is ${alpha}; expected a number in (0, 1]`);
  let avg = 0;
  let weight = 0;
  return values.map((v) => {
    if (!Number.isFinite(v)) return v;
    avg = (1 - alpha) * avg + alpha * v;
    weight = (1 - alpha) * weight + alpha;
    return avg / weight;
  });
}

/**
 * Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten, about `target` of them; with
 * `integer` (training steps) never finer than 1.
 */
export function niceTicks(lo: number, hi: number, target = 5, integer = false): number[] {
  if (!(Number.isFinite(lo) && Number.isFinite(hi)) || hi < lo) throw new Error(`niceTicks: range is [${lo}, ${hi}]; expected finite lo <= hi`);
  if (hi === lo) return [lo];
  const raw = (hi - lo) / Math.max(1, target);
  const power = 10 ** Math.floor(Math.log10(raw));
  const nice = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const step = integer ? Math.max(1, nice) : nice;
  const ticks: number[] = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) ticks.push(Number((k * step).toPrecision(12)));
  return ticks;
}

function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(1);
  if (a >= 1000) return `${Number((v / 1000).toPrecision(4))}k`;
  return String(Number(v.toPrecision(4)));
}

/** Domain padded so a single value or a flat line still has height. */
function domain(values: readonly number[], fixed?: readonly [number, number]): [number, number] {
  if (fixed) return [fixed[0], fixed[1]];
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return [0, 1];
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (hi === lo) {
    const pad = Math.abs(lo) * 0.1 || 1;
    lo -= pad;
    hi += pad;
  }
  const pad = (hi - lo) * 0.05;
  return [lo - pad, hi + pad];
}

const LAYOUT = { width: 760, panelHeight: 240, left: 64, right: 190, top: 34, bottom: 44, titleHeight: 26 };

function drawPanel(panel: CurvePanel, xDomain: [number, number], top: number, paletteOffset: number): string {
  const { width, panelHeight, left, right, bottom } = LAYOUT;
  const plotW = width - left - right;
  const plotH = panelHeight - 22 - bottom;
  const plotTop = top + 22;
  const allY = panel.series.flatMap((s) => s.points.map((p) => p.value));
  const yDomain = domain(allY, panel.yRange);
  const sx = (x: number): number => left + ((x - xDomain[0]) / (xDomain[1] - xDomain[0])) * plotW;
  const sy = (y: number): number => plotTop + plotH - ((y - yDomain[0]) / (yDomain[1] - yDomain[0])) * plotH;
  const out: string[] = [];
  out.push(`<text x="${left}" y="${top + 14}" class="panel-title">${escapeXml(panel.title)}</text>`);
  out.push(`<rect x="${left}" y="${plotTop}" width="${plotW}" height="${plotH}" class="frame"/>`);
  for (const t of niceTicks(yDomain[0], yDomain[1])) {
    const y = sy(t).toFixed(1);
    out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y}" y2="${y}" class="grid"/>`);
    out.push(`<text x="${left - 6}" y="${y}" class="tick" text-anchor="end" dominant-baseline="middle">${formatTick(t)}</text>`);
  }
  for (const t of niceTicks(xDomain[0], xDomain[1], 8, true)) {
    const x = sx(t).toFixed(1);
    out.push(`<line x1="${x}" x2="${x}" y1="${plotTop}" y2="${plotTop + plotH}" class="grid"/>`);
    out.push(`<text x="${x}" y="${plotTop + plotH + 16}" class="tick" text-anchor="middle">${formatTick(t)}</text>`);
  }
  out.push(`<text x="${left + plotW / 2}" y="${plotTop + plotH + 34}" class="axis-label" text-anchor="middle">step</text>`);
  const yMid = plotTop + plotH / 2;
  out.push(`<text x="${left - 48}" y="${yMid}" class="axis-label" text-anchor="middle" transform="rotate(-90 ${left - 48} ${yMid})">${escapeXml(panel.yLabel)}</text>`);
  const clipId = `clip${top}`;
  out.push(`<clipPath id="${clipId}"><rect x="${left}" y="${plotTop}" width="${plotW}" height="${plotH}"/></clipPath>`);
  if (allY.filter((v) => Number.isFinite(v)).length === 0) {
    out.push(`<text x="${left + plotW / 2}" y="${yMid}" class="empty" text-anchor="middle" dominant-baseline="middle">no data yet</text>`);
  }
  panel.series.forEach((s, k) => {
    const colour = s.colour ?? PALETTE[(paletteOffset + k) % PALETTE.length];
    const strokeWidth = s.width ?? 1.8;
    const opacity = s.opacity ?? 1;
    // A non-finite value breaks the line rather than dropping to an axis.
    let d = '';
    let pen = false;
    for (const p of s.points) {
      if (!Number.isFinite(p.value) || !Number.isFinite(p.step)) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${sx(p.step).toFixed(1)},${sy(p.value).toFixed(1)}`;
      pen = true;
    }
    const group: string[] = [];
    if (d) group.push(`<path d="${d}" fill="none" stroke="${escapeXml(colour)}" stroke-width="${strokeWidth}" stroke-opacity="${opacity}" stroke-linejoin="round"/>`);
    // Markers make sparse series (evaluations, a single point) visible.
    if (s.points.length <= 40) {
      for (const p of s.points) {
        if (Number.isFinite(p.value) && Number.isFinite(p.step)) group.push(`<circle cx="${sx(p.step).toFixed(1)}" cy="${sy(p.value).toFixed(1)}" r="${Math.max(2, strokeWidth + 0.8)}" fill="${escapeXml(colour)}" fill-opacity="${opacity}"/>`);
      }
    }
    out.push(`<g clip-path="url(#${clipId})">${group.join('')}</g>`);
    const ly = plotTop + 8 + k * 18;
    const lx = left + plotW + 14;
    out.push(`<line x1="${lx}" x2="${lx + 22}" y1="${ly}" y2="${ly}" stroke="${escapeXml(colour)}" stroke-width="${Math.max(2, strokeWidth)}" stroke-opacity="${opacity}"/>`);
    const label = s.points.length === 0 ? `${s.name} (no data)` : s.name;
    out.push(`<text x="${lx + 28}" y="${ly}" class="legend" dominant-baseline="middle">${escapeXml(label)}</text>`);
  });
  return out.join('\n');
}

/** An SVG of panels stacked vertically, sharing one step axis. */
export function panelsSvg(panels: readonly CurvePanel[], title?: string): string {
  if (panels.length === 0) throw new Error('panelsSvg: got no panels; expected at least one');
  const steps = panels.flatMap((p) => p.series.flatMap((s) => s.points.map((q) => q.step))).filter((v) => Number.isFinite(v));
  let xDomain: [number, number] = steps.length ? [Math.min(...steps), Math.max(...steps)] : [0, 1];
  if (xDomain[1] === xDomain[0]) xDomain = [Math.max(0, xDomain[0] - 1), xDomain[0] + 1];
  const titleHeight = title ? LAYOUT.titleHeight : 0;
  const height = titleHeight + panels.length * LAYOUT.panelHeight + 8;
  let offset = 0;
  const body = panels.map((p, k) => {
    const svg = drawPanel(p, xDomain, titleHeight + k * LAYOUT.panelHeight, offset);
    offset += p.series.length;
    return svg;
  });
  // Scoped under the root's class: an SVG inlined in an HTML page shares the page's style sheet.
  const style = [
    '.tg-curves text{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;fill:#222}',
    '.tg-curves .title{font-size:16px;font-weight:600}.tg-curves .panel-title{font-size:13px;font-weight:600}',
    '.tg-curves .tick{font-size:11px;fill:#555}.tg-curves .axis-label{font-size:12px;fill:#333}.tg-curves .legend{font-size:12px}',
    '.tg-curves .empty{font-size:13px;fill:#999}.tg-curves .frame{fill:#fff;stroke:#888;stroke-width:1}.tg-curves .grid{stroke:#e6e6e6;stroke-width:1}',
  ].join('');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${LAYOUT.width}" height="${height}" viewBox="0 0 ${LAYOUT.width} ${height}" class="tg-curves" role="img">`,
    `<style>${style}</style>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    title ? `<text x="${LAYOUT.left}" y="18" class="title">${escapeXml(title)}</text>` : '',
    ...body,
    '</svg>',
  ].filter((s) => s !== '').join('\n');
}

/** Loss (raw, faint, and EMA-smoothed) above validation Dice (mean, and per task when given), in one SVG. */
export function trainingCurvesSvg(curves: TrainingCurves): string {
  const loss = curves.loss;
  const alpha = curves.smoothing ?? Math.min(1, Math.max(0.01, 10 / Math.max(1, loss.length)));
  const smoothed = emaSmooth(loss.map((p) => p.value), alpha);
  const lossSeries: CurveSeries[] = [
    { name: 'loss', points: loss, colour: '#9ecae1', width: 1, opacity: 0.9 },
    { name: `loss (EMA ${Number(alpha.toPrecision(2))})`, points: loss.map((p, i) => ({ step: p.step, value: smoothed[i] })), colour: '#08519c', width: 2 },
  ];
  const diceSeries: CurveSeries[] = [{ name: 'mean val Dice', points: curves.valDice, colour: '#d62728', width: 2.4 }];
  const perTask = Object.entries(curves.valDicePerTask ?? {});
  perTask.forEach(([key, points], k) => diceSeries.push({ name: key, points, colour: PALETTE[[0, 2, 3, 4, 5, 6, 7, 8, 9][k % 9]], width: 1.2, opacity: 0.85 }));
  return panelsSvg(
    [
      { title: 'Training loss', yLabel: 'loss', series: lossSeries },
      { title: 'Validation Dice', yLabel: 'Dice', series: diceSeries, yRange: [0, 1] },
    ],
    curves.title,
  );
}
