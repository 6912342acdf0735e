/** `tgnet train` end to end on a tiny synthesised collection, resume, and argument errors. */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { captureOutput } from '../helpers/capture-output.js';
import { parseTrainArgs, trainCommand } from '../../src/cli/train.js';
import { COLD_COMPILE_TIMEOUT_MS, useGpu } from '../helpers/gpu.js';
import { synthesizeDatasets } from '../../src/data/synth.js';
import { loadCheckpoint } from '../../src/tgnet/checkpoint.js';
import { supportsF16 } from '../../src/kernels/runtime/precision.js';

/** A whole phantom body in a few voxels that claim CT-like sizes, so resampling to 1.5 x 0.8 x 0.8 mm stays cheap. */
const SMALL_BODY = { spacing: [0.8, 0.8, 2.5] as [number, number, number], fitToGrid: true };

// One GPU for the file: every command reuses it and its compiled pipelines (a cold compile is most of a run's time).
const gpu = useGpu();
const dir = mkdtempSync(join(tmpdir(), 'tgnet-cli-train-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());


describe('tgnet train', { timeout: COLD_COMPILE_TIMEOUT_MS }, () => {
  it('trains on a synthesised collection, writes a loadable checkpoint, and resumes from it', async () => {
    const data = join(dir, 'data');
    // Liver (organ + tumour) and colon (tumour only): both kinds of partial labels.
    await synthesizeDatasets({ outDir: data, cases: 2, size: [16, 32, 32], seed: 1, tasks: [0, 4], ...SMALL_BODY });
    const out = join(dir, 'run');
    const common = ['--data', data, '--crop', '16', '16', '16', '--width', '2', '--batch', '2', '--cache', join(dir, 'cache'), '--seed', '3'];
    const lines = captureOutput();
    await trainCommand([...common, '--out', out, '--steps', '3', '--log-every', '1']);

    const text = lines.join('\n');
    expect(text).toMatch(/data: 4 cases of 2 tasks in .*; 2 train \/ 2 val \(split written to .*split\.json\)/);
    expect(text).toMatch(/a real run uses --width 32 --crop 64 192 192/);
    // Plain progress lines (not a TTY): every step of this 3-step run, with loss, lr and, at the end, validation Dice.
    const steps = lines.filter((l) => /^train {2}[123]\/3 \( *\d+%\) {2}loss [\d.]+ \(ema [\d.]+\) {2}lr [\d.e+-]+/.test(l));
    expect(steps.length).toBe(3);
    expect(steps[2]).toMatch(/val Dice [\d.]+/);
    expect(text).not.toContain('\r');
    expect(text).toContain(`checkpoint (step 3) -> ${join(out, 'checkpoint.safetensors')}`);
    expect(readdirSync(out).sort()).toEqual(['checkpoint.safetensors', 'config.json', 'curves.svg', 'log.jsonl', 'split.json']);
    const log = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; loss?: number; val?: { mean: number } });
    expect(log.filter((r) => r.loss !== undefined).map((r) => r.step)).toEqual([1, 2, 3]);
    expect(log.filter((r) => r.val).map((r) => r.step)).toEqual([3]);
    expect(log.every((r) => r.loss === undefined || Number.isFinite(r.loss))).toBe(true);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ variant: 'tgnet', width: 2, crop: [16, 16, 16], steps: 3, optimizer: 'sgd', lr: 0.01, seed: 3 });
    const svg = readFileSync(join(out, 'curves.svg'), 'utf8');
    expect(svg).toContain('Training loss');
    expect(svg).toContain('Validation Dice');
    const split = JSON.parse(readFileSync(join(out, 'split.json'), 'utf8')) as { train: string[]; val: string[] };
    expect(split.train.length + split.val.length).toBe(4);

    const ckpt = await loadCheckpoint(join(out, 'checkpoint.safetensors'));
    expect(ckpt.meta).toMatchObject({ variant: 'tgnet', width: 2, numTasks: 7, crop: [16, 16, 16], step: 3, totalSteps: 3, lr0: 0.01, seed: 3 });
    expect(ckpt.model.size).toBeGreaterThan(100);
    expect([...ckpt.model.values()].every((t) => t.data.every(Number.isFinite))).toBe(true);

    // Resume: settings come from the checkpoint, the run folder (and its split) from the checkpoint's path.
    lines.length = 0;
    await trainCommand(['--data', data, '--cache', join(dir, 'cache'), '--resume', join(out, 'checkpoint.safetensors'), '--steps', '4']);
    expect(lines.join('\n')).toMatch(/split read from .*split\.json/);
    expect(lines.join('\n')).toMatch(/resumed from .* at step 3/);
    expect(lines.some((l) => l.startsWith('train  4/4'))).toBe(true);
    // The resumed run appends to the same log.
    const resumedLog = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; loss?: number });
    expect(resumedLog.filter((r) => r.loss !== undefined).map((r) => r.step)).toEqual([1, 2, 3, 4]);
    expect((await loadCheckpoint(join(out, 'checkpoint.safetensors'))).meta).toMatchObject({ step: 4, totalSteps: 4, width: 2, seed: 3 });
    await expect(trainCommand(['--data', data, '--cache', join(dir, 'cache'), '--resume', join(out, 'checkpoint.safetensors')]))
      .rejects.toThrow(/is at step 4, which already reaches --steps 4; pass a larger --steps/);
  });

  it('--precision f16 trains in mixed precision, logs the loss scale, records it and resumes only in f16', async () => {
    const data = join(dir, 'data-amp');
    await synthesizeDatasets({ outDir: data, cases: 2, size: [16, 32, 32], seed: 2, tasks: [0, 4], ...SMALL_BODY });
    const out = join(dir, 'run-amp');
    const common = ['--data', data, '--crop', '16', '16', '16', '--width', '2', '--batch', '2', '--cache', join(dir, 'cache-amp'), '--seed', '1'];
    if (!supportsF16(gpu())) {
      await expect(trainCommand([...common, '--out', out, '--steps', '2', '--precision', 'f16'])).rejects.toThrow(/--precision: dtype 'f16' needs the WebGPU feature 'shader-f16'/);
      return;
    }
    const lines = captureOutput();
    await trainCommand([...common, '--out', out, '--steps', '2', '--log-every', '1', '--precision', 'f16', '--tumour-fraction', '0.5']);
    expect(lines.filter((l) => /^train {2}[12]\/2 .*scale 65536 {2}skipped 0/.test(l)).length).toBe(2);
    const log = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss?: number; lossScale?: number; skippedSteps?: number });
    expect(log.filter((r) => r.loss !== undefined).every((r) => Number.isFinite(r.loss) && r.lossScale === 65536 && r.skippedSteps === 0)).toBe(true);
    const ckpt = join(out, 'checkpoint.safetensors');
    expect((await loadCheckpoint(ckpt)).meta).toMatchObject({ precision: 'f16', lossScaler: { scale: 65536, growthTracker: 2, skippedSteps: 0 }, run: { tumourFraction: 0.5 } });
    await expect(trainCommand(['--data', data, '--cache', join(dir, 'cache-amp'), '--resume', ckpt, '--steps', '3', '--tumour-fraction', '0']))
      .rejects.toThrow(/--tumour-fraction 0 contradicts the checkpoint .*, which was trained with --tumour-fraction 0.5/);
    expect(() => parseTrainArgs(['--tumour-fraction', '1.5'])).toThrow(/--tumour-fraction is "1.5"; expected a share in \[0, 1\]/);
    await expect(trainCommand(['--data', data, '--cache', join(dir, 'cache-amp'), '--resume', ckpt, '--steps', '3', '--precision', 'f32']))
      .rejects.toThrow(/--precision f32 contradicts the checkpoint .*, which was trained with --precision f16/);
    await trainCommand(['--data', data, '--cache', join(dir, 'cache-amp'), '--resume', ckpt, '--steps', '3']);
    expect((await loadCheckpoint(ckpt)).meta).toMatchObject({ step: 3, precision: 'f16', lossScaler: { growthTracker: 3 } });
    expect(() => parseTrainArgs(['--precision', 'bf16'])).toThrow(/--precision is "bf16"; expected one of f32, f16/);
  });

  it('explains a missing data folder, a folder without datasets and bad numbers', async () => {
    await expect(trainCommand(['--data', join(dir, 'missing')])).rejects.toThrow(/--data .*missing is not a folder; expected a folder of MSD task folders/);
    const empty = join(dir, 'empty');
    mkdirSync(join(empty, 'notes'), { recursive: true });
    await expect(trainCommand(['--data', empty, '--out', join(dir, 'run-empty')])).rejects.toThrow(/no datasets found in .*empty: expected subfolders with a dataset.json/);
    expect(existsSync(join(dir, 'run-empty'))).toBe(false);
    expect(() => parseTrainArgs(['--steps', 'ten'])).toThrow(/--steps is "ten"; expected an integer >= 1/);
    expect(() => parseTrainArgs(['--crop', '16', '20', '16'])).toThrow(/--crop H is 20; expected a positive multiple of 16/);
    expect(() => parseTrainArgs(['--lr', '-1'])).toThrow(/--lr is "-1"; expected a finite number >= 0/);
    expect(() => parseTrainArgs(['--variant', 'unet'])).toThrow(/--variant is "unet"; expected one of tgnet, tgnet-a, dodnet, spatial, serial, parallel/);
    expect(() => parseTrainArgs(['--bogus'])).toThrow(/unknown argument "--bogus"/);
    expect(() => parseTrainArgs(['--optimizer', 'lion'])).toThrow(/--optimizer is "lion"; expected one of sgd, adam, adamw/);
    expect(() => parseTrainArgs(['--warmup', '-2'])).toThrow(/--warmup is "-2"; expected an integer >= 0/);
    expect(parseTrainArgs(['--optimizer', 'adam', '--warmup', '5', '--val-every', '0'])).toMatchObject({ optimizer: 'adam', warmup: 5, valEvery: 0 });
    expect(parseTrainArgs([]).cacheCases).toBe(16);
    expect(parseTrainArgs(['--cache-cases', '3']).cacheCases).toBe(3);
    expect(() => parseTrainArgs(['--cache-cases', '0'])).toThrow(/--cache-cases is "0"; expected an integer >= 1/);
    expect(parseTrainArgs([]).workers).toBeNull();
    expect(parseTrainArgs(['--workers', '0']).workers).toBe(0);
    expect(() => parseTrainArgs(['--workers', '-1'])).toThrow(/--workers is "-1"; expected an integer >= 0/);
    await expect(trainCommand(['--resume', join(dir, 'none.safetensors')])).rejects.toThrow(/none\.safetensors: file not found/);
  });
});
