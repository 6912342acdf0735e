/** The README's ten-line API example, verbatim in spirit: it must keep working. */
import { expect, it } from 'vitest';
import { SGD, Tensor, conv3d, groupNormRelu, mean, sigmoid, tidy, weightStandardize } from '../src/index.js';
import { randomArray, useGpu } from './helpers/gpu.js';

useGpu();

it('README API example trains a step and reports a finite loss', async () => {
  const weights = randomArray(8 * 27, 1, -0.3, 0.3);
  const volume = randomArray(16 * 32 * 32, 2);
  const w = Tensor.fromArray(weights, [8, 1, 3, 3, 3], { requiresGrad: true }).keep();
  const gw = Tensor.ones([8], { requiresGrad: true }).keep();
  const gb = Tensor.zeros([8], { requiresGrad: true }).keep();
  const opt = new SGD([w, gw, gb], { lr: 0.01, momentum: 0.99, nesterov: true });
  const loss = tidy(() => {
    const x = Tensor.fromArray(volume, [1, 1, 16, 32, 32]);
    const h = groupNormRelu(conv3d(x, weightStandardize(w), { padding: 1 }), 4, gw, gb);
    const l = mean(sigmoid(h));
    l.backward();
    return l;
  });
  opt.step();
  opt.zeroGrad();
  const value = await loss.item();
  expect(Number.isFinite(value)).toBe(true);
  expect(value).toBeGreaterThan(0.5);
  loss.dispose();
  opt.dispose();
  for (const t of [w, gw, gb]) t.dispose();
});
