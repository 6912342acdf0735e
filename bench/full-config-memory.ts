/**
 * The paper's configuration measured, not extrapolated: one training step of TGNet at width 32, batch 2, crop
 * 64x192x192 (SGD with momentum, as the paper) on whatever adapter is present, its buffer-pool peak and the process's
 * peak resident memory, beside the affine extrapolation the stepCost section makes from small crops. On a
 * software adapter the step takes tens of minutes (the time is printed); it runs only when named in --only.
 */
import type { Gpu } from '../src/kernels/runtime/gpu.js';
import { fullConfigPeak, stepPeakBytes } from './step-cost.js';
import { FULL_STEP, type TGNetStepConfig } from './tgnet-step.js';

const GIB = 1024 ** 3;

export interface FullConfigMemory {
  config: TGNetStepConfig;
  adapter: string;
  /** The buffer pool's high-water mark over the step, GiB. */
  poolPeakGiB: number;
  /** The process's peak resident set over the whole run (the software adapter's buffers live in it), GiB. */
  processPeakRssGiB: number;
  stepSeconds: number;
  /** The stepCost section's affine extrapolation from small crops, for comparison. */
  extrapolatedGiB: number;
  extrapolationMethod: string;
  /** The line bench/RESULTS.md records. */
  line: string;
}

export async function benchFullConfigMemory(
  gpu: Gpu, software: boolean, log: (line: string) => void = console.log, config: TGNetStepConfig = { ...FULL_STEP, checkpointActivations: false },
): Promise<FullConfigMemory> {
  const scaled = await fullConfigPeak(gpu, config, true, [[16, 48, 48], [32, 48, 48]]);
  log(`extrapolated from small crops: ${scaled.tgnetGiB.toFixed(2)} GiB (${scaled.method})`);
  log(`one step at width ${config.width}, batch ${config.batch}, ${config.crop.join('x')} on ${gpu.name}${software ? ' (a software adapter: tens of minutes)' : ''}...`);
  const t0 = performance.now();
  const peak = await stepPeakBytes(gpu, config, 1);
  const stepSeconds = (performance.now() - t0) / 1000;
  const poolPeakGiB = peak / GIB;
  // maxRSS is in KiB.
  const processPeakRssGiB = (process.resourceUsage().maxRSS * 1024) / GIB;
  const line = `peak-memory-full-config: tgnet_gib=${poolPeakGiB.toFixed(2)} pytorch_fp32_gib=12.8 method=measured on ${gpu.name} `
    + `(one step, width ${config.width}, batch ${config.batch}, ${config.crop.join('x')}, ${(stepSeconds / 60).toFixed(1)} min; process peak RSS ${processPeakRssGiB.toFixed(2)} GiB; `
    + `extrapolated ${scaled.tgnetGiB.toFixed(2)}; PyTorch figure from an H100)`;
  log(line);
  return {
    config, adapter: gpu.name, poolPeakGiB, processPeakRssGiB, stepSeconds, extrapolatedGiB: scaled.tgnetGiB, extrapolationMethod: scaled.method, line,
  };
}
