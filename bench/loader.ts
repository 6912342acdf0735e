/**
 * The loader benchmark (`npm run bench -- --only loader`): crops/s of training batches (batch 2, 64x192x192, DoDNet's
 * augmentation) cut by positioned reads from the preprocessing cache of an MSD-like phantom collection (seven tasks,
 * 512x512 in-plane), for 1, 2 and N crop workers, with the process's peak resident memory; beside it the same work
 * done the way DoDNet's dataset does it, in a PyTorch DataLoader on the same files and cores
 * (bench/torch/dodnet_loader.py), when Debian's python3-torch and python3-nibabel are installed.
 *
 * The collection is made once (synthesizeDatasets) and preprocessed once (preprocessCollection, in workers) under
 * `dir`; later runs find both.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { availableParallelism, cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../src/common/node-files.js';
import type { DHW, XYZ } from '../src/common/shape.js';
import { preprocessCollection, type CaseSummary } from '../src/data/case-cache.js';
import { CaseStore, StreamingBatchSampler } from '../src/data/case-store.js';
import { loadMsdCollection } from '../src/data/datasets.js';
import { synthesizeDatasets } from '../src/data/synth.js';
import { TASKS, taskById } from '../src/data/tasks.js';
import type { AugmentRecipe } from '../src/data/augment.js';
import type { Batch } from '../src/data/sampler.js';

export interface LoaderBenchOptions {
  /** Folder for the collection (`data/`), its cache (`cache/`) and the PyTorch case list. */
  dir: string;
  /** Cases per task (7 tasks; default 2: 14 full-size cases, ~2.7 GB of cache, more than a case LRU would hold). */
  casesPerTask?: number;
  /** The phantoms' grid: 'msd' (default: 512x512 in-plane, the task's slice thickness) or a small one for tests. */
  grid?: 'msd' | { size: [number, number, number]; spacing: XYZ; fitToGrid?: boolean };
  /** Crop worker counts to time (default 1, 2 and the machine's cores). */
  workers?: number[];
  /** Worker threads preprocessing the collection (default: cores - 1, at least 1). */
  preprocessWorkers?: number;
  /** Batches timed per setting, after `warmup` (default 20 and 2). */
  batches?: number;
  warmup?: number;
  batchSize?: number;
  cropSize?: DHW;
  augment?: AugmentRecipe;
  seed?: number;
  /** PyTorch: batches timed per setting (default 5), or false to skip it. */
  torchBatches?: number | false;
  /** The interpreter with torch (default /usr/bin/python3). */
  python?: string;
  /** Built worker scripts (defaults: next to the compiled modules); tests pass bundles of the sources. */
  cropWorkerScript?: URL | string;
  preprocessWorkerScript?: URL | string;
  /** Where each result line goes (default console.log). */
  log?: (line: string) => void;
}

export interface LoaderSetting {
  workers: number;
  cropsPerS: number;
  /** Peak resident memory of this process (all its threads) while the setting ran, MB. */
  peakRssMB: number;
  /** Resident memory just before it started (the process without crops in flight: runtime, GPU if any, summaries), MB. */
  baseRssMB: number;
  /** Bytes read from the cache files per crop, MB. */
  readMBPerCrop: number;
  /** Digest of the first batches: the same for every worker count. */
  digest: string;
}

export interface TorchSetting {
  workers: number;
  cropsPerS: number;
  peakRssMB: number;
  peakWorkerRssMB: number;
}

export interface LoaderBenchResult {
  cores: number;
  cpu: string;
  cases: number;
  /** Cache bytes of the collection (image float32 + label uint8), GB. */
  cacheGB: number;
  synthSeconds: number;
  preprocessSeconds: number;
  batchSize: number;
  cropSize: DHW;
  augment: AugmentRecipe;
  tgnet: LoaderSetting[];
  sameBatchesForAnyWorkerCount: boolean;
  torch: TorchSetting[] | { skipped: string };
  /** tgnet's crops/s over PyTorch's at the largest worker count both ran. */
  ratio: number | null;
  line: string;
}

const DEFAULTS = { casesPerTask: 2, batches: 20, warmup: 2, batchSize: 2, cropSize: [64, 192, 192] as DHW, augment: 'dodnet' as AugmentRecipe, seed: 1, torchBatches: 5 };

/** The collection under `dir/data`, made unless a finished one with the same settings is there. */
async function ensureCollection(dataDir: string, casesPerTask: number, grid: LoaderBenchOptions['grid'], seed: number, log: (s: string) => void): Promise<number> {
  const marker = join(dataDir, 'tgnet-loader-bench.json');
  const want = JSON.stringify({ casesPerTask, grid: grid ?? 'msd', seed });
  try {
    if ((await readFile(marker, 'utf8')).trim() === want) return 0;
  } catch {
    // not made yet
  }
  const t0 = performance.now();
  const total = casesPerTask * TASKS.length;
  let done = 0;
  await synthesizeDatasets({
    outDir: dataDir, cases: casesPerTask, seed,
    ...(grid === undefined || grid === 'msd' ? { like: 'msd' as const } : { size: grid.size, spacing: grid.spacing, fitToGrid: grid.fitToGrid }),
    onProgress: (p) => log(`  synth ${++done}/${total} ${p.datasetName} case ${p.caseIndex} (${p.seconds.toFixed(1)} s)`),
  });
  // Written last: a collection interrupted half way is made again.
  await writeFileAtomic(marker, want + '\n');
  return (performance.now() - t0) / 1000;
}

function digestBatch(hash: ReturnType<typeof createHash>, b: Batch): void {
  hash.update(b.caseIds.join(','));
  hash.update(new Uint8Array(b.image.buffer, b.image.byteOffset, b.image.byteLength));
  hash.update(new Uint8Array(b.target.buffer, b.target.byteOffset, b.target.byteLength));
}

/** Times one worker count: warm-up batches (the first two also digested), then `batches` timed ones. */
async function timeSetting(summaries: CaseSummary[], workers: number, o: Required<Pick<LoaderBenchOptions, 'batches' | 'warmup' | 'batchSize' | 'cropSize' | 'augment' | 'seed'>> & Pick<LoaderBenchOptions, 'cropWorkerScript'>): Promise<LoaderSetting> {
  // The LRU is not used with cropSource 'files'; one slot keeps it honest if it were.
  const store = new CaseStore(summaries, { maxCases: 1 });
  const sampler = new StreamingBatchSampler(store, {
    batchSize: o.batchSize, cropSize: o.cropSize, seed: o.seed, augment: o.augment, workers, cropSource: 'files',
    // Enough batches in flight to keep every worker busy while this thread takes them.
    queue: Math.max(2, workers + 1), ...(o.cropWorkerScript ? { workerScript: o.cropWorkerScript } : {}),
  });
  const base = process.memoryUsage.rss();
  let peak = base;
  const sample = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()); }, 20);
  try {
    const hash = createHash('sha256');
    const digested = Math.min(2, o.warmup + o.batches);
    let drawn = 0;
    for (let b = 0; b < o.warmup; b++, drawn++) {
      const batch = await sampler.next();
      if (drawn < digested) digestBatch(hash, batch);
    }
    const bytes0 = sampler.bytesRead;
    const t0 = performance.now();
    for (let b = 0; b < o.batches; b++, drawn++) {
      const batch = await sampler.next();
      if (drawn < digested) digestBatch(hash, batch);
    }
    const seconds = (performance.now() - t0) / 1000;
    const crops = o.batches * o.batchSize;
    peak = Math.max(peak, process.memoryUsage.rss());
    // Batches built ahead were read too; per crop the average is close enough, and they are the same for any count.
    const readMBPerCrop = (sampler.bytesRead - bytes0) / crops / 1e6;
    return { workers, cropsPerS: crops / seconds, peakRssMB: peak / 1e6, baseRssMB: base / 1e6, readMBPerCrop, digest: hash.digest('hex').slice(0, 16) };
  } finally {
    clearInterval(sample);
    await sampler.close();
  }
}

/** The PyTorch DataLoader yardstick (bench/torch/dodnet_loader.py), or why it did not run. */
function findTorchScript(): string | null {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const root of [resolve(here, '..'), resolve(here, '../..')]) {
    const script = resolve(root, 'bench/torch/dodnet_loader.py');
    if (existsSync(script)) return script;
  }
  return null;
}

function runTorch(python: string, list: string, workers: number, o: { batches: number; batchSize: number; cropSize: DHW; seed: number }): TorchSetting | string {
  const script = findTorchScript();
  if (!script) return 'bench/torch/dodnet_loader.py is missing from the checkout';
  const args = [script, '--list', list, '--workers', String(workers), '--batch', String(o.batchSize), '--crop', ...o.cropSize.map(String), '--batches', String(o.batches), '--warmup', '1', '--seed', String(o.seed)];
  const run = spawnSync(python, args, { encoding: 'utf8', timeout: 30 * 60_000 });
  const line = (run.stdout ?? '').trim().split('\n').pop() ?? '';
  try {
    const r = JSON.parse(line) as { ok: boolean; reason?: string; cropsPerS: number; peakRssMB: number; peakWorkerRssMB: number };
    if (!r.ok) return r.reason ?? 'unknown reason';
    return { workers, cropsPerS: r.cropsPerS, peakRssMB: r.peakRssMB, peakWorkerRssMB: r.peakWorkerRssMB };
  } catch {
    return `${python} ${script} failed: exit ${run.status ?? 'signal'}; ${((run.stderr ?? '') || line).trim().split('\n').pop() ?? ''}`;
  }
}

function checkPositiveInteger(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new Error(`loader bench: ${name} is ${v}; expected a positive integer`);
}

export async function benchLoader(options: LoaderBenchOptions): Promise<LoaderBenchResult> {
  const o = { ...DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as typeof DEFAULTS & LoaderBenchOptions;
  const log = options.log ?? ((s: string) => console.log(s));
  for (const name of ['casesPerTask', 'batches', 'batchSize'] as const) checkPositiveInteger(name, o[name]);
  if (!Number.isInteger(o.warmup) || o.warmup < 0) throw new Error(`loader bench: warmup is ${o.warmup}; expected a non-negative integer`);
  const cores = availableParallelism();
  const workerCounts = [...new Set(options.workers ?? [1, 2, cores])].sort((a, b) => a - b);
  for (const w of workerCounts) checkPositiveInteger('a worker count', w);
  const dir = resolve(o.dir);
  const dataDir = join(dir, 'data');
  const cacheDir = join(dir, 'cache');
  await mkdir(dir, { recursive: true });

  const synthSeconds = await ensureCollection(dataDir, o.casesPerTask, options.grid, o.seed, log);
  const cases = await loadMsdCollection(dataDir, TASKS.map((t) => t.datasetName));
  if (cases.length !== o.casesPerTask * TASKS.length) throw new Error(`loader bench: ${dataDir} holds ${cases.length} cases; expected ${o.casesPerTask * TASKS.length}`);
  const t0 = performance.now();
  const summaries = await preprocessCollection(cases, cacheDir, {
    workers: options.preprocessWorkers ?? Math.max(1, cores - 1),
    ...(options.preprocessWorkerScript ? { workerScript: options.preprocessWorkerScript } : {}),
    onProgress: (p) => { if (!p.cached) log(`  preprocess ${p.done}/${p.total} ${p.id} (${p.seconds.toFixed(1)} s)`); },
  });
  const preprocessSeconds = (performance.now() - t0) / 1000;
  const cacheGB = summaries.reduce((n, s) => n + s.shape[0] * s.shape[1] * s.shape[2] * 5, 0) / 1e9;
  log(`loader: ${cases.length} cases (${cacheGB.toFixed(2)} GB preprocessed), batch ${o.batchSize}, crop ${o.cropSize.join('x')}, augment ${o.augment}, ${cores} cores`);

  const tgnet: LoaderSetting[] = [];
  for (const w of workerCounts) {
    const r = await timeSetting(summaries, w, { ...o, cropWorkerScript: options.cropWorkerScript });
    tgnet.push(r);
    log(`  tgnet workers=${w}: ${r.cropsPerS.toFixed(2)} crops/s, peak RSS ${r.peakRssMB.toFixed(0)} MB (${r.baseRssMB.toFixed(0)} MB before), ${r.readMBPerCrop.toFixed(1)} MB read per crop`);
  }
  const sameBatches = tgnet.every((r) => r.digest === tgnet[0].digest);

  let torch: LoaderBenchResult['torch'];
  const python = options.python ?? '/usr/bin/python3';
  const torchBatches = options.torchBatches ?? DEFAULTS.torchBatches;
  if (torchBatches === false) {
    torch = { skipped: 'not asked for' };
  } else if (spawnSync(python, ['-c', 'import torch, nibabel'], { stdio: 'ignore', timeout: 120_000 }).status !== 0) {
    torch = { skipped: `${python} -c "import torch, nibabel" failed (apt-get install python3-torch python3-nibabel)` };
  } else {
    const list = join(dir, 'torch-cases.json');
    await writeFileAtomic(list, JSON.stringify(cases.map((c) => ({ image: c.image, label: c.label, task: taskById(c.task).key }))) + '\n');
    const rows: TorchSetting[] = [];
    let skipped: string | null = null;
    for (const w of workerCounts) {
      const r = runTorch(python, list, w, { batches: torchBatches, batchSize: o.batchSize, cropSize: o.cropSize, seed: o.seed });
      if (typeof r === 'string') {
        skipped = r;
        break;
      }
      rows.push(r);
      log(`  pytorch (DoDNet's dataset) workers=${w}: ${r.cropsPerS.toFixed(2)} crops/s, peak RSS ${r.peakRssMB.toFixed(0)} MB main + ${r.peakWorkerRssMB.toFixed(0)} MB largest worker`);
    }
    torch = skipped !== null ? { skipped } : rows;
  }
  if (!Array.isArray(torch)) log(`  pytorch: skipped (${torch.skipped})`);

  const best = tgnet[tgnet.length - 1];
  const torchBest = Array.isArray(torch) ? torch.find((r) => r.workers === best.workers) : undefined;
  const ratio = torchBest ? best.cropsPerS / torchBest.cropsPerS : null;
  if (ratio !== null) log(`  tgnet / pytorch at ${best.workers} workers: ${ratio.toFixed(1)}x`);
  log(`  batches identical for every worker count: ${sameBatches ? 'yes' : 'NO'}`);
  const line = `loader-crops-per-s: workers=${best.workers} tgnet=${best.cropsPerS.toFixed(2)} pytorch_dodnet=${torchBest ? torchBest.cropsPerS.toFixed(2) : 'skipped'} crop=${o.cropSize.join('x')} batch=${o.batchSize} cores=${cores}`;
  log(line);
  return {
    cores, cpu: cpus()[0]?.model ?? 'unknown', cases: cases.length, cacheGB, synthSeconds, preprocessSeconds, batchSize: o.batchSize, cropSize: o.cropSize,
    augment: o.augment, tgnet, sameBatchesForAnyWorkerCount: sameBatches, torch, ratio, line,
  };
}
