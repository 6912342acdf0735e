import { describe, expect, it } from 'vitest';
import { gradcheck } from '../../src/autograd/gradcheck.js';
import { conv3d, weightStandardize } from '../../src/autograd/ops/conv.js';
import { dynamicHead, partialLabelLoss, taskConcat } from '../../src/autograd/ops/head.js';
import { groupNorm, groupNormRelu } from '../../src/autograd/ops/norm.js';
import { spatialGate } from '../../src/autograd/ops/spatial-gate.js';
import { channelGate, globalAvgPool, upsampleTrilinear2x } from '../../src/autograd/ops/volume.js';
import { tidy } from '../../src/autograd/scope.js';
import { Tensor } from '../../src/autograd/tensor.js';
import { randomArray, useGpu } from '../helpers/gpu.js';

useGpu();
const inp = (shape: number[], seed: number, lo = -1, hi = 1) => ({ data: randomArray(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape });

describe('gradcheck of the TGNet op rules (GPU, f32)', () => {
  it('conv3d k3 stride 1 with bias', async () => {
    const r = await gradcheck((x, w, b) => conv3d(x, w, { bias: b, padding: 1 }), [inp([2, 2, 3, 4, 3], 1), inp([3, 2, 3, 3, 3], 2, -0.3, 0.3), inp([3], 3)], { maxElements: 24 });
    expect(r.failures).toEqual([]);
  });
  it('conv3d k3 stride 2 and k1', async () => {
    const r = await gradcheck((x, w) => conv3d(x, w, { stride: 2, padding: 1 }), [inp([1, 2, 5, 4, 5], 4), inp([2, 2, 3, 3, 3], 5, -0.3, 0.3)], { maxElements: 24 });
    expect(r.failures).toEqual([]);
    const r1 = await gradcheck((x, w) => conv3d(x, w), [inp([2, 3, 2, 3, 2], 6), inp([4, 3, 1, 1, 1], 7)], { maxElements: 24 });
    expect(r1.failures).toEqual([]);
  });
  it('weightStandardize', async () => {
    const r = await gradcheck((w) => weightStandardize(w), [inp([3, 2, 3, 3, 3], 8)], { eps: 1e-3, maxElements: 32 });
    expect(r.failures).toEqual([]);
  });
  it('groupNorm and groupNormRelu', async () => {
    for (const fn of [groupNorm, groupNormRelu]) {
      const r = await gradcheck((x, w, b) => fn(x, 2, w, b), [inp([2, 4, 2, 3, 2], 9), inp([4], 10, 0.5, 1.5), inp([4], 11)], { eps: 1e-3, maxElements: 32 });
      expect(r.failures).toEqual([]);
    }
  });
  it('globalAvgPool, channelGate, upsampleTrilinear2x', async () => {
    expect((await gradcheck((x) => globalAvgPool(x), [inp([2, 3, 2, 3, 2], 12)])).failures).toEqual([]);
    expect((await gradcheck((x, g) => channelGate(x, g), [inp([2, 3, 2, 3, 2], 13), inp([2, 3], 14)])).failures).toEqual([]);
    expect((await gradcheck((x) => upsampleTrilinear2x(x), [inp([1, 2, 2, 3, 2], 15)])).failures).toEqual([]);
  });
  it('spatialGate (both inputs)', async () => {
    const r = await gradcheck((x, g) => spatialGate(x, g), [inp([2, 3, 2, 3, 2], 21), inp([2, 1, 2, 3, 2], 22, 0, 1)]);
    expect(r.failures).toEqual([]);
  });
  it('dynamicHead', async () => {
    // eps 1e-4: a hidden ReLU of this draw sits within 1e-3 of its kink (checked against the float64 twin).
    const r = await gradcheck((h, p) => dynamicHead(h, p), [inp([2, 8, 2, 2, 3], 16), inp([2, 162], 17, -0.5, 0.5)], { eps: 1e-4, maxElements: 48 });
    expect(r.failures).toEqual([]);
  });
  it('taskConcat appends the one-hot and passes the feature gradient', async () => {
    const r = await gradcheck((f) => taskConcat(f, [3, 0, 6], 7), [inp([3, 4], 20)]);
    expect(r.failures).toEqual([]);
    await tidy(async () => {
      const y = await taskConcat(Tensor.fromArray([1, 2, 3, 4], [2, 2]), [1, 6], 7).toArray();
      expect([...y]).toEqual([1, 2, 0, 1, 0, 0, 0, 0, 0, 3, 4, 0, 0, 0, 0, 0, 0, 1]);
      expect(() => taskConcat(Tensor.zeros([2, 2]), [0, 7], 7)).toThrow(/task id 7 at position 1 is out of range/);
    });
  });

  it('partialLabelLoss with an unannotated channel', async () => {
    const target = new Float32Array(2 * 2 * 12);
    const t = randomArray(target.length, 18, 0, 1);
    for (let i = 0; i < target.length; i++) target[i] = t[i] > 0.6 ? 1 : 0;
    target.fill(-1, 12, 24); // sample 0, tumour channel unannotated
    const r = await gradcheck(
      (l) => partialLabelLoss(l, Tensor.fromArray(target, [2, 2, 12])),
      [inp([2, 2, 12], 19, -2, 2)], { eps: 1e-3 },
    );
    expect(r.failures).toEqual([]);
  });
});

describe('shape errors name the op and the shapes', () => {
  it('conv3d channel mismatch, group count, gate shape, head params', () => {
    tidy(() => {
      expect(() => conv3d(Tensor.zeros([1, 2, 4, 4, 4]), Tensor.zeros([3, 5, 3, 3, 3]))).toThrow(/conv3d.*5.*2|conv3d.*2.*5/);
      expect(() => groupNorm(Tensor.zeros([1, 6, 2, 2, 2]), 4, Tensor.ones([6]), Tensor.zeros([6]))).toThrow(/G=4.*C=6/);
      expect(() => channelGate(Tensor.zeros([1, 6, 2, 2, 2]), Tensor.zeros([1, 5]))).toThrow(/channelGate: gate \[1, 5\]/);
      expect(() => dynamicHead(Tensor.zeros([1, 8, 2, 2, 2]), Tensor.zeros([1, 160]))).toThrow(/params \[1, 160\] must be \[N, 162\]/);
    });
  });
});
