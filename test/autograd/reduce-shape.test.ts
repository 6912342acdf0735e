import { describe, expect, it } from 'vitest';
import { gradcheck } from '../../src/autograd/gradcheck.js';
import { max, mean, sum } from '../../src/autograd/ops/reduce.js';
import { concat, permute, slice, transpose } from '../../src/autograd/ops/shape.js';
import { mul } from '../../src/autograd/ops/elementwise.js';
import { tidy } from '../../src/autograd/scope.js';
import { Tensor } from '../../src/autograd/tensor.js';
import { randomArray, useGpu } from '../helpers/gpu.js';

useGpu();

const inp = (shape: number[], seed: number) => ({ data: randomArray(shape.reduce((a, b) => a * b, 1), seed), shape });

describe('reduction rules', () => {
  it('sum, mean and max give the expected values and shapes', async () => {
    await tidy(async () => {
      const x = Tensor.fromArray([1, 5, 3, 4, 2, 6], [2, 3]);
      expect([...(await sum(x).toArray())]).toEqual([21]);
      expect([...(await sum(x, [1]).toArray())]).toEqual([9, 12]);
      expect(sum(x, [0], true).shape).toEqual([1, 3]);
      expect([...(await mean(x, [-1]).toArray())]).toEqual([3, 4]);
      expect([...(await max(x, [0]).toArray())]).toEqual([4, 5, 6]);
    });
  });

  const cases: [string, (x: Tensor) => Tensor, number[]][] = [
    ['sum all', (x) => sum(x), [2, 3, 4]],
    ['sum axes 0,2', (x) => sum(x, [0, 2]), [2, 3, 4]],
    ['mean axis 1 keepDims', (x) => mean(x, [1], true), [2, 3, 4]],
    ['max axis -1', (x) => max(x, [-1]), [3, 5]],
  ];
  for (const [name, fn, shape] of cases) {
    it(`gradcheck ${name}`, async () => {
      const r = await gradcheck(fn, [inp(shape, 11)], { eps: 1e-3 });
      expect(r.failures).toEqual([]);
    });
  }

  it('max shares the gradient among ties', async () => {
    await tidy(async () => {
      const x = Tensor.fromArray([2, 2, 1], [3], { requiresGrad: true });
      max(x).backward();
      expect([...(await x.grad!.toArray())]).toEqual([0.5, 0.5, 0]);
    });
  });
});

describe('shape rules', () => {
  it('permute and transpose move data and gradients', async () => {
    await tidy(async () => {
      const x = Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
      expect([...(await transpose(x).toArray())]).toEqual([1, 4, 2, 5, 3, 6]);
    });
    const r = await gradcheck((x) => mul(permute(x, [2, 0, 1]), Tensor.fromArray(randomArray(24, 3), [4, 2, 3])), [inp([2, 3, 4], 4)]);
    expect(r.failures).toEqual([]);
  });

  it('concat and slice are adjoint', async () => {
    const r = await gradcheck((a, b) => mul(concat([a, b], 1), Tensor.fromArray(randomArray(2 * 5 * 3, 5), [2, 5, 3])), [inp([2, 2, 3], 6), inp([2, 3, 3], 7)]);
    expect(r.failures).toEqual([]);
    const s = await gradcheck((a) => slice(a, 1, 1, 2), [inp([2, 4, 3], 8)]);
    expect(s.failures).toEqual([]);
  });

  it('concat names the shapes that disagree', () => {
    tidy(() => {
      expect(() => concat([Tensor.zeros([2, 3]), Tensor.zeros([3, 3])], 1)).toThrow(/concat/);
    });
  });
});
