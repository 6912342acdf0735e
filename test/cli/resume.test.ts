/**
 * Exact resume: a `tgnet train` run stopped after any checkpoint (in-process, and killed with SIGKILL from a child
 * process at a random moment, checkpoint writes included) and resumed with `--resume CKPT` alone ends with weights
 * and optimiser state byte-identical to the run that was never stopped, with any number of crop workers. Flags that contradict the checkpoint are
 * refused before any work.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { trainCommand } from '../../src/cli/train.js';
import { COLD_COMPILE_TIMEOUT_MS, useGpu } from '../helpers/gpu.js';
import { synthesizeDatasets } from '../../src/data/synth.js';
import { loadCheckpoint, type Checkpoint } from '../../src/tgnet/checkpoint.js';

/** A whole phantom body in a few voxels that claim CT-like sizes, so resampling to 1.5 x 0.8 x 0.8 mm stays cheap. */
const SMALL_BODY = { spacing: [0.8, 0.8, 2.5] as [number, number, number], fitToGrid: true };

// One GPU for the file: every command reuses it and its compiled pipelines (a cold compile is most of a run's time).
useGpu();
const dir = mkdtempSync(join(tmpdir(), 'tgnet-resume-'));
const data = join(dir, 'data');
const cache = join(dir, 'cache');
const STEPS = 6;
/** Tiny and quick on lavapipe; every step checkpoints so that any stop point can be resumed from. */
const flags = (out: string): string[] => [
  '--data', data, '--cache', cache, '--out', out, '--steps', String(STEPS), '--batch', '1', '--crop', '16', '16', '16',
  '--width', '2', '--seed', '5', '--checkpoint-every', '1', '--log-every', '2', '--val-every', '0', '--optimizer', 'adam', '--warmup', '2',
];

beforeAll(async () => {
  await synthesizeDatasets({ outDir: data, cases: 2, size: [16, 32, 32], seed: 1, tasks: [0, 4], ...SMALL_BODY });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

class Stop extends Error {}

/** Silences the command's output; `stopAt` throws out of the training loop right after that step's checkpoint. */
function quiet(stopAt?: number): void {
  const onLine = (text: string) => {
    if (stopAt !== undefined && text.includes(`checkpoint (step ${stopAt})`)) throw new Stop(`stopped after step ${stopAt}`);
  };
  vi.spyOn(console, 'log').mockImplementation((s: string) => onLine(String(s)));
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    onLine(String(chunk));
    return true;
  });
}

/** Every tensor of the file (weights and optimiser state) as bytes, by key. */
function stateBytes(c: Checkpoint): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  const add = (prefix: string, m: Map<string, Float32Array> | undefined) => {
    for (const [k, v] of m ?? []) out.set(prefix + k, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  };
  for (const [k, t] of c.model) out.set(`model.${k}`, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  add('momentum.', c.momentum);
  add('exp_avg.', c.expAvg);
  add('exp_avg_sq.', c.expAvgSq);
  return out;
}

function expectSameState(actual: Checkpoint, expected: Checkpoint): void {
  expect(actual.meta.step).toBe(expected.meta.step);
  const a = stateBytes(actual);
  const e = stateBytes(expected);
  expect([...a.keys()]).toEqual([...e.keys()]);
  const differing = [...e].filter(([k, v]) => Buffer.compare(Buffer.from(v), Buffer.from(a.get(k) as Uint8Array)) !== 0).map(([k]) => k);
  expect(differing).toEqual([]);
}

let straight: Checkpoint;

describe('tgnet train --resume (exact)', { timeout: COLD_COMPILE_TIMEOUT_MS }, () => {
  it('stopped after steps 2 and 4 and resumed with --resume alone, ends byte-identical to the straight run (whatever --workers each part had)', async () => {
    quiet();
    // Batches built on the main thread here, by the default crop workers and by two below: the same batches.
    await trainCommand([...flags(join(dir, 'straight')), '--workers', '0']);
    straight = await loadCheckpoint(join(dir, 'straight', 'checkpoint.safetensors'));
    expect(straight.meta).toMatchObject({ step: STEPS, batchSize: 1, logEvery: 2, checkpointEvery: 1, sampler: { batches: STEPS } });
    expect(straight.meta.run?.split?.train.length).toBeGreaterThan(0);

    const out = join(dir, 'stopped');
    const ckpt = join(out, 'checkpoint.safetensors');
    vi.restoreAllMocks();
    quiet(2);
    await expect(trainCommand(flags(out))).rejects.toThrow(Stop);
    // The previous checkpoint is kept beside the newest.
    expect((await loadCheckpoint(join(out, 'checkpoint.prev.safetensors'))).meta.step).toBe(1);
    vi.restoreAllMocks();
    quiet(4);
    await expect(trainCommand(['--resume', ckpt, '--workers', '2'])).rejects.toThrow(Stop);
    expect((await loadCheckpoint(ckpt)).meta.step).toBe(4);
    vi.restoreAllMocks();
    quiet();
    await trainCommand(['--resume', ckpt]);
    expectSameState(await loadCheckpoint(ckpt), straight);
    expect(readdirSync(out).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('refuses flags that contradict the checkpoint, and accepts those that cannot change the weights', async () => {
    const ckpt = join(dir, 'stopped', 'checkpoint.safetensors');
    quiet();
    for (const [flag, value, recorded] of [['--batch', '2', '1'], ['--seed', '6', '5'], ['--width', '4', '2'], ['--optimizer', 'sgd', 'adam'], ['--lr', '0.5', '0.001'], ['--warmup', '0', '2']]) {
      await expect(trainCommand(['--resume', ckpt, '--steps', '7', flag, value]))
        .rejects.toThrow(new RegExp(`${flag} ${value} contradicts the checkpoint .*checkpoint\\.safetensors, which was trained with ${flag} ${recorded.replace('.', '\\.')}; leave ${flag} out`));
    }
    await expect(trainCommand(['--resume', ckpt, '--crop', '32', '16', '16', '--steps', '7'])).rejects.toThrow(/--crop 32 16 16 contradicts .* --crop 16 16 16/);
    // The same values, and cadence/cache options, are fine: one more step, extending the run.
    await trainCommand(['--resume', ckpt, '--steps', '7', '--batch', '1', '--seed', '5', '--log-every', '1', '--checkpoint-every', '3', '--val-every', '0']);
    expect((await loadCheckpoint(ckpt)).meta).toMatchObject({ step: 7, totalSteps: 7, logEvery: 1, checkpointEvery: 3 });
  });

  it('a run killed with SIGKILL at random moments (checkpoint writes included) and resumed ends byte-identical', async () => {
    const out = join(dir, 'killed');
    const ckpt = join(out, 'checkpoint.safetensors');
    // Kill point: after the child has written its third checkpoint, wait a random 0-1.5 step times (measured
    // between its second and third checkpoints, so that it lands inside the run's last three steps on a slow or a
    // fast GPU: in a step, or in the middle of a checkpoint write) and SIGKILL it. Seeded so a failure can be replayed.
    let seed = 12345;
    const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const kills: { afterCheckpoint: number; delaySteps: number; resumedFrom: number }[] = [];
    let args = flags(out);
    // One child process (each compiles its pipelines afresh); the rest of the run resumes in this process.
    for (const afterCheckpoint of [3]) {
      const delaySteps = random() * 1.5;
      const resumedFrom = existsSync(ckpt) ? (await loadCheckpoint(ckpt)).meta.step : 0;
      const finished = await runCli(args, afterCheckpoint, delaySteps);
      if (finished) break;
      kills.push({ afterCheckpoint, delaySteps, resumedFrom });
      args = ['--resume', ckpt];
    }
    expect(kills.length).toBeGreaterThanOrEqual(1);
    quiet();
    if ((await loadCheckpoint(ckpt)).meta.step < STEPS) await trainCommand(['--resume', ckpt]);
    expectSameState(await loadCheckpoint(ckpt), straight);
  });
});

/**
 * Runs `tgnet train ARGS` in a child process (from the TypeScript sources) and SIGKILLs it `delaySteps` step
 * times (the time between its last two checkpoints) after it reports its `afterCheckpoint`-th checkpoint.
 * Resolves true when the run finished before the kill.
 */
function runCli(args: string[], afterCheckpoint: number, delaySteps: number): Promise<boolean> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [join('node_modules', 'vite-node', 'vite-node.mjs'), 'src/cli/main.ts', 'train', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const seenAt: number[] = [];
    let killed = false;
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      for (const _ of String(chunk).match(/checkpoint \(step \d+\)/g) ?? []) seenAt.push(performance.now());
      if (!killed && seenAt.length >= Math.max(2, afterCheckpoint)) {
        killed = true;
        const stepMs = seenAt[seenAt.length - 1] - seenAt[seenAt.length - 2];
        setTimeout(() => child.kill('SIGKILL'), delaySteps * stepMs);
      }
    });
    child.stderr.on('data', (chunk: Buffer) => { stderr += String(chunk); });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolvePromise(false);
      else if (code === 0) resolvePromise(true);
      else reject(new Error(`tgnet train ${args.join(' ')} exited with ${code}: ${stderr.slice(-2000)}`));
    });
  });
}
