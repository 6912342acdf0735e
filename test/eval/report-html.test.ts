import { describe, expect, it } from 'vitest';
import type { SegmentationMetrics } from '../../src/eval/metrics.js';
import { buildPaperTable } from '../../src/eval/paper-table.js';
import { encodePng } from '../../src/eval/png.js';
import { summariseByTask, type CaseEvaluation } from '../../src/eval/report.js';
import { escapeHtml, paperTableHtml, reportHtml } from '../../src/eval/report-html.js';
import { OVERLAY_COLOURS } from '../../src/eval/slices.js';

const m = (dice: number, hd95Voxels: number, hd95Mm: number): SegmentationMetrics => ({ dice, hd95Voxels, hd95Mm } as SegmentationMetrics);
const png = encodePng({ width: 2, height: 2, data: new Uint8Array(12).fill(200), channels: 3 });
const evaluations: CaseEvaluation[] = [
  { case: 'liver_<0>.nii.gz', task: 0, organ: m(0.9123, 2.5, 4), tumour: m(0.5, Number.NaN, Number.NaN) },
  { case: 'spleen_3.nii.gz', task: 6, organ: m(0.8, 1, 1.5) },
];

describe('reportHtml', () => {
  const tasks = summariseByTask(evaluations);
  const html = reportHtml({
    title: 'Run <A> & "B"',
    config: { variant: 'tgnet', steps: 300, '<key>': '<script>x</script>' },
    table: [{ model: 'tgnet', tasks }, { model: 'dodnet', tasks }],
    curvesSvg: '<svg xmlns="http://www.w3.org/2000/svg" id="curves"></svg>',
    cases: [
      { name: evaluations[0].case, evaluation: evaluations[0], images: { axial: png, coronal: png, sagittal: png }, centre: [3, 4, 5] },
      { name: evaluations[1].case, evaluation: evaluations[1], images: { axial: png } },
    ],
    notes: ['note <b>1</b>'],
    huWindow: { low: -160, high: 240 },
  });

  it('escapes every piece of text it is given', () => {
    expect(html).toContain('<title>Run &lt;A&gt; &amp; &quot;B&quot;</title>');
    expect(html).toContain('<td>&lt;key&gt;</td><td>&lt;script&gt;x&lt;/script&gt;</td>');
    expect(html).toContain('liver_&lt;0&gt;.nii.gz');
    expect(html).toContain('note &lt;b&gt;1&lt;/b&gt;');
    expect(html).not.toMatch(/<script|<b>/);
    expect(escapeHtml(`a'b`)).toBe('a&#39;b');
  });

  it('is self-contained: images as data URIs, the SVG inline, nothing fetched', () => {
    const srcs = [...html.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((x) => x[1]);
    expect(srcs).toHaveLength(4);
    for (const s of srcs) expect(s).toBe(`data:image/png;base64,${Buffer.from(png).toString('base64')}`);
    expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    expect(html).not.toMatch(/<link|@import|url\(http/);
    expect(html).toContain('<svg xmlns="http://www.w3.org/2000/svg" id="curves"></svg>');
  });

  it('shows the results table, per-case metrics, the legend colours and the CT window', () => {
    expect(html).toContain('<th colspan="4">liver</th><th colspan="2">spleen</th><th colspan="2" rowspan="2">average</th></tr><tr><th colspan="2" title="liver">organ</th><th colspan="2" title="liver tumour">tumour</th><th colspan="2" title="spleen">organ</th></tr><tr>' + '<th>Dice</th><th>HD95</th>'.repeat(4) + '</tr>');
    expect(html).toMatch(/<tr><th>dodnet<\/th><td class="num">91\.23<\/td><td class="num">2\.50<\/td><td class="num">50\.00<\/td><td class="num">n\/a<\/td>/);
    expect(html).toContain('<tr><td>liver</td><td class="num">91.23</td><td class="num">2.50</td><td class="num">4.00</td></tr>');
    expect(html).toContain('<tr><td>liver tumour</td><td class="num">50.00</td><td class="num">n/a</td><td class="num">n/a</td></tr>');
    // Spleen has no tumour row.
    const spleenBlock = html.slice(html.indexOf('spleen_3.nii.gz'));
    expect(spleenBlock).not.toContain('tumour</td>');
    expect((spleenBlock.match(/<img /g) ?? []).length).toBe(1);
    for (const c of Object.values(OVERLAY_COLOURS)) expect(html).toContain(`background:rgb(${c.join(',')})`);
    expect(html).toContain('CT window [-160, 240] HU');
    expect(html).toContain('Validation cases (2)');
    expect(html).toContain('<figcaption>axial (z 5)</figcaption>');
    expect(html).toContain('<figcaption>coronal (y 4)</figcaption>');
    expect(html).toContain('<figcaption>sagittal (x 3)</figcaption>');
    expect(spleenBlock).toContain('<figcaption>axial</figcaption>');
  });

  it('accepts a built table too', () => {
    const table = buildPaperTable([{ model: 'only', tasks }]);
    expect(paperTableHtml(table)).toContain('<tr><th>only</th>');
    expect(reportHtml({ title: 't', config: {}, table, cases: [] })).toContain('<tr><th>only</th>');
  });
});
