import { describe, expect, it } from 'vitest';
import { gradcheck } from '../../src/autograd/gradcheck.js';
import { add, mul, relu, sigmoid, sub } from '../../src/autograd/ops/elementwise.js';
import { matmul } from '../../src/autograd/ops/matmul.js';
import { mean } from '../../src/autograd/ops/reduce.js';
import { noGrad } from '../../src/autograd/tape.js';
import { keep, tidy } from '../../src/autograd/scope.js';
import { Tensor, liveTensorCount } from '../../src/autograd/tensor.js';
import { randomArray, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();
const inp = (shape: number[], seed: number) => ({ data: randomArray(shape.reduce((a, b) => a * b, 1), seed), shape });

describe('matmul rule', () => {
  it('multiplies', async () => {
    await tidy(async () => {
      const a = Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
      const b = Tensor.fromArray([1, 0, 0, 1, 1, 1], [3, 2]);
      expect([...(await matmul(a, b).toArray())]).toEqual([4, 5, 10, 11]);
    });
  });
  it('gradcheck plain, batched and with a shared operand', async () => {
    for (const [sa, sb] of [[[3, 5], [5, 4]], [[2, 3, 5], [2, 5, 4]], [[2, 3, 5], [5, 4]], [[3, 5], [2, 5, 4]]]) {
      const r = await gradcheck((a, b) => matmul(a, b), [inp(sa, 1), inp(sb, 2)]);
      expect(r.failures).toEqual([]);
    }
  });
  it('names both shapes when inner dimensions differ', () => {
    tidy(() => {
      expect(() => matmul(Tensor.zeros([2, 3]), Tensor.zeros([4, 2]))).toThrow(/inner dimensions differ \(3 vs 4\).*\[2, 3\].*\[4, 2\]/);
    });
  });
});

describe('leak test', () => {
  it('50 training steps of a small MLP leave live buffers and bytes unchanged', async () => {
    const params = [
      Tensor.fromArray(randomArray(8 * 16, 1, -0.3, 0.3), [8, 16], { requiresGrad: true }),
      Tensor.fromArray(new Float32Array(16), [16], { requiresGrad: true }),
      Tensor.fromArray(randomArray(16 * 1, 2, -0.3, 0.3), [16, 1], { requiresGrad: true }),
    ].map(keep);
    const x = keep(Tensor.fromArray(randomArray(32 * 8, 3), [32, 8]));
    const y = keep(Tensor.fromArray(randomArray(32, 4, 0, 1).map((v) => (v > 0.5 ? 1 : 0)), [32, 1]));
    const step = () => tidy(() => {
      const h = relu(add(matmul(x, params[0]), params[1]));
      const p = sigmoid(matmul(h, params[2]));
      const d = sub(p, y);
      const loss = mean(mul(d, d));
      loss.backward();
      noGrad(() => {
        for (const w of params) {
          const updated = sub(w, mul(w.grad!, 0.5));
          gpu().copy(updated.buffer, 0, w.buffer, 0, w.size * 4);
          w.grad!.dispose();
          w.grad = null;
        }
      });
      return loss;
    });
    const first = step();
    const firstLoss = await first.item();
    first.dispose();
    await gpu().sync();
    const stats0 = gpu().poolStats();
    const tensors0 = liveTensorCount();
    let last = 0;
    for (let i = 0; i < 50; i++) {
      const l = step();
      if (i === 49) last = await l.item();
      l.dispose();
    }
    await gpu().sync();
    const stats1 = gpu().poolStats();
    expect(stats1.liveBuffers).toBe(stats0.liveBuffers);
    expect(stats1.liveBytes).toBe(stats0.liveBytes);
    expect(liveTensorCount()).toBe(tensors0);
    expect(last).toBeLessThan(firstLoss);
    for (const t of [...params, x, y]) t.dispose();
  });
});
