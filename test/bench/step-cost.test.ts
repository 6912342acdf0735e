import { expect, it } from 'vitest';
import { countStep } from '../../bench/step-cost.js';
import { relu } from '../../src/autograd/ops/elementwise.js';
import { sum } from '../../src/autograd/ops/reduce.js';
import { tidy } from '../../src/autograd/scope.js';
import { Tensor } from '../../src/autograd/tensor.js';
import { useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

it('countStep sets a step\'s dispatch traffic against its op-graph traffic plus the optimiser bytes', async () => {
  const x = Tensor.fromArray([1, -2, 3, -4, 5, -6], [2, 3], { requiresGrad: true });
  const step = () => tidy(() => sum(relu(x)).backward());
  step();
  const optimizerBytes = 1000;
  const cost = await countStep(gpu(), step, optimizerBytes);
  // forward: relu 24 + 24, sum 24 + 4; backward: sum 4 + 24, relu 24 + 24 saved + 24 (x.grad is summed, 3 * 24).
  expect(cost.forwardOpBytes).toBe(48 + 28);
  expect(cost.backwardOpBytes).toBe(28 + 72 + 72);
  expect(cost.opGraphBytes).toBe(48 + 28 + 28 + 72 + 72 + optimizerBytes);
  expect(cost.ops).toBe(2);
  expect(cost.kernels.map((k) => k.label)).toContain('unary:relu');
  expect(cost.dispatches).toBe(cost.kernels.reduce((a, k) => a + k.dispatches, 0));
  expect(cost.submits).toBeGreaterThanOrEqual(1);
  expect(cost.trafficRatio).toBeCloseTo((cost.bytesRead + cost.bytesWritten) / cost.opGraphBytes, 12);
  expect(cost.flops).toBe(0);
  expect(gpu().isCounting).toBe(false);
  x.grad?.dispose();
  x.dispose();
});
