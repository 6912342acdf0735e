/**
 * Batches built in worker threads (StreamingBatchSampler `workers`, CropWorkerPool): the same bytes for 0, 1 and 2
 * workers and any queue depth, the same as BatchSampler's, exact resume across worker counts, and the pieces that
 * make it so: planCrop + renderCrop is sampleCrop, Random.skipNormals is normal() without the values.
 * The worker is this checkout's src/data/crop-worker.ts bundled by esbuild (vitest's own), not a possibly stale dist/.
 */
import { buildSync } from 'esbuild';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_AUGMENT, type AugmentOptions } from '../../src/data/augment.js';
import { CaseStore, preprocessDatasetToStore, StreamingBatchSampler, type StoredCaseInfo, type StreamingBatchSamplerOptions } from '../../src/data/case-store.js';
import { CropWorkerPool } from '../../src/data/crop-workers.js';
import { loadMsdCollection, type DatasetCase } from '../../src/data/datasets.js';
import { preprocessDataset, type CachedCase } from '../../src/data/preprocess-cache.js';
import { Random } from '../../src/data/random.js';
import { BatchSampler, foregroundIndex, planCrop, renderCrop, sampleCrop, type Batch } from '../../src/data/sampler.js';
import { synthesizeDatasets } from '../../src/data/synth.js';
import { labelToTarget } from '../../src/data/tasks.js';

/** A whole phantom body in a few voxels that claim CT-like sizes, so resampling to 1.5 x 0.8 x 0.8 mm stays cheap. */
const SMALL_BODY = { spacing: [0.8, 0.8, 2.5] as [number, number, number], fitToGrid: true };

let dir = '';
let cases: DatasetCase[] = [];
let prepared: CachedCase[] = [];
let workerScript = '';
/** The store's per-case summaries, made once; each sampler gets a fresh LRU over them. */
let infos: readonly StoredCaseInfo[] = [];
const cacheDir = (): string => join(dir, 'cache');

/** Every augmentation on often, noise included (its per-voxel draws are the part replayed in the worker). */
const AUGMENT: AugmentOptions = {
  ...DEFAULT_AUGMENT, scaleProbability: 0.5, noiseProbability: 0.5, brightnessProbability: 0.5, contrastProbability: 0.5, gammaProbability: 0.5,
};
const OPTIONS: StreamingBatchSamplerOptions = { batchSize: 3, cropSize: [8, 16, 16], seed: 7, augment: AUGMENT };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tgnet-crop-workers-'));
  workerScript = join(dir, 'crop-worker.mjs');
  buildSync({
    entryPoints: [fileURLToPath(new URL('../../src/data/crop-worker.ts', import.meta.url))],
    bundle: true, platform: 'node', format: 'esm', outfile: workerScript, logLevel: 'warning',
  });
  await synthesizeDatasets({ outDir: join(dir, 'data'), cases: 3, size: [12, 24, 24], seed: 3, tasks: [0, 6], ...SMALL_BODY });
  cases = await loadMsdCollection(join(dir, 'data'), ['Task03_Liver', 'Task09_Spleen']);
  prepared = await preprocessDataset(cases, cacheDir());
  infos = (await preprocessDatasetToStore(cases, cacheDir(), { foregroundSamples: 1 << 30 })).cases;
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const bytes = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function expectSameBatch(got: Batch, want: Batch, what: string): void {
  expect(got.caseIds, what).toEqual(want.caseIds);
  expect(got.taskIds, what).toEqual(want.taskIds);
  expect(got.shape, what).toEqual(want.shape);
  expect(bytes(got.image).equals(bytes(want.image)), `${what}: image`).toBe(true);
  expect(bytes(got.target).equals(bytes(want.target)), `${what}: target`).toBe(true);
}

function sampler(workers: number, extra: Partial<StreamingBatchSamplerOptions> = {}, maxCases = 16): StreamingBatchSampler {
  return new StreamingBatchSampler(new CaseStore(infos, { maxCases }), { ...OPTIONS, workers, workerScript, ...extra });
}

describe('crops planned here, built anywhere', () => {
  it('planCrop then renderCrop is sampleCrop, and leaves the generator where sampleCrop does', () => {
    for (let seed = 0; seed < 30; seed++) {
      const c = prepared[seed % prepared.length];
      const a = new Random(seed), b = new Random(seed);
      for (let k = 0; k < 4; k++) {
        const want = sampleCrop(c, [8, 16, 16], a, { augment: AUGMENT });
        const plan = planCrop({ id: c.id, shape: c.shape, foreground: foregroundIndex(c.label) }, [8, 16, 16], b, { augment: AUGMENT });
        const got = renderCrop(c, [8, 16, 16], plan);
        expect(bytes(got.image).equals(bytes(want.image))).toBe(true);
        expect(bytes(got.label).equals(bytes(want.label))).toBe(true);
        expect([got.start, got.regionSize, got.flipped, got.foregroundCentred]).toEqual([want.start, want.regionSize, want.flipped, want.foregroundCentred]);
        expect(b.currentState).toBe(a.currentState);
      }
    }
  });

  it('Random.skipNormals(n) moves the generator as n normal() calls do', () => {
    const a = new Random(3), b = new Random(3);
    for (let i = 0; i < 1000; i++) a.normal();
    b.skipNormals(1000);
    expect(b.currentState).toBe(a.currentState);
    expect(() => b.skipNormals(-1)).toThrow(/Random.skipNormals: count is -1; expected a non-negative integer/);
  });
});

describe('StreamingBatchSampler with worker threads', () => {
  it('gives byte-identical batches for 0, 1 and 2 workers (and any queue, LRU size or prefetch), the same as BatchSampler', async () => {
    const inMemory = new BatchSampler(prepared, OPTIONS);
    const want = Array.from({ length: 6 }, () => inMemory.next());
    for (const [workers, extra, maxCases] of [[0, {}, 16], [1, {}, 16], [2, {}, 16], [2, { queue: 5 }, 2], [1, { prefetch: false }, 1]] as const) {
      const s = sampler(workers, extra, maxCases);
      expect(s.workers).toBe(workers);
      try {
        for (let b = 0; b < want.length; b++) expectSameBatch(await s.next(), want[b], `${workers} workers ${JSON.stringify(extra)} maxCases ${maxCases}, batch ${b}`);
        expect(s.position()).toEqual({ batches: 6, state: inMemory.position().state });
      } finally {
        await s.close();
      }
    }
  });

  it('hands out batches in stream order even when asked for several at once', async () => {
    const inMemory = new BatchSampler(prepared, OPTIONS);
    const s = sampler(2, { queue: 3 });
    try {
      const got = await Promise.all([s.next(), s.next(), s.next(), s.next()]);
      got.forEach((batch, b) => expectSameBatch(batch, inMemory.next(), `batch ${b}`));
      expect(s.position()).toEqual(inMemory.position());
    } finally {
      await s.close();
    }
  });

  it('resumes exactly from a position saved with another number of workers', async () => {
    const straight = sampler(0);
    const first = sampler(2);
    try {
      for (let b = 0; b < 3; b++) {
        await straight.next();
        await first.next();
      }
      // Batches 4 and 5 are already planned and being built; the position is still after three.
      const position = first.position();
      expect(position.batches).toBe(3);
      for (const workers of [1, 0]) {
        const resumed = sampler(workers);
        resumed.restorePosition(position);
        const reference = sampler(0);
        reference.restorePosition(position);
        try {
          for (let b = 0; b < 3; b++) expectSameBatch(await resumed.next(), await reference.next(), `resumed with ${workers} workers, batch ${b}`);
          expect(resumed.position()).toEqual(reference.position());
        } finally {
          await resumed.close();
          await reference.close();
        }
      }
      for (let b = 0; b < 3; b++) expectSameBatch(await first.next(), await straight.next(), `uninterrupted, batch ${b + 3}`);
    } finally {
      await first.close();
      await straight.close();
    }
  });

  it('rejects bad options and a missing worker script, naming the value', async () => {
    expect(() => sampler(-1)).toThrow(/StreamingBatchSampler: workers is -1; expected a non-negative integer/);
    expect(() => sampler(1.5)).toThrow(/StreamingBatchSampler: workers is 1.5; expected a non-negative integer/);
    expect(() => sampler(1, { queue: 0 })).toThrow(/StreamingBatchSampler: queue is 0; expected a positive integer/);
    expect(() => sampler(1, { workerScript: join(dir, 'nope.mjs') })).toThrow(/CropWorkerPool: worker script .*nope\.mjs does not exist/);
    expect(() => new CropWorkerPool(0, workerScript)).toThrow(/CropWorkerPool: count is 0; expected a positive integer/);
    expect(() => new CropWorkerPool(1, null)).toThrow(/crop worker script \(dist\/src\/data\/crop-worker\.js\) is missing; run npm run build/);
  });

  it('passes a worker\'s error on to the batch that needed it, and refuses work once closed', async () => {
    const pool = new CropWorkerPool(1, workerScript);
    try {
      const c = prepared[0];
      const plan = planCrop({ id: c.id, shape: c.shape, foreground: foregroundIndex(c.label) }, [8, 16, 16], new Random(1));
      await expect(pool.render({ ...c, image: c.image.subarray(1) }, [8, 16, 16], plan)).rejects.toThrow(/case .*: image length \d+ \/ label length \d+; expected/);
      const ok = await pool.render(c, [8, 16, 16], plan);
      const here = renderCrop(c, [8, 16, 16], plan);
      expect(bytes(ok.image).equals(bytes(here.image))).toBe(true);
      expect(bytes(ok.label).equals(bytes(here.label))).toBe(true);
      expect(bytes(ok.target).equals(bytes(labelToTarget(here.label, c.task)))).toBe(true);
    } finally {
      await pool.close();
    }
    await expect(pool.render(prepared[0], [8, 16, 16], planCrop({ id: 'x', shape: prepared[0].shape, foreground: new Map() }, [8, 16, 16], new Random(1)))).rejects.toThrow(/the pool is closed/);
  });
});
