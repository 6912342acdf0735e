/**
 * The loader bench end to end at a tiny size: collection made and preprocessed once (a second run finds both),
 * crops timed for two worker counts with the same batches, the PyTorch yardstick run when Debian's torch and nibabel
 * are importable (else a one-line reason), and the proof line. The workers are this checkout's sources bundled by
 * esbuild, not a possibly stale dist/.
 */
import { buildSync } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { benchLoader, type LoaderBenchOptions } from '../../bench/loader.js';

let dir = '';
const scripts = { crop: '', preprocess: '' };
const torchReady = spawnSync('/usr/bin/python3', ['-c', 'import torch, nibabel'], { stdio: 'ignore', timeout: 120_000 }).status === 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tgnet-loader-bench-'));
  for (const [name, file] of [['crop', 'crop-worker'], ['preprocess', 'preprocess-worker']] as const) {
    scripts[name] = join(dir, `${file}.mjs`);
    buildSync({
      entryPoints: [fileURLToPath(new URL(`../../src/data/${file}.ts`, import.meta.url))],
      bundle: true, platform: 'node', format: 'esm', outfile: scripts[name], logLevel: 'warning',
      // Bundled CommonJS dependencies (dicom-parser) require Node built-ins; an ES module has no require of its own.
      banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    });
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('times tiny crops for 1 and 2 workers, the same batches for both, with the PyTorch yardstick and the proof line', async () => {
  const lines: string[] = [];
  const options: LoaderBenchOptions = {
    dir: join(dir, 'bench'), casesPerTask: 1, grid: { size: [12, 24, 24], spacing: [0.8, 0.8, 2.5], fitToGrid: true },
    workers: [1, 2], preprocessWorkers: 2, batches: 3, warmup: 1, cropSize: [8, 16, 16], torchBatches: torchReady ? 2 : false,
    cropWorkerScript: scripts.crop, preprocessWorkerScript: scripts.preprocess, log: (s) => lines.push(s),
  };
  const r = await benchLoader(options);
  expect(r.cases).toBe(7);
  expect(r.tgnet.map((s) => s.workers)).toEqual([1, 2]);
  for (const s of r.tgnet) {
    expect(s.cropsPerS).toBeGreaterThan(0);
    expect(s.peakRssMB).toBeGreaterThan(0);
    expect(s.readMBPerCrop).toBeGreaterThan(0);
  }
  expect(r.sameBatchesForAnyWorkerCount).toBe(true);
  if (torchReady) {
    expect(Array.isArray(r.torch)).toBe(true);
    expect((r.torch as { cropsPerS: number }[]).every((t) => t.cropsPerS > 0)).toBe(true);
    expect(r.ratio).toBeGreaterThan(0);
    expect(r.line).toMatch(/^loader-crops-per-s: workers=2 tgnet=\d+\.\d\d pytorch_dodnet=\d+\.\d\d crop=8x16x16 batch=2 cores=\d+$/);
  } else {
    expect(r.line).toMatch(/^loader-crops-per-s: workers=2 tgnet=\d+\.\d\d pytorch_dodnet=skipped crop=8x16x16 batch=2 cores=\d+$/);
  }
  expect(lines).toContain(r.line);
  expect(lines.some((l) => l.startsWith('  preprocess 7/7'))).toBe(true);

  // A second run finds the collection and its cache: nothing is made or preprocessed again.
  const again: string[] = [];
  const second = await benchLoader({ ...options, workers: [1], torchBatches: false, log: (s) => again.push(s) });
  expect(second.synthSeconds).toBe(0);
  expect(again.some((l) => l.includes('synth') || l.includes('preprocess '))).toBe(false);
  expect(second.tgnet[0].digest).toBe(r.tgnet[0].digest);
  expect(again.some((l) => l.includes('pytorch: skipped (not asked for)'))).toBe(true);

  await expect(benchLoader({ ...options, batches: 0 })).rejects.toThrow(/loader bench: batches is 0; expected a positive integer/);
}, 300_000);
