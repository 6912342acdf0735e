/**
 * The runtime when its device is lost (device.destroy()): readbacks already waiting and queued work fail with a
 * "GPU device lost" error instead of hanging, later dispatches are refused, and the runtime can still be torn down.
 */
import { describe, expect, it } from 'vitest';
import { add } from '../../src/autograd/ops/elementwise.js';
import { Tensor } from '../../src/autograd/tensor.js';
import { hasGpu, initGpu } from '../../src/kernels/runtime/gpu.js';

describe('device loss', () => {
  it('fails pending readbacks and syncs, refuses new work, and tears down cleanly', async () => {
    const gpu = await initGpu();
    const a = Tensor.fromArray(new Float32Array([1, 2, 3, 4]), [4]);
    expect([...(await a.toArray())]).toEqual([1, 2, 3, 4]);
    // Work recorded and a readback waiting on it when the device goes.
    const b = add(a, a);
    const pendingRead = b.toArray();
    const queued = add(b, a);
    gpu.device.destroy();
    await expect(pendingRead).rejects.toThrow(/GPU device lost \(destroyed/);
    await expect(queued.toArray()).rejects.toThrow(/GPU device lost/);
    await expect(gpu.sync()).rejects.toThrow(/sync: GPU device lost/);
    expect(gpu.isLost).toBe(true);
    expect(() => add(a, a)).toThrow(/binary:add: GPU device lost \(destroyed/);
    for (const t of [a, b, queued]) t.dispose();
    expect(() => gpu.destroy()).not.toThrow();
    expect(hasGpu()).toBe(false);
  });
});
