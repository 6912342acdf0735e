/**
 * TGNet training step and forward pass, the figure DESIGN.md compares with PyTorch (fp32, batch 2,
 * 64x192x192, width 32: step 569 ms, forward 124 ms, peak 12.8 GiB on an H100). On a software adapter the
 * same code runs a small configuration.
 */
import { partialLabelLoss } from '../src/autograd/ops/head.js';
import { tidy } from '../src/autograd/scope.js';
import { noGrad } from '../src/autograd/tape.js';
import { Tensor } from '../src/autograd/tensor.js';
import { rngNormal, rngUniform } from '../src/autograd/random.js';
import type { Gpu } from '../src/kernels/runtime/gpu.js';
import { SGD } from '../src/nn/optim.js';
import { TGNet } from '../src/tgnet/model.js';
import { timeGpu } from './timing.js';
import { torchCpuStep } from './torch-cpu.js';

export interface TGNetStepConfig {
  batch: number;
  crop: [number, number, number];
  width: number;
  /** TGNet's checkpointActivations: encoder stages 0-2 recomputed in backward (less memory, more time). */
  checkpointActivations?: boolean;
}

export const FULL_STEP: TGNetStepConfig = { batch: 2, crop: [64, 192, 192], width: 32 };
export const SOFTWARE_STEP: TGNetStepConfig = { batch: 2, crop: [16, 32, 32], width: 8 };
/**
 * Software adapters: the demo's range (width 8 and 4), each next to PyTorch's CPU step on the same machine, and
 * width 8 again with activation checkpointing (its pool peak and time against the plain row).
 */
export const SOFTWARE_STEPS: TGNetStepConfig[] = [SOFTWARE_STEP, { batch: 2, crop: [16, 32, 32], width: 4 }, { ...SOFTWARE_STEP, checkpointActivations: true }];

export interface TGNetStepOptions {
  iterations?: number;
  /** Also time the PyTorch reference step on the CPU (bench/torch_cpu_step.py) with the same configuration. */
  torchCpu?: boolean;
}

export async function benchTGNetStep(gpu: Gpu, config: TGNetStepConfig, options: TGNetStepOptions = {}): Promise<Record<string, number | string>[]> {
  const { iterations = 3 } = options;
  const { batch, crop, width } = config;
  const [d, h, w] = crop;
  const model = TGNet.create({ variant: 'tgnet', width, seed: 0, checkpointActivations: config.checkpointActivations });
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.99, nesterov: true, weightDecay: 3e-5 });
  const voxels = batch * d * h * w;
  const x = Tensor.fromArray(rngNormal(voxels, 1), [batch, 1, d, h, w]).keep();
  const target = Tensor.fromArray(rngUniform(2 * voxels, 2).map((v) => (v > 0.7 ? 1 : 0)), [batch, 2, d, h, w]).keep();
  const taskIds = Array.from({ length: batch }, (_, i) => i % 4);
  try {
    // Buffers pooled by earlier sections would count towards the high-water mark: start from an empty pool.
    gpu.pool.trim();
    gpu.pool.resetHighWater();
    const step = () => {
      tidy(() => {
        partialLabelLoss(model.forward(x, taskIds), target).backward();
        opt.step();
        opt.zeroGrad();
      });
    };
    const train = await timeGpu(gpu, step, { iterations, warmup: 1 });
    const peak = gpu.poolStats().highWaterBytes;
    const forward = await timeGpu(gpu, () => { noGrad(() => tidy(() => { model.forward(x, taskIds); })); }, { iterations, warmup: 1 });
    const dispatches0 = gpu.dispatchCount;
    const submits0 = gpu.submitCount;
    step();
    await gpu.sync();
    const perStep = { dispatches: gpu.dispatchCount - dispatches0, submits: gpu.submitCount - submits0 };
    const profile = await profileStep(gpu, step);
    // After our timings: the PyTorch run would otherwise compete with them for the CPU.
    const torch = options.torchCpu && !config.checkpointActivations ? torchCpuStep(config, Math.max(3, iterations)) : null;
    return [{
      config: `batch ${batch}, ${d}x${h}x${w}, width ${width}${config.checkpointActivations ? ', checkpointed activations' : ''}`,
      params: model.parameterCount(),
      stepMs: train.medianMs,
      forwardMs: forward.medianMs,
      peakGiB: peak / 2 ** 30,
      ...(torch ? {
        torchCpuStepMs: torch.stepMs ?? 'n/a',
        ratioToTorch: torch.stepMs ? train.medianMs / torch.stepMs : 'n/a',
        torchCpu: torch.note,
      } : {}),
      dispatchesPerStep: perStep.dispatches,
      submitsPerStep: perStep.submits,
      ...(profile ? { gpuMsProfiled: profile.totalMs, topKernels: profile.top } : {}),
    }];
  } finally {
    x.dispose();
    target.dispose();
    opt.dispose();
    model.dispose();
  }
}

/**
 * One step with per-dispatch GPU timestamps, summed by kernel label: where a step's time goes. Null when
 * the adapter has no timestamp queries. (Each dispatch gets its own pass while profiling, so the total is
 * a little above the unprofiled step.)
 */
async function profileStep(gpu: Gpu, step: () => void): Promise<{ totalMs: number; top: string } | null> {
  if (!gpu.startProfiling()) return null;
  step();
  const timings = await gpu.stopProfiling();
  const byLabel = new Map<string, { ms: number; n: number }>();
  for (const t of timings) {
    const e = byLabel.get(t.label) ?? { ms: 0, n: 0 };
    e.ms += t.ms;
    e.n++;
    byLabel.set(t.label, e);
  }
  const totalMs = timings.reduce((a, t) => a + t.ms, 0);
  const top = [...byLabel.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 8)
    .map(([label, e]) => `${label} ${e.ms.toFixed(1)}ms/${e.n}`).join('; ');
  return { totalMs, top };
}
