/** The fused pre-activation op, conv3d(relu(GN(x))), against its unfused composition and by gradcheck. */
import { describe, expect, it } from 'vitest';
import { gradcheck } from '../../src/autograd/gradcheck.js';
import { conv3d } from '../../src/autograd/ops/conv.js';
import { normReluConv3d } from '../../src/autograd/ops/norm-relu-conv.js';
import { groupNormRelu } from '../../src/autograd/ops/norm.js';
import { add, channelGate, sum, mul } from '../../src/autograd/index.js';
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

  it('passes gradcheck with a gated residual (shortcut and gate gradients too)', async () => {
    const r = await gradcheck(
      (x, gw, gb, w, res, gate) => normReluConv3d(x, { groups: 2, weight: gw, bias: gb }, w, { padding: 1, residual: res, gate }),
      [inp([2, 4, 3, 2, 3], 31), inp([4], 32, 0.5, 1.5), inp([4], 33, -0.5, 0.5), inp([3, 4, 3, 3, 3], 34, -0.3, 0.3),
        inp([2, 3, 3, 2, 3], 35), inp([2, 3], 36, 0, 1)],
      { eps: 1e-3, maxElements: 24 },
    );
    expect(r.failures).toEqual([]);
  });

  it('matches conv3d(groupNormRelu(x)) [+ channelGate(residual, gate)] in value and in every gradient', async () => {
    for (const [k, stride, padding, residual] of [[3, 2, 1, 'none'], [1, 1, 0, 'none'], [3, 1, 1, 'gated'], [3, 2, 1, 'add']] as const) {
      const make = (data: Float32Array, shape: number[]) => Tensor.fromArray(data, shape, { requiresGrad: true }).keep();
      const x = make(randomArray(2 * 8 * 4 * 6 * 5, 10), [2, 8, 4, 6, 5]);
      const gw = make(randomArray(8, 11, 0.5, 1.5), [8]);
      const gb = make(randomArray(8, 12, -0.5, 0.5), [8]);
      const w = make(randomArray(6 * 8 * k ** 3, 13, -0.2, 0.2), [6, 8, k, k, k]);
      const b = make(randomArray(6, 14), [6]);
      const outSpatial = stride === 2 ? [2, 3, 3] : [4, 6, 5];
      const res = residual !== 'none' ? make(randomArray(2 * 6 * outSpatial.reduce((p, q) => p * q, 1), 16), [2, 6, ...outSpatial]) : null;
      const gate = residual === 'gated' ? make(randomArray(12, 17, 0, 1), [2, 6]) : null;
      const leaves = [x, gw, gb, w, b, ...(res ? [res] : []), ...(gate ? [gate] : [])];
      const run = async (fused: boolean) => {
        for (const t of leaves) { t.grad?.dispose(); t.grad = null; }
        const y = await tidy(async () => {
          let out: Tensor;
          if (fused) {
            out = normReluConv3d(x, { groups: 4, weight: gw, bias: gb }, w, { bias: b, stride, padding, residual: res, gate });
          } else {
            out = conv3d(groupNormRelu(x, 4, gw, gb), w, { bias: b, stride, padding });
            if (res) out = add(out, gate ? channelGate(res, gate) : res);
          }
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
      const norm = { groups: 2, weight: Tensor.ones([4]), bias: Tensor.zeros([4]) };
      const w = Tensor.zeros([2, 4, 1, 1, 1]);
      expect(() => normReluConv3d(x, norm, w, { residual: Tensor.zeros([1, 2, 2, 2, 1]) }))
        .toThrow(/residual \[1, 2, 2, 2, 1\] must have the output's shape \[1, 2, 2, 2, 2\]/);
      expect(() => normReluConv3d(x, norm, w, { gate: Tensor.zeros([1, 2]) })).toThrow(/a gate needs a residual/);
      expect(() => normReluConv3d(x, norm, w, { residual: Tensor.zeros([1, 2, 2, 2, 2]), gate: Tensor.zeros([1, 4]) }))
        .toThrow(/gate \[1, 4\] must be \[N, Cout\] = \[1, 2\]/);
    });
  });
});
