/**
 * Soak: many training steps of a tiny TGNet (with checkpoints) and then many `segmentCt` predictions in one
 * process, sampling live GPU buffers and bytes, live tensors and the JS heap as it goes. A long run that leaks
 * shows up as a count that climbs from one sample to the next; a healthy one is flat after the first sample.
 *
 *   npx vite-node bench/soak.ts [--steps 1000] [--predicts 200] [--every 100] [--json FILE]
 *   (node --expose-gc makes the heap figures exact; without it they include garbage not yet collected)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { liveTensorCount } from '../src/autograd/tensor.js';
import { generatePhantom, phantomTaskLabel } from '../src/data/phantom.js';
import { BatchSampler, type TrainingCase } from '../src/data/sampler.js';
import { segmentCt } from '../src/eval/pipeline.js';
import { getGpu, hasGpu, initGpu } from '../src/kernels/runtime/gpu.js';
import { TGNet } from '../src/tgnet/model.js';
import { Trainer } from '../src/tgnet/train.js';

export interface SoakOptions {
  steps: number;
  predicts: number;
  /** Sample every this many training steps (and prediction calls, scaled: every `every / 5` calls). */
  every: number;
  onSample?: (s: SoakSample) => void;
}

export interface SoakSample {
  phase: 'train' | 'predict';
  /** Training steps or prediction calls done. */
  at: number;
  liveBuffers: number;
  liveBytes: number;
  pooledBytes: number;
  tensors: number;
  heapMiB: number;
}

export interface SoakResult {
  samples: SoakSample[];
  /** Largest change of each count across the samples of a phase after its first (0 everywhere when flat). */
  drift: { phase: 'train' | 'predict'; liveBuffers: number; liveBytes: number; tensors: number; heapMiB: number }[];
  seconds: number;
}

const CROP: [number, number, number] = [16, 16, 16];

function phantomCase(seed: number, task: number): TrainingCase {
  const p = generatePhantom({ size: [16, 32, 32], seed });
  const image = Float32Array.from(p.hu, (v) => Math.max(-325, Math.min(325, v)) / 325);
  return { id: `phantom-${seed}-${task}`, task, image, label: phantomTaskLabel(p, task), shape: p.shape };
}

function sample(phase: SoakSample['phase'], at: number): SoakSample {
  (globalThis as { gc?: () => void }).gc?.();
  const s = getGpu().poolStats();
  return {
    phase, at, liveBuffers: s.liveBuffers, liveBytes: s.liveBytes, pooledBytes: s.pooledBytes, tensors: liveTensorCount(),
    heapMiB: process.memoryUsage().heapUsed / 2 ** 20,
  };
}

function drift(samples: SoakSample[], phase: SoakSample['phase']): SoakResult['drift'][number] {
  const own = samples.filter((s) => s.phase === phase);
  const spread = (k: 'liveBuffers' | 'liveBytes' | 'tensors' | 'heapMiB') => {
    const later = own.slice(1).map((s) => s[k]);
    return later.length ? Math.max(...later) - Math.min(...later) : 0;
  };
  return { phase, liveBuffers: spread('liveBuffers'), liveBytes: spread('liveBytes'), tensors: spread('tensors'), heapMiB: spread('heapMiB') };
}

/** Runs the soak on the current GPU (initialising one if none is). */
export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const ownGpu = !hasGpu();
  const gpu = ownGpu ? await initGpu() : getGpu();
  const dir = mkdtempSync(join(tmpdir(), 'tgnet-soak-'));
  const samples: SoakSample[] = [];
  const record = (s: SoakSample) => {
    samples.push(s);
    options.onSample?.(s);
  };
  const t0 = performance.now();
  const model = TGNet.create({ variant: 'tgnet', width: 2, seed: 1 });
  try {
    const cases = [phantomCase(1, 0), phantomCase(2, 0), phantomCase(3, 4)];
    const sampler = new BatchSampler(cases, { batchSize: 1, cropSize: CROP, seed: 7 });
    // Adam with warm-up; checkpoints at every sample so that saving is part of what must stay flat.
    const trainer = new Trainer({
      model, batches: sampler, totalSteps: options.steps, optimizer: 'adam', warmupSteps: Math.min(10, options.steps - 1), logEvery: 10,
      checkpointEvery: options.every, checkpointPath: join(dir, 'checkpoint.safetensors'), crop: CROP, batchSize: 1,
    });
    try {
      record(sample('train', 0));
      while (trainer.step < options.steps) {
        await trainer.trainStep();
        if (trainer.step % options.every === 0 || trainer.step === options.steps) record(sample('train', trainer.step));
      }
    } finally {
      trainer.dispose();
    }
    const p = generatePhantom({ size: [16, 32, 32], seed: 9 });
    const volume = { data: Float32Array.from(p.hu), shape: p.shape, spacing: p.spacing, affine: p.affine };
    const predictEvery = Math.max(1, Math.round(options.every / 5));
    record(sample('predict', 0));
    for (let i = 1; i <= options.predicts; i++) {
      await segmentCt(model, volume, i % 2 === 0 ? 0 : 4, { tileShape: CROP, overlap: 0.5, targetSpacingZYX: null });
      if (i % predictEvery === 0 || i === options.predicts) record(sample('predict', i));
    }
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
    if (ownGpu) gpu.destroy();
  }
  return { samples, drift: [drift(samples, 'train'), drift(samples, 'predict')], seconds: (performance.now() - t0) / 1000 };
}

function flag(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const n = Number(argv[i + 1]);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`soak: ${name} is ${JSON.stringify(argv[i + 1] ?? null)}; expected a positive integer`);
  return n;
}

async function main(argv: string[]): Promise<void> {
  const options: SoakOptions = {
    steps: flag(argv, '--steps', 1000), predicts: flag(argv, '--predicts', 200), every: flag(argv, '--every', 100),
    onSample: (s) => console.log(`${s.phase.padEnd(7)} ${String(s.at).padStart(5)}  buffers ${s.liveBuffers}  bytes ${s.liveBytes}  pooled ${s.pooledBytes}  tensors ${s.tensors}  heap ${s.heapMiB.toFixed(1)} MiB`),
  };
  const result = await runSoak(options);
  console.log(`done in ${result.seconds.toFixed(1)} s; drift after the first sample of each phase: ${JSON.stringify(result.drift)}`);
  const json = argv.indexOf('--json');
  if (json >= 0) writeFileSync(argv[json + 1], `${JSON.stringify(result, null, 2)}\n`);
}

// Run as a script: `node dist/bench/soak.js`, or `npx vite-node bench/soak.ts` (vite-node drops the script from
// argv, so any vite-node entry outside vitest counts).
const entry = process.argv[1] ?? '';
if (/soak\.[jt]s$/.test(entry) || (/vite-node/.test(entry) && !process.env.VITEST)) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(`soak: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  });
}
