import { describe, expect, it } from 'vitest';
import { Adam, AdamW, SGD } from '../../src/nn/optim.js';
import { adamRef, type AdamRefState } from '../../src/kernels/reference/adam.js';
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

describe('Adam optimizer', () => {
  const shapes = [[3, 5], [7], [2, 2, 3]];
  const make = (seed: number) => shapes.map((s, i) => keep(Tensor.fromArray(randomArray(s.reduce((a, b) => a * b, 1), seed + i), s, { requiresGrad: true })));
  const setGrads = (params: Tensor[], step: number) => params.map((p, i) => {
    const g = randomArray(p.size, 100 * step + i);
    p.grad = keep(Tensor.fromArray(g, p.shape));
    return g;
  });

  for (const decoupled of [false, true]) {
    it(`${decoupled ? 'AdamW' : 'Adam'} follows the CPU twin over several steps with a changing lr, in one dispatch per step`, async () => {
      const params = make(10);
      const init = await Promise.all(params.map((p) => p.toArray()));
      const opt = new Adam(params, { lr: 0.05, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.05, decoupled });
      expect(opt.kind).toBe(decoupled ? 'adamw' : 'adam');
      const ref: AdamRefState[] = init.map((p) => ({ params: Float64Array.from(p), expAvg: new Float64Array(p.length), expAvgSq: new Float64Array(p.length) }));
      for (let step = 0; step < 4; step++) {
        const g = setGrads(params, step);
        const lr = 0.01 * (step + 1);
        const before = gpu().dispatchCount;
        opt.step({ lr });
        expect(gpu().dispatchCount - before).toBe(1);
        opt.zeroGrad();
        ref.forEach((r, i) => {
          ref[i] = adamRef(r.params, g[i], r.expAvg, r.expAvgSq, { lr, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.05, decoupled, step: step + 1 });
        });
      }
      expect(opt.steps).toBe(4);
      for (let i = 0; i < params.length; i++) expectClose(await params[i].toArray(), ref[i].params, 1e-5, 1e-4);
      const state = await opt.exportState();
      expect(state.kind).toBe(decoupled ? 'adamw' : 'adam');
      expect(state.steps).toBe(4);
      state.slots.expAvg.forEach((m, i) => expectClose(m, ref[i].expAvg, 1e-6, 1e-4));
      state.slots.expAvgSq.forEach((v, i) => expectClose(v, ref[i].expAvgSq, 1e-6, 1e-4));
      opt.dispose();
      params.forEach((p) => p.dispose());
    });
  }

  it('a parameter that skips steps keeps its own bias-correction count, as PyTorch', async () => {
    const [a, b] = [keep(Tensor.fromArray([1, 2], [2], { requiresGrad: true })), keep(Tensor.fromArray([3, 4], [2], { requiresGrad: true }))];
    const opt = new Adam([a, b], { lr: 0.1 });
    a.grad = keep(Tensor.fromArray([1, -1], [2]));
    opt.step();
    opt.zeroGrad();
    expect([...(await b.toArray())]).toEqual([3, 4]);
    a.grad = keep(Tensor.fromArray([0.5, 0.5], [2]));
    b.grad = keep(Tensor.fromArray([2, -3], [2]));
    opt.step();
    opt.zeroGrad();
    // a is at its step 2, b at its step 1: step 1 of Adam moves each weight by lr * sign(g) (up to eps).
    expectClose(await b.toArray(), [2.9, 4.1], 1e-6, 1e-5);
    const r1 = adamRef([1, 2], [1, -1], [0, 0], [0, 0], { lr: 0.1, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, decoupled: false, step: 1 });
    const r2 = adamRef(r1.params, [0.5, 0.5], r1.expAvg, r1.expAvgSq, { lr: 0.1, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, decoupled: false, step: 2 });
    expectClose(await a.toArray(), r2.params, 1e-6, 1e-5);
    opt.dispose();
    a.dispose();
    b.dispose();
  });

  it('exported state imported into a fresh optimizer continues the run bit for bit', async () => {
    const pa = make(30);
    const pb = make(30);
    const oa = new AdamW(pa, { lr: 0.02 });
    expect(oa.weightDecay).toBe(0.01);
    for (let step = 0; step < 2; step++) {
      setGrads(pa, step);
      oa.step();
      oa.zeroGrad();
    }
    const saved = await oa.exportState();
    const ob = new AdamW(pb, { lr: 0.02 });
    // Weights travel separately (the model's state dict): copy them by value.
    await Promise.all(pa.map(async (p, i) => pb[i].gpu.write(pb[i].buffer, await p.toArray())));
    ob.importState(saved);
    expect(ob.steps).toBe(2);
    for (const [opt, ps] of [[oa, pa], [ob, pb]] as const) {
      setGrads([...ps], 2);
      opt.step();
      opt.zeroGrad();
    }
    const [sa, sb] = await Promise.all([oa.exportState(), ob.exportState()]);
    for (let i = 0; i < pa.length; i++) {
      expect(await pb[i].toArray()).toEqual(await pa[i].toArray());
      expect(sb.slots.expAvg[i]).toEqual(sa.slots.expAvg[i]);
      expect(sb.slots.expAvgSq[i]).toEqual(sa.slots.expAvgSq[i]);
    }
    expect(() => ob.importState({ kind: 'sgd', steps: 1, slots: {} })).toThrow(/AdamW.importState: state is for optimizer "sgd"; expected "adam" or "adamw"/);
    expect(() => ob.importState({ ...saved, slots: { ...saved.slots, expAvgSq: saved.slots.expAvgSq.slice(1) } }))
      .toThrow(/AdamW.importState: got 2 expAvgSq buffers, expected one per parameter \(3\)/);
    for (const o of [oa, ob]) o.dispose();
    [...pa, ...pb].forEach((p) => p.dispose());
  });

  it('rejects bad hyper-parameters naming the value', () => {
    const p = [keep(Tensor.fromArray([1], [1], { requiresGrad: true }))];
    expect(() => new Adam(p, { eps: 0 })).toThrow(/Adam: eps must be a finite number > 0, got 0/);
    expect(() => new AdamW(p, { betas: [1, 0.9] })).toThrow(/AdamW: betas\[0\] must be in \[0, 1\), got 1/);
    expect(() => new Adam(p, { lr: -1 })).toThrow(/Adam: lr must be a finite number >= 0, got -1/);
    expect(() => new Adam([])).toThrow(/Adam: needs at least one parameter/);
    p[0].dispose();
  });
});
