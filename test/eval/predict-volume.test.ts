/** predictVolume with a tiny real TGNet on the GPU, and checkpoint loading. */
import { describe, expect, it } from 'vitest';
import { liveTensorCount, Tensor } from '../../src/autograd/tensor.js';
import { sigmoid } from '../../src/autograd/index.js';
import { tidy } from '../../src/autograd/scope.js';
import { noGrad } from '../../src/autograd/tape.js';
import { permuteAxes, windowHu } from '../../src/data/preprocess.js';
import { configFromMetadata, loadModelFromCheckpoint } from '../../src/eval/load-model.js';
import { segmentCt } from '../../src/eval/pipeline.js';
import { mirrorTile, predictVolume } from '../../src/eval/sliding-window.js';
import { writeSafetensors, type SafeTensorInput } from '../../src/nn/safetensors.js';
import { encodeCheckpoint } from '../../src/tgnet/checkpoint.js';
import { TGNet } from '../../src/tgnet/model.js';
import { expectClose, randomArray, useGpu } from '../helpers/gpu.js';
import type { DHW } from '../../src/common/shape.js';

useGpu();

async function checkpointBytes(model: TGNet, metadata?: Record<string, string>): Promise<Uint8Array> {
  const tensors = new Map<string, SafeTensorInput>();
  for (const [name, p] of model.namedParameters()) tensors.set(`model.${name}`, { shape: p.shape, data: await p.toArray() });
  tensors.set('optimizer.momentum.conv1.weight', { shape: [1], data: new Float32Array(1) });
  return writeSafetensors(tensors, metadata);
}

describe('predictVolume', () => {
  it('segments a 20x24x18 volume with 16^3 tiles: deterministic, batch-independent, no leaks', async () => {
    const model = TGNet.create({ variant: 'tgnet', width: 2, seed: 3 });
    const shape: DHW = [20, 24, 18];
    const volume = randomArray(shape[0] * shape[1] * shape[2], 5, -1, 1);
    const live = liveTensorCount();
    const t0 = performance.now();
    const a = await predictVolume(model, volume, shape, 0, { tileShape: [16, 16, 16], batchSize: 4 });
    const seconds = (performance.now() - t0) / 1000;
    console.log(`predictVolume: ${a.tileOrigins.length} tiles of 16^3 (width 2, batch 4) in ${seconds.toFixed(2)} s, ${(a.tileOrigins.length / seconds).toFixed(1)} tiles/s`);
    expect(liveTensorCount()).toBe(live);
    expect(a.tileOrigins.length).toBe(8);
    expect(a.predictorCalls).toBe(2);
    expect(a.probabilities.length).toBe(2 * 20 * 24 * 18);
    expect(a.probabilities.every((p) => p > 0 && p < 1)).toBe(true);
    expect(a.organ).toEqual(Uint8Array.from(a.probabilities.subarray(0, a.organ.length), (p) => (p > 0.5 ? 1 : 0)));
    const b = await predictVolume(model, volume, shape, 0, { tileShape: [16, 16, 16], batchSize: 4 });
    expect(b.probabilities).toEqual(a.probabilities);
    const c = await predictVolume(model, volume, shape, 0, { tileShape: [16, 16, 16], batchSize: 3 });
    expectClose(c.probabilities, a.probabilities, 1e-5, 1e-4);
    // Another task conditions the head differently.
    const d = await predictVolume(model, volume, shape, 5, { tileShape: [16, 16, 16], batchSize: 8 });
    expect(d.probabilities).not.toEqual(a.probabilities);
    model.dispose();
  });

  it('with one tile and flips, equals the mean of the 8 mirrored forward passes', async () => {
    const model = TGNet.create({ variant: 'dodnet', width: 2, seed: 1 });
    const tile: DHW = [16, 16, 16];
    const volume = randomArray(4096, 6, -1, 1);
    const r = await predictVolume(model, volume, tile, 2, { tileShape: tile, flips: true, batchSize: 8 });
    expect(r.predictorCalls).toBe(1);
    // Reference: mirror, forward as one batch, mirror each output back, average.
    const inputs = new Float32Array(8 * 4096);
    for (let f = 0; f < 8; f++) mirrorTile(volume, inputs.subarray(f * 4096, (f + 1) * 4096), tile, f);
    const out = await noGrad(() => tidy(() => sigmoid(model.forward(Tensor.fromArray(inputs, [8, 1, ...tile]), new Array<number>(8).fill(2))))).toArray();
    const mean = new Float32Array(2 * 4096);
    const back = new Float32Array(2 * 4096);
    for (let f = 0; f < 8; f++) {
      mirrorTile(out.subarray(f * 8192, (f + 1) * 8192), back, tile, f, 2);
      for (let i = 0; i < mean.length; i++) mean[i] += back[i] / 8;
    }
    expectClose(r.probabilities, mean, 1e-6, 1e-5);
    // The un-mirrored pass alone is what predictVolume gives without flips, and it differs from the average.
    const plain = await predictVolume(model, volume, tile, 2, { tileShape: tile });
    expectClose(plain.probabilities, out.subarray(0, 8192), 1e-6, 1e-5);
    expect(Math.max(...plain.probabilities.map((p, i) => Math.abs(p - mean[i])))).toBeGreaterThan(1e-4);
    model.dispose();
  });

  it('rejects tiles that are not multiples of 16 and bad task ids', async () => {
    const model = TGNet.create({ variant: 'tgnet', width: 2 });
    const v = new Float32Array(16 * 16 * 16);
    await expect(predictVolume(model, v, [16, 16, 16], 0, { tileShape: [16, 24, 16] })).rejects.toThrow(/tileShape is \[16, 24, 16\]; expected multiples of 16/);
    await expect(predictVolume(model, v, [16, 16, 16], 7)).rejects.toThrow(/task id is 7; expected an integer in \[0, 6\]/);
    model.dispose();
  });
});

describe('segmentCt', () => {
  it('undoes the slice-axis permutation: a slice-first volume gives the permuted labels of its slice-last twin', async () => {
    const model = TGNet.create({ variant: 'tgnet', width: 2, seed: 11 });
    // Slice axis first: array axis 0 runs along world z.
    const sliceFirst = {
      data: randomArray(8 * 16 * 32, 8, -400, 400), shape: [8, 16, 32] as [number, number, number], spacing: [2.5, 0.8, 0.8] as [number, number, number],
      affine: [0, 0, 0.8, 0, 0, 0.8, 0, 0, 2.5, 0, 0, 0, 0, 0, 0, 1],
    };
    const sliceLast = permuteAxes(sliceFirst, [1, 2, 0]);
    expect(sliceLast.shape).toEqual([16, 32, 8]);
    // A fresh model's logits are nearly constant: move the head's final organ / tumour biases (controller
    // outputs 160, 161) by minus the median logit of each channel, so that about half the voxels are foreground.
    const probe = await predictVolume(model, windowHu(Float32Array.from(sliceLast.data)), [8, 32, 16], 0, { tileShape: [16, 16, 16], batchSize: 4 });
    const bias = await model.stateDict().get('controller.bias')!.toArray();
    for (const c of [0, 1]) {
      const p = probe.probabilities.slice(c * 4096, (c + 1) * 4096).sort()[2048];
      bias[160 + c] -= Math.log(p / (1 - p));
    }
    model.loadStateDict(new Map([['controller.bias', { shape: [bias.length], data: bias }]]), { strict: false });
    const options = { tileShape: [16, 16, 16] as DHW, targetSpacingZYX: null, batchSize: 4, postprocess: false };
    const a = await segmentCt(model, sliceFirst, 0, options);
    const b = await segmentCt(model, sliceLast, 0, options);
    expect(a.inferenceShape).toEqual([8, 32, 16]);
    expect(b.inferenceShape).toEqual([8, 32, 16]);
    expect(b.labelMap.some((v) => v === 1) && b.labelMap.some((v) => v === 2)).toBe(true);
    const back = permuteAxes({ ...sliceLast, data: Float32Array.from(b.labelMap) }, [2, 0, 1]);
    expect(back.shape).toEqual(sliceFirst.shape);
    expect(a.labelMap).toEqual(Uint8Array.from(back.data));
    model.dispose();
  });
});

describe('loadModelFromCheckpoint', () => {
  it('rebuilds the model from model.* tensors, inferring variant, width and numTasks', async () => {
    for (const variant of ['tgnet', 'tgnet-a', 'dodnet', 'spatial'] as const) {
      const model = TGNet.create({ variant, width: 2, numTasks: 5, seed: 9 });
      const loaded = loadModelFromCheckpoint(await checkpointBytes(model), 'ckpt.safetensors');
      expect(loaded.config).toEqual({ variant, width: 2, numTasks: 5 });
      const w = await loaded.model.stateDict().get('enc.3.1.conv2.weight')!.toArray();
      expect(w).toEqual(await model.stateDict().get('enc.3.1.conv2.weight')!.toArray());
      loaded.model.dispose();
      model.dispose();
    }
  });

  it('infers taskGuidedBlocks all from the gates; serial and parallel need the variant; refuses the old layout', async () => {
    const all = TGNet.create({ variant: 'tgnet', width: 2, taskGuidedBlocks: 'all' });
    const loaded = loadModelFromCheckpoint(await checkpointBytes(all), 'all.safetensors');
    expect(loaded.config).toEqual({ variant: 'tgnet', width: 2, numTasks: 7, taskGuidedBlocks: 'all' });
    loaded.model.dispose();
    all.dispose();
    const serial = TGNet.create({ variant: 'serial', width: 2 });
    const bytes = await checkpointBytes(serial);
    expect(() => loadModelFromCheckpoint(bytes, 's.safetensors')).toThrow(/s\.safetensors: the tensors fit variants serial and parallel alike .*pass it explicitly \(--variant\)/);
    const asParallel = loadModelFromCheckpoint(bytes, 's.safetensors', { variant: 'parallel' });
    expect(asParallel.config.variant).toBe('parallel');
    asParallel.model.dispose();
    serial.dispose();
    // written before the reference was corrected: a fusion conv bias (and, for tgnet, nine gates)
    const old = TGNet.create({ variant: 'tgnet', width: 2, taskGuidedBlocks: 'all' });
    const tensors = new Map<string, SafeTensorInput>();
    for (const [name, p] of old.namedParameters()) tensors.set(`model.${name}`, { shape: p.shape, data: await p.toArray() });
    tensors.set('model.fusion.conv.bias', { shape: [16], data: new Float32Array(16) });
    expect(() => loadModelFromCheckpoint(writeSafetensors(tensors), 'old.safetensors'))
      .toThrow(/old\.safetensors: the weights do not fit TGNet .*has 'fusion\.conv\.bias' and a task gate on all 9 encoder blocks .*fusion conv has no bias/);
    old.dispose();
  });

  it('reads a training checkpoint written by the trainer (encodeCheckpoint), metadata included', async () => {
    const model = TGNet.create({ variant: 'tgnet-a', width: 2, numTasks: 7, seed: 4 });
    const weights = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, p] of model.namedParameters()) weights.set(name, { shape: [...p.shape], data: await p.toArray() });
    const bytes = encodeCheckpoint({
      meta: { variant: 'tgnet-a', width: 2, numTasks: 7, crop: [16, 32, 32], step: 3, totalSteps: 10, lr0: 0.01, momentum: 0.99, nesterov: true, weightDecay: 0, polyPower: 0.9, seed: 4 },
      model: weights,
      momentum: new Map([...weights].map(([k, t]) => [k, new Float32Array(t.data.length)])),
    });
    const loaded = loadModelFromCheckpoint(bytes, 'run/step3.safetensors');
    expect(loaded.config).toEqual({ variant: 'tgnet-a', width: 2, numTasks: 7, crop: [16, 32, 32] });
    expect(await loaded.model.stateDict().get('att.1.gate.fc.weight')!.toArray()).toEqual(weights.get('att.1.gate.fc.weight')!.data);
    loaded.model.dispose();
    model.dispose();
  });

  it('reads metadata (separate keys or one JSON object); overrides win; errors name the file', async () => {
    expect(configFromMetadata({ variant: 'dodnet', width: '4', numTasks: '7', crop: '[32, 64, 64]' }, 'f')).toEqual({ variant: 'dodnet', width: 4, numTasks: 7, crop: [32, 64, 64] });
    expect(configFromMetadata({ config: JSON.stringify({ variant: 'tgnet', width: 8, crop: [16, 32, 32], lr: 0.01 }) }, 'f')).toEqual({ variant: 'tgnet', width: 8, crop: [16, 32, 32] });
    expect(configFromMetadata({ crop: '64x192x192' }, 'f')).toEqual({ crop: [64, 192, 192] });
    expect(() => configFromMetadata({ variant: 'unet' }, 'run/ckpt.safetensors')).toThrow(/run\/ckpt.safetensors: metadata variant is "unet"; expected one of tgnet, tgnet-a, dodnet, spatial, serial, parallel/);
    expect(() => configFromMetadata({ width: 'wide' }, 'f')).toThrow(/f: metadata width is "wide"; expected a positive integer/);

    const model = TGNet.create({ variant: 'tgnet', width: 2 });
    const bytes = await checkpointBytes(model, { crop: '[16, 16, 16]' });
    const loaded = loadModelFromCheckpoint(bytes, 'a.safetensors');
    expect(loaded.config.crop).toEqual([16, 16, 16]);
    loaded.model.dispose();
    expect(() => loadModelFromCheckpoint(bytes, 'a.safetensors', { width: 4 })).toThrow(/a.safetensors: the weights do not fit TGNet \{"variant":"tgnet","width":4,"numTasks":7\}: .*shape mismatch/);
    const mislabelled = await checkpointBytes(model, { variant: 'dodnet' });
    expect(() => loadModelFromCheckpoint(mislabelled, 'b.safetensors')).toThrow(/b.safetensors: the weights do not fit TGNet \{"variant":"dodnet".*unexpected key/);
    const bare = writeSafetensors({ 'conv1.weight': { shape: [1], data: new Float32Array(1) } });
    expect(() => loadModelFromCheckpoint(bare, 'c.safetensors')).toThrow(/c.safetensors: no tensor named 'model.\*' \(found 1: 'conv1.weight'...\)/);
    model.dispose();
  });
});
