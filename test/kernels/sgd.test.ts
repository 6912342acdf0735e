import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { packedLayout, sgdStep, sgdStepList, type SgdOptions } from '../../src/kernels/sgd.js';
import { sgdRef } from '../../src/kernels/reference/sgd.js';
import { polyLr } from '../../src/nn/lr-schedule.js';
import { readSafetensors } from '../../src/nn/safetensors.js';
import { download, empty, expectClose, randomArray, upload, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

type Hyper = Omit<SgdOptions, 'firstStep' | 'lr'>;

/** Runs `steps` GPU steps with the poly schedule and the same steps on the CPU twin; compares after each. */
async function compareSteps(n: number, hyper: Hyper, steps: number, seed: number) {
  const p0 = randomArray(n, seed, -1, 1);
  const pb = upload(gpu(), p0);
  const gb = empty(gpu(), n);
  const mb = upload(gpu(), randomArray(n, seed + 99, -5, 5)); // garbage: the first step must ignore it
  let ref: { params: Float64Array; momentum: Float64Array } = { params: Float64Array.from(p0), momentum: new Float64Array(n) };
  for (let k = 0; k < steps; k++) {
    const g = randomArray(n, seed + 1 + k, -1, 1);
    gpu().write(gb, g);
    const lr = polyLr(0.05, k, steps);
    sgdStep(gpu(), { params: pb, grads: gb, momentum: mb, count: n }, { ...hyper, lr, firstStep: k === 0 });
    ref = sgdRef(ref.params, g, ref.momentum, {
      lr, momentum: hyper.momentum ?? 0.99, nesterov: hyper.nesterov ?? true, weightDecay: hyper.weightDecay ?? 0,
      dampening: hyper.dampening ?? 0, firstStep: k === 0,
    });
    expectClose(await download(gpu(), pb, n), ref.params, 1e-5, 1e-4);
    if ((hyper.momentum ?? 0.99) !== 0) expectClose(await download(gpu(), mb, n), ref.momentum, 1e-5, 1e-4);
  }
}

describe('fused SGD vs CPU twin over several steps', () => {
  it('momentum 0.99, Nesterov, weight decay (the TGNet recipe), odd length', async () => {
    await compareSteps(1000 + 37, { momentum: 0.99, nesterov: true, weightDecay: 3e-2 }, 5, 1);
  });
  it('a length divisible by 4 (software adapters: the vec4 kernel), Nesterov and classic momentum', async () => {
    await compareSteps(4 * 301, { momentum: 0.99, nesterov: true, weightDecay: 3e-2 }, 3, 5);
    await compareSteps(4 * 129, { momentum: 0.9, nesterov: false, dampening: 0.1, weightDecay: 0 }, 3, 6);
  });
  it('classic momentum with dampening', async () => {
    await compareSteps(517, { momentum: 0.9, nesterov: false, dampening: 0.1, weightDecay: 0 }, 4, 2);
  });
  it('plain SGD (momentum 0 leaves the buffer untouched)', async () => {
    const n = 300;
    const mb = upload(gpu(), new Float32Array(n).fill(7));
    const pb = upload(gpu(), randomArray(n, 3));
    const g = randomArray(n, 4);
    sgdStep(gpu(), { params: pb, grads: upload(gpu(), g), momentum: mb, count: n }, { lr: 0.1, momentum: 0, nesterov: false, firstStep: true });
    expectClose(await download(gpu(), pb, n), sgdRef(randomArray(n, 3), g, new Float64Array(n), {
      lr: 0.1, momentum: 0, nesterov: false, weightDecay: 0, dampening: 0, firstStep: true,
    }).params, 1e-6, 1e-5);
    expect((await download(gpu(), mb, n)).every((x) => x === 7)).toBe(true);
  });

  it('updates every parameter of a packed model in one dispatch, and the list variant agrees', async () => {
    const sizes = [5 * 7, 13, 3 * 2 * 2, 1, 300];
    const { offsets, total } = packedLayout(sizes, gpu().limits.minStorageBufferOffsetAlignment);
    const p = randomArray(total, 5);
    const g = randomArray(total, 6);
    const flat = { params: upload(gpu(), p), grads: upload(gpu(), g), momentum: empty(gpu(), total), count: total };
    const opts = { lr: 0.01, weightDecay: 1e-3, firstStep: true };
    const before = gpu().dispatchCount;
    sgdStep(gpu(), flat, opts);
    expect(gpu().dispatchCount - before).toBe(1);
    const lp = upload(gpu(), p);
    const lg = upload(gpu(), g);
    const lm = empty(gpu(), total);
    sgdStepList(gpu(), sizes.map((size, i) => {
      const w = (b: GPUBuffer) => ({ buffer: b, offset: offsets[i] * 4, size: size * 4 });
      return { param: w(lp), grad: w(lg), momentum: w(lm), size };
    }), opts);
    const a = await download(gpu(), flat.params, total);
    const b = await download(gpu(), lp, total);
    for (let i = 0; i < sizes.length; i++) {
      expect(Array.from(b.subarray(offsets[i], offsets[i] + sizes[i]))).toEqual(Array.from(a.subarray(offsets[i], offsets[i] + sizes[i])));
    }
  });
});

describe('SGD helpers and errors', () => {
  it('packedLayout aligns every offset', () => {
    expect(packedLayout([5, 64, 1, 0, 3], 256)).toEqual({ offsets: [0, 64, 128, 192, 192], total: 256 });
    expect(packedLayout([5, 3], 16)).toEqual({ offsets: [0, 8], total: 12 });
    expect(() => packedLayout([-1])).toThrow(/size 0 must be a non-negative integer/);
  });

  it('polyLr follows lr0 (1 - step/total)^0.9', () => {
    expect(polyLr(0.01, 0, 100)).toBe(0.01);
    expect(polyLr(0.01, 50, 100)).toBeCloseTo(0.01 * 0.5 ** 0.9, 12);
    expect(polyLr(0.01, 100, 100)).toBe(0);
    expect(polyLr(0.01, 150, 100)).toBe(0);
    expect(polyLr(1, 25, 100, 2)).toBeCloseTo(0.5625, 12);
    expect(() => polyLr(0.01, 1, 0)).toThrow(/totalSteps must be a positive integer/);
  });

  it('rejects bad hyper-parameters and buffers', () => {
    const a = empty(gpu(), 64);
    const b = empty(gpu(), 64);
    const c = empty(gpu(), 64);
    const bufs = { params: a, grads: b, momentum: c, count: 64 };
    expect(() => sgdStep(gpu(), bufs, { lr: -1, firstStep: false })).toThrow(/lr must be a finite non-negative number, got -1/);
    expect(() => sgdStep(gpu(), bufs, { lr: 0.1, momentum: 0, firstStep: false })).toThrow(/Nesterov momentum requires momentum > 0/);
    expect(() => sgdStep(gpu(), bufs, { lr: 0.1, dampening: 0.5, firstStep: false })).toThrow(/dampening 0/);
    expect(() => sgdStep(gpu(), { ...bufs, count: 65 }, { lr: 0.1, firstStep: false })).toThrow(/sgdStep params: buffer of 256 bytes is too small for 65/);
    expect(() => sgdStep(gpu(), { ...bufs, grads: a }, { lr: 0.1, firstStep: false })).toThrow(/three different buffers/);
    expect(() => sgdStepList(gpu(), [{ param: a, grad: { buffer: b, offset: 128 }, momentum: c, size: 64 }], { lr: 0.1, firstStep: false }))
      .toThrow(/tensor 0 grad window \(offset 128, buffer 256 bytes\) is too small for 64/);
  });
});

const GOLDEN = new URL('../golden/sgd.safetensors', import.meta.url);

describe('SGD against torch.optim.SGD (test/golden/sgd.safetensors)', () => {
  it('matches PyTorch over several Nesterov steps with weight decay and the poly schedule', async () => {
    expect(existsSync(GOLDEN), 'run scripts/make_op_goldens.py to create the goldens').toBe(true);
    const g = readSafetensors(new Uint8Array(readFileSync(GOLDEN)));
    const get = (k: string) => {
      const t = g.get(k);
      if (!t) throw new Error(`golden tensor ${k} missing`);
      return t.data as Float32Array;
    };
    const [steps, nParams] = Array.from(g.get('steps')?.data as BigInt64Array, Number);
    const [lr0, momentum, weightDecay] = get('hparams');
    const lrs = get('lr');
    const sizes = Array.from({ length: nParams }, (_, i) => get(`init.p${i}`).length);
    const { offsets, total } = packedLayout(sizes, gpu().limits.minStorageBufferOffsetAlignment);
    const pack = (name: (i: number) => string) => {
      const flat = new Float32Array(total);
      for (let i = 0; i < nParams; i++) flat.set(get(name(i)), offsets[i]);
      return flat;
    };
    const params = upload(gpu(), pack((i) => `init.p${i}`));
    const grads = empty(gpu(), total);
    const mom = empty(gpu(), total);
    for (let k = 0; k < steps; k++) {
      expect(lrs[k]).toBeCloseTo(polyLr(lr0, k, steps), 6);
      gpu().write(grads, pack((i) => `step${k}.grad.p${i}`));
      sgdStep(gpu(), { params, grads, momentum: mom, count: total }, {
        lr: polyLr(lr0, k, steps), momentum, nesterov: true, weightDecay, firstStep: k === 0,
      });
      const p = await download(gpu(), params, total);
      const m = await download(gpu(), mom, total);
      for (let i = 0; i < nParams; i++) {
        expectClose(p.subarray(offsets[i], offsets[i] + sizes[i]), get(`step${k}.p${i}`), 1e-5, 1e-4);
        expectClose(m.subarray(offsets[i], offsets[i] + sizes[i]), get(`step${k}.momentum.p${i}`), 1e-5, 1e-4);
      }
    }
  });
});
