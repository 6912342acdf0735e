/**
 * preprocessCollection: summaries equal to those made from the whole volumes, preprocessing in worker threads with
 * progress, an interrupted run resumed with only the unfinished cases, damaged entries rebuilt, and the foreground
 * sidecar trusted only for the build of the entry it was written with.
 */
import { buildSync } from 'esbuild';
import { mkdir, mkdtemp, readFile, rm, truncate, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compactForegroundIndex, preprocessCollection, type CaseSummary } from '../../src/data/case-cache.js';
import { preprocessDatasetToStore } from '../../src/data/case-store.js';
import { loadMsdCollection, type DatasetCase } from '../../src/data/datasets.js';
import { cacheStem, preprocessDataset, type CachedCase, type PreprocessProgress } from '../../src/data/preprocess-cache.js';
import { synthesizeDatasets } from '../../src/data/synth.js';

const SMALL_BODY = { spacing: [0.8, 0.8, 2.5] as [number, number, number], fitToGrid: true };

let dir = '';
let cases: DatasetCase[] = [];
let whole: CachedCase[] = [];
let workerScript = '';
let run = 0;
/** A fresh cache folder per test. */
const freshCache = (): string => join(dir, `cache-${run++}`);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tgnet-case-cache-'));
  workerScript = join(dir, 'preprocess-worker.mjs');
  buildSync({
    entryPoints: [fileURLToPath(new URL('../../src/data/preprocess-worker.ts', import.meta.url))],
    bundle: true, platform: 'node', format: 'esm', outfile: workerScript, logLevel: 'warning',
    // Bundled CommonJS dependencies (dicom-parser) require Node built-ins; an ES module has no require of its own.
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  });
  await synthesizeDatasets({ outDir: join(dir, 'data'), cases: 2, size: [12, 24, 24], seed: 8, tasks: [0, 1, 6], ...SMALL_BODY });
  cases = await loadMsdCollection(join(dir, 'data'), ['Task03_Liver', 'KiTS19', 'Task09_Spleen']);
  whole = await preprocessDataset(cases, join(dir, 'whole'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function expectSummaries(got: CaseSummary[], cap: number): void {
  expect(got.map((s) => s.id)).toEqual(whole.map((c) => c.id));
  for (const [i, s] of got.entries()) {
    expect(s.task).toBe(whole[i].task);
    expect(s.shape).toEqual(whole[i].shape);
    const want = compactForegroundIndex(whole[i].label, cap);
    expect([...s.foreground.keys()]).toEqual([...want.keys()]);
    for (const [v, list] of want) expect(Array.from(s.foreground.get(v) as Int32Array), `${s.id} value ${v}`).toEqual(Array.from(list));
  }
}

describe('preprocessCollection', () => {
  it('preprocesses in worker threads with progress, the same entries and summaries as in this thread', async () => {
    const cache = freshCache();
    const progress: PreprocessProgress[] = [];
    const got = await preprocessCollection(cases, cache, { workers: 2, workerScript, foregroundSamples: 50, onProgress: (p) => progress.push(p) });
    expectSummaries(got, 50);
    expect(progress.map((p) => p.done)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(progress.every((p) => !p.cached && p.total === 6)).toBe(true);
    expect(progress.map((p) => p.id).sort()).toEqual(cases.map((c) => c.id).sort());
    // The data files are those the in-memory path writes, byte for byte.
    for (const c of cases) {
      for (const ext of ['image.f32', 'label.u8']) {
        expect((await readFile(`${cacheStem(cache, c.id)}.${ext}`)).equals(await readFile(`${cacheStem(join(dir, 'whole'), c.id)}.${ext}`)), `${c.id} ${ext}`).toBe(true);
      }
    }
    // A second pass finds every case: summaries from the sidecars, nothing preprocessed.
    const again: PreprocessProgress[] = [];
    expectSummaries(await preprocessCollection(cases, cache, { workers: 2, workerScript, foregroundSamples: 50, onProgress: (p) => again.push(p) }), 50);
    expect(again.every((p) => p.cached)).toBe(true);
  });

  it('resumes an interrupted run: the finished cases are found, only the rest are made', async () => {
    const cache = freshCache();
    const stop = new Error('interrupted');
    const first: string[] = [];
    await expect(preprocessCollection(cases, cache, {
      onProgress: (p) => {
        first.push(p.id);
        if (p.done === 2) throw stop;
      },
    })).rejects.toBe(stop);
    expect(first).toEqual(cases.slice(0, 2).map((c) => c.id));
    // A crash half way through a case leaves data files without meta: the case is made again.
    await mkdir(dirname(cacheStem(cache, cases[2].id)), { recursive: true });
    await writeFile(`${cacheStem(cache, cases[2].id)}.image.f32`, 'half');
    const second: PreprocessProgress[] = [];
    const got = await preprocessCollection(cases, cache, { workers: 1, workerScript, onProgress: (p) => second.push(p) });
    expectSummaries(got, 4096);
    expect(second.filter((p) => p.cached).map((p) => p.id)).toEqual(first);
    expect(second.filter((p) => !p.cached).map((p) => p.id)).toEqual(cases.slice(2).map((c) => c.id));
  });

  it('rebuilds a damaged or stale entry and never trusts a sidecar from another build', async () => {
    const cache = freshCache();
    await preprocessCollection(cases, cache, { foregroundSamples: 64 });
    const [truncated, noMeta, noSidecar, changed] = cases;
    await truncate(`${cacheStem(cache, truncated.id)}.label.u8`, 10);
    await unlink(`${cacheStem(cache, noMeta.id)}.json`);
    await unlink(`${cacheStem(cache, noSidecar.id)}.fg.bin`);
    // A source file touched: the entry (and its sidecar) belong to the old one.
    await utimes(changed.label, new Date(), new Date(Date.now() + 5000));
    const progress: PreprocessProgress[] = [];
    const got = await preprocessCollection(cases, cache, { foregroundSamples: 64, onProgress: (p) => progress.push(p) });
    expectSummaries(got, 64);
    const made = progress.filter((p) => !p.cached).map((p) => p.id).sort();
    expect(made).toEqual([truncated.id, noMeta.id, changed.id].sort());
    // Another cap: the index is made again from the label file alone (the entry stays).
    const progress2: PreprocessProgress[] = [];
    expectSummaries(await preprocessCollection(cases, cache, { foregroundSamples: 7, onProgress: (p) => progress2.push(p) }), 7);
    expect(progress2.every((p) => p.cached)).toBe(true);
  });

  it('rejects bad options naming the value, and preprocessDatasetToStore uses it', async () => {
    await expect(preprocessCollection(cases, freshCache(), { workers: -1 })).rejects.toThrow(/preprocessCollection: workers is -1; expected a non-negative integer/);
    await expect(preprocessCollection(cases, freshCache(), { foregroundSamples: 0 })).rejects.toThrow(/foregroundSamples is 0; expected a positive integer/);
    await expect(preprocessCollection(cases, freshCache(), { workers: 1, workerScript: join(dir, 'nope.mjs') })).rejects.toThrow(/worker script .*nope\.mjs does not exist/);
    // A broken source fails the run with the file's name, from a worker as from this thread.
    await writeFile(join(dir, 'garbage.nii'), 'not a NIfTI file at all');
    const broken = [...cases.slice(0, 3), { ...cases[3], label: join(dir, 'garbage.nii') }];
    for (const workers of [0, 2]) {
      await expect(preprocessCollection(broken, freshCache(), { workers, workerScript })).rejects.toThrow(/garbage\.nii/);
    }
    await expect(preprocessCollection([{ ...cases[0], label: join(dir, 'missing.nii.gz') }], freshCache())).rejects.toThrow(/missing\.nii\.gz: cannot stat source file/);
    const store = await preprocessDatasetToStore(cases, freshCache(), { preprocessWorkers: 2, preprocessWorkerScript: workerScript, foregroundSamples: 1 << 30, maxCases: 2 });
    expectSummaries([...store.cases], 1 << 30);
    expect(store.holdsAll).toBe(false);
  });
});
