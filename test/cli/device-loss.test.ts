/**
 * A GPU device lost in the middle of `tgnet train` or `tgnet predict` (simulated with device.destroy()) stops the
 * command with an error naming the phase and the step; the last checkpoint stays intact and nothing hangs.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { predictCommand } from '../../src/cli/predict.js';
import { trainCommand } from '../../src/cli/train.js';
import { loadMsdCollection } from '../../src/data/datasets.js';
import { COLD_COMPILE_TIMEOUT_MS } from '../helpers/gpu.js';
import { synthesizeDatasets } from '../../src/data/synth.js';
import { hasGpu, initGpu, type Gpu } from '../../src/kernels/runtime/gpu.js';
import { scopeDepth } from '../../src/autograd/scope.js';
import { loadCheckpoint } from '../../src/tgnet/checkpoint.js';

/** A whole phantom body in a few voxels that claim CT-like sizes, so resampling to 1.5 x 0.8 x 0.8 mm stays cheap. */
const SMALL_BODY = { spacing: [0.8, 0.8, 2.5] as [number, number, number], fitToGrid: true };

const dir = mkdtempSync(join(tmpdir(), 'tgnet-device-loss-'));
let gpu: Gpu | null = null;
afterEach(() => {
  vi.restoreAllMocks();
  gpu?.destroy();
  gpu = null;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Destroys the device as soon as the command prints a line matching `when`. */
function loseDeviceOn(when: RegExp): void {
  const onLine = (text: string) => {
    if (gpu && when.test(text)) gpu.device.destroy();
  };
  vi.spyOn(console, 'log').mockImplementation((s: string) => onLine(String(s)));
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    onLine(String(chunk));
    return true;
  });
}

describe('device loss', { timeout: COLD_COMPILE_TIMEOUT_MS }, () => {
  it('during training: an error naming the phase and step, the last checkpoint intact and loadable', async () => {
    const data = join(dir, 'data');
    await synthesizeDatasets({ outDir: data, cases: 2, size: [16, 32, 32], seed: 2, tasks: [0], ...SMALL_BODY });
    const out = join(dir, 'run');
    gpu = await initGpu();
    loseDeviceOn(/checkpoint \(step 2\)/);
    const run = trainCommand(['--data', data, '--cache', join(dir, 'cache'), '--out', out, '--steps', '6', '--batch', '1', '--crop', '16', '16', '16',
      '--width', '2', '--checkpoint-every', '1', '--log-every', '1', '--val-every', '0']);
    const ckpt = join(out, 'checkpoint.safetensors');
    await expect(run).rejects.toThrow(new RegExp(`Trainer: the GPU device was lost during .* of step 3 of 6 \\(.*GPU device lost.*\\); the last checkpoint, ${ckpt.replace(/[./]/g, '\\$&')} \\(step 2\\), is intact: resume from it`));
    const saved = await loadCheckpoint(ckpt);
    expect(saved.meta.step).toBe(2);
    expect([...saved.model.values()].every((t) => t.data.every(Number.isFinite))).toBe(true);
    // No scope left open for the next test.
    expect(scopeDepth()).toBe(0);
  });

  it('during prediction: an error naming the tile pass; no output written', async () => {
    const data = join(dir, 'data');
    const [c] = await loadMsdCollection(data, ['Task03_Liver']);
    const ckpt = join(dir, 'run', 'checkpoint.safetensors');
    gpu = await initGpu();
    loseDeviceOn(/tile passes/);
    const out = join(dir, 'mask.nii.gz');
    await expect(predictCommand(['--model', ckpt, '--input', c.image, '--task', 'liver', '--out', out, '--native-spacing', '--overlap', '0.75']))
      .rejects.toThrow(/tgnet predict: the GPU device was lost during (the sliding-window pass \(after tile pass \d+ of \d+\)|post-processing) \(.*GPU device lost.*\); .*mask\.nii\.gz was not written/);
    expect(existsSync(out)).toBe(false);
    expect(scopeDepth()).toBe(0);
  });

  it('leaves nothing behind: a fresh GPU works afterwards', async () => {
    expect(hasGpu()).toBe(false);
    gpu = await initGpu();
    const { Tensor } = await import('../../src/autograd/tensor.js');
    const t = Tensor.fromArray(new Float32Array([1, 2, 3]), [3]);
    expect([...(await t.toArray())]).toEqual([1, 2, 3]);
    t.dispose();
  });
});
