/** Conv3d (plain and weight-standardised), GroupNorm (plain and fused with ReLU) and PyTorch's default init. */
import { describe, expect, it } from 'vitest';
import { tidy } from '../../src/autograd/scope.js';
import { Tensor } from '../../src/autograd/tensor.js';
import { conv3dRef } from '../../src/kernels/reference/conv3d.js';
import { groupNormRef } from '../../src/kernels/reference/group-norm.js';
import { weightStandardizeRef } from '../../src/kernels/reference/weight-standardize.js';
import { createRng, fanIn, kaimingUniformDefault } from '../../src/nn/init.js';
import { Conv3d, GroupNorm } from '../../src/nn/layers.js';
import { expectClose, randomArray, useGpu } from '../helpers/gpu.js';

useGpu();

describe('init', () => {
  it('kaimingUniformDefault draws uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) reproducibly from the seed', () => {
    const shape = [16, 8, 3, 3, 3];
    expect(fanIn(shape)).toBe(216);
    const w = kaimingUniformDefault(shape, createRng(3));
    const bound = 1 / Math.sqrt(216);
    expect(Math.max(...w)).toBeLessThanOrEqual(bound);
    expect(Math.min(...w)).toBeGreaterThanOrEqual(-bound);
    const mean = w.reduce((a, b) => a + b, 0) / w.length;
    const std = Math.sqrt(w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length);
    // uniform(-b, b) has mean 0 and std b / sqrt(3); 3456 draws put both within a few percent of b
    expect(Math.abs(mean)).toBeLessThan(0.03 * bound);
    expect(Math.abs(std / (bound / Math.sqrt(3)) - 1)).toBeLessThan(0.05);
    expect(kaimingUniformDefault(shape, createRng(3))).toEqual(w);
    expect(kaimingUniformDefault(shape, createRng(4))).not.toEqual(w);
    expect(() => fanIn([5])).toThrow(/fanIn: weight shape \[5\] needs at least \[cout, cin\]/);
  });
});

describe('Conv3d', () => {
  it('has PyTorch parameter shapes and initial ranges', async () => {
    const conv = new Conv3d(3, 5, 3, { rng: createRng(1) });
    expect(conv.namedParameters().map(([n, p]) => [n, [...p.shape]])).toEqual([['weight', [5, 3, 3, 3, 3]], ['bias', [5]]]);
    expect(conv.padding).toBe(1);
    const bound = 1 / Math.sqrt(81);
    for (const p of conv.parameters()) for (const v of await p.toArray()) expect(Math.abs(v)).toBeLessThanOrEqual(bound);
    conv.dispose();
    const noBias = new Conv3d(3, 5, 1, { bias: false, stride: 2 });
    expect(noBias.bias).toBeNull();
    expect(noBias.padding).toBe(0);
    expect(noBias.namedParameters().map(([n]) => n)).toEqual(['weight']);
    noBias.dispose();
  });

  for (const ws of [false, true]) {
    it(`forward equals the CPU reference (${ws ? 'weight-standardised, stride 2' : 'plain, bias'})`, async () => {
      const conv = new Conv3d(3, 4, 3, { stride: ws ? 2 : 1, bias: !ws, weightStandardization: ws, rng: createRng(5) });
      const xShape = [2, 3, 5, 6, 7];
      const x = randomArray(2 * 3 * 5 * 6 * 7, 11);
      const y = await tidy(() => conv.forward(Tensor.fromArray(x, xShape)).toArray());
      const w = await conv.weight.toArray();
      const wUsed = ws ? weightStandardizeRef(w, conv.weight.shape).what : w;
      const bias = conv.bias ? await conv.bias.toArray() : null;
      const ref = conv3dRef(x, wUsed, bias, { x: xShape, w: conv.weight.shape, stride: conv.stride, padding: 1 });
      expectClose(y, ref.data);
      conv.dispose();
    });
  }

  it('rejects bad sizes and inputs with the expectation', () => {
    expect(() => new Conv3d(0, 4, 3)).toThrow(/Conv3d: inChannels must be a positive integer, got 0/);
    expect(() => new Conv3d(2, 4, 3, { padding: -1 })).toThrow(/Conv3d: padding must be a non-negative integer, got -1/);
    const conv = new Conv3d(2, 4, 3);
    const x = Tensor.zeros([1, 3, 4, 4, 4]);
    expect(() => conv.forward(x)).toThrow(/Conv3d\.forward: input \[1, 3, 4, 4, 4\] must be \[N, 2, D, H, W\]/);
    x.dispose();
    conv.dispose();
  });
});

describe('GroupNorm', () => {
  it('starts as weight ones, bias zeros; forward and forwardRelu equal the CPU reference', async () => {
    const gn = new GroupNorm(2, 4);
    expect(Array.from(await gn.weight.toArray())).toEqual([1, 1, 1, 1]);
    expect(Array.from(await gn.bias.toArray())).toEqual([0, 0, 0, 0]);
    const weight = [0.5, -1, 2, 1.5];
    const bias = [0.1, 0.2, -0.3, 0];
    gn.loadStateDict(new Map([['weight', { shape: [4], data: weight }], ['bias', { shape: [4], data: bias }]]));
    const shape = [2, 4, 3, 4, 5];
    const x = randomArray(2 * 4 * 60, 21, -2, 2);
    const [y, yr] = await tidy(async () => {
      const xt = Tensor.fromArray(x, shape);
      return [await gn.forward(xt).toArray(), await gn.forwardRelu(xt).toArray()];
    });
    expectClose(y, groupNormRef(x, shape, 2, weight, bias).y);
    expectClose(yr, groupNormRef(x, shape, 2, weight, bias, 1e-5, true).y);
    expect(yr.some((v) => v === 0) && yr.every((v) => v >= 0)).toBe(true);
    gn.dispose();
  });

  it('rejects groups that do not divide the channels and wrong inputs', () => {
    expect(() => new GroupNorm(16, 24)).toThrow(/GroupNorm: 24 channels do not split into 16 groups/);
    const gn = new GroupNorm(2, 4);
    const x = Tensor.zeros([1, 6, 2, 2, 2]);
    expect(() => gn.forwardRelu(x)).toThrow(/GroupNorm\.forwardRelu: input \[1, 6, 2, 2, 2\] must be \[N, 4, \.\.\.\]/);
    x.dispose();
    gn.dispose();
  });
});
