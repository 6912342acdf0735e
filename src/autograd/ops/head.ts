/** TGNet's task-conditioned dynamic head and partial-label loss, with their gradients. */
import { dynamicHead as headKernel, dynamicHeadBackward, HEAD_PARAMS } from '../../kernels/dynamic-head.js';
import { lossStatsSize, partialLabelLoss as lossKernel, partialLabelLossBackward } from '../../kernels/partial-label-loss.js';
import { taskConcat as taskConcatKernel, taskConcatBackward } from '../../kernels/task-concat.js';
import { recordOp } from '../tape.js';
import { asF32 } from './elementwise.js';
import { Tensor } from '../tensor.js';

/**
 * Per-sample 1x1x1 convs 8 -> 8 -> 8 -> 2 (ReLU between) with weights from `params` [N, 162]
 * (DoDNet layout: weights 64, 64, 16, then biases 8, 8, 2). h: [N, 8, ...spatial] -> [N, 2, ...spatial].
 */
export function dynamicHead(h: Tensor, params: Tensor): Tensor {
  // Under mixed precision h and its gradient stay f16 (8 channels at full resolution); the logits, which feed the
  // loss, and the per-sample parameters are f32.
  params = asF32(params);
  const dtype = h.dtype;
  if (params.rank !== 2 || params.shape[1] !== HEAD_PARAMS || params.shape[0] !== h.shape[0]) {
    throw new RangeError(`dynamicHead: params [${params.shape.join(', ')}] must be [N, ${HEAD_PARAMS}] with N = ${h.shape[0]}`);
  }
  const outShape = [h.shape[0], 2, ...h.shape.slice(2)];
  const out = Tensor.empty(outShape, h.gpu);
  headKernel(h.gpu, h.buffer, h.shape, params.buffer, params.shape, out.buffer, { dtype });
  return recordOp('dynamicHead', [h, params], out, [h, params], (g, [sh, sp]) => {
    const dh = Tensor.empty(h.shape, g.gpu, dtype);
    const dp = Tensor.empty(params.shape, g.gpu);
    dynamicHeadBackward(g.gpu, sh.buffer, h.shape, sp.buffer, params.shape, g.buffer, dh.buffer, dp.buffer, { dtype });
    return [h.requiresGrad ? dh : (dh.dispose(), null), params.requiresGrad ? dp : (dp.dispose(), null)];
  });
}

/**
 * DoDNet's partial-label loss (scalar): per sample and channel Dice (+1 in the denominator) plus mean BCE
 * with logits; a target channel filled with -1 is unannotated and left out. Loss 0 when nothing is annotated.
 */
export function partialLabelLoss(logits: Tensor, target: Tensor): Tensor {
  // Sigmoid, Dice and BCE in f32 (PyTorch autocast keeps losses in f32 too).
  logits = asF32(logits);
  target = asF32(target);
  const n = logits.shape[0];
  const loss = Tensor.empty([], logits.gpu);
  const stats = Tensor.empty([lossStatsSize(n)], logits.gpu);
  lossKernel(logits.gpu, logits.buffer, logits.shape, target.buffer, target.shape, loss.buffer, stats.buffer);
  recordOp('partialLabelLoss', [logits, target], loss, [logits, target, stats], (g, [sl, st, ss]) => {
    const dl = Tensor.empty(logits.shape, g.gpu);
    partialLabelLossBackward(g.gpu, sl.buffer, logits.shape, st.buffer, ss.buffer, g.buffer, dl.buffer);
    return [dl, null];
  });
  stats.dispose();
  return loss;
}

/**
 * [features ; one-hot(taskIds)]: [N, C] -> [N, C + numTasks], TGNet's task conditioning of a GAP vector.
 * `numTasks` is the size of the caller's task table (the model's).
 */
export function taskConcat(features: Tensor, taskIds: readonly number[], numTasks: number): Tensor {
  if (features.rank !== 2) throw new RangeError(`taskConcat: features [${features.shape.join(', ')}] must be [N, C]`);
  features = asF32(features);
  const [n, c] = features.shape;
  const out = Tensor.empty([n, c + numTasks], features.gpu);
  taskConcatKernel(features.gpu, features.buffer, features.shape, taskIds, out.buffer, numTasks);
  return recordOp('taskConcat', [features], out, [], (g) => {
    const df = Tensor.empty(features.shape, g.gpu);
    taskConcatBackward(g.gpu, g.buffer, features.shape, df.buffer, numTasks);
    return [df];
  });
}
