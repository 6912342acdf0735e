/**
 * The paper's configuration (TGNet width 32, batch 2, crop 64x192x192, SGD with momentum) on whatever adapter is
 * present: the buffer pool's peak over one training step in f32 and, where the adapter has shader-f16, in mixed
 * precision, beside the affine extrapolation the stepCost section makes from small crops.
 *
 * Two ways to take the peak. The allocation trace runs the step's code with every kernel skipped
 * (`stepPeakBytes` with `trace`): the pool sees exactly the executed step's allocations and frees, so its peak is the
 * executed step's (checked at a small configuration by the bench's test), in seconds. The executed step
 * (`execute`) also runs every kernel and adds the process's peak resident memory; on a software adapter it takes
 * hours at this size, so it runs only when asked (`npm run bench -- --only fullMemory --execute-full-step`).
 */
import type { Gpu } from '../src/kernels/runtime/gpu.js';
import { supportsF16 } from '../src/kernels/runtime/precision.js';
import { fullConfigPeak, stepPeakBytes } from './step-cost.js';
import { FULL_STEP, type TGNetStepConfig } from './tgnet-step.js';

const GIB = 1024 ** 3;

export interface FullConfigMemory {
  config: TGNetStepConfig;
  adapter: string;
  /** The pool's high-water mark over one f32 step (allocation trace), GiB. */
  poolPeakGiB: number;
  /** The same in mixed precision (f16 activations), GiB; null without shader-f16. */
  poolPeakF16GiB: number | null;
  /** The stepCost section's affine extrapolation from small crops, for comparison. */
  extrapolatedGiB: number;
  extrapolationMethod: string;
  /** The executed f32 step, when asked for: its pool peak, the process's peak RSS and its time. */
  executed: { poolPeakGiB: number; processPeakRssGiB: number; stepSeconds: number } | null;
  /** The lines bench/RESULTS.md records. */
  lines: string[];
}

export interface FullConfigMemoryOptions {
  /** Also execute the f32 step (hours on a software adapter). */
  execute?: boolean;
  log?: (line: string) => void;
  config?: TGNetStepConfig;
}

export async function benchFullConfigMemory(gpu: Gpu, software: boolean, options: FullConfigMemoryOptions = {}): Promise<FullConfigMemory> {
  const { execute = false, log = console.log, config = { ...FULL_STEP, checkpointActivations: false } } = options;
  const what = `width ${config.width}, batch ${config.batch}, ${config.crop.join('x')}`;
  const scaled = await fullConfigPeak(gpu, config, true, [[16, 48, 48], [32, 48, 48]]);
  log(`extrapolated from small crops: ${scaled.tgnetGiB.toFixed(2)} GiB (${scaled.method})`);
  const poolPeakGiB = (await stepPeakBytes(gpu, { ...config, precision: 'f32' }, 1, { trace: true })) / GIB;
  const poolPeakF16GiB = supportsF16(gpu) ? (await stepPeakBytes(gpu, { ...config, precision: 'f16' }, 1, { trace: true })) / GIB : null;
  const lines = [
    `peak-memory-full-config: tgnet_gib=${poolPeakGiB.toFixed(2)} pytorch_fp32_gib=12.8 method=allocation-trace on ${gpu.name} `
      + `(one step, ${what}: every allocation of the step, kernels skipped; extrapolated ${scaled.tgnetGiB.toFixed(2)}; PyTorch figure from an H100)`,
    poolPeakF16GiB === null
      ? `peak-memory-full-config-f16: not measured (${gpu.name} lacks shader-f16)`
      : `peak-memory-full-config-f16: tgnet_gib=${poolPeakF16GiB.toFixed(2)} f32_gib=${poolPeakGiB.toFixed(2)} ratio=${(poolPeakF16GiB / poolPeakGiB).toFixed(2)} `
        + `method=allocation-trace on ${gpu.name} (one mixed-precision step, ${what})`,
  ];
  let executed: FullConfigMemory['executed'] = null;
  if (execute) {
    log(`one step executed at ${what} on ${gpu.name}${software ? ' (a software adapter: hours)' : ''}...`);
    const t0 = performance.now();
    const peak = await stepPeakBytes(gpu, config, 1);
    const stepSeconds = (performance.now() - t0) / 1000;
    // maxRSS is in KiB.
    executed = { poolPeakGiB: peak / GIB, processPeakRssGiB: (process.resourceUsage().maxRSS * 1024) / GIB, stepSeconds };
    lines.push(`peak-memory-full-config: tgnet_gib=${executed.poolPeakGiB.toFixed(2)} pytorch_fp32_gib=12.8 method=measured on ${gpu.name} `
      + `(one step executed, ${what}, ${(stepSeconds / 60).toFixed(1)} min; process peak RSS ${executed.processPeakRssGiB.toFixed(2)} GiB; `
      + `allocation trace ${poolPeakGiB.toFixed(2)}; extrapolated ${scaled.tgnetGiB.toFixed(2)}; PyTorch figure from an H100)`);
  }
  for (const line of lines) log(line);
  return {
    config, adapter: gpu.name, poolPeakGiB, poolPeakF16GiB, extrapolatedGiB: scaled.tgnetGiB, extrapolationMethod: scaled.method, executed, lines,
  };
}
