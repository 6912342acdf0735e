/** TGNet construction (sizes as PyTorch's), input validation, state-dict errors, and memory across training steps. */
import { describe, expect, it } from 'vitest';
import { partialLabelLoss } from '../../src/autograd/ops/head.js';
import { keep, tidy } from '../../src/autograd/scope.js';
import { noGrad } from '../../src/autograd/tape.js';
import { liveTensorCount, Tensor } from '../../src/autograd/tensor.js';
import { SGD } from '../../src/nn/optim.js';
import { checkCheckpointFits, type Checkpoint } from '../../src/tgnet/checkpoint.js';
import { TGNet, TGNET_VARIANTS, type TGNetVariant } from '../../src/tgnet/model.js';
import { NUM_TASKS, TASK_NAMES, taskId } from '../../src/tgnet/tasks.js';
import { randomArray, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

describe('TGNet construction', () => {
  it('has the reference parameter counts at the paper width 32', () => {
    // sum(p.numel() for p in TGNet(...).parameters()) and len(list(...)) from bench/torch/tgnet_torch.py (the counts)
    const expected: Record<TGNetVariant, [number, number]> = {
      tgnet: [17_579_832, 137], 'tgnet-a': [17_421_368, 127], dodnet: [17_329_528, 111],
      spatial: [17_331_000, 127], serial: [17_421_880, 135], parallel: [17_421_880, 135],
    };
    for (const variant of TGNET_VARIANTS) {
      const model = TGNet.create({ variant });
      expect([model.parameterCount(), model.parameters().length], variant).toEqual(expected[variant]);
      model.dispose();
    }
    // --tg-res-blocks all: a gate on each of the nine encoder blocks
    const all = TGNet.create({ variant: 'tgnet', taskGuidedBlocks: 'all' });
    expect([all.parameterCount(), all.parameters().length]).toEqual([17_737_016, 145]);
    all.dispose();
  });

  it('gates the first block of each encoder stage (five gates), or all nine with taskGuidedBlocks all', () => {
    const gates = (m: TGNet) => m.namedParameters().map(([n]) => n).filter((n) => /^enc\.\d+\.\d+\.gate\.fc\.weight$/.test(n));
    const first = TGNet.create({ variant: 'tgnet', width: 2 });
    const all = TGNet.create({ variant: 'tgnet', width: 2, taskGuidedBlocks: 'all' });
    expect(gates(first)).toEqual([0, 1, 2, 3, 4].map((s) => `enc.${s}.0.gate.fc.weight`));
    expect(gates(all)).toHaveLength(9);
    expect(first.namedParameters().some(([n]) => n === 'fusion.conv.bias')).toBe(false);
    expect(() => TGNet.create({ variant: 'tgnet-a', taskGuidedBlocks: 'all' })).toThrow(/taskGuidedBlocks 'all' needs variant 'tgnet'/);
    expect(() => TGNet.create({ variant: 'tgnet', taskGuidedBlocks: 'some' as 'all' })).toThrow(/taskGuidedBlocks 'some' is unknown; expected one of first, all/);
    for (const m of [first, all]) m.dispose();
  });

  it('the Table 2 variants have the reference skip attention modules', () => {
    const names = (variant: TGNetVariant) => {
      const m = TGNet.create({ variant, width: 2 });
      const out = m.namedParameters().map(([n]) => n).filter((n) => n.startsWith('att.0.'));
      m.dispose();
      return out;
    };
    expect(names('spatial')).toEqual(['att.0.gn.weight', 'att.0.gn.bias', 'att.0.spatial.fc.weight', 'att.0.spatial.fc.bias']);
    const both = ['att.0.gn.weight', 'att.0.gn.bias', 'att.0.gate.fc.weight', 'att.0.gate.fc.bias', 'att.0.spatial.fc.weight', 'att.0.spatial.fc.bias'];
    expect(names('serial')).toEqual(both);
    expect(names('parallel')).toEqual(both);
    expect(names('dodnet')).toEqual([]);
  });

  it('the seed fixes the initial weights', async () => {
    const [a, b, c] = [0, 0, 1].map((seed) => TGNet.create({ variant: 'tgnet', width: 2, seed }));
    const w = (m: TGNet) => m.stateDict().get('enc.2.1.conv2.weight')!.toArray();
    const [wa, wb, wc] = await Promise.all([w(a), w(b), w(c)]);
    expect(wb).toEqual(wa);
    expect(wc).not.toEqual(wa);
    for (const m of [a, b, c]) m.dispose();
  });

  it('rejects unknown variants and widths GroupNorm cannot split', () => {
    expect(() => TGNet.create({ variant: 'unet' as TGNetVariant })).toThrow(/variant 'unet' is unknown; expected one of tgnet, tgnet-a, dodnet, spatial, serial, parallel/);
    expect(() => TGNet.create({ variant: 'tgnet', width: 3 })).toThrow(/width 3 gives a stage of 24 channels, which GroupNorm\(16\) cannot split/);
    expect(() => TGNet.create({ variant: 'tgnet', width: 0 })).toThrow(/width must be a positive integer, got 0/);
  });

  it('has its own task table', () => {
    expect(NUM_TASKS).toBe(7);
    expect(TASK_NAMES).toEqual(['liver', 'kidney', 'hepatic_vessel', 'pancreas', 'colon', 'lung', 'spleen']);
    expect(taskId('colon')).toBe(4);
    expect(() => taskId('brain')).toThrow(/unknown task 'brain'; expected one of liver, kidney/);
  });
});

describe('TGNet.forward input checks', () => {
  it('names the bad shape, task count or task id and what was expected', () => {
    const model = TGNet.create({ variant: 'tgnet', width: 2 });
    tidy(() => {
      const x = Tensor.zeros([2, 1, 16, 16, 32]);
      expect(() => model.forward(x, [0, 7])).toThrow(/task id 7 at position 1 is out of range; expected an integer in \[0, 6\]/);
      expect(() => model.forward(x, [0, 1.5])).toThrow(/task id 1.5 at position 1 is out of range/);
      expect(() => model.forward(x, [0])).toThrow(/expected 2 task ids \(one per sample of input \[2, 1, 16, 16, 32\]\), got 1 task ids/);
      expect(() => model.forward(Tensor.zeros([1, 2, 16, 16, 16]), [0])).toThrow(/input \[1, 2, 16, 16, 16\] must be \[N, 1, D, H, W\]/);
      expect(() => model.forward(Tensor.zeros([1, 16, 16, 16]), [0])).toThrow(/input \[1, 16, 16, 16\] must be \[N, 1, D, H, W\]/);
      expect(() => model.forward(Tensor.zeros([1, 1, 16, 24, 16]), [0])).toThrow(/input \[1, 1, 16, 24, 16\] needs N >= 1 and D, H, W positive multiples of 16/);
    });
    model.dispose();
  });

  it('loadStateDict names a missing key and a wrong shape', () => {
    const model = TGNet.create({ variant: 'tgnet', width: 2 });
    const dodnet = TGNet.create({ variant: 'dodnet', width: 2 });
    // a DoDNet checkpoint lacks TGNet's gates; a width-4 one has other shapes
    expect(() => model.loadStateDict(dodnet.stateDict())).toThrow(/TGNet\.loadStateDict: missing key\(s\) 'enc\.0\.0\.gate\.fc\.weight', 'enc\.0\.0\.gate\.fc\.bias'/);
    expect(() => dodnet.loadStateDict(model.stateDict())).toThrow(/unexpected key\(s\) 'enc\.0\.0\.gate\.fc\.weight'/);
    // a checkpoint of the layout before the reference was corrected: fusion bias and nine gates
    const oldLayout = new Map(model.stateDict());
    const all = TGNet.create({ variant: 'tgnet', width: 2, taskGuidedBlocks: 'all' });
    for (const [k, v] of all.stateDict()) oldLayout.set(k, v);
    oldLayout.set('fusion.conv.bias', Tensor.zeros([16]));
    expect(() => model.loadStateDict(oldLayout)).toThrow(/has 'fusion\.conv\.bias' and a task gate on all 9 encoder blocks .*no longer exists .*fusion conv has no bias.*retrain/);
    expect(() => model.loadStateDict(all.stateDict())).toThrow(/task gates on 9 encoder blocks.*taskGuidedBlocks: 'all'/);
    const wide = TGNet.create({ variant: 'tgnet', width: 4 });
    expect(() => model.loadStateDict(wide.stateDict())).toThrow(/shape mismatch for 'conv1\.weight': expected \[2, 1, 3, 3, 3\], got \[4, 1, 3, 3, 3\]/);
    // a training checkpoint of the old layout is refused before anything is loaded (resume)
    const stale = new Map([...oldLayout].map(([k, v]) => [k, { shape: [...v.shape], data: new Float32Array(v.size) }]));
    const checkpoint: Checkpoint = {
      meta: { variant: 'tgnet', width: 2, numTasks: 7, crop: [16, 16, 16], step: 1, totalSteps: 2, lr0: 0.01, momentum: 0.99, nesterov: true, weightDecay: 0, polyPower: 0.9, seed: 0 },
      model: stale,
    };
    expect(() => checkCheckpointFits(checkpoint, model, 'old.safetensors')).toThrow(/checkpoint old\.safetensors: the state dict has 'fusion\.conv\.bias' and a task gate on all 9 encoder blocks/);
    oldLayout.get('fusion.conv.bias')!.dispose();
    for (const m of [model, dodnet, wide, all]) m.dispose();
  });
});

describe('TGNet memory', () => {
  for (const variant of ['tgnet', 'parallel'] as const) it(`${variant}: training steps leave live GPU buffers and bytes unchanged after the first; inference frees everything`, async () => {
    const model = TGNet.create({ variant, width: 2, seed: 3 });
    const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.99, nesterov: true, weightDecay: 3e-5 });
    const shape = [2, 1, 16, 16, 16];
    const x = keep(Tensor.fromArray(randomArray(2 * 4096, 7), shape));
    // sample 0: colon (organ channel unannotated), sample 1: liver
    const y = Float32Array.from(randomArray(2 * 2 * 4096, 8, 0, 1), (v) => (v > 0.7 ? 1 : 0));
    y.fill(-1, 0, 4096);
    const target = keep(Tensor.fromArray(y, [2, 2, 16, 16, 16]));
    const taskIds = [4, 0];
    const step = () => tidy(async () => {
      const loss = partialLabelLoss(model.forward(x, taskIds), target);
      loss.backward();
      opt.step();
      opt.zeroGrad();
      return loss.item();
    });
    const losses = [await step()];
    const after1 = { ...gpu().poolStats(), tensors: liveTensorCount() };
    for (let i = 0; i < 2; i++) {
      losses.push(await step());
      const now = gpu().poolStats();
      expect({ liveBuffers: now.liveBuffers, liveBytes: now.liveBytes, tensors: liveTensorCount() })
        .toEqual({ liveBuffers: after1.liveBuffers, liveBytes: after1.liveBytes, tensors: after1.tensors });
    }
    expect(losses.every(Number.isFinite)).toBe(true);
    // the optimiser moved the weights: the same batch gives another loss
    expect(losses[2]).not.toBe(losses[0]);
    expect(model.parameters().every((p) => p.grad === null)).toBe(true);

    const logits = await noGrad(() => tidy(async () => {
      const out = model.forward(x, taskIds);
      expect(out.requiresGrad).toBe(false);
      return out.toArray();
    }));
    expect(logits.length).toBe(2 * 2 * 4096);
    expect(gpu().poolStats().liveBuffers).toBe(after1.liveBuffers);
    for (const t of [x, target]) t.dispose();
    opt.dispose();
    model.dispose();
  });
});
