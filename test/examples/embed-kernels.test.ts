import { expect, it } from 'vitest';
import { embedKernels } from '../../examples/embed-kernels.js';
import { initGpu } from '../../src/kernels/runtime/gpu.js';

it('examples/embed-kernels runs our kernels on a caller-owned device and buffers', async () => {
  // Any device the caller made: here one from a tgnet Gpu, whose device the example adopts.
  const owner = await initGpu({ makeCurrent: false });
  const y = await embedKernels(owner.device);
  expect(y.length).toBe(128);
  expect([...y.slice(0, 4)]).toEqual([8, 12, 12, 8]);
  expect(y[21]).toBe(27);
  expect(owner.device.queue).toBeDefined(); // the example's destroy() left the caller's device alive
  const b = owner.pool.acquire(16);
  owner.write(b, new Float32Array([1, 2, 3, 4]));
  expect([...new Float32Array(await owner.read(b, 16))]).toEqual([1, 2, 3, 4]);
  owner.destroy();
});
