/**
 * The Segment tab as a new user meets it (issue 18): DICOM series dropped as files or a zip (pydicom's, from
 * test/golden/dicom), several series offered as a choice, a non-CT series or a volume that is not CT-like warned
 * about before anything runs (and run only when the user says so), a 4-D NIfTI offered as a frame picker, file
 * pickers reachable from the keyboard and named for screen readers, the tab within 1024x768, the inputs locked
 * during a run, and the last run's results cleared when the model or the CT changes. Screenshots go to
 * tmp/browser-tests/guide-*.png.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { zipSync } from 'fflate';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeNifti } from '../../src/data/nifti.js';
import { generatePhantom, phantomTaskLabel } from '../../src/data/phantom.js';
import type { PageHooks } from '../../web/src/ui/hooks.js';
import { launchChromium } from './chromium.js';
import { serveStatic, type StaticServer } from './static-server.js';
import { dropFiles, type DropFile } from './drop-files.js';

const repo = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const OUT = repo('tmp/browser-tests');
const DICOM = repo('test/golden/dicom');

let browser: Browser;
let page: Page;
let server: StaticServer;
const pageErrors: string[] = [];


const folderFiles = (folder: string): DropFile[] =>
  readdirSync(join(DICOM, folder)).sort().map((f) => ({ name: f, bytes: new Uint8Array(readFileSync(join(DICOM, folder, f))) }));

/** Drops files on the Segment tab's drop zone as a person dragging them from a file manager would. */
const drop = (files: DropFile[]) => dropFiles(page, files);

async function waitText(selector: string, re: RegExp, timeoutMs = 60_000): Promise<string> {
  const t0 = performance.now();
  for (;;) {
    const text = (await page.locator(selector).textContent()) ?? '';
    if (re.test(text)) return text;
    if (performance.now() - t0 > timeoutMs) {
      throw new Error(`${selector} is ${JSON.stringify(text)}; expected ${re} (status: ${await page.locator('#segment-status').textContent()}; page errors: ${pageErrors.join('; ') || 'none'})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

const visible = (selector: string) => page.locator(selector).isVisible();
const disabled = (selector: string) => page.locator(selector).isDisabled();

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  server = await serveStatic(repo('web/dist'));
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(server.url);
  await page.waitForFunction(() => (window as unknown as { __tgnet?: PageHooks }).__tgnet?.state !== 'starting', null, { timeout: 120_000 });
  const state = await page.evaluate(() => (window as unknown as { __tgnet: PageHooks }).__tgnet.state);
  if (state !== 'ready') throw new Error(`the page did not get ready: state ${state}; banner: ${await page.locator('#gpu-banner').textContent()}`);
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe('the Segment tab guides', () => {
  it('fits 1024x768 (nothing scrolls sideways, the viewer and the score table inside the window)', async () => {
    const widths = await page.evaluate(() => ({
      page: document.documentElement.scrollWidth,
      viewerRight: document.querySelector('.viewer-frame')!.getBoundingClientRect().right,
      panelRight: document.querySelector('#segment .panel')!.getBoundingClientRect().right,
    }));
    await page.screenshot({ path: `${OUT}/guide-1024x768.png` });
    expect(widths.page, JSON.stringify(widths)).toBeLessThanOrEqual(1024);
    expect(widths.viewerRight).toBeLessThanOrEqual(1024);
    expect(widths.panelRight).toBeLessThanOrEqual(1024);
  });

  it('at a phone\'s width (390 px) the tab is one column with nothing wider than the screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      const widths = await page.evaluate(() => ({
        page: document.documentElement.scrollWidth,
        panelRight: document.querySelector('#segment .panel')!.getBoundingClientRect().right,
        viewerTop: document.querySelector('.viewer-frame')!.getBoundingClientRect().top,
        panelBottom: document.querySelector('#segment .panel')!.getBoundingClientRect().bottom,
      }));
      await page.screenshot({ path: `${OUT}/guide-390.png`, fullPage: true });
      expect(widths.page, JSON.stringify(widths)).toBeLessThanOrEqual(390);
      expect(widths.viewerTop).toBeGreaterThanOrEqual(widths.panelBottom);
    } finally {
      await page.setViewportSize({ width: 1024, height: 768 });
    }
  });

  it('the file pickers are in the tab order and carry names a screen reader reads', async () => {
    const reached = new Set<string>();
    await page.locator('#weights-default').focus();
    for (let i = 0; i < 30; i++) {
      await page.keyboard.press('Tab');
      reached.add(await page.evaluate(() => document.activeElement?.id ?? ''));
    }
    for (const id of ['weights-file', 'ct-file', 'dicom-folder', 'label-file']) expect([...reached], id).toContain(id);
    const tree = await page.locator('#segment .panel').ariaSnapshot();
    for (const name of ['Load weights (.safetensors, .pth)', 'Choose a CT: NIfTI, DICOM files or a zip', 'Choose a DICOM folder', "Choose the CT's label file (optional)"]) {
      expect(tree, name).toContain(name);
    }
  });

  it('a DICOM series dropped as files loads with its geometry; an MR series is warned about and runs only when accepted', async () => {
    await drop(folderFiles('axial'));
    await waitText('#ct-line', /^12 files: DICOM CT "axial 2\.5 mm": 12×16×20 \(z×y×x\) voxels of 2\.5×0\.7×0\.8 mm \(z×y×x\)/);
    // 16 x 11 mm in-plane: no body fits in it.
    expect(await visible('#ct-warning')).toBe(true);
    expect(await page.locator('#ct-warning-text').textContent()).toMatch(/too small for a body/);

    await drop(folderFiles('mr'));
    await waitText('#ct-line', /DICOM MR "T1": 6×12×12 \(z×y×x\) voxels/);
    expect(await page.locator('#ct-warning-text').textContent()).toMatch(/the DICOM series is MR, not CT: the model knows CT values in HU only/);
    expect(await disabled('#segment-run')).toBe(true);
    await page.locator('#ct-warning').scrollIntoViewIfNeeded();
    await page.screenshot({ path: `${OUT}/guide-non-ct-warning.png` });
    await page.check('#ct-warning-accept');
    expect(await disabled('#segment-run')).toBe(false);
  });

  it('two series in one drop (and in a zip): the page asks which, then loads that one', async () => {
    const files = folderFiles('two_series');
    await drop(files);
    await waitText('#segment-status', /holds 2 DICOM series: pick one/);
    expect(await visible('#series-pick')).toBe(true);
    const options = await page.locator('#series-select option').allTextContents();
    expect(options).toHaveLength(2);
    expect(options[0]).toMatch(/^1\. [\d.]+: CT "coronal", 8 images of 18x10$/);
    await page.selectOption('#series-select', { index: 1 });
    await page.click('#series-load');
    await waitText('#ct-line', /DICOM CT "axial 3 mm": 6×14×12 \(z×y×x\) voxels of 3×1×1 mm \(z×y×x\)/);
    expect(await visible('#series-pick')).toBe(false);

    const zip = zipSync(Object.fromEntries(files.map((f) => [`study/${f.name}`, f.bytes])));
    await drop([{ name: 'study.zip', bytes: zip }]);
    await waitText('#segment-status', /study\.zip holds 2 DICOM series/);
    await page.click('#series-load');
    await waitText('#ct-line', /^study\.zip: DICOM CT "coronal": 8×10×18 \(z×y×x\) voxels/);
  });

  it('a 4-D NIfTI offers a frame picker; a tiny volume and one without air are warned about', async () => {
    const frame = (k: number) => Float32Array.from({ length: 8 * 8 * 8 }, (_, i) => -1000 + ((i * 7 + k * 300) % 1400));
    const three = writeNifti({ data: frame(0), shape: [8, 8, 8], spacing: [1, 1, 1], affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1] }, { datatype: 'float32', gzip: false });
    // Two frames: dim[0] = 4, dim[4] = 2, the second frame's voxels appended.
    const four = new Uint8Array(three.length + 8 * 8 * 8 * 4);
    four.set(three);
    const view = new DataView(four.buffer);
    view.setInt16(40, 4, true);
    view.setInt16(48, 2, true);
    four.set(new Uint8Array(frame(1).buffer), three.length);
    await drop([{ name: 'series-4d.nii', bytes: four }]);
    await waitText('#frame-text', /series-4d\.nii holds 2 3-D frames \(dim 8×8×8×2\); which one \(0 to 1\)\?/);
    expect(await visible('#frame-pick')).toBe(true);
    await page.fill('#frame-index', '1');
    await page.click('#frame-load');
    await waitText('#ct-line', /^series-4d\.nii frame 1: 8×8×8 \(z×y×x\) voxels/);
    expect(await page.locator('#ct-warning-text').textContent()).toMatch(/too small for a body/);

    const tiny = writeNifti({ data: new Float32Array(4 * 5 * 7).fill(-50), shape: [4, 5, 7], spacing: [1, 1, 1], affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1] }, { datatype: 'int16', gzip: true });
    await drop([{ name: 'tiny.nii.gz', bytes: tiny }]);
    await waitText('#ct-line', /^tiny\.nii\.gz: 7×5×4 \(z×y×x\) voxels/);
    const warning = (await page.locator('#ct-warning-text').textContent()) ?? '';
    expect(warning).toMatch(/no air \(nothing near -1000 HU; the lowest value is -50\)/);
    expect(warning).toMatch(/a 7×5×4 volume of 7×5×4 mm \(z×y×x\) is too small for a body/);
  });

  it('a run locks the inputs; its results go when the model or the CT changes', async () => {
    await page.click('#phantom');
    await waitText('#ct-line', /^phantom liver seed 42: 16×32×32 \(z×y×x\) voxels/);
    expect(await visible('#ct-warning')).toBe(false);
    await page.click('#segment-run');
    // Read right after the click: the run is under way (its first kernels compile for seconds at least).
    const locked = await page.evaluate(() => ['ct-file', 'dicom-folder', 'label-file', 'weights-file', 'weights-default', 'task', 'phantom', 'flips']
      .filter((id) => !(document.getElementById(id) as HTMLInputElement).disabled));
    expect(locked).toEqual([]);
    await page.locator('#scores').waitFor({ state: 'visible', timeout: 600_000 });
    expect(await disabled('#download-mask')).toBe(false);
    expect(await disabled('#ct-file')).toBe(false);

    await page.click('#weights-default');
    await waitText('#model-line', /^TGNet tgnet, width 4/);
    await page.locator('#scores').waitFor({ state: 'hidden' });
    expect(await disabled('#download-mask')).toBe(true);

    await page.click('#segment-run');
    await page.locator('#scores').waitFor({ state: 'visible', timeout: 600_000 });
    await drop(folderFiles('mr'));
    await waitText('#ct-line', /DICOM MR/);
    expect(await visible('#scores')).toBe(false);
    expect(await disabled('#download-mask')).toBe(true);
    expect(pageErrors).toEqual([]);
  });
});

describe('the Train tab guides', () => {
  it('says how many steps the default model took for the Dice it reached', async () => {
    await page.click('#tab-train');
    const text = await waitText('#train-guide', /took \d+ steps/);
    expect(text).toMatch(/^How long to train: the default model took 2000 steps \(trained by tgnet demo on 16x32x32 phantoms for 2000 steps\) for organ Dice liver 92\.5 %, kidney 89\.1 %.*; a run of a few dozen steps usually segments nothing yet\./);
    await page.click('#tab-segment');
  });
});

describe('a real-size CT in the page', () => {
  it('a 512x512x120 phantom CT (0.7 x 0.7 x 3 mm, int16) with its label loads, resamples, segments with progress and scores', async () => {
    // The 360 mm phantom world at a scanner's grid: the demo model (trained at 22.5 x 11.25 x 11.25 mm) reads it resampled.
    const p = generatePhantom({ size: [120, 512, 512], seed: 18, spacing: [0.7, 0.7, 3], requireTumours: ['liver'] });
    const geometry = { shape: p.shape, spacing: p.spacing, affine: p.affine };
    const ct = `${OUT}/real-size-512x512x120.nii.gz`;
    const label = `${OUT}/real-size-512x512x120-label.nii.gz`;
    writeFileSync(ct, writeNifti({ ...geometry, data: p.hu }, { datatype: 'int16', gzip: true }));
    writeFileSync(label, writeNifti({ ...geometry, data: phantomTaskLabel(p, 0) }, { datatype: 'uint8', gzip: true }));
    await page.selectOption('#task', '0');
    await page.setInputFiles('#ct-file', ct);
    await waitText('#ct-line', /^real-size-512x512x120\.nii\.gz: 120×512×512 \(z×y×x\) voxels of 3×0\.7×0\.7 mm \(z×y×x\)/, 300_000);
    await page.setInputFiles('#label-file', label);
    await waitText('#ct-line', /label: real-size-512x512x120-label\.nii\.gz/, 300_000);
    expect(await visible('#ct-warning')).toBe(false);
    expect(await page.locator('#resample').isChecked()).toBe(true);
    // The viewer then draws the 512x512x120 volume on SwiftShader and holds the page's thread for a while: every
    // read of the page waits for it.
    page.setDefaultTimeout(300_000);
    const t0 = performance.now();
    await page.click('#segment-run');
    await page.locator('#scores').waitFor({ state: 'visible', timeout: 600_000 });
    const seconds = (performance.now() - t0) / 1000;
    const status = (await page.locator('#segment-status').textContent()) ?? '';
    expect(status).toMatch(/^liver: \d+ tiles? on a \d+×\d+×\d+ \(z×y×x\) grid in /);
    const rows = await page.locator('#scores tbody tr').allTextContents();
    console.log(`512x512x120 in the page: ${seconds.toFixed(1)} s from the click (${status}); scores: ${rows.join(' | ')}`);
    const liver = await page.locator('#scores tbody tr').first().locator('td').nth(3).textContent();
    expect(Number.parseFloat(liver ?? '0')).toBeGreaterThan(80);
    // The score table (five columns) inside the panel at 1024x768, nothing cut off.
    const edges = await page.evaluate(() => ({
      table: document.querySelector('#scores')!.getBoundingClientRect().right,
      panel: document.querySelector('#segment .panel')!.getBoundingClientRect().right,
      page: document.documentElement.scrollWidth,
    }));
    expect(edges.table, JSON.stringify(edges)).toBeLessThanOrEqual(edges.panel);
    expect(edges.page).toBeLessThanOrEqual(1024);
    // The viewer draws a 512x512x120 volume on SwiftShader: slow frames, so a screenshot may wait long.
    await page.screenshot({ path: `${OUT}/guide-real-size.png`, timeout: 300_000 });
    expect(pageErrors).toEqual([]);
  });
});
