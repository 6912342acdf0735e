/**
 * Compiling a model's pipelines before its first step. Without this, each pipeline compiles inside the first
 * call that needs it: a browser tab's first training step then waits on ~90 compiles one after another, and a
 * terminal shows nothing while it does. Here one step (and, if asked, one sliding-window tile) runs in discovery
 * mode (`Gpu.discoverPipelines`: nothing executes, nothing changes), and the pipelines it asked for are then
 * compiled asynchronously, several at a time, with progress.
 */
import { mul } from '../autograd/ops/elementwise.js';
import { partialLabelLoss } from '../autograd/ops/head.js';
import type { DType } from '../kernels/runtime/precision.js';
import { tidy } from '../autograd/scope.js';
import { Tensor } from '../autograd/tensor.js';
import { predictVolume } from './sliding-window.js';
import type { PipelineRequest } from '../kernels/runtime/gpu.js';
import { Adam, SGD, type OptimizerKind } from '../nn/optim.js';
import { isGridSide, TOTAL_STRIDE, type TGNet } from '../tgnet/model.js';
import type { DHW } from '../common/shape.js';

export interface WarmUpOptions {
  /** Crops per training step (default 2). */
  batch?: number;
  /** Training crop and inference tile [D, H, W], multiples of 16. */
  crop: DHW;
  /** The training run's optimiser; null: inference only (default 'sgd'). */
  optimizer?: OptimizerKind | null;
  /** Also the sliding-window inference of one tile (validation, predict; default true). */
  inference?: boolean;
  /** The training run's precision (default 'f32'; 'f16': mixed precision, see tgnet/train.ts). */
  precision?: DType;
  /** Called after each compiled pipeline. */
  onProgress?: (done: number, total: number, key: string) => void;
  /** Pipelines compiled at once (default 4). */
  concurrency?: number;
}

export interface WarmUpResult {
  /** Pipelines compiled (those already compiled are not counted). */
  pipelines: number;
  /** Wall time of discovery and compilation. */
  ms: number;
}

/**
 * Compiles what a training step of `model` at `crop` (and its inference) will need. Call it before the first
 * step: parameters' gradients are cleared. The model's weights and any optimiser are left as they were.
 */
export async function warmUpPipelines(model: TGNet, options: WarmUpOptions): Promise<WarmUpResult> {
  const t0 = performance.now();
  const requests = await discoverModelPipelines(model, options);
  await model.parameters()[0].gpu.compilePipelines(requests, { concurrency: options.concurrency, onProgress: options.onProgress });
  return { pipelines: requests.length, ms: performance.now() - t0 };
}

/** The pipelines not yet compiled that a training step of `model` at `crop` (and its inference) asks for; compiles nothing. */
export async function discoverModelPipelines(model: TGNet, options: Omit<WarmUpOptions, 'onProgress' | 'concurrency'>): Promise<PipelineRequest[]> {
  const { crop, batch = 2, optimizer = 'sgd', inference = true, precision = 'f32' } = options;
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`warmUpPipelines: batch must be a positive integer, got ${batch}`);
  if (crop.length !== 3 || !crop.every(isGridSide)) {
    throw new RangeError(`warmUpPipelines: crop is [${crop.join(', ')}]; expected [D, H, W], multiples of ${TOTAL_STRIDE}`);
  }
  const gpu = model.parameters()[0].gpu;
  const [d, h, w] = crop;
  return gpu.discoverPipelines(async () => {
    if (optimizer) {
      // A throwaway optimiser of the run's kind: the real one's state (step counts, momentum) stays untouched.
      const params = model.parameters();
      const opt = optimizer === 'sgd' ? new SGD(params) : new Adam(params, { decoupled: optimizer === 'adamw' });
      try {
        tidy(() => {
          const voxels = batch * d * h * w;
          const x = Tensor.fromArray(new Float32Array(voxels), [batch, 1, d, h, w], { dtype: precision });
          const y = Tensor.fromArray(new Float32Array(2 * voxels), [batch, 2, d, h, w]);
          const taskIds = Array.from({ length: batch }, (_, i) => i % model.numTasks);
          const loss = partialLabelLoss(model.forward(x, taskIds), y);
          // Mixed precision scales the loss and checks the gradients for an overflow (the flag's readback is empty here).
          (precision === 'f16' ? mul(loss, 1024) : loss).backward();
          if (precision === 'f16') void opt.nonFiniteGradients();
          opt.step();
          opt.zeroGrad();
          // The trainer's health probe sums the parameters (its copies into the probe compile nothing).
          opt.parameterSum();
        });
      } finally {
        opt.dispose();
      }
    }
    if (inference) await predictVolume(model, new Float32Array(d * h * w), crop, 0, { tileShape: crop });
  });
}
