import { describe, expect, it } from 'vitest';
import { add, mul, relu, sigmoid, sub, div, exp, log, sqrt, neg, square, pow } from '../../src/autograd/ops/elementwise.js';
import { gradcheck } from '../../src/autograd/gradcheck.js';
import { keep, scopeDepth, tidy } from '../../src/autograd/scope.js';
import { noGrad } from '../../src/autograd/tape.js';
import { Tensor, liveTensorCount } from '../../src/autograd/tensor.js';
import { randomArray, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

describe('Tensor', () => {
  it('round-trips host data and names a bad shape', async () => {
    const t = Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
    expect(t.shape).toEqual([2, 3]);
    expect([...(await t.toArray())]).toEqual([1, 2, 3, 4, 5, 6]);
    expect(() => Tensor.fromArray([1, 2, 3], [2, 2])).toThrow(/3 values do not fill shape \[2, 2\] \(4 elements\)/);
    expect(() => Tensor.empty([2, -1])).toThrow(/non-negative integers/);
    t.dispose();
    expect(() => t.buffer).toThrow(/used after dispose/);
  });

  it('reshape shares storage and frees it with the last view', async () => {
    const before = gpu().poolStats().liveBuffers;
    const t = Tensor.fromArray([1, 2, 3, 4], [4]);
    const r = t.reshape([2, 2]);
    expect(r.buffer).toBe(t.buffer);
    t.dispose();
    expect([...(await r.toArray())]).toEqual([1, 2, 3, 4]);
    expect(gpu().poolStats().liveBuffers).toBe(before + 1);
    r.dispose();
    expect(gpu().poolStats().liveBuffers).toBe(before);
    expect(() => Tensor.fromArray([1, 2, 3, 4], [4]).reshape([3])).toThrow(/cannot view \[4\] \(4 elements\) as \[3\]/);
  });

  it('rejects a wrong dtype, naming it', () => {
    expect(() => Tensor.fromArray([1, 2], [2], { dtype: 'bf16' as 'f32' })).toThrow(/dtype "bf16" is not supported; expected 'f32' or 'f16'/);
    expect(() => Tensor.fromArray(new BigInt64Array(2) as unknown as number[], [2])).toThrow(/64-bit integer data is not supported/);
    expect(() => Tensor.fromArray('ab' as unknown as number[], [2])).toThrow(/must be an array or typed array of numbers, got string/);
  });

  it('rejects a buffer larger than the device allows, naming the limit', () => {
    const limit = gpu().limits.maxBufferSize;
    const n = Math.ceil(limit / 4) + 1024;
    expect(() => Tensor.empty([n])).toThrow(new RegExp(`larger than this device's maxBufferSize of ${limit} bytes`));
  });
});

describe('tape', () => {
  it('accumulates the gradient of a tensor used twice without re-walking', async () => {
    await tidy(async () => {
      const x = Tensor.fromArray([1, -2, 3], [3], { requiresGrad: true });
      const y = mul(x, x); // dy/dx = 2x
      const z = add(y, x); // + 1
      const s = mul(z, Tensor.fromArray([1, 1, 1], [3]));
      s.backward(Tensor.fromArray([1, 1, 1], [3]));
      expect([...(await x.grad!.toArray())]).toEqual([3, -3, 7]);
    });
  });

  it('sums leaf gradients across backward calls, as PyTorch does', async () => {
    await tidy(async () => {
      const x = Tensor.fromArray([2], [1], { requiresGrad: true }).keep();
      mul(x, 3).backward();
      mul(x, 3).backward();
      expect([...(await x.grad!.toArray())]).toEqual([6]);
      x.dispose();
    });
  });

  it('accumulates in place (the accumulator keeps its buffer) unless a view of it is alive', async () => {
    await tidy(async () => {
      const x = Tensor.fromArray([2, -1], [2], { requiresGrad: true }).keep();
      const ones = Tensor.ones([2]);
      mul(x, 3).backward(ones);
      const first = x.grad!;
      const buffer = first.buffer;
      mul(x, 5).backward(ones);
      // The same tensor and buffer, summed in place; a reference held by the caller stays valid.
      expect(x.grad).toBe(first);
      expect(x.grad!.buffer).toBe(buffer);
      expect([...(await first.toArray())]).toEqual([8, 8]);
      // A live view of the gradient: a new sum, so the view keeps the values it saw.
      const view = x.grad!.reshape([1, 2]);
      mul(x, 1).backward(ones);
      expect([...(await view.toArray())]).toEqual([8, 8]);
      expect([...(await x.grad!.toArray())]).toEqual([9, 9]);
      x.dispose();
    });
  });

  it('broadcast gradients reduce back to the input shape', async () => {
    await tidy(async () => {
      const a = Tensor.fromArray(randomArray(6, 1), [2, 3], { requiresGrad: true });
      const b = Tensor.fromArray([1, 2, 3], [3], { requiresGrad: true });
      add(a, b).backward(Tensor.ones([2, 3]));
      expect([...(await b.grad!.toArray())]).toEqual([2, 2, 2]);
      expect([...(await a.grad!.toArray())]).toEqual([1, 1, 1, 1, 1, 1]);
    });
  });

  it('records nothing under noGrad and refuses backward there', () => {
    tidy(() => {
      const x = Tensor.fromArray([1], [1], { requiresGrad: true });
      const y = noGrad(() => mul(x, 2));
      expect(y.requiresGrad).toBe(false);
      expect(y.node).toBeNull();
      expect(() => y.backward()).toThrow(/does not require grad/);
    });
  });

  it('frees the graph after backward and says so when walked again', () => {
    tidy(() => {
      const x = Tensor.fromArray([1], [1], { requiresGrad: true });
      const y = mul(exp(x), 2);
      y.backward();
      expect(() => y.backward()).toThrow(/already freed/);
    });
  });
});

describe('scopes', () => {
  it('tidy disposes intermediates, keeps results and frees saved tensors', async () => {
    const liveBefore = gpu().poolStats().liveBuffers;
    const tensorsBefore = liveTensorCount();
    const x = keep(Tensor.fromArray(randomArray(8, 3), [8], { requiresGrad: true }));
    const y = tidy(() => sigmoid(mul(relu(x), 3)));
    expect(scopeDepth()).toBe(0);
    expect(y.isDisposed).toBe(false);
    const seed = Tensor.ones([8]);
    y.backward(seed);
    seed.dispose();
    y.dispose();
    x.dispose();
    expect(liveTensorCount()).toBe(tensorsBefore);
    expect(gpu().poolStats().liveBuffers).toBe(liveBefore);
  });

  it('disposing a result without backward releases the graph it kept alive', () => {
    const liveBefore = gpu().poolStats().liveBuffers;
    const x = Tensor.fromArray(randomArray(8, 3), [8], { requiresGrad: true });
    const y = tidy(() => sqrt(exp(mul(x, x))));
    y.dispose();
    x.dispose();
    expect(gpu().poolStats().liveBuffers).toBe(liveBefore);
  });
});

describe('gradcheck of element-wise rules', () => {
  const pos = (n: number, s: number) => randomArray(n, s, 0.5, 2);
  const cases: [string, (...xs: Tensor[]) => Tensor, () => { data: Float32Array; shape: number[] }[]][] = [
    ['add broadcast', (a, b) => add(a, b), () => [{ data: randomArray(12, 1), shape: [3, 4] }, { data: randomArray(4, 2), shape: [4] }]],
    ['sub broadcast', (a, b) => sub(a, b), () => [{ data: randomArray(12, 1), shape: [3, 4] }, { data: randomArray(3, 2), shape: [3, 1] }]],
    ['mul broadcast', (a, b) => mul(a, b), () => [{ data: randomArray(24, 1), shape: [2, 3, 4] }, { data: randomArray(6, 2), shape: [2, 3, 1] }]],
    ['div', (a, b) => div(a, b), () => [{ data: randomArray(6, 1), shape: [6] }, { data: pos(6, 2), shape: [6] }]],
    ['relu', (a) => relu(a), () => [{ data: randomArray(9, 4), shape: [9] }]],
    ['sigmoid', (a) => sigmoid(a), () => [{ data: randomArray(9, 5), shape: [9] }]],
    ['exp', (a) => exp(a), () => [{ data: randomArray(9, 6), shape: [9] }]],
    ['log', (a) => log(a), () => [{ data: pos(9, 7), shape: [9] }]],
    ['sqrt', (a) => sqrt(a), () => [{ data: pos(9, 8), shape: [9] }]],
    ['neg, square, pow, scalars', (a) => pow(square(neg(add(mul(a, 2), 0.5))), 1.5), () => [{ data: pos(5, 9), shape: [5] }]],
    ['reshape', (a) => mul(a.reshape([2, 3]), Tensor.fromArray([1, 2, 3], [3])), () => [{ data: randomArray(6, 10), shape: [6] }]],
  ];
  for (const [name, fn, inputs] of cases) {
    it(name, async () => {
      const r = await gradcheck(fn, inputs());
      expect(r.failures).toEqual([]);
      expect(r.ok).toBe(true);
    });
  }
});
