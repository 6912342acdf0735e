/** Checkpoint files: the layout, atomic writes, and errors that name the file and the field. No GPU needed. */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSafetensorsFile, writeSafetensors, type SafeTensorInput } from '../../src/nn/safetensors.js';
import {
  checkCheckpointFits, decodeCheckpoint, encodeCheckpoint, loadCheckpoint, previousCheckpointPath, saveCheckpoint, type Checkpoint, type CheckpointTarget,
} from '../../src/tgnet/checkpoint.js';
import { randomArray } from '../helpers/gpu.js';

const dir = mkdtempSync(join(tmpdir(), 'tgnet-ckpt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SHAPES: [string, number[]][] = [['conv1.weight', [2, 1, 3, 3, 3]], ['enc.0.0.gn1.weight', [2]], ['controller.bias', [162]]];

function sample(step = 3, seed = 1): Checkpoint {
  return {
    meta: {
      variant: 'tgnet', width: 2, numTasks: 7, crop: [16, 32, 32], step, totalSteps: 10, lr0: 0.01, momentum: 0.99,
      nesterov: true, weightDecay: 3e-5, polyPower: 0.9, seed: 4,
    },
    model: new Map(SHAPES.map(([n, s], i) => [n, { shape: s, data: randomArray(s.reduce((a, b) => a * b, 1), seed + i) }])),
    momentum: new Map(SHAPES.map(([n, s], i) => [n, randomArray(s.reduce((a, b) => a * b, 1), seed + 10 + i)])),
  };
}

const target: CheckpointTarget = {
  variant: 'tgnet', width: 2, numTasks: 7,
  namedParameters: () => SHAPES.map(([n, shape]) => [n, { shape }]),
};

/** Re-encodes a checkpoint's safetensors with edited tensors or metadata. */
function edit(bytes: Uint8Array, change: (tensors: Map<string, SafeTensorInput>, meta: Record<string, string>) => void): Uint8Array {
  const file = readSafetensorsFile(bytes);
  const tensors = new Map<string, SafeTensorInput>(file.tensors);
  const meta = { ...file.metadata };
  change(tensors, meta);
  return writeSafetensors(tensors, meta);
}

describe('checkpoint format', () => {
  it('round-trips weights, momentum and metadata bit for bit, in the documented layout', () => {
    const c = sample();
    const bytes = encodeCheckpoint(c);
    const file = readSafetensorsFile(bytes);
    expect([...file.tensors.keys()]).toEqual([...SHAPES.map(([n]) => `model.${n}`), ...SHAPES.map(([n]) => `optim.momentum.${n}`)]);
    expect(file.metadata).toMatchObject({
      format: 'tgnet-checkpoint', formatVersion: '1', variant: 'tgnet', width: '2', numTasks: '7', crop: '[16,32,32]',
      step: '3', totalSteps: '10', lr0: '0.01', nesterov: 'true', seed: '4', optimizer: 'sgd', warmupSteps: '0',
    });
    expect(file.metadata.betas).toBeUndefined();
    const back = decodeCheckpoint(bytes, 'x.safetensors');
    expect(back.meta).toEqual({ ...c.meta, optimizer: 'sgd', warmupSteps: 0 });
    expect(back.expAvg).toBeUndefined();
    for (const [n, t] of c.model) {
      expect(back.model.get(n)).toEqual(t);
      expect(back.momentum?.get(n)).toEqual(c.momentum?.get(n));
    }
    expect(() => checkCheckpointFits(back, target, 'x.safetensors')).not.toThrow();
  });

  it('names the file and the field for a wrong version, missing or mis-shaped tensors and bad metadata', () => {
    const bytes = encodeCheckpoint(sample());
    const src = 'runs/a/checkpoint.safetensors';
    expect(() => decodeCheckpoint(edit(bytes, (_, m) => { m.formatVersion = '2'; }), src))
      .toThrow(`checkpoint ${src}: metadata field 'formatVersion' is 2; this build reads version 1`);
    expect(() => decodeCheckpoint(edit(bytes, (_, m) => { m.format = 'something-else'; }), src))
      .toThrow(/metadata field 'format' is "something-else"; expected "tgnet-checkpoint"/);
    expect(() => decodeCheckpoint(edit(bytes, (_, m) => { delete m.step; }), src))
      .toThrow(`checkpoint ${src}: metadata field 'step' is missing`);
    expect(() => decodeCheckpoint(edit(bytes, (_, m) => { m.crop = '[16,32]'; }), src))
      .toThrow(/metadata field 'crop' is \[16,32\]; expected \[D, H, W\] of positive integers/);
    expect(() => decodeCheckpoint(edit(bytes, (t) => { t.delete('optim.momentum.enc.0.0.gn1.weight'); }), src))
      .toThrow(`checkpoint ${src}: tensor 'optim.momentum.enc.0.0.gn1.weight' is missing; optimizer sgd stores momentum for every model tensor`);
    expect(() => decodeCheckpoint(edit(bytes, (t) => {
      t.set('optim.momentum.controller.bias', { shape: [2, 81], data: new Float32Array(162) });
    }), src)).toThrow(/tensor 'optim.momentum.controller.bias' has shape \[2, 81\]; expected \[162\]/);
    expect(() => decodeCheckpoint(edit(bytes, (t) => {
      t.set('model.conv1.weight', { shape: [54], data: new Float64Array(54) });
    }), src)).toThrow(/tensor 'model.conv1.weight' has dtype F64; expected F32/);
    expect(() => decodeCheckpoint(writeSafetensors({ w: { shape: [1], data: new Float32Array(1) } }), src))
      .toThrow(/metadata field 'format' is missing/);

    // Against a model: architecture fields first, then each tensor's presence and shape.
    const c = decodeCheckpoint(bytes, src);
    expect(() => checkCheckpointFits(c, { ...target, width: 4 }, src))
      .toThrow(`checkpoint ${src}: metadata field 'width' is 2 but the model has 4`);
    const wider: CheckpointTarget = { ...target, namedParameters: () => [['conv1.weight', { shape: [4, 1, 3, 3, 3] }]] };
    expect(() => checkCheckpointFits(c, wider, src))
      .toThrow(`checkpoint ${src}: tensor 'model.conv1.weight' has shape [2, 1, 3, 3, 3]; the model expects [4, 1, 3, 3, 3]`);
    const more: CheckpointTarget = { ...target, namedParameters: () => [...target.namedParameters(), ['precls.conv.bias', { shape: [8] }]] };
    expect(() => checkCheckpointFits(c, more, src)).toThrow(/tensor 'model.precls.conv.bias' is missing; the model needs it with shape \[8\]/);
    expect(() => encodeCheckpoint({ ...sample(), meta: { ...sample().meta, step: -1 } })).toThrow(/meta.step is -1; expected a non-negative integer/);
  });
});

/** An AdamW checkpoint of the same tensors: both moments instead of momentum, betas, eps and the warm-up. */
function adamSample(): Checkpoint {
  const { meta, model } = sample();
  const state = (seed: number) => new Map(SHAPES.map(([n, s], i) => [n, randomArray(s.reduce((a, b) => a * b, 1), seed + i, 0, 1)]));
  return { meta: { ...meta, optimizer: 'adamw', warmupSteps: 5, betas: [0.9, 0.99], eps: 1e-6 }, model, expAvg: state(20), expAvgSq: state(30) };
}

describe('optimizer state in checkpoints', () => {
  it('an Adam/AdamW checkpoint stores both moments and its hyper-parameters, and round-trips bit for bit', () => {
    const c = adamSample();
    const bytes = encodeCheckpoint(c);
    const file = readSafetensorsFile(bytes);
    expect([...file.tensors.keys()]).toEqual([
      ...SHAPES.map(([n]) => `model.${n}`), ...SHAPES.map(([n]) => `optim.exp_avg.${n}`), ...SHAPES.map(([n]) => `optim.exp_avg_sq.${n}`),
    ]);
    expect(file.metadata).toMatchObject({ optimizer: 'adamw', warmupSteps: '5', betas: '[0.9,0.99]', eps: '0.000001' });
    const back = decodeCheckpoint(bytes, 'a.safetensors');
    expect(back.meta).toEqual(c.meta);
    expect(back.momentum).toBeUndefined();
    for (const n of c.model.keys()) {
      expect(back.expAvg?.get(n)).toEqual(c.expAvg?.get(n));
      expect(back.expAvgSq?.get(n)).toEqual(c.expAvgSq?.get(n));
    }
  });

  it('a checkpoint written before Adam (no optimizer or warmupSteps metadata) loads as SGD without warm-up', () => {
    const c = sample();
    const old = edit(encodeCheckpoint(c), (_, m) => { delete m.optimizer; delete m.warmupSteps; });
    expect(readSafetensorsFile(old).metadata.optimizer).toBeUndefined();
    const back = decodeCheckpoint(old, 'old.safetensors');
    expect(back.meta).toEqual({ ...c.meta, optimizer: 'sgd', warmupSteps: 0 });
    for (const n of c.model.keys()) expect(back.momentum?.get(n)).toEqual(c.momentum?.get(n));
  });

  it('refuses state that does not belong to the optimizer, and missing Adam metadata, naming the field', () => {
    const src = 'runs/b/checkpoint.safetensors';
    const bytes = encodeCheckpoint(adamSample());
    expect(() => decodeCheckpoint(edit(bytes, (_, m) => { delete m.eps; }), src))
      .toThrow(`checkpoint ${src}: metadata field 'eps' is missing`);
    expect(() => decodeCheckpoint(edit(bytes, (_, m) => { m.betas = '[0.9,1]'; }), src))
      .toThrow(/metadata field 'betas' is \[0.9,1\]; expected \[beta1, beta2\], each in \[0, 1\)/);
    expect(() => decodeCheckpoint(edit(bytes, (_, m) => { m.optimizer = 'rmsprop'; }), src))
      .toThrow(/metadata field 'optimizer' is "rmsprop"; expected one of sgd, adam, adamw/);
    expect(() => decodeCheckpoint(edit(bytes, (t) => { t.delete('optim.exp_avg_sq.controller.bias'); }), src))
      .toThrow(`checkpoint ${src}: tensor 'optim.exp_avg_sq.controller.bias' is missing; optimizer adamw stores expAvgSq for every model tensor`);
    // SGD metadata over Adam tensors: the file is inconsistent, not silently half-loaded.
    expect(() => decodeCheckpoint(edit(bytes, (_, m) => { m.optimizer = 'sgd'; }), src))
      .toThrow(/tensor 'optim.exp_avg.conv1.weight' is not state of optimizer sgd \(metadata field 'optimizer'\), which stores 'optim.momentum.<name>'/);
    expect(() => encodeCheckpoint({ ...adamSample(), expAvgSq: undefined })).toThrow(/no expAvgSq state; optimizer adamw needs one buffer per model tensor/);
    expect(() => encodeCheckpoint({ ...adamSample(), momentum: sample().momentum })).toThrow(/holds momentum state, which optimizer adamw does not have/);
    expect(() => encodeCheckpoint({ ...adamSample(), meta: { ...adamSample().meta, eps: undefined } })).toThrow(/meta.eps is undefined; expected a finite number > 0 for optimizer adamw/);
  });
});

describe('checkpoint files', () => {
  it('saves through a temporary file that is renamed, keeping the one it replaces as checkpoint.prev', async () => {
    const path = join(dir, 'run1', 'checkpoint.safetensors');
    await saveCheckpoint(path, sample(3));
    expect(readdirSync(join(dir, 'run1'))).toEqual(['checkpoint.safetensors']);
    // A temporary file left by a process killed mid-write is cleaned up by the next save.
    writeFileSync(`${path}.tmp-999999-0`, 'half a checkpoint');
    await saveCheckpoint(path, sample(5, 7));
    expect(readdirSync(join(dir, 'run1')).sort()).toEqual(['checkpoint.prev.safetensors', 'checkpoint.safetensors']);
    const back = await loadCheckpoint(path);
    expect(back.meta.step).toBe(5);
    expect(back.model.get('conv1.weight')?.data).toEqual(sample(5, 7).model.get('conv1.weight')?.data);
    expect((await loadCheckpoint(previousCheckpointPath(path))).meta.step).toBe(3);
    await saveCheckpoint(path, sample(6, 7));
    expect((await loadCheckpoint(previousCheckpointPath(path))).meta.step).toBe(5);
    expect(previousCheckpointPath('/r/model.safetensors')).toBe('/r/model.prev.safetensors');
  });

  it('round-trips the exact-resume fields and refuses malformed ones naming the field', () => {
    const c = sample(3);
    c.meta = {
      ...c.meta, batchSize: 2, logEvery: 4, checkpointEvery: 1, sampler: { batches: 3, state: -123456 },
      run: { data: '/data', split: { train: ['a', 'b'], val: ['c'] }, valEvery: 12, cache: '/cache' },
    };
    expect(decodeCheckpoint(encodeCheckpoint(c)).meta).toEqual({ ...c.meta, optimizer: 'sgd', warmupSteps: 0 });
    // Files without them (written before exact resume) still load.
    expect(decodeCheckpoint(encodeCheckpoint(sample(3))).meta.sampler).toBeUndefined();
    const bad = edit(encodeCheckpoint(c), (_, meta) => { meta.sampler = '{"batches": 3}'; });
    expect(() => decodeCheckpoint(bad, 'x.safetensors')).toThrow(/checkpoint x\.safetensors: metadata field 'sampler' is \{"batches":3\}; expected \{"batches": integer >= 0, "state": 32-bit integer\}/);
    const badRun = edit(encodeCheckpoint(c), (_, meta) => { meta.run = '{"split": {"train": [1]}}'; });
    expect(() => decodeCheckpoint(badRun, 'x.safetensors')).toThrow(/metadata field 'run' is .*; expected \{"data"\?/);
    expect(() => encodeCheckpoint({ ...c, meta: { ...c.meta, batchSize: 0 } })).toThrow(/meta.batchSize is 0; expected a positive integer/);
  });

  it('a failed write leaves the previous checkpoint intact', async () => {
    const path = join(dir, 'run2', 'checkpoint.safetensors');
    await saveCheckpoint(path, sample(3));
    const before = readFileSync(path);
    // A non-empty folder where the previous checkpoint should go makes the write fail after the new bytes are down.
    mkdirSync(join(previousCheckpointPath(path), 'x'), { recursive: true });
    await expect(saveCheckpoint(path, sample(8, 9))).rejects.toThrow(`saveCheckpoint ${path}: write failed`);
    expect(readFileSync(path).equals(before)).toBe(true);
    expect((await loadCheckpoint(path)).meta.step).toBe(3);
    expect(readdirSync(join(dir, 'run2')).filter((n) => n.includes('.tmp-'))).toEqual([]);
    // A checkpoint that cannot be encoded never touches the file either.
    rmSync(previousCheckpointPath(path), { recursive: true });
    const broken = sample(9);
    broken.momentum?.delete('controller.bias');
    await expect(saveCheckpoint(path, broken)).rejects.toThrow(/no momentum for parameter 'controller.bias'/);
    expect(readFileSync(path).equals(before)).toBe(true);
  });

  it('reports a missing or truncated file by name', async () => {
    const missing = join(dir, 'nope.safetensors');
    await expect(loadCheckpoint(missing)).rejects.toThrow(`checkpoint ${missing}: file not found`);
    const path = join(dir, 'truncated.safetensors');
    const bytes = encodeCheckpoint(sample());
    writeFileSync(path, bytes.subarray(0, bytes.length - 100));
    await expect(loadCheckpoint(path)).rejects.toThrow(new RegExp(`checkpoint ${path.replace(/[.\\/]/g, '\\$&')}: not a readable safetensors file .*truncated`));
    writeFileSync(path, bytes.subarray(0, 5));
    await expect(loadCheckpoint(path)).rejects.toThrow(/too short for the 8-byte header length/);
    expect(existsSync(path)).toBe(true);
  });

  it('a truncated or corrupt checkpoint with a previous one beside it suggests resuming from that one', async () => {
    const path = join(dir, 'run3', 'checkpoint.safetensors');
    await saveCheckpoint(path, sample(3));
    await saveCheckpoint(path, sample(4));
    const bytes = readFileSync(path);
    writeFileSync(path, bytes.subarray(0, bytes.length - 7));
    const prev = previousCheckpointPath(path);
    const hint = `the previous checkpoint ${prev} is beside it: resume from that one (--resume ${prev})`;
    await expect(loadCheckpoint(path)).rejects.toThrow(`checkpoint ${path}: not a readable safetensors file`);
    await expect(loadCheckpoint(path)).rejects.toThrow(hint);
    writeFileSync(path, Buffer.alloc(bytes.length, 0x20));
    await expect(loadCheckpoint(path)).rejects.toThrow(hint);
    expect((await loadCheckpoint(prev)).meta.step).toBe(3);
    await expect(loadCheckpoint(join(dir, 'run3'))).rejects.toThrow(/is a folder; expected a \.safetensors file/);
  });
});
