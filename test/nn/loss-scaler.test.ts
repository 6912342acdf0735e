import { describe, expect, it } from 'vitest';
import { Tensor } from '../../src/autograd/tensor.js';
import { LossScaler } from '../../src/nn/loss-scaler.js';
import { SGD, Adam } from '../../src/nn/optim.js';
import { expectClose, randomArray, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

describe('LossScaler (PyTorch GradScaler semantics)', () => {
  it('halves on an overflow, doubles after growthInterval finite steps, counts skipped steps', () => {
    const s = new LossScaler({ initScale: 1024, growthInterval: 3 });
    const trace: number[] = [];
    for (const overflow of [false, false, true, false, false, false, false, true, true, false]) {
      s.update(overflow);
      trace.push(s.scale);
    }
    // A finite run restarts after each overflow; the third finite step in a row grows the scale.
    expect(trace).toEqual([1024, 1024, 512, 512, 512, 1024, 1024, 512, 256, 256]);
    expect(s.skippedSteps).toBe(3);
    expect(s.exportState()).toEqual({ scale: 256, growthTracker: 1, skippedSteps: 3 });
  });

  it('defaults to 2^16, 2, 0.5 and 2000, and resumes from its state', () => {
    const s = new LossScaler();
    expect([s.scale, s.growthFactor, s.backoffFactor, s.growthInterval]).toEqual([65536, 2, 0.5, 2000]);
    const t = new LossScaler();
    t.importState({ scale: 8, growthTracker: 1999, skippedSteps: 4 });
    t.update(false);
    expect(t.exportState()).toEqual({ scale: 16, growthTracker: 0, skippedSteps: 4 });
  });

  it('rejects bad settings and states, naming them', () => {
    expect(() => new LossScaler({ backoffFactor: 1 })).toThrow(/backoffFactor must be in \(0, 1\), got 1/);
    expect(() => new LossScaler({ growthFactor: 1 })).toThrow(/growthFactor must be a finite number > 1, got 1/);
    expect(() => new LossScaler({ growthInterval: 0 })).toThrow(/growthInterval must be a positive integer, got 0/);
    expect(() => new LossScaler().importState({ scale: 0, growthTracker: 0, skippedSteps: 0 })).toThrow(/scale must be a finite number > 0, got 0/);
    expect(() => new LossScaler().importState({ scale: 1, growthTracker: -1, skippedSteps: 0 })).toThrow(/growthTracker must be an integer >= 0, got -1/);
  });
});

describe('optimisers unscale in the update (gradScale) and find overflowed gradients', () => {
  for (const kind of ['sgd', 'adam'] as const) {
    it(`${kind}: a step on gradients x 2^10 with gradScale 2^-10 equals the plain step`, async () => {
      const make = () => {
        const w = Tensor.fromArray(randomArray(300, 1), [300], { requiresGrad: true });
        const opt = kind === 'sgd' ? new SGD([w], { lr: 0.1, weightDecay: 1e-3 }) : new Adam([w], { lr: 0.01 });
        return { w, opt };
      };
      const g = randomArray(300, 2);
      const plain = make();
      const scaled = make();
      for (let step = 0; step < 2; step++) {
        plain.w.grad = Tensor.fromArray(g, [300]);
        plain.opt.step();
        scaled.w.grad = Tensor.fromArray(g.map((v) => v * 1024), [300]);
        expect(await scaled.opt.nonFiniteGradients()).toBe(false);
        scaled.opt.step({ gradScale: 1 / 1024 });
      }
      // Powers of two scale exactly, so the updates agree to the last bit.
      expectClose(await scaled.w.toArray(), await plain.w.toArray(), 0, 0);
      plain.opt.dispose();
      scaled.opt.dispose();
    });
  }

  it('reports an infinite gradient in any parameter', async () => {
    const ws = [0, 1].map((i) => Tensor.fromArray(randomArray(50, i), [50], { requiresGrad: true }));
    const opt = new SGD(ws, { lr: 0.1 });
    ws[0].grad = Tensor.fromArray(randomArray(50, 3), [50]);
    const bad = randomArray(50, 4);
    bad[49] = -Infinity;
    ws[1].grad = Tensor.fromArray(bad, [50]);
    expect(await opt.nonFiniteGradients()).toBe(true);
    opt.zeroGrad();
    ws.forEach((w) => (w.grad = Tensor.fromArray(randomArray(50, 5), [50])));
    expect(await opt.nonFiniteGradients()).toBe(false);
    opt.dispose();
    expect(gpu().isLost).toBe(false);
  });
});
