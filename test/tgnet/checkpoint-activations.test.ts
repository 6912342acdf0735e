/** TGNet's checkpointActivations option: same logits, same gradients, less held between forward and backward. */
import { describe, expect, it } from 'vitest';
import { CHECKPOINTED_ENCODER_STAGES, TGNet } from '../../src/tgnet/model.js';
import { COLD_COMPILE_TIMEOUT_MS, runsF16, useGpu } from '../helpers/gpu.js';
import { probeStep } from '../helpers/tgnet-step.js';
import type { DType } from '../../src/kernels/runtime/precision.js';
import { Tensor } from '../../src/autograd/tensor.js';

const gpu = useGpu();

/** Sample 0 colon (organ channel unannotated), sample 1 liver. */
const step = (model: TGNet, dtype: DType = 'f32') => probeStep(gpu(), model, { size: 16, taskIds: [4, 0], seed: 7, unannotated: [0], dtype });

describe('TGNet checkpointActivations', () => {
  it('gives bit-identical logits and parameter gradients while holding less between forward and backward', async () => {
    const plainModel = TGNet.create({ variant: 'tgnet', width: 4, seed: 5 });
    const ckptModel = TGNet.create({ variant: 'tgnet', width: 4, seed: 5, checkpointActivations: true });
    expect(plainModel.checkpointedStages).toBe(0);
    expect(ckptModel.checkpointedStages).toBe(CHECKPOINTED_ENCODER_STAGES);
    // The option is not part of the weights.
    expect([...ckptModel.stateDict().keys()]).toEqual([...plainModel.stateDict().keys()]);
    const buffers = gpu().poolStats().liveBuffers;
    const plain = await step(plainModel);
    const ckpt = await step(ckptModel);
    expect(gpu().poolStats().liveBuffers).toBe(buffers);
    expect(ckpt.logits).toEqual(plain.logits);
    expect([...ckpt.grads.keys()]).toEqual([...plain.grads.keys()]);
    for (const [name, g] of plain.grads) expect(ckpt.grads.get(name), name).toEqual(g);
    expect(ckpt.heldBytes).toBeLessThan(plain.heldBytes);
    // A second step of the checkpointed model is the same as its first: nothing stale survives a step.
    const again = await step(ckptModel);
    expect(again.grads).toEqual(ckpt.grads);
    expect(gpu().poolStats().liveBuffers).toBe(buffers);
    plainModel.dispose();
    ckptModel.dispose();
  }, COLD_COMPILE_TIMEOUT_MS);

  it('recomputes an f16 (mixed-precision) forward exactly too', async () => {
    if (!runsF16(gpu(), 'f16', () => Tensor.empty([1], gpu(), 'f16'))) return;
    const plainModel = TGNet.create({ variant: 'tgnet', width: 4, seed: 5 });
    const ckptModel = TGNet.create({ variant: 'tgnet', width: 4, seed: 5, checkpointActivations: true });
    const plain = await step(plainModel, 'f16');
    const ckpt = await step(ckptModel, 'f16');
    expect(ckpt.logits).toEqual(plain.logits);
    for (const [name, g] of plain.grads) expect(ckpt.grads.get(name), name).toEqual(g);
    expect(ckpt.heldBytes).toBeLessThan(plain.heldBytes);
    plainModel.dispose();
    ckptModel.dispose();
  }, COLD_COMPILE_TIMEOUT_MS);
});
