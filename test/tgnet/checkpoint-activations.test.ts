/** TGNet's checkpointActivations option: same logits, same gradients, less held between forward and backward. */
import { describe, expect, it } from 'vitest';
import { partialLabelLoss } from '../../src/autograd/ops/head.js';
import { tidy } from '../../src/autograd/scope.js';
import { Tensor } from '../../src/autograd/tensor.js';
import { CHECKPOINTED_ENCODER_STAGES, TGNet } from '../../src/tgnet/model.js';
import { COLD_COMPILE_TIMEOUT_MS, randomArray, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

const SHAPE = [2, 1, 16, 16, 16];
const VOXELS = 16 * 16 * 16;

/** One training step's logits, the bytes live between forward and backward, and every parameter's gradient. */
async function step(model: TGNet): Promise<{ logits: Float32Array; heldBytes: number; grads: [string, number[]][] }> {
  return tidy(async () => {
    const x = Tensor.fromArray(randomArray(2 * VOXELS, 7), SHAPE);
    // sample 0: colon (organ channel unannotated), sample 1: liver
    const y = Float32Array.from(randomArray(2 * 2 * VOXELS, 8, 0, 1), (v) => (v > 0.7 ? 1 : 0));
    y.fill(-1, 0, VOXELS);
    const target = Tensor.fromArray(y, [2, 2, 16, 16, 16]);
    const before = gpu().poolStats().liveBytes;
    const out = model.forward(x, [4, 0]);
    const heldBytes = gpu().poolStats().liveBytes - before;
    const logits = await out.toArray();
    partialLabelLoss(out, target).backward();
    const grads: [string, number[]][] = [];
    for (const [name, p] of model.namedParameters()) {
      expect(p.grad, name).not.toBeNull();
      grads.push([name, [...(await p.grad!.toArray())]]);
    }
    for (const p of model.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
    return { logits, heldBytes, grads };
  });
}

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
    expect(ckpt.grads.map(([n]) => n)).toEqual(plain.grads.map(([n]) => n));
    for (let i = 0; i < plain.grads.length; i++) expect(ckpt.grads[i][1], plain.grads[i][0]).toEqual(plain.grads[i][1]);
    expect(ckpt.heldBytes).toBeLessThan(plain.heldBytes);
    // A second step of the checkpointed model is the same as its first: nothing stale survives a step.
    const again = await step(ckptModel);
    expect(again.grads).toEqual(ckpt.grads);
    expect(gpu().poolStats().liveBuffers).toBe(buffers);
    plainModel.dispose();
    ckptModel.dispose();
  }, COLD_COMPILE_TIMEOUT_MS);
});
