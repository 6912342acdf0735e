/** The training loop: overfitting a fixed batch, flat GPU memory, loss readbacks only when due, NaN errors, exact resume. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { liveTensorCount } from '../../src/autograd/tensor.js';
import { polyLr, scheduledLr } from '../../src/nn/lr-schedule.js';
import { readSafetensorsFile, writeSafetensors } from '../../src/nn/safetensors.js';
import { decodeCheckpoint, encodeCheckpoint, loadCheckpoint } from '../../src/tgnet/checkpoint.js';
import { TGNet } from '../../src/tgnet/model.js';
import { train, Trainer, type BatchSource, type TrainingBatch, type TrainLogEvent } from '../../src/tgnet/train.js';
import { COLD_COMPILE_TIMEOUT_MS, useGpu } from '../helpers/gpu.js';
import { makeBatch } from '../helpers/training-batch.js';

const gpu = useGpu();
const dir = mkdtempSync(join(tmpdir(), 'tgnet-train-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const fixedSource = (batch: TrainingBatch): BatchSource => ({ next: () => batch });

/** Batch k of a deterministic stream, starting at `start` (a resumed run picks up where it left off). */
function streamSource(start: number): BatchSource & { served: number } {
  return { served: start, next() { return makeBatch(1000 + this.served++); } };
}

const tiny = (seed = 1) => TGNet.create({ variant: 'tgnet', width: 2, seed });

describe('Trainer', { timeout: COLD_COMPILE_TIMEOUT_MS }, () => {
  it('overfits a fixed batch, keeps GPU memory flat and reads the loss only on log steps', async () => {
    const model = tiny();
    const logs: TrainLogEvent[] = [];
    // lr0 0.1 (not the recipe's 0.01) so that ten steps overfit visibly.
    const trainer = new Trainer({ model, batches: fixedSource(makeBatch(1)), totalSteps: 10, lr0: 0.1, logEvery: 3, onLog: (e) => logs.push(e) });
    const read = vi.spyOn(gpu(), 'read');
    const reads: number[] = [];
    const memory: { liveBuffers: number; liveBytes: number; tensors: number }[] = [];
    const losses: (number | null)[] = [];
    for (let i = 0; i < 10; i++) {
      const before = read.mock.calls.length;
      const r = await trainer.trainStep();
      reads.push(read.mock.calls.length - before);
      losses.push(r.loss);
      expect(r.lr).toBeCloseTo(polyLr(0.1, i, 10), 12);
      const s = gpu().poolStats();
      memory.push({ liveBuffers: s.liveBuffers, liveBytes: s.liveBytes, tensors: liveTensorCount() });
    }
    read.mockRestore();
    // Steps 3, 6, 9 and the last are log steps: one readback each (the loss), none elsewhere.
    expect(reads).toEqual([0, 0, 1, 0, 0, 1, 0, 0, 1, 1]);
    expect(losses.map((l) => l !== null)).toEqual(reads.map((n) => n === 1));
    for (const m of memory.slice(1)) expect(m).toEqual(memory[0]);
    expect(logs.map((e) => e.step)).toEqual([3, 6, 9, 10]);
    for (const e of logs) {
      expect(e.stepsPerSecond).toBeGreaterThan(0);
      expect(e.lr).toBeCloseTo(polyLr(0.1, e.step - 1, 10), 12);
    }
    // Overfitting one batch: every loss read is below the one before, and it falls clearly (Dice + BCE, ~1.6 at first).
    const logged = logs.map((e) => e.loss);
    expect(logged.every(Number.isFinite)).toBe(true);
    for (let i = 1; i < logged.length; i++) expect(logged[i]).toBeLessThan(logged[i - 1]);
    expect(logged[3]).toBeLessThan(logged[0] - 0.15);
    await expect(trainer.trainStep()).rejects.toThrow(/run is complete \(10 of 10 steps\)/);
    trainer.dispose();
    model.dispose();
  });

  it('stops on a NaN loss with an error naming the step, the lr and where to look', async () => {
    const model = tiny();
    const good = makeBatch(2);
    const bad = { ...good, image: good.image.slice() };
    bad.image[123] = NaN;
    let k = 0;
    const trainer = new Trainer({ model, batches: { next: () => (k++ < 2 ? good : bad) }, totalSteps: 6, logEvery: 2 });
    expect((await trainer.trainStep()).loss).toBeNull();
    expect((await trainer.trainStep()).loss).toBeGreaterThan(0);
    await trainer.trainStep();
    const err = await trainer.trainStep().then(() => null, (e: Error) => e);
    // A GPU whose max(NaN, 0) is 0 keeps the loss finite with NaN weights; the parameter sum still catches it.
    expect(err?.message).toMatch(/(loss at step 4 of 6 \(lr 0\.005359\)|the sum of the model parameters after step 4 of 6 \(lr 0\.005359; loss [\d.]+\)) is NaN/);
    expect(err?.message).toMatch(/check the learning rate, the input volume and the target/);
    expect(err?.message).toMatch(/last finite loss was [\d.]+ at step 2, so it went wrong in steps 3-4/);
    trainer.dispose();
    model.dispose();
  });

  it('rejects bad options and malformed batches, naming the value and what was expected', async () => {
    const model = tiny();
    expect(() => new Trainer({ model, batches: fixedSource(makeBatch(3)), totalSteps: 0 })).toThrow(/totalSteps must be a positive integer, got 0/);
    expect(() => new Trainer({ model, batches: fixedSource(makeBatch(3)), totalSteps: 5, logEvery: 1.5 })).toThrow(/logEvery must be a positive integer, got 1.5/);
    const short = { ...makeBatch(3), target: new Float32Array(10) };
    const trainer = new Trainer({ model, batches: fixedSource(short), totalSteps: 5 });
    await expect(trainer.trainStep()).rejects.toThrow(/batch for step 1: target has 10 values; expected a Float32Array of N\*2\*D\*H\*W = 16384/);
    trainer.dispose();
    model.dispose();
  });

  it('resumes from a checkpoint to the same parameters as an uninterrupted run', async () => {
    const path = join(dir, 'resume', 'checkpoint.safetensors');
    // Uninterrupted: 3 steps, checkpointing after step 2.
    const a = tiny(5);
    const ta = new Trainer({ model: a, batches: streamSource(0), totalSteps: 4, logEvery: 10, checkpointEvery: 2, checkpointPath: path, seed: 5 });
    await ta.trainStep();
    const r2 = await ta.trainStep();
    expect(r2.checkpoint).toBe(path);
    expect(r2.loss).not.toBeNull();
    await ta.trainStep();
    const expected = await Promise.all(a.parameters().map((p) => p.toArray()));
    const expectedMomentum = (await ta.optimizer.exportState()).slots.momentum;

    // Interrupted: a fresh model with other initial weights, restored from step 2, then step 3.
    const b = tiny(99);
    const tb = new Trainer({ model: b, batches: streamSource(2), totalSteps: 4, logEvery: 10, seed: 5 });
    const ckpt = await tb.resume(path);
    expect(ckpt.meta).toMatchObject({ step: 2, totalSteps: 4, variant: 'tgnet', width: 2, numTasks: 7, crop: [16, 16, 16], seed: 5, lr0: 0.01 });
    expect(tb.step).toBe(2);
    expect(tb.optimizer.steps).toBe(2);
    expect(tb.lr).toBe(polyLr(0.01, 2, 4));
    await tb.trainStep();
    const got = await Promise.all(b.parameters().map((p) => p.toArray()));
    const gotMomentum = (await tb.optimizer.exportState()).slots.momentum;
    got.forEach((g, i) => expect(g).toEqual(expected[i]));
    gotMomentum.forEach((m, i) => expect(m).toEqual(expectedMomentum[i]));

    // The end-of-run checkpoint records the final step.
    await ta.trainStep();
    expect((await loadCheckpoint(path)).meta.step).toBe(4);
    for (const t of [ta, tb]) t.dispose();
    for (const m of [a, b]) m.dispose();
  });

  it('refuses a checkpoint of another architecture before changing anything', async () => {
    const path = join(dir, 'arch', 'checkpoint.safetensors');
    const model = tiny(7);
    const result = await train({ model, batches: fixedSource(makeBatch(4)), totalSteps: 1, checkpointPath: path });
    expect(result).toMatchObject({ step: 1, checkpointPath: path });
    expect(result.losses.map((l) => l.step)).toEqual([1]);
    const other = TGNet.create({ variant: 'dodnet', width: 2 });
    const before = await other.parameters()[0].toArray();
    const t = new Trainer({ model: other, batches: fixedSource(makeBatch(4)), totalSteps: 2 });
    await expect(t.resume(path)).rejects.toThrow(new RegExp(`checkpoint ${path.replace(/[.\\/]/g, '\\$&')}: metadata field 'variant' is "tgnet" but the model has "dodnet"`));
    expect(await other.parameters()[0].toArray()).toEqual(before);
    expect(t.step).toBe(0);
    t.dispose();
    for (const m of [model, other]) m.dispose();
  });

  it('Adam with warm-up: lowers the loss of a fixed batch, and the log reports the warm-up lr', async () => {
    const model = tiny(3);
    const logs: TrainLogEvent[] = [];
    const trainer = new Trainer({
      model, batches: fixedSource(makeBatch(1)), totalSteps: 8, optimizer: 'adam', lr0: 3e-2, warmupSteps: 2, logEvery: 1,
      onLog: (e) => logs.push(e),
    });
    expect(trainer.optimizer.kind).toBe('adam');
    await trainer.run();
    expect(logs.map((e) => e.lr)).toEqual(Array.from({ length: 8 }, (_, s) => scheduledLr(3e-2, s, 8, { warmupSteps: 2 })));
    expect(logs[0].lr).toBeCloseTo(1e-2, 12);
    expect(logs[2].lr).toBe(3e-2);
    const losses = logs.map((e) => e.loss);
    expect(losses.every(Number.isFinite)).toBe(true);
    // Generous: on this batch Adam at 3e-2 takes the loss from ~1.6 to ~1.2 in eight steps (lavapipe).
    expect(Math.min(...losses.slice(-3))).toBeLessThan(losses[0] - 0.1);
    trainer.dispose();
    model.dispose();
  });

  for (const optimizer of ['adam', 'adamw'] as const) {
    it(`${optimizer}: k steps, save, restore into a fresh trainer, N-k more = N straight steps, byte for byte`, async () => {
      const path = join(dir, `resume-${optimizer}`, 'checkpoint.safetensors');
      const options = { totalSteps: 4, optimizer, lr0: 2e-3, warmupSteps: 2, betas: [0.9, 0.99] as const, eps: 1e-6, weightDecay: 1e-2, logEvery: 10, seed: 5 };
      const a = tiny(5);
      const ta = new Trainer({ model: a, batches: streamSource(0), ...options });
      await ta.trainStep();
      await ta.trainStep();
      await ta.save(path);
      await ta.trainStep();
      await ta.trainStep();
      const expected = await Promise.all(a.parameters().map((p) => p.toArray()));
      const expectedState = await ta.optimizer.exportState();

      const saved = await loadCheckpoint(path);
      expect(saved.meta).toMatchObject({ step: 2, optimizer, warmupSteps: 2, betas: [0.9, 0.99], eps: 1e-6, weightDecay: 1e-2 });
      expect(saved.momentum).toBeUndefined();
      const b = tiny(99);
      const tb = new Trainer({ model: b, batches: streamSource(2), ...options });
      await tb.resume(path);
      expect(tb.step).toBe(2);
      expect(tb.optimizer.steps).toBe(2);
      expect(tb.lr).toBe(scheduledLr(2e-3, 2, 4, { warmupSteps: 2 }));
      await tb.trainStep();
      await tb.trainStep();
      const got = await Promise.all(b.parameters().map((p) => p.toArray()));
      const gotState = await tb.optimizer.exportState();
      got.forEach((g, i) => expect(g).toEqual(expected[i]));
      expect(gotState.steps).toBe(4);
      for (const slot of ['expAvg', 'expAvgSq']) {
        expect(gotState.slots[slot].length).toBe(expected.length);
        gotState.slots[slot].forEach((m, i) => expect(m).toEqual(expectedState.slots[slot][i]));
      }
      for (const t of [ta, tb]) t.dispose();
      for (const m of [a, b]) m.dispose();
    });
  }

  it('refuses a checkpoint of another optimizer before changing anything; an SGD checkpoint from before Adam still resumes', async () => {
    const path = join(dir, 'optim', 'checkpoint.safetensors');
    const model = tiny(8);
    await train({ model, batches: fixedSource(makeBatch(4)), totalSteps: 1, checkpointPath: path });
    const other = tiny(9);
    const before = await other.parameters()[0].toArray();
    const adam = new Trainer({ model: other, batches: fixedSource(makeBatch(4)), totalSteps: 3, optimizer: 'adam' });
    await expect(adam.resume(path)).rejects.toThrow(new RegExp(`checkpoint ${path.replace(/[.\\/]/g, '\\$&')}: metadata field 'optimizer' is "sgd" but this trainer uses "adam"`));
    expect(await other.parameters()[0].toArray()).toEqual(before);
    expect(adam.step).toBe(0);
    adam.dispose();

    // The same file as written before the optimizer and warmupSteps fields existed.
    const file = readSafetensorsFile(encodeCheckpoint(await loadCheckpoint(path)));
    const meta = { ...file.metadata };
    delete meta.optimizer;
    delete meta.warmupSteps;
    const old = decodeCheckpoint(writeSafetensors(file.tensors, meta), 'old.safetensors');
    const sgd = new Trainer({ model: other, batches: fixedSource(makeBatch(4)), totalSteps: 3 });
    sgd.restore(old, 'old.safetensors');
    expect(sgd.step).toBe(1);
    expect(await other.parameters()[0].toArray()).toEqual(await model.parameters()[0].toArray());
    const momentum = (await sgd.optimizer.exportState()).slots.momentum;
    model.namedParameters().forEach(([name], i) => expect(momentum[i]).toEqual(old.momentum?.get(name)));
    await sgd.trainStep();
    expect(() => new Trainer({ model: other, batches: fixedSource(makeBatch(4)), totalSteps: 3, warmupSteps: 3 }))
      .toThrow(/warmupSteps must be an integer in \[0, totalSteps\) = \[0, 3\), got 3/);
    expect(() => new Trainer({ model: other, batches: fixedSource(makeBatch(4)), totalSteps: 3, optimizer: 'lamb' as 'adam' }))
      .toThrow(/optimizer must be one of sgd, adam, adamw, got "lamb"/);
    sgd.dispose();
    for (const m of [model, other]) m.dispose();
  });
});
