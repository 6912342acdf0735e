/** The fused pre-activation op, conv3d(relu(GN(x))), against its unfused composition and by gradcheck. */
import { describe, expect, it } from 'vitest';
import { gradcheck } from '../../src/autograd/gradcheck.js';
import { conv3d } from '../../src/autograd/ops/conv.js';
import { normReluConv3d } from '../../src/autograd/ops/norm-relu-conv.js';
import { groupNormRelu } from '../../src/autograd/ops/norm.js';
import { sum, mul } from '../../src/autograd/index.js';
import { tidy } from '../../src/autograd/scope.js';
import { Tensor } from '../../src/autograd/tensor.js';
import { expectClose, randomArray, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();
const inp = (shape: number[], seed: number, lo = -1, hi = 1) => ({ data: randomArray(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape });

describe('normReluConv3d', () => {
  it('passes gradcheck for every input (x, GN weight and bias, conv weight and bias)', async () => {
    const r = await gradcheck(
      (x, gw, gb, w, b) => normReluConv3d(x, { groups: 2, weight: gw, bias: gb }, w, { bias: b, padding: 1 }),
      [inp([2, 4, 3, 2, 3], 1), inp([4], 2, 0.5, 1.5), inp([4], 3, -0.5, 0.5), inp([3, 4, 3, 3, 3], 4, -0.3, 0.3), inp([3], 5)],
      { eps: 1e-3, maxElements: 24 },
    );
    expect(r.failures).toEqual([]);
  });

  it('matches conv3d(groupNormRelu(x)) in value and in every gradient, stride 2 and 1x1x1', async () => {
    for (const [k, stride, padding] of [[3, 2, 1], [1, 1, 0]]) {
      const make = (data: Float32Array, shape: number[]) => Tensor.fromArray(data, shape, { requiresGrad: true }).keep();
      const x = make(randomArray(2 * 8 * 4 * 6 * 5, 10), [2, 8, 4, 6, 5]);
      const gw = make(randomArray(8, 11, 0.5, 1.5), [8]);
      const gb = make(randomArray(8, 12, -0.5, 0.5), [8]);
      const w = make(randomArray(6 * 8 * k ** 3, 13, -0.2, 0.2), [6, 8, k, k, k]);
      const b = make(randomArray(6, 14), [6]);
      const leaves = [x, gw, gb, w, b];
      const run = async (fused: boolean) => {
        for (const t of leaves) { t.grad?.dispose(); t.grad = null; }
        const y = await tidy(async () => {
          const out = fused
            ? normReluConv3d(x, { groups: 4, weight: gw, bias: gb }, w, { bias: b, stride, padding })
            : conv3d(groupNormRelu(x, 4, gw, gb), w, { bias: b, stride, padding });
          // A weighted sum, so each output element has its own gradient.
          const weights = Tensor.fromArray(randomArray(out.size, 15), out.shape);
          sum(mul(out, weights)).backward();
          return out.toArray();
        });
        return { y, grads: await Promise.all(leaves.map((t) => t.grad!.toArray())) };
      };
      const fused = await run(true);
      const plain = await run(false);
      expectClose(fused.y, plain.y, 1e-5, 1e-4);
      fused.grads.forEach((g, i) => expectClose(g, plain.grads[i], 1e-4, 1e-3));
      for (const t of leaves) { t.grad?.dispose(); t.dispose(); }
    }
  });

  it('keeps no normalised tensor for backward and leaks nothing', async () => {
    const g = gpu();
    const x = Tensor.fromArray(randomArray(2 * 4 * 4 * 4 * 4, 20), [2, 4, 4, 4, 4], { requiresGrad: true }).keep();
    const gw = Tensor.ones([4]).keep();
    const gb = Tensor.zeros([4]).keep();
    const w = Tensor.fromArray(randomArray(4 * 4 * 27, 21, -0.2, 0.2), [4, 4, 3, 3, 3], { requiresGrad: true }).keep();
    await g.sync();
    const live = g.poolStats().liveBytes;
    const out = normReluConv3d(x, { groups: 2, weight: gw, bias: gb }, w, { padding: 1 }).keep();
    // Kept for backward: views of x and w, and the statistics (2 * 2 + 2 * 2 + 4 * 2 * 4 floats): no [2, 4, 4, 4, 4] tensor.
    const saved = g.poolStats().liveBytes - live - out.size * 4;
    expect(saved).toBeLessThan(x.size * 4);
    tidy(() => sum(out).backward());
    out.dispose();
    for (const t of [x, w]) { t.grad?.dispose(); t.grad = null; }
    expect(g.poolStats().liveBytes).toBe(live);
    for (const t of [x, gw, gb, w]) t.dispose();
  });

  it('refuses a norm whose parameters do not match the input channels', () => {
    tidy(() => {
      const x = Tensor.zeros([1, 4, 2, 2, 2]);
      expect(() => normReluConv3d(x, { groups: 2, weight: Tensor.ones([3]), bias: Tensor.zeros([4]) }, Tensor.zeros([2, 4, 1, 1, 1])))
        .toThrow(/normReluConv3d: norm weight \[3\] must be \[4\]/);
    });
  });
});
