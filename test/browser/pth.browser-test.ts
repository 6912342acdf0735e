/**
 * DoDNet's own weights in the page: a DoDNet .pth (the width-2 fixture's weights under the authors' names with
 * DataParallel's `module.` prefix, as its train.py saves them) dropped on the Segment tab with a phantom CT is read
 * in the page (no Python, no upload), becomes the dodnet variant at DoDNet's 64x192x192 tile and voxel size, and
 * segments the CT voxel for voxel as `tgnet predict --model MODEL.pth` does in Node. The weights picker takes a .pth too.
 * The page's time for the one 64x192x192 tile (SwiftShader) goes to tmp/browser-tests/pth-timings.json.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportCheckpoint } from '../../src/cli/export.js';
import { predictCommand } from '../../src/cli/predict.js';
import { readNifti, writeNifti } from '../../src/data/nifti.js';
import { taskByKey } from '../../src/data/tasks.js';
import { writePth } from '../../src/nn/pth/index.js';
import { readSafetensors } from '../../src/nn/safetensors.js';
import { phantomCase } from '../../web/src/core/phantoms.js';
import type { PageHooks } from '../../web/src/ui/hooks.js';
import { launchChromium } from './chromium.js';
import { serveStatic, type StaticServer } from './static-server.js';
import { dropFiles, filesAt } from './drop-files.js';

const repo = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const OUT = repo('tmp/browser-tests');
const TASK = taskByKey('liver');

let browser: Browser;
let page: Page;
let server: StaticServer;
const pageErrors: string[] = [];
const timings: Record<string, number> = {};

const hooks = () => page.evaluate(() => {
  const h = (window as unknown as { __tgnet: PageHooks }).__tgnet;
  return { ...h, gpu: null };
});

/** Drops files on the Segment tab's drop zone as a person dragging them from a file manager would. */
const drop = (paths: string[]) => dropFiles(page, filesAt(paths));

/** Waits for an element's text to match, failing with the text it has (and the status line) instead of a bare timeout. */
async function waitText(selector: string, re: RegExp, timeoutMs = 60_000): Promise<void> {
  const t0 = performance.now();
  for (;;) {
    const text = (await page.locator(selector).textContent()) ?? '';
    if (re.test(text)) return;
    if (performance.now() - t0 > timeoutMs) {
      throw new Error(`${selector} is ${JSON.stringify(text)}; expected ${re} (status: ${await page.locator('#segment-status').textContent()}; page errors: ${pageErrors.join('; ') || 'none'})`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  server = await serveStatic(repo('web/dist'));
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1400, height: 940 }, acceptDownloads: true });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(server.url);
  await page.waitForFunction(() => (window as unknown as { __tgnet?: PageHooks }).__tgnet?.state !== 'starting', null, { timeout: 120_000 });
  const h = await hooks();
  if (h.state !== 'ready') throw new Error(`the page did not get ready: state ${h.state}; banner: ${await page.locator('#gpu-banner').textContent()}`);
});

afterAll(async () => {
  writeFileSync(`${OUT}/pth-timings.json`, `${JSON.stringify(timings, null, 2)}\n`);
  console.log(`timings: ${JSON.stringify(timings)}`);
  await browser?.close();
  await server?.close();
});

describe('the page takes PyTorch weights', () => {
  it('a dropped DoDNet .pth segments at DoDNet\'s tile as tgnet predict --model MODEL.pth does', async () => {
    const golden = readSafetensors(new Uint8Array(readFileSync(repo('test/golden/dodnet_unet3d.safetensors'))));
    const pth = `${OUT}/MOTS_DynConv_w2.pth`;
    writeFileSync(pth, writePth(new Map([...golden].map(([k, t]) => [`module.${k}`, { shape: t.shape, data: t.data as Float32Array }]))));
    // A small phantom on its own grid: one (padded) 64x192x192 tile.
    const c = phantomCase(TASK.id, 0, 3, [16, 48, 48], [4, 4, 4]);
    const ct = `${OUT}/phantom-liver-pth.nii.gz`;
    writeFileSync(ct, writeNifti(c.ct, { datatype: 'int16', gzip: true }));

    await page.selectOption('#task', String(TASK.id));
    await drop([pth, ct]);
    await waitText('#model-line', /^TGNet dodnet, width 2 \(72,058 parameters\): DoDNet \(jianpengz\/DoDNet\) weights MOTS_DynConv_w2\.pth; tile 64×192×192 \(z×y×x\); trained at 1\.5×0\.8×0\.8 mm \(z×y×x\) voxels$/);
    await waitText('#ct-line', /phantom-liver-pth\.nii\.gz/);
    expect(await page.locator('#resample').isChecked()).toBe(true);
    await page.uncheck('#resample');
    // Unresampled, 4 mm voxels are far from DoDNet's 1.5 x 0.8 x 0.8 mm and the 192 mm field is small for a body:
    // the page warns and keeps Segment off until the run is accepted.
    await page.locator('#ct-warning').waitFor({ state: 'visible' });
    expect(await page.locator('#segment-run').isDisabled()).toBe(true);
    await page.check('#ct-warning-accept');
    const before = (await hooks()).segment?.runs ?? 0;
    const t0 = performance.now();
    await page.click('#segment-run');
    for (;;) {
      const h = await hooks();
      if ((h.segment?.runs ?? 0) > before) { timings.pageOneTileFirstS = h.segment!.seconds; break; }
      if (await page.locator('#segment-status.error').count()) throw new Error(`the page reports: ${await page.locator('#segment-status').textContent()}`);
      if (pageErrors.length) throw new Error(`uncaught in the page: ${pageErrors.join('; ')}`);
      if (performance.now() - t0 > 880_000) throw new Error('the page did not finish segmenting in 880 s');
      await new Promise((r) => setTimeout(r, 250));
    }
    const [file] = await Promise.all([page.waitForEvent('download'), page.click('#download-mask')]);
    const pageMask = readNifti(new Uint8Array(readFileSync(await file.path())), 'page mask');

    const nodeOut = `${OUT}/node-pth-mask.nii.gz`;
    const t1 = performance.now();
    await predictCommand(['--model', pth, '--input', ct, '--task', TASK.key, '--out', nodeOut, '--native-spacing', '--quiet']);
    timings.nodePredictFirstS = (performance.now() - t1) / 1000;
    const nodeMask = readNifti(new Uint8Array(readFileSync(nodeOut)), nodeOut);
    expect(pageMask.shape).toEqual(nodeMask.shape);
    let differing = 0;
    for (let i = 0; i < nodeMask.data.length; i++) if (pageMask.data[i] !== nodeMask.data[i]) differing++;
    expect(differing, 'voxels where the page and tgnet predict disagree').toBe(0);

    // The picker takes a .pth as well: tgnet export's, whose configuration rides along.
    const exported = `${OUT}/tgnet-export.pth`;
    writeFileSync(exported, exportCheckpoint(new Uint8Array(readFileSync(repo('test/golden/tgnet_tgnet.safetensors'))), 'tgnet_tgnet.safetensors', 'pth').bytes);
    await page.setInputFiles('#weights-file', exported);
    await waitText('#model-line', /^TGNet tgnet, width 2 \([\d,]+ parameters\): tgnet-export\.pth;/);
  });
});
