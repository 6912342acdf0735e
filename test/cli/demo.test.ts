/**
 * `tgnet demo` end to end at the tiny profile (seconds; the learning claim is the full demo's, not this test's):
 * every artefact of the run folder is checked.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { captureOutput } from '../helpers/capture-output.js';
import { demoCommand, parseDemoArgs } from '../../src/cli/demo.js';
import { readNiftiFile } from '../../src/data/nifti-file.js';
import { PHANTOM_GENERATOR_VERSION } from '../../src/data/phantom.js';
import { TASKS } from '../../src/data/tasks.js';
import { loadCheckpoint } from '../../src/tgnet/checkpoint.js';
import { DEMO_CONFIGS, demoRecipe, recipeProblems } from '../../src/session/recipes.js';

const dir = mkdtempSync(join(tmpdir(), 'tgnet-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());


describe('tgnet demo', () => {
  it('writes a complete run folder: config, log, checkpoint, curves, summary, report and predictions', async () => {
    const out = join(dir, 'run');
    const lines = captureOutput();
    await demoCommand(['--profile', 'tiny', '--out', out, '--cache', join(dir, 'cache'), '--seed', '2']);
    const text = lines.join('\n');

    // The Table-1-style table and, as the very last line, the run folder.
    expect(text).toMatch(/profile tiny \(--profile\)/);
    expect(text).toMatch(/Validation results \(7 held-out phantoms/);
    for (const t of TASKS) expect(text).toContain(t.key);
    expect(text).toMatch(/average/);
    expect(lines[lines.length - 1]).toBe(out);

    expect(readdirSync(out).sort()).toEqual(['checkpoint.safetensors', 'config.json', 'curves.svg', 'log.jsonl', 'predictions', 'report.html', 'split.json', 'summary.json']);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ variant: 'tgnet', width: 2, steps: 4, batch: 2, profile: 'tiny', seed: 2 });

    // log.jsonl: one line per logged step (every step at this profile) plus the validation rounds (steps 2 and 4).
    const log = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; loss?: number; val?: { mean: number; perTask: Record<string, unknown> } });
    expect(log.filter((r) => r.loss !== undefined).map((r) => r.step)).toEqual([1, 2, 3, 4]);
    const val = log.filter((r) => r.val);
    expect(val.map((r) => r.step)).toEqual([2, 4]);
    expect(Object.keys(val[0].val?.perTask ?? {}).sort()).toEqual(TASKS.map((t) => t.key).sort());

    const svg = readFileSync(join(out, 'curves.svg'), 'utf8');
    expect(svg).toContain('Training loss');
    expect(svg).toContain('Validation Dice');
    expect(svg.match(/<path/g)?.length ?? 0).toBeGreaterThanOrEqual(3);

    // summary.json: every task, with the channels it annotates.
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Record<string, { cases?: number; organ?: { dice: number | null }; tumour?: { dice: number | null } }> & { emptyMaskConvention: string; hd95Unit: string };
    for (const t of TASKS) {
      expect(summary[t.key]?.cases).toBe(1);
      expect(summary[t.key]?.organ !== undefined).toBe(t.organLabelled);
      expect(summary[t.key]?.tumour !== undefined).toBe(t.tumourLabelled);
      if (t.organLabelled) expect(summary[t.key]?.organ?.dice).toBeGreaterThanOrEqual(0);
    }
    expect(summary.hd95Unit).toBe('voxels');
    expect(summary.emptyMaskConvention.length).toBeGreaterThan(20);

    // report.html: self-contained, the table, and three slice images per validation case.
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('<table');
    expect(html).toContain('liver tumour');
    expect(html).not.toMatch(/(src|href)="https?:/);
    const images = html.match(/<img[^>]+src="data:image\/png;base64,/g) ?? [];
    const predictions = readdirSync(join(out, 'predictions')).sort();
    expect(predictions.length).toBe(7);
    expect(images.length).toBe(3 * predictions.length);
    expect(html).toContain('<svg');

    // Predictions: NIfTI label maps in the geometry of their input image.
    const split = JSON.parse(readFileSync(join(out, 'split.json'), 'utf8')) as { val: string[] };
    for (const id of split.val) {
      const [folder, stem] = id.split('/');
      const image = await readNiftiFile(join(dir, 'cache', `demo-phantoms-v${PHANTOM_GENERATOR_VERSION}-16x32x32-2-2`, folder, 'imagesTr', `${stem}.nii.gz`));
      const prediction = await readNiftiFile(join(out, 'predictions', `${stem}.nii.gz`));
      expect(prediction.shape).toEqual(image.shape);
      expect(prediction.spacing.map((s) => Number(s.toFixed(4)))).toEqual(image.spacing.map((s) => Number(s.toFixed(4))));
      expect(prediction.affine.map((v) => Number(v.toFixed(3)))).toEqual(image.affine.map((v) => Number(v.toFixed(3))));
      expect(prediction.data.every((v) => v === 0 || v === 1 || v === 2)).toBe(true);
    }
    const checkpoint = await loadCheckpoint(join(out, 'checkpoint.safetensors'));
    expect(checkpoint.meta).toMatchObject({ variant: 'tgnet', width: 2, step: 4, optimizer: 'adam' });
  });

  it('--seeds 2 trains each seed into its own folder and reports the mean and spread over the seeds', async () => {
    const out = join(dir, 'seeds');
    const lines = captureOutput();
    await demoCommand(['--profile', 'tiny', '--out', out, '--cache', join(dir, 'cache'), '--seed', '2', '--seeds', '2', '--steps', '2']);
    const text = lines.join('\n');
    expect(readdirSync(out).sort()).toEqual(['compare.json', 'compare.md', 'seed-2', 'seed-3', 'split.json']);
    for (const seed of [2, 3]) {
      const config = JSON.parse(readFileSync(join(out, `seed-${seed}`, 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(config).toMatchObject({ variant: 'tgnet', seed });
    }
    expect(text).toMatch(/tgnet@2 .*\n(.|\n)*tgnet@3/);
    expect(text).toMatch(/Dice % over 2 training seeds \(2, 3\): mean ± sample standard deviation/);
    const json = JSON.parse(readFileSync(join(out, 'compare.json'), 'utf8')) as { seeds: { seeds: number[]; rows: { model: string }[] } };
    expect(json.seeds.seeds).toEqual([2, 3]);
    expect(json.seeds.rows.map((r) => r.model)).toEqual(['tgnet']);
    expect(readFileSync(join(out, 'compare.md'), 'utf8')).toMatch(/over 2 training seeds/);
  });

  it('refuses bad arguments with the flag, the value and what was expected', () => {
    expect(() => parseDemoArgs(['--seeds', '0'])).toThrow(/--seeds is "0"; expected an integer >= 1/);
    expect(() => parseDemoArgs(['--profile', 'huge'])).toThrow(/--profile is "huge"; expected one of software, gpu, tiny/);
    expect(() => parseDemoArgs(['--steps', '0'])).toThrow(/--steps is "0"; expected an integer >= 1/);
    expect(() => parseDemoArgs(['--variant', 'unet'])).toThrow(/--variant is "unet"; expected one of tgnet/);
    expect(() => parseDemoArgs(['--compare', '--variant', 'dodnet'])).toThrow(/--compare trains dodnet, tgnet-a and tgnet; leave out --variant/);
    expect(() => parseDemoArgs(['--out'])).toThrow(/--out needs a path/);
    expect(() => parseDemoArgs(['--frobnicate'])).toThrow(/unknown argument "--frobnicate"/);
    expect(parseDemoArgs(['--compare', '--seed', '4'])).toMatchObject({ compare: true, seed: 4, variant: 'tgnet' });
    expect(() => parseDemoArgs(['--volume', '16', '32', '32', '--crop', '16', '32', '64'])).toThrow(/--crop 16 32 64 is larger than --volume 16 32 32; expected a crop within the volume/);
    expect(() => parseDemoArgs(['--tumour-fraction', '1.5'])).toThrow(/--tumour-fraction is "1.5"; expected a share in \[0, 1\]/);
    expect(parseDemoArgs(['--volume', '32', '64', '64', '--crop', '16', '32', '64', '--tumour-fraction', '0.25']))
      .toMatchObject({ volume: [32, 64, 64], crop: [16, 32, 64], tumourFraction: 0.25 });
    // The software profile: tumour-centred crops within its volume, a valid recipe; a share outside [0, 1] is named.
    const software = DEMO_CONFIGS.software;
    expect(software.crop.every((n, a) => n <= software.volume[a])).toBe(true);
    const recipe = demoRecipe(software, { variant: 'tgnet', seed: 0 });
    expect(recipe.tumourFraction).toBe(0.5);
    expect(recipeProblems(recipe)).toEqual([]);
    expect(recipeProblems({ ...recipe, tumourFraction: 2 })).toEqual(['tumourFraction is 2; expected a share in [0, 1]']);
  });
});
