import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { adamStep, adamStepList, type AdamOptions } from '../../src/kernels/adam.js';
import { adamRef, type AdamRefState } from '../../src/kernels/reference/adam.js';
import { packedLayout } from '../../src/kernels/sgd.js';
import { readSafetensors } from '../../src/nn/safetensors.js';
import { download, empty, expectClose, randomArray, upload, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

type Hyper = Omit<AdamOptions, 'step' | 'lr'>;

/** Runs `steps` GPU steps and the same steps on the CPU twin; compares parameters and both moments after each. */
async function compareSteps(n: number, hyper: Hyper, steps: number, seed: number) {
  const p0 = randomArray(n, seed, -1, 1);
  const pb = upload(gpu(), p0);
  const gb = empty(gpu(), n);
  // Garbage: the first step must ignore the old moments (PyTorch starts them at zero).
  const mb = upload(gpu(), randomArray(n, seed + 98, -5, 5));
  const vb = upload(gpu(), randomArray(n, seed + 99, 0, 5));
  let ref: AdamRefState = { params: Float64Array.from(p0), expAvg: new Float64Array(n), expAvgSq: new Float64Array(n) };
  for (let k = 0; k < steps; k++) {
    const g = randomArray(n, seed + 1 + k, -1, 1);
    gpu().write(gb, g);
    const lr = 0.01 * (k + 1);
    adamStep(gpu(), { params: pb, grads: gb, expAvg: mb, expAvgSq: vb, count: n }, { ...hyper, lr, step: k + 1 });
    ref = adamRef(ref.params, g, ref.expAvg, ref.expAvgSq, {
      lr, betas: hyper.betas ?? [0.9, 0.999], eps: hyper.eps ?? 1e-8, weightDecay: hyper.weightDecay ?? 0,
      decoupled: hyper.decoupled ?? false, step: k + 1,
    });
    expectClose(await download(gpu(), pb, n), ref.params, 1e-5, 1e-4);
    expectClose(await download(gpu(), mb, n), ref.expAvg, 1e-6, 1e-4);
    expectClose(await download(gpu(), vb, n), ref.expAvgSq, 1e-6, 1e-4);
  }
}

describe('fused Adam vs CPU twin over several steps', () => {
  it('Adam with L2 weight decay, default betas and eps, odd length', async () => {
    await compareSteps(1000 + 37, { weightDecay: 3e-2 }, 5, 1);
  });
  it('AdamW (decoupled decay), other betas and a large eps', async () => {
    await compareSteps(517, { betas: [0.8, 0.95], eps: 1e-3, weightDecay: 0.1, decoupled: true }, 4, 2);
  });
  it('beta1 0 (RMSProp-like) without weight decay', async () => {
    await compareSteps(65, { betas: [0, 0.9] }, 3, 3);
  });

  it('updates every parameter of a packed model in one dispatch, padding stays inert, and the list variant agrees', async () => {
    const sizes = [5 * 7, 13, 3 * 2 * 2, 1, 300];
    const { offsets, total } = packedLayout(sizes, gpu().limits.minStorageBufferOffsetAlignment);
    const p = randomArray(total, 5);
    const g = randomArray(total, 6);
    const inPadding = (j: number) => !sizes.some((s, i) => j >= offsets[i] && j < offsets[i] + s);
    for (let j = 0; j < total; j++) if (inPadding(j)) p[j] = g[j] = 0;
    const flat = { params: upload(gpu(), p), grads: upload(gpu(), g), expAvg: empty(gpu(), total), expAvgSq: empty(gpu(), total), count: total };
    const lp = upload(gpu(), p);
    const lg = upload(gpu(), g);
    const lm = empty(gpu(), total);
    const lv = empty(gpu(), total);
    for (let step = 1; step <= 2; step++) {
      const opts = { lr: 0.01, weightDecay: 1e-3, step };
      const before = gpu().dispatchCount;
      adamStep(gpu(), flat, opts);
      expect(gpu().dispatchCount - before).toBe(1);
      adamStepList(gpu(), sizes.map((size, i) => {
        const w = (b: GPUBuffer) => ({ buffer: b, offset: offsets[i] * 4, size: size * 4 });
        return { param: w(lp), grad: w(lg), expAvg: w(lm), expAvgSq: w(lv), size };
      }), opts);
    }
    const a = await download(gpu(), flat.params, total);
    const b = await download(gpu(), lp, total);
    for (let i = 0; i < sizes.length; i++) {
      expect(Array.from(b.subarray(offsets[i], offsets[i] + sizes[i]))).toEqual(Array.from(a.subarray(offsets[i], offsets[i] + sizes[i])));
    }
    // Zero weights, gradients and moments in the padding (as the optimiser keeps them) stay zero.
    const m = await download(gpu(), flat.expAvg, total);
    const v = await download(gpu(), flat.expAvgSq, total);
    for (let j = 0; j < total; j++) if (inPadding(j)) expect([a[j], m[j], v[j]]).toEqual([0, 0, 0]);
  });
});

describe('Adam errors', () => {
  it('rejects bad hyper-parameters and buffers, naming the value', () => {
    const [a, b, c, d] = [0, 1, 2, 3].map(() => empty(gpu(), 64));
    const bufs = { params: a, grads: b, expAvg: c, expAvgSq: d, count: 64 };
    expect(() => adamStep(gpu(), bufs, { lr: -1, step: 1 })).toThrow(/adamStep: lr must be a finite non-negative number, got -1/);
    expect(() => adamStep(gpu(), bufs, { lr: 0.1, betas: [0.9, 1], step: 1 })).toThrow(/betas\[1\] must be in \[0, 1\), got 1/);
    expect(() => adamStep(gpu(), bufs, { lr: 0.1, eps: Number.NaN, step: 1 })).toThrow(/eps must be a finite non-negative number, got NaN/);
    expect(() => adamStep(gpu(), bufs, { lr: 0.1, step: 0 })).toThrow(/step must be a positive integer \(1 on the first update\), got 0/);
    expect(() => adamStep(gpu(), { ...bufs, count: 65 }, { lr: 0.1, step: 1 })).toThrow(/adamStep params: buffer of 256 bytes is too small for 65/);
    expect(() => adamStep(gpu(), { ...bufs, expAvgSq: c }, { lr: 0.1, step: 1 })).toThrow(/four different buffers/);
    expect(() => adamStepList(gpu(), [{ param: a, grad: b, expAvg: c, expAvgSq: { buffer: d, offset: 128 }, size: 64 }], { lr: 0.1, step: 2 }))
      .toThrow(/adamStepList: tensor 0 expAvgSq window \(offset 128, buffer 256 bytes\) is too small for 64/);
  });
});

const GOLDEN = new URL('../golden/adam.safetensors', import.meta.url);

describe('Adam and AdamW against torch.optim (test/golden/adam.safetensors)', () => {
  const g = existsSync(GOLDEN) ? readSafetensors(new Uint8Array(readFileSync(GOLDEN))) : null;
  const get = (k: string) => {
    const t = g?.get(k);
    if (!t) throw new Error(`golden tensor ${k} missing; run /usr/bin/python3 scripts/make_adam_golden.py`);
    return t.data as Float32Array;
  };
  const nParams = (c: string) => {
    let n = 0;
    while (g?.has(`${c}.init.p${n}`)) n++;
    return n;
  };

  for (const [c, decoupled] of [['adam', false], ['adamw', true]] as const) {
    it(`${c}: the CPU twin reproduces PyTorch over five steps with weight decay and a changing lr`, () => {
      const [beta1, beta2, eps, weightDecay] = get(`${c}.hparams`);
      const lrs = get(`${c}.lr`);
      expect(lrs.length).toBe(5);
      for (let i = 0; i < nParams(c); i++) {
        const init = get(`${c}.init.p${i}`);
        let s: AdamRefState = { params: Float64Array.from(init), expAvg: new Float64Array(init.length), expAvgSq: new Float64Array(init.length) };
        lrs.forEach((lr, k) => {
          s = adamRef(s.params, get(`${c}.step${k}.grad.p${i}`), s.expAvg, s.expAvgSq, { lr, betas: [beta1, beta2], eps, weightDecay, decoupled, step: k + 1 });
          expectClose(s.params, get(`${c}.step${k}.p${i}`), 1e-6, 1e-5);
          expectClose(s.expAvg, get(`${c}.step${k}.exp_avg.p${i}`), 1e-7, 1e-5);
          expectClose(s.expAvgSq, get(`${c}.step${k}.exp_avg_sq.p${i}`), 1e-7, 1e-5);
        });
      }
    });

    it(`${c}: the fused kernel reproduces PyTorch on packed parameters`, async () => {
      const [beta1, beta2, eps, weightDecay] = get(`${c}.hparams`);
      const lrs = get(`${c}.lr`);
      const n = nParams(c);
      expect(n).toBeGreaterThan(1);
      const sizes = Array.from({ length: n }, (_, i) => get(`${c}.init.p${i}`).length);
      const { offsets, total } = packedLayout(sizes, gpu().limits.minStorageBufferOffsetAlignment);
      const pack = (name: (i: number) => string) => {
        const flat = new Float32Array(total);
        for (let i = 0; i < n; i++) flat.set(get(name(i)), offsets[i]);
        return flat;
      };
      const bufs = { params: upload(gpu(), pack((i) => `${c}.init.p${i}`)), grads: empty(gpu(), total), expAvg: empty(gpu(), total), expAvgSq: empty(gpu(), total), count: total };
      for (let k = 0; k < lrs.length; k++) {
        gpu().write(bufs.grads, pack((i) => `${c}.step${k}.grad.p${i}`));
        adamStep(gpu(), bufs, { lr: lrs[k], betas: [beta1, beta2], eps, weightDecay, decoupled, step: k + 1 });
        const [p, m, v] = await Promise.all([bufs.params, bufs.expAvg, bufs.expAvgSq].map((b) => download(gpu(), b, total)));
        for (let i = 0; i < n; i++) {
          const at = (x: Float32Array) => x.subarray(offsets[i], offsets[i] + sizes[i]);
          expectClose(at(p), get(`${c}.step${k}.p${i}`), 1e-5, 1e-4);
          expectClose(at(m), get(`${c}.step${k}.exp_avg.p${i}`), 1e-6, 1e-4);
          expectClose(at(v), get(`${c}.step${k}.exp_avg_sq.p${i}`), 1e-6, 1e-4);
        }
      }
    });
  }
});
