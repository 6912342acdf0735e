/** One TGNet training step on seeded data, probed for what model-level tests compare. */
import { partialLabelLoss } from '../../src/autograd/ops/head.js';
import { tidy } from '../../src/autograd/scope.js';
import { Tensor } from '../../src/autograd/tensor.js';
import type { Gpu } from '../../src/kernels/runtime/gpu.js';
import type { TGNet } from '../../src/tgnet/model.js';
import { randomArray } from './gpu.js';
import type { DType } from '../../src/kernels/runtime/precision.js';

export interface StepProbe {
  logits: Float32Array;
  /** Bytes live between the forward pass and backward: what the model keeps for backward, plus the logits. */
  heldBytes: number;
  /** Every parameter's gradient, by name in parameter order. */
  grads: Map<string, Float32Array>;
}

/**
 * A batch of 2 cubes of side `size` (seeded input and targets), forward with `taskIds`, the partial-label loss,
 * backward; gradients are read and cleared. `unannotated` samples get their organ channel marked -1.
 */
export async function probeStep(
  gpu: Gpu, model: TGNet, options: { size: number; taskIds: [number, number]; seed: number; unannotated?: number[]; dtype?: DType },
): Promise<StepProbe> {
  const { size, taskIds, seed, unannotated = [], dtype = 'f32' } = options;
  const voxels = size ** 3;
  return tidy(async () => {
    const x = Tensor.fromArray(randomArray(2 * voxels, seed), [2, 1, size, size, size], { dtype });
    const y = Float32Array.from(randomArray(2 * 2 * voxels, seed + 1, 0, 1), (v) => (v > 0.7 ? 1 : 0));
    for (const n of unannotated) y.fill(-1, 2 * n * voxels, (2 * n + 1) * voxels);
    const target = Tensor.fromArray(y, [2, 2, size, size, size]);
    const before = gpu.poolStats().liveBytes;
    const out = model.forward(x, taskIds);
    const heldBytes = gpu.poolStats().liveBytes - before;
    const logits = await out.toArray();
    partialLabelLoss(out, target).backward();
    const grads = new Map<string, Float32Array>();
    for (const [name, p] of model.namedParameters()) {
      if (!p.grad) throw new Error(`probeStep: parameter ${name} got no gradient`);
      grads.set(name, await p.grad.toArray());
    }
    for (const p of model.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
    return { logits, heldBytes, grads };
  });
}
