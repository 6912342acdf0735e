/**
 * Crops cut by positioned reads from the cache files (crop-reader.ts): bit for bit the crops of the whole case in
 * memory for every augmentation setting, reading only the rows (or slices) the region overlaps; the streaming sampler
 * reading files gives the batches of BatchSampler for 0, 1 and 2 workers and resumes exactly across worker counts.
 */
import { buildSync } from 'esbuild';
import { mkdtemp, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dhwFromXyz, type DHW } from '../../src/common/shape.js';
import { DEFAULT_AUGMENT, NO_AUGMENT, type AugmentOptions, type AugmentRecipe } from '../../src/data/augment.js';
import { preprocessCollection, type CaseSummary } from '../../src/data/case-cache.js';
import { CaseStore, StreamingBatchSampler, type StreamingBatchSamplerOptions } from '../../src/data/case-store.js';
import { CachedFileReader, SyncFileReader, caseFilesOf, cropReadBox, readCaseBox, renderCropFromFiles, type PositionedReader } from '../../src/data/crop-reader.js';
import { loadMsdCollection, type DatasetCase } from '../../src/data/datasets.js';
import { preprocessDataset, type CachedCase } from '../../src/data/preprocess-cache.js';
import { Random } from '../../src/data/random.js';
import { BatchSampler, foregroundIndex, planCrop, renderCrop, type Batch } from '../../src/data/sampler.js';
import { synthesizeDatasets } from '../../src/data/synth.js';

/** A whole phantom body in a few voxels that claim CT-like sizes, so resampling to 1.5 x 0.8 x 0.8 mm stays cheap. */
const SMALL_BODY = { spacing: [0.8, 0.8, 2.5] as [number, number, number], fitToGrid: true };

let dir = '';
let cases: DatasetCase[] = [];
let prepared: CachedCase[] = [];
let summaries: CaseSummary[] = [];
let workerScript = '';
const cacheDir = (): string => join(dir, 'cache');

/** Every augmentation on often, noise included. */
const ALL_ON: AugmentOptions = {
  ...DEFAULT_AUGMENT, scaleProbability: 0.5, noiseProbability: 0.5, brightnessProbability: 0.5, contrastProbability: 0.5, gammaProbability: 0.5,
};
const SETTINGS: [string, AugmentOptions | AugmentRecipe][] = [['none', NO_AUGMENT], ['all on', ALL_ON], ['dodnet', 'dodnet'], ['default', 'default']];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tgnet-crop-reader-'));
  workerScript = join(dir, 'crop-worker.mjs');
  buildSync({
    entryPoints: [fileURLToPath(new URL('../../src/data/crop-worker.ts', import.meta.url))],
    bundle: true, platform: 'node', format: 'esm', outfile: workerScript, logLevel: 'warning',
  });
  await synthesizeDatasets({ outDir: join(dir, 'data'), cases: 2, size: [12, 24, 24], seed: 5, tasks: [0, 3, 5], ...SMALL_BODY });
  cases = await loadMsdCollection(join(dir, 'data'), ['Task03_Liver', 'Task07_Pancreas', 'Task06_Lung']);
  prepared = await preprocessDataset(cases, cacheDir());
  summaries = await preprocessCollection(cases, cacheDir(), { foregroundSamples: 1 << 30 });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const bytes = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** A reader that counts every byte and read, delegating to a real one. */
function countingReader(): PositionedReader & { bytes: number; reads: number; inner: CachedFileReader } {
  const inner = new CachedFileReader();
  const r = {
    bytes: 0, reads: 0, inner,
    read: (path: string, into: Uint8Array, at: number) => {
      r.bytes += into.byteLength;
      r.reads++;
      return inner.read(path, into, at);
    },
    size: (path: string) => inner.size(path),
  };
  return r;
}

describe('renderCropFromFiles', () => {
  it('is renderCrop of the whole case bit for bit, with every augmentation off and on, rows or slabs, padded or not', async () => {
    // Both readers, each with fewer open files than cases, so their LRUs close and reopen files along the way.
    const readers = [new CachedFileReader(2), new SyncFileReader(3)];
    let padded = 0;
    for (const [what, augment] of SETTINGS) {
      for (const cropSize of [[8, 16, 16], [24, 32, 32], [3, 5, 7]] as DHW[]) {
        const rng = new Random(cropSize[0] * 7 + what.length);
        for (let k = 0; k < 12; k++) {
          const c = prepared[k % prepared.length];
          const s = summaries[k % summaries.length];
          expect(s.id).toBe(c.id);
          const plan = planCrop({ id: c.id, shape: c.shape, foreground: foregroundIndex(c.label) }, cropSize, rng, { augment });
          const shape = dhwFromXyz(c.shape);
          if (plan.start.some((p, a) => p < 0 || p + plan.regionSize[a] > shape[a])) padded++;
          const want = renderCrop(c, cropSize, plan);
          for (const [r, read] of [[0, 'rows'], [1, 'slabs'], [1, 'rows']] as const) {
            const got = await renderCropFromFiles(caseFilesOf(s.id, s.stem, s.shape), cropSize, plan, readers[r], { read });
            expect(bytes(got.image).equals(bytes(want.image)), `${what} ${cropSize.join('x')} #${k} ${read}: image`).toBe(true);
            expect(bytes(got.label).equals(bytes(want.label)), `${what} ${cropSize.join('x')} #${k} ${read}: label`).toBe(true);
            expect(got.flipped).toEqual(want.flipped);
          }
        }
      }
    }
    // The padded regions (crops larger than the case, zooms near the edges) were part of it.
    expect(padded).toBeGreaterThan(20);
    await Promise.all(readers.map((r) => r.close()));
  });

  it('reads only the rows of the slices its region overlaps (or those whole slices with slabs), once each', async () => {
    for (const cropSize of [[8, 16, 16], [24, 32, 32]] as DHW[]) {
      const rng = new Random(3);
      for (let k = 0; k < 10; k++) {
        const s = summaries[k % summaries.length];
        const plan = planCrop(s, cropSize, rng, { augment: ALL_ON });
        const [D, H, W] = dhwFromXyz(s.shape);
        const z0 = Math.max(0, plan.start[0]), z1 = Math.min(D, plan.start[0] + plan.regionSize[0]);
        const y0 = Math.max(0, plan.start[1]), y1 = Math.min(H, plan.start[1] + plan.regionSize[1]);
        const rows = countingReader();
        await renderCropFromFiles(caseFilesOf(s.id, s.stem, s.shape), cropSize, plan, rows, { read: 'rows' });
        // Image float32 and label uint8: 5 bytes a voxel, whole rows of W.
        expect(rows.bytes).toBe((z1 - z0) * (y1 - y0) * W * 5);
        expect(rows.reads).toBe(y1 - y0 === H ? 2 : 2 * (z1 - z0));
        // A crop smaller than the case reads less than the case (the larger crop covers all of it).
        if (cropSize[0] === 8) expect(rows.bytes).toBeLessThan(D * H * W * 5);
        const slabs = countingReader();
        await renderCropFromFiles(caseFilesOf(s.id, s.stem, s.shape), cropSize, plan, slabs, { read: 'slabs' });
        expect(slabs.bytes).toBe((z1 - z0) * H * W * 5);
        expect(slabs.reads).toBe(2);
        await rows.inner.close();
        await slabs.inner.close();
      }
    }
  });

  it('names the file and the sizes when a cache file is truncated or missing, and rejects boxes outside the case', async () => {
    const s = summaries[0];
    const files = caseFilesOf(s.id, s.stem, s.shape);
    const voxels = s.shape[0] * s.shape[1] * s.shape[2];
    const broken = { ...files, label: `${files.label}.copy` };
    const reader = new CachedFileReader();
    await expect(renderCropFromFiles(broken, [8, 16, 16], planCrop(s, [8, 16, 16], new Random(1)), reader)).rejects.toThrow(`${broken.label}: cannot read cached case file (ENOENT`);
    const shortDir = join(dir, 'short');
    await preprocessCollection([cases[0]], shortDir);
    const short = caseFilesOf(cases[0].id, join(shortDir, ...cases[0].id.split('/')), s.shape);
    await truncate(short.image, 100);
    const sync = new SyncFileReader();
    for (const r of [reader, sync]) {
      await expect(renderCropFromFiles(short, [8, 16, 16], planCrop(s, [8, 16, 16], new Random(1)), r)).rejects.toThrow(
        `${short.image}: 100 bytes; expected ${voxels * 4} for shape [x, y, z] = [${s.shape.join(', ')}] (truncated or stale cache file?)`);
      await expect(r.read(short.image, new Uint8Array(50), 80)).rejects.toThrow(`${short.image}: ended after 100 bytes; expected 50 bytes at offset 80 (truncated cache file?)`);
    }
    await expect(renderCropFromFiles(broken, [8, 16, 16], planCrop(s, [8, 16, 16], new Random(1)), sync)).rejects.toThrow(`${broken.label}: cannot read cached case file (ENOENT`);
    await sync.close();
    const [D, H, W] = dhwFromXyz(s.shape);
    await expect(readCaseBox(files, { origin: [D - 1, 0, 0], shape: [2, H, W] }, reader)).rejects.toThrow(/does not fit case Task03_Liver\/liver_000/);
    expect(() => cropReadBox([D, H, W], { start: [0, 0, 0], regionSize: [1, 1, 1] }, 'columns' as 'rows')).toThrow(/mode is "columns"; expected 'rows' or 'slabs'/);
    await reader.close();
  });
});

function expectSameBatch(got: Batch, want: Batch, what: string): void {
  expect(got.caseIds, what).toEqual(want.caseIds);
  expect(bytes(got.image).equals(bytes(want.image)), `${what}: image`).toBe(true);
  expect(bytes(got.target).equals(bytes(want.target)), `${what}: target`).toBe(true);
}

describe('StreamingBatchSampler reading the cache files', () => {
  const OPTIONS: StreamingBatchSamplerOptions = { batchSize: 3, cropSize: [8, 16, 16], seed: 9, augment: 'dodnet', cropSource: 'files' };
  const sampler = (workers: number, extra: Partial<StreamingBatchSamplerOptions> = {}) =>
    new StreamingBatchSampler(new CaseStore(summaries, { maxCases: 1 }), { ...OPTIONS, workers, workerScript, ...extra });

  it('gives BatchSampler\'s batches for 0, 1 and 2 workers, rows or slabs, and never loads a whole case', async () => {
    const want = new BatchSampler(prepared, OPTIONS);
    const expected = Array.from({ length: 5 }, () => want.next());
    for (const [workers, read] of [[0, 'rows'], [1, 'slabs'], [2, 'rows']] as const) {
      const store = new CaseStore(summaries, { maxCases: 1 });
      const s = new StreamingBatchSampler(store, { ...OPTIONS, workers, workerScript, read });
      expect(s.fromFiles).toBe(true);
      for (const [b, batch] of expected.entries()) expectSameBatch(await s.next(), batch, `workers ${workers} ${read} batch ${b}`);
      expect(store.stats.loads).toBe(0);
      expect(s.bytesRead).toBeGreaterThan(0);
      await s.close();
    }
  });

  it('resumes exactly from position() with another worker count', async () => {
    const straight = sampler(2);
    const first = sampler(1);
    for (let b = 0; b < 3; b++) {
      await straight.next();
      await first.next();
    }
    const position = first.position();
    await first.close();
    const resumed = sampler(0);
    resumed.restorePosition(position);
    for (let b = 0; b < 3; b++) expectSameBatch(await resumed.next(), await straight.next(), `resumed batch ${b}`);
    expect(resumed.position()).toEqual(straight.position());
    await Promise.all([straight.close(), resumed.close()]);
  });

  it("chooses files with 'auto' only when the store cannot hold every case, and rejects bad options", async () => {
    const holdsAll = new StreamingBatchSampler(new CaseStore(summaries, { maxCases: summaries.length }), { ...OPTIONS, cropSource: 'auto' });
    const tooSmall = new StreamingBatchSampler(new CaseStore(summaries, { maxCases: 2 }), { ...OPTIONS, cropSource: 'auto' });
    expect([holdsAll.fromFiles, tooSmall.fromFiles]).toEqual([false, true]);
    expect(new StreamingBatchSampler(new CaseStore(summaries), { ...OPTIONS, cropSource: undefined }).fromFiles).toBe(false);
    expectSameBatch(await tooSmall.next(), await holdsAll.next(), 'auto');
    await Promise.all([holdsAll.close(), tooSmall.close()]);
    expect(() => sampler(0, { cropSource: 'disk' as 'files' })).toThrow(/cropSource is "disk"; expected 'auto', 'memory' or 'files'/);
    expect(() => sampler(0, { read: 'columns' as 'rows' })).toThrow(/read is "columns"; expected 'rows' or 'slabs'/);
  });
});
