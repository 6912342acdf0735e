import { describe, expect, it } from 'vitest';
import { SGD } from '../../src/nn/optim.js';
import { polyLr } from '../../src/nn/lr-schedule.js';
import { Tensor } from '../../src/autograd/tensor.js';
import { keep } from '../../src/autograd/scope.js';
import { expectClose, randomArray, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

/** PyTorch SGD (momentum, Nesterov, weight decay) on the host in float64. */
function torchSgd(p: Float64Array, grads: Float64Array[], lrs: number[], mom: number, wd: number): Float64Array {
  const buf = new Float64Array(p.length);
  grads.forEach((g0, step) => {
    for (let i = 0; i < p.length; i++) {
      const g = g0[i] + wd * p[i];
      buf[i] = step === 0 ? g : mom * buf[i] + g;
      p[i] -= lrs[step] * (g + mom * buf[i]);
    }
  });
  return p;
}

describe('SGD optimizer', () => {
  it('matches PyTorch semantics over several poly-scheduled steps, in one dispatch per step', async () => {
    const shapes = [[3, 5], [7], [2, 2, 3]];
    const init = shapes.map((s, i) => randomArray(s.reduce((a, b) => a * b, 1), 10 + i));
    const params = shapes.map((s, i) => keep(Tensor.fromArray(init[i], s, { requiresGrad: true })));
    const opt = new SGD(params, { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-2 });
    const grads: Float64Array[][] = shapes.map(() => []);
    const lrs: number[] = [];
    for (let step = 0; step < 4; step++) {
      params.forEach((p, i) => {
        const g = randomArray(p.size, 100 * step + i);
        grads[i].push(Float64Array.from(g));
        p.grad = keep(Tensor.fromArray(g, p.shape));
      });
      const lr = polyLr(0.1, step, 4);
      lrs.push(lr);
      const before = gpu().dispatchCount;
      opt.step({ lr });
      expect(gpu().dispatchCount - before).toBe(1);
      opt.zeroGrad();
    }
    for (let i = 0; i < params.length; i++) {
      const expected = torchSgd(Float64Array.from(init[i]), grads[i], lrs, 0.9, 1e-2);
      expectClose(await params[i].toArray(), expected, 1e-5, 1e-4);
    }
    opt.dispose();
    params.forEach((p) => p.dispose());
  });

  it('skips parameters without a gradient', async () => {
    const a = keep(Tensor.fromArray([1, 2], [2], { requiresGrad: true }));
    const b = keep(Tensor.fromArray([3, 4], [2], { requiresGrad: true }));
    const opt = new SGD([a, b], { lr: 1, momentum: 0.5, nesterov: false });
    a.grad = keep(Tensor.fromArray([1, 1], [2]));
    opt.step();
    expect([...(await a.toArray())]).toEqual([0, 1]);
    expect([...(await b.toArray())]).toEqual([3, 4]);
    opt.zeroGrad();
    b.grad = keep(Tensor.fromArray([1, 1], [2]));
    opt.step();
    expect([...(await b.toArray())]).toEqual([2, 3]); // b's first step: buffer = g
    opt.dispose();
    a.dispose();
    b.dispose();
  });
});
