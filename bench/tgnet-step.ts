/**
 * TGNet training step and forward pass, the figure DESIGN.md compares with PyTorch (fp32, batch 2,
 * 64x192x192, width 32: step 569 ms, forward 124 ms, peak 12.8 GiB on an H100). On a software adapter the
 * same code runs a small configuration.
 */
import { availableParallelism } from 'node:os';
import { tidy } from '../src/autograd/scope.js';
import { noGrad } from '../src/autograd/tape.js';
import type { Gpu } from '../src/kernels/runtime/gpu.js';
import { countStep, stepCostRow, tgnetStepSetup } from './step-cost.js';
import { timeGpu } from './timing.js';
import { torchCpuStep } from './torch-cpu.js';
import type { DType } from '../src/kernels/runtime/precision.js';

export interface TGNetStepConfig {
  batch: number;
  crop: [number, number, number];
  width: number;
  /** TGNet's checkpointActivations: encoder stages 0-2 recomputed in backward (less memory, more time). */
  checkpointActivations?: boolean;
  /** TGNet's fused kernels (default true); false runs the unfused graph, the "before" of the fusion work. */
  fused?: boolean;
  /** 'f16': mixed precision as the trainer runs it (f16 activations, scaled loss, overflow check); default 'f32'. */
  precision?: DType;
}

export const FULL_STEP: TGNetStepConfig = { batch: 2, crop: [64, 192, 192], width: 32 };
export const SOFTWARE_STEP: TGNetStepConfig = { batch: 2, crop: [16, 32, 32], width: 8 };
/**
 * Software adapters: the demo's range (width 8 and 4), each next to PyTorch's CPU step on the same machine, and
 * width 8 again with activation checkpointing (its pool peak and time against the plain row).
 */
export const SOFTWARE_STEPS: TGNetStepConfig[] = [
  SOFTWARE_STEP, { batch: 2, crop: [16, 32, 32], width: 4 }, { ...SOFTWARE_STEP, checkpointActivations: true },
  { ...SOFTWARE_STEP, fused: false },
];

export interface TGNetStepOptions {
  iterations?: number;
  /** Also time the PyTorch reference step on the CPU (bench/torch_cpu_step.py) with the same configuration. */
  torchCpu?: boolean;
}

export async function benchTGNetStep(gpu: Gpu, config: TGNetStepConfig, options: TGNetStepOptions = {}): Promise<Record<string, number | string>[]> {
  const { iterations = 3 } = options;
  const { batch, crop, width } = config;
  const [d, h, w] = crop;
  const setup = tgnetStepSetup(config);
  const { model, step } = setup;
  try {
    // Buffers pooled by earlier sections would count towards the high-water mark: start from an empty pool.
    gpu.pool.trim();
    gpu.pool.resetHighWater();
    const train = await timeGpu(gpu, step, { iterations, warmup: 1 });
    // CPU time of the whole process (Node's thread, the driver's: a software adapter's kernels run on them) per step,
    // beside the wall time: on a machine shared with other work it moves far less. Its own steps, after the timed
    // ones, so that no pipeline compile (the warm-up's) is counted; the median step.
    const cpuMs: number[] = [];
    for (let i = 0; i < iterations; i++) {
      const cpu0 = process.cpuUsage();
      step();
      await gpu.sync();
      const cpu = process.cpuUsage(cpu0);
      cpuMs.push((cpu.user + cpu.system) / 1000);
    }
    const cpuMsPerStep = cpuMs.sort((a, b) => a - b)[cpuMs.length >> 1];
    const peak = gpu.poolStats().highWaterBytes;
    const forward = await timeGpu(gpu, () => { noGrad(() => tidy(() => { setup.forward(); })); }, { iterations, warmup: 1 });
    // One step counted (dispatches, submissions, bytes, FLOPs against the op-graph minimum; see step-cost.ts).
    const cost = await countStep(gpu, step, setup.optimizerBytes);
    const profile = await profileStep(gpu, step);
    // After our timings: the PyTorch run would otherwise compete with them for the CPU.
    const torch = options.torchCpu && !config.checkpointActivations && config.fused !== false && config.precision !== 'f16' ? torchCpuStep(config, Math.max(5, iterations)) : null;
    // PyTorch's own thread choice can leave cores idle that our driver's threads use: the same step on every core too.
    const cores = availableParallelism();
    const torchAllCores = torch?.threads !== undefined && torch.threads < cores ? torchCpuStep(config, Math.max(5, iterations), cores) : null;
    return [{
      config: `batch ${batch}, ${d}x${h}x${w}, width ${width}${config.checkpointActivations ? ', checkpointed activations' : ''}${config.fused === false ? ', unfused' : ''}${config.precision === 'f16' ? ', f16 mixed precision' : ''}`,
      precision: config.precision ?? 'f32',
      params: model.parameterCount(),
      stepMs: train.medianMs,
      stepCpuMs: cpuMsPerStep,
      forwardMs: forward.medianMs,
      poolPeakGiB: peak / 2 ** 30,
      ...(torch ? {
        torchCpuStepMs: torch.stepMs ?? 'n/a',
        ratioToTorch: torch.stepMs ? train.medianMs / torch.stepMs : 'n/a',
        torchStepCpuMs: torch.stepCpuMs ?? 'n/a',
        cpuRatioToTorch: torch.stepCpuMs ? cpuMsPerStep / torch.stepCpuMs : 'n/a',
        torchCpu: torch.note,
        torchThreads: torch.threads ?? 'n/a',
        ...(torchAllCores ? {
          torchAllCoresStepMs: torchAllCores.stepMs ?? 'n/a',
          torchAllCoresThreads: torchAllCores.threads ?? 'n/a',
          ratioToTorchAllCores: torchAllCores.stepMs ? train.medianMs / torchAllCores.stepMs : 'n/a',
        } : {}),
      } : {}),
      ...stepCostRow(cost),
      ...(profile ? { gpuMsProfiled: profile.totalMs, topKernels: profile.top } : {}),
    }];
  } finally {
    setup.dispose();
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
  const top = [...byLabel.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 12)
    .map(([label, e]) => `${label} ${e.ms.toFixed(1)}ms/${e.n}`).join('; ');
  return { totalMs, top };
}
