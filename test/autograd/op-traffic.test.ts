import { describe, expect, it } from 'vitest';
import { mul, relu } from '../../src/autograd/ops/elementwise.js';
import { sum } from '../../src/autograd/ops/reduce.js';
import { tidy } from '../../src/autograd/scope.js';
import { startOpTraffic, stopOpTraffic } from '../../src/autograd/tape.js';
import { Tensor } from '../../src/autograd/tensor.js';
import { useGpu } from '../helpers/gpu.js';

useGpu();

describe('op-graph traffic meter', () => {
  it('counts each op once: forward inputs + output, backward gradOutput + saved + input gradients + sums', () => {
    const x = Tensor.fromArray([1, -2, 3, -4, 5, -6], [2, 3], { requiresGrad: true });
    startOpTraffic();
    tidy(() => {
      const y = relu(x);
      sum(mul(y, y)).backward();
    });
    const t = stopOpTraffic();
    // 6 elements = 24 bytes; the sum is a 4-byte scalar.
    // forward: relu 24 + 24, mul 24 + 24 + 24, sum 24 + 4
    expect(t.ops).toBe(3);
    expect(t.forwardBytes).toBe(48 + 72 + 28);
    // backward: sum 4 + 24; mul 24 + 2 * 24 saved + 2 * 24 gradients, then y's two gradients summed 3 * 24;
    // relu 24 + 24 saved + 24
    expect(t.backwardNodes).toBe(3);
    expect(t.backwardBytes).toBe(28 + 120 + 72 + 72);
    x.grad?.dispose();
    x.dispose();
  });

  it('is off by default and reads zero when stopped without a start', () => {
    const x = Tensor.fromArray([1, 2], [2], { requiresGrad: true });
    tidy(() => sum(relu(x)).backward());
    expect(stopOpTraffic()).toEqual({ forwardBytes: 0, backwardBytes: 0, ops: 0, backwardNodes: 0 });
    x.grad?.dispose();
    x.dispose();
  });
});
