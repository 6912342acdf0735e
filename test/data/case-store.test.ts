/** CaseStore (LRU of cases read from the preprocessing cache) and StreamingBatchSampler vs BatchSampler. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, truncate, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaseStore, StreamingBatchSampler, compactForegroundIndex, preprocessDatasetToStore, type StoredCaseInfo } from '../../src/data/case-store.js';
import { loadMsdCollection, type DatasetCase } from '../../src/data/datasets.js';
import { preprocessDataset, type CachedCase } from '../../src/data/preprocess-cache.js';
import { BatchSampler, foregroundIndex, type BatchSamplerOptions } from '../../src/data/sampler.js';
import { synthesizeDatasets } from '../../src/data/synth.js';

/** A whole phantom body in a few voxels that claim CT-like sizes, so resampling to 1.5 x 0.8 x 0.8 mm stays cheap. */
const SMALL_BODY = { spacing: [0.8, 0.8, 2.5] as [number, number, number], fitToGrid: true };

let dir = '';
let cases: DatasetCase[] = [];
let prepared: CachedCase[] = [];
const caseBytes = (c: StoredCaseInfo): number => c.shape[0] * c.shape[1] * c.shape[2] * 5;
const cacheDir = (): string => join(dir, 'cache');
/** Large enough that every case keeps its full foreground index. */
const ALL_FOREGROUND = 1 << 30;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tgnet-case-store-'));
  await synthesizeDatasets({ outDir: join(dir, 'data'), cases: 3, size: [12, 24, 24], seed: 2, tasks: [0, 4], ...SMALL_BODY });
  cases = await loadMsdCollection(join(dir, 'data'), ['Task03_Liver', 'Task10_Colon']);
  prepared = await preprocessDataset(cases, cacheDir());
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const OPTIONS: BatchSamplerOptions = { batchSize: 3, cropSize: [8, 16, 16], seed: 11 };

describe('StreamingBatchSampler', () => {
  it('draws exactly the batches of BatchSampler for the same seed, whatever the LRU size or prefetch', async () => {
    expect(cases.length).toBe(6);
    for (const [maxCases, prefetch, balance] of [[16, true, 'task'], [2, false, 'case'], [1, true, 'case']] as const) {
      const options = { ...OPTIONS, balance };
      const store = await preprocessDatasetToStore(cases, cacheDir(), { maxCases, foregroundSamples: ALL_FOREGROUND });
      const streaming = new StreamingBatchSampler(store, { ...options, prefetch });
      const inMemory = new BatchSampler(prepared, options);
      for (let b = 0; b < 6; b++) {
        const want = inMemory.next();
        const got = await streaming.next();
        expect(got.caseIds).toEqual(want.caseIds);
        expect(got.taskIds).toEqual(want.taskIds);
        expect(got.shape).toEqual(want.shape);
        expect(Buffer.from(got.image.buffer).equals(Buffer.from(want.image.buffer))).toBe(true);
        expect(Buffer.from(got.target.buffer).equals(Buffer.from(want.target.buffer))).toBe(true);
      }
      expect(store.stats.peakLive).toBeLessThanOrEqual(maxCases);
    }
  });

  it('reports the position of the first batch not handed out (despite prefetch) and continues exactly from it', async () => {
    for (const prefetch of [true, false]) {
      const store = await preprocessDatasetToStore(cases, cacheDir(), { maxCases: 2 });
      const straight = new StreamingBatchSampler(store, { ...OPTIONS, prefetch });
      const inMemory = new BatchSampler(prepared, OPTIONS);
      const first = new StreamingBatchSampler(store, { ...OPTIONS, prefetch });
      expect(first.position().batches).toBe(0);
      for (let b = 0; b < 3; b++) {
        await straight.next();
        await first.next();
        inMemory.next();
      }
      // The prefetched fourth batch has already drawn from the generator; the position is still after three.
      await new Promise((r) => setTimeout(r, 20));
      const position = first.position();
      expect(position.batches).toBe(3);
      expect(position).toEqual(inMemory.position());
      const resumed = new StreamingBatchSampler(store, { ...OPTIONS, prefetch });
      resumed.restorePosition(position);
      const resumedInMemory = new BatchSampler(prepared, OPTIONS);
      resumedInMemory.restorePosition(position);
      for (let b = 0; b < 3; b++) {
        const want = await straight.next();
        const got = await resumed.next();
        expect(got.caseIds).toEqual(want.caseIds);
        expect(Buffer.from(got.image.buffer).equals(Buffer.from(want.image.buffer))).toBe(true);
        expect(Buffer.from(got.target.buffer).equals(Buffer.from(want.target.buffer))).toBe(true);
        expect(resumedInMemory.next().caseIds).toEqual(want.caseIds);
      }
      expect(resumed.position()).toEqual(straight.position());
      expect(() => resumed.restorePosition(position)).toThrow(/batches were already drawn; restore a new sampler before its first next\(\)/);
      expect(() => new StreamingBatchSampler(store, OPTIONS).restorePosition({ batches: -1, state: 0 })).toThrow(/position.batches is -1; expected a non-negative integer/);
      expect(() => new BatchSampler(prepared, OPTIONS).restorePosition({ batches: 0, state: 2 ** 40 })).toThrow(/position.state is 1099511627776; expected a 32-bit integer/);
    }
  });

  it('with a tumour share: the batches of BatchSampler, and a resumed stream continues exactly', async () => {
    const options = { ...OPTIONS, tumourFraction: 0.6, foregroundFraction: 0.5 };
    const store = await preprocessDatasetToStore(cases, cacheDir(), { maxCases: 4, foregroundSamples: ALL_FOREGROUND });
    const streaming = new StreamingBatchSampler(store, options);
    const inMemory = new BatchSampler(prepared, options);
    const plain = new BatchSampler(prepared, OPTIONS);
    let differs = false;
    for (let b = 0; b < 4; b++) {
      const want = inMemory.next();
      const got = await streaming.next();
      expect(got.caseIds).toEqual(want.caseIds);
      expect(Buffer.from(got.image.buffer).equals(Buffer.from(want.image.buffer))).toBe(true);
      expect(Buffer.from(got.target.buffer).equals(Buffer.from(want.target.buffer))).toBe(true);
      differs ||= !Buffer.from(plain.next().image.buffer).equals(Buffer.from(want.image.buffer));
    }
    expect(differs).toBe(true);
    const position = inMemory.position();
    const resumed = new StreamingBatchSampler(store, options);
    resumed.restorePosition(position);
    for (let b = 0; b < 3; b++) {
      const want = inMemory.next();
      const got = await resumed.next();
      expect(got.caseIds).toEqual(want.caseIds);
      expect(Buffer.from(got.image.buffer).equals(Buffer.from(want.image.buffer))).toBe(true);
    }
    await streaming.close();
    await resumed.close();
  });

  it('rejects bad options naming the value', async () => {
    const store = await preprocessDatasetToStore(cases, cacheDir());
    expect(() => new StreamingBatchSampler(store, { ...OPTIONS, batchSize: 0 })).toThrow(/StreamingBatchSampler: batchSize is 0; expected a positive integer/);
    expect(() => new StreamingBatchSampler(new CaseStore([]), OPTIONS)).toThrow(/StreamingBatchSampler: no cases/);
    expect(() => new CaseStore([], { maxCases: 0 })).toThrow(/CaseStore: maxCases is 0; expected a positive integer/);
    await expect(store.load('nope')).rejects.toThrow(/CaseStore: no case with id "nope"/);
  });
});

describe('CaseStore', () => {
  it('holds at most maxCases cases: a dataset of 6 with maxCases 2 never has more than 2 in memory', async () => {
    const store = await preprocessDatasetToStore(cases, cacheDir(), { maxCases: 2 });
    const sampler = new StreamingBatchSampler(store, { ...OPTIONS, balance: 'case' });
    let most = 0;
    for (let b = 0; b < 20; b++) {
      await sampler.next();
      most = Math.max(most, store.stats.live);
    }
    const { loads, hits, peakLive, live, liveBytes } = store.stats;
    expect(peakLive).toBe(2);
    expect(most).toBeLessThanOrEqual(2);
    expect(live).toBeLessThanOrEqual(2);
    const sizes = store.cases.map(caseBytes).sort((x, y) => y - x);
    expect(liveBytes).toBeLessThanOrEqual(sizes[0] + sizes[1]);
    // 60+ crops over 6 cases through 2 slots: cases are read again after eviction.
    expect(loads).toBeGreaterThan(6);
    expect(loads + hits).toBeGreaterThanOrEqual(60);
  });

  it('reads each case once when the LRU holds the whole dataset, and keeps it as most recently used', async () => {
    const store = await preprocessDatasetToStore(cases, cacheDir(), { maxCases: 6 });
    const sampler = new StreamingBatchSampler(store, { ...OPTIONS, balance: 'case' });
    for (let b = 0; b < 20; b++) await sampler.next();
    expect(store.stats.loads).toBeLessThanOrEqual(6);
    expect(store.stats.peakLive).toBeLessThanOrEqual(6);

    const small = new CaseStore(store.cases, { maxCases: 2 });
    const [a, b, c] = store.cases.map((x) => x.id);
    const first = await small.load(a);
    await small.load(b);
    expect(await small.load(a)).toBe(first); // hit; now b is least recently used
    await small.load(c); // evicts b
    expect(small.stats).toMatchObject({ loads: 3, hits: 1, live: 2 });
    expect(await small.load(a)).toBe(first);
    await small.load(b);
    expect(small.stats.loads).toBe(4);
  });

  it('respects maxBytes', async () => {
    const store = await preprocessDatasetToStore(cases, cacheDir(), { maxCases: 6 });
    const sizes = store.cases.map(caseBytes);
    const maxBytes = Math.max(...sizes) + Math.min(...sizes) - 1;
    const byBytes = new CaseStore(store.cases, { maxBytes });
    for (const c of store.cases) {
      await byBytes.load(c.id);
      expect(byBytes.stats.liveBytes).toBeLessThanOrEqual(maxBytes);
    }
    expect(byBytes.stats.loads).toBe(6);
    // A case bigger than maxBytes on its own is still served (alone).
    const tiny = new CaseStore(store.cases, { maxBytes: 1 });
    for (const c of store.cases) await tiny.load(c.id);
    expect(tiny.stats).toMatchObject({ loads: 6, peakLive: 1, live: 1 });
  });

  it('names the file when a cached case is missing or truncated', async () => {
    const store = await preprocessDatasetToStore(cases, cacheDir(), { maxCases: 2 });
    const [missing, short] = store.cases;
    await unlink(`${missing.stem}.image.f32`);
    await truncate(`${short.stem}.label.u8`, 100);
    const voxels = short.shape.reduce((p, n) => p * n, 1);
    await expect(store.load(missing.id)).rejects.toThrow(`${missing.stem}.image.f32: cannot read cached case file (ENOENT`);
    await expect(store.load(short.id)).rejects.toThrow(`${short.stem}.label.u8: 100 bytes; expected ${voxels} for shape [x, y, z] = [${short.shape.join(', ')}]`);
    expect(store.stats.live).toBe(0);
    const sampler = new StreamingBatchSampler(new CaseStore([missing]), OPTIONS);
    await expect(sampler.next()).rejects.toThrow(/liver_000\.image\.f32: cannot read cached case file/);
    // The cache rebuilds the damaged entries on the next preprocessing pass.
    prepared = await preprocessDataset(cases, cacheDir());
    await expect(new CaseStore(store.cases).load(short.id)).resolves.toMatchObject({ id: short.id });
  });
});

describe('compactForegroundIndex', () => {
  it('is the full index under the cap and an even subset above it', () => {
    const label = new Uint8Array(1000);
    for (let i = 0; i < 500; i++) label[i * 2] = 1;
    label[999] = 2;
    const full = foregroundIndex(label);
    const all = compactForegroundIndex(label, 1000);
    expect([...all.keys()]).toEqual([1, 2]);
    expect(Array.from(all.get(1) as Int32Array)).toEqual(Array.from(full.get(1) as Int32Array));
    const capped = compactForegroundIndex(label, 10);
    expect(Array.from(capped.get(1) as Int32Array)).toEqual([0, 100, 200, 300, 400, 500, 600, 700, 800, 900]);
    expect(Array.from(capped.get(2) as Int32Array)).toEqual([999]);
    expect(() => compactForegroundIndex(label, 0)).toThrow(/maxPerValue is 0; expected a positive integer/);
  });
});
