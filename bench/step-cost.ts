/**
 * What a TGNet training step costs, counted on any adapter (no timing): dispatches, submissions, the bytes each
 * dispatch reads and writes (from its bindings, see `Gpu.startCounting`), FLOPs per kernel, against the step's
 * op-graph traffic (`startOpTraffic` in src/autograd/tape.ts); and the peak memory of the paper's configuration
 * (batch 2, 64x192x192, width 32): measured on a hardware adapter, scaled by voxels from smaller crops on a
 * software one.
 */
import { mul } from '../src/autograd/ops/elementwise.js';
import { partialLabelLoss } from '../src/autograd/ops/head.js';
import { tidy } from '../src/autograd/scope.js';
import { startOpTraffic, stopOpTraffic } from '../src/autograd/tape.js';
import { Tensor } from '../src/autograd/tensor.js';
import { rngNormal, rngUniform } from '../src/autograd/random.js';
import type { Gpu } from '../src/kernels/runtime/gpu.js';
import type { KernelCost } from '../src/kernels/runtime/dispatch-counter.js';
import { SGD } from '../src/nn/optim.js';
import { TGNet } from '../src/tgnet/model.js';
import { table } from './timing.js';
import type { TGNetStepConfig } from './tgnet-step.js';

/** What "minimum traffic" means in this bench's output. */
export const OP_GRAPH_DEFINITION =
  'minimum = op-graph traffic: each autograd op reads each operand once and writes each result once ' +
  '(forward: inputs + output; backward: gradOutput + saved tensors + input gradients, + the sum where a gradient arrives twice; ' +
  'SGD: params, grads, momentum read, params, momentum written); fused kernels can go below it (ratio < 1)';

const GB = 1e9;
const GIB = 2 ** 30;

/** A TGNet training step (SGD Nesterov, as the bench) on seeded data; `step()` records one step. */
export interface TGNetStepSetup {
  model: TGNet;
  step: () => void;
  /** The forward pass alone (call under noGrad and tidy). */
  forward: () => void;
  /** Bytes SGD with momentum moves per step: params, grads and momentum read, params and momentum written. */
  optimizerBytes: number;
  dispose: () => void;
}

export function tgnetStepSetup(config: TGNetStepConfig): TGNetStepSetup {
  const { batch, crop, width } = config;
  const [d, h, w] = crop;
  const model = TGNet.create({ variant: 'tgnet', width, seed: 0, checkpointActivations: config.checkpointActivations, fused: config.fused });
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.99, nesterov: true, weightDecay: 3e-5 });
  const voxels = batch * d * h * w;
  const precision = config.precision ?? 'f32';
  const x = Tensor.fromArray(rngNormal(voxels, 1), [batch, 1, d, h, w], { dtype: precision }).keep();
  const target = Tensor.fromArray(rngUniform(2 * voxels, 2).map((v) => (v > 0.7 ? 1 : 0)), [batch, 2, d, h, w]).keep();
  const taskIds = Array.from({ length: batch }, (_, i) => i % 4);
  return {
    model,
    step: () => {
      tidy(() => {
        const loss = partialLabelLoss(model.forward(x, taskIds), target);
        if (precision === 'f16') {
          // The trainer's mixed-precision step: a scaled loss and the overflow check before the update (not awaited:
          // the flag's readback does not change what is allocated).
          mul(loss, 1024).backward();
          void opt.nonFiniteGradients();
          opt.step({ gradScale: 1 / 1024 });
        } else {
          loss.backward();
          opt.step();
        }
        opt.zeroGrad();
      });
    },
    forward: () => { model.forward(x, taskIds); },
    optimizerBytes: 5 * 4 * model.parameterCount(),
    dispose: () => {
      x.dispose();
      target.dispose();
      opt.dispose();
      model.dispose();
    },
  };
}

/** One step's counted cost. Byte figures are per step; `trafficRatio` = dispatch bytes / op-graph bytes. */
export interface StepCost {
  dispatches: number;
  submits: number;
  bytesRead: number;
  bytesWritten: number;
  /** Buffer-to-buffer copies in the step and the bytes they moved (not in bytesRead/bytesWritten). */
  copies: number;
  copyBytes: number;
  /** The step's minimum traffic: forward + backward op-graph bytes + the optimiser's. */
  opGraphBytes: number;
  forwardOpBytes: number;
  backwardOpBytes: number;
  optimizerBytes: number;
  ops: number;
  trafficRatio: number;
  /** (dispatch bytes + 2 x copy bytes) / op-graph bytes. */
  trafficRatioWithCopies: number;
  flops: number;
  kernels: KernelCost[];
}

/** Counts one step (after the work already queued has finished, so nothing earlier is counted). */
export async function countStep(gpu: Gpu, step: () => void, optimizerBytes: number): Promise<StepCost> {
  await gpu.sync();
  startOpTraffic();
  gpu.startCounting();
  let failed = true;
  try {
    step();
    await gpu.sync();
    failed = false;
  } finally {
    if (failed) {
      gpu.stopCounting();
      stopOpTraffic();
    }
  }
  const cost = gpu.stopCounting();
  const traffic = stopOpTraffic();
  const opGraphBytes = traffic.forwardBytes + traffic.backwardBytes + optimizerBytes;
  const dispatchBytes = cost.bytesRead + cost.bytesWritten;
  return {
    dispatches: cost.dispatches, submits: cost.submits, bytesRead: cost.bytesRead, bytesWritten: cost.bytesWritten,
    copies: cost.copies, copyBytes: cost.copyBytes,
    opGraphBytes, forwardOpBytes: traffic.forwardBytes, backwardOpBytes: traffic.backwardBytes, optimizerBytes, ops: traffic.ops,
    trafficRatio: dispatchBytes / opGraphBytes,
    trafficRatioWithCopies: (dispatchBytes + 2 * cost.copyBytes) / opGraphBytes,
    flops: cost.flops, kernels: cost.kernels,
  };
}

/** The step's figures as one bench row (bytes in the JSON, GB and GFLOP alongside for the table). */
export function stepCostRow(c: StepCost): Record<string, number | string> {
  const top = (key: (k: KernelCost) => number, fmt: (k: KernelCost) => string) => [...c.kernels]
    .sort((a, b) => key(b) - key(a)).slice(0, 4).map((k) => `${k.label} ${fmt(k)}/${k.dispatches}`).join('; ');
  return {
    dispatches: c.dispatches,
    submits: c.submits,
    bytesRead: c.bytesRead,
    bytesWritten: c.bytesWritten,
    opGraphBytes: c.opGraphBytes,
    trafficGB: (c.bytesRead + c.bytesWritten) / GB,
    opGraphGB: c.opGraphBytes / GB,
    trafficRatio: c.trafficRatio,
    gflop: c.flops / 1e9,
    topKernelsByBytes: top((k) => k.bytesRead + k.bytesWritten, (k) => `${((k.bytesRead + k.bytesWritten) / 1e6).toFixed(1)}MB`),
    topKernelsByFlops: top((k) => k.flops, (k) => `${(k.flops / 1e9).toFixed(2)}GFLOP`),
  };
}

/** The per-kernel table: the kernels with the most bytes or FLOPs (each at most once), with their shares. */
export function kernelTable(c: StepCost, rows = 14): Record<string, number | string>[] {
  const bytes = (k: KernelCost) => k.bytesRead + k.bytesWritten;
  const total = c.bytesRead + c.bytesWritten;
  const byBytes = [...c.kernels].sort((a, b) => bytes(b) - bytes(a));
  const byFlops = [...c.kernels].filter((k) => k.flops > 0).sort((a, b) => b.flops - a.flops);
  const chosen = new Set<KernelCost>([...byFlops.slice(0, Math.ceil(rows / 2)), ...byBytes]);
  return [...chosen].slice(0, rows).sort((a, b) => bytes(b) - bytes(a)).map((k) => ({
    kernel: k.label,
    dispatches: String(k.dispatches),
    readMB: k.bytesRead / 1e6,
    writtenMB: k.bytesWritten / 1e6,
    bytesShare: `${((100 * bytes(k)) / total).toFixed(1)}%`,
    gflop: k.flops / 1e9,
    flopsShare: c.flops > 0 ? `${((100 * k.flops) / c.flops).toFixed(1)}%` : '-',
  }));
}

/**
 * The pool's high-water mark (bytes the GPU holds: buffers in use plus pooled ones) over `steps` steps from an empty
 * pool. With `trace`, the steps run in discovery mode (`Gpu.discoverPipelines`): every tensor and buffer the step
 * allocates and frees is allocated and freed as in a real step, but no kernel is compiled or dispatched. The pool's
 * accounting depends only on that sequence (nothing the step allocates depends on a value read back), so the traced
 * peak is the executed step's, in seconds instead of hours on a software adapter (the bench's test checks the two
 * agree on a configuration small enough to execute).
 */
export async function stepPeakBytes(gpu: Gpu, config: TGNetStepConfig, steps = 1, options: { trace?: boolean } = {}): Promise<number> {
  const setup = tgnetStepSetup(config);
  const run = () => {
    for (let i = 0; i < steps; i++) setup.step();
  };
  try {
    await gpu.sync();
    gpu.pool.trim();
    gpu.pool.resetHighWater();
    if (options.trace) await gpu.discoverPipelines(run);
    else run();
    await gpu.sync();
    return gpu.poolStats().highWaterBytes;
  } finally {
    setup.dispose();
    await gpu.sync();
    gpu.pool.trim();
  }
}

export interface FullConfigPeak {
  tgnetGiB: number;
  method: string;
  /** The measured points (crop, voxels per sample, peak bytes) on a software adapter. */
  points: { crop: [number, number, number]; peakGiB: number }[];
  /** peak(larger crop) / peak(smaller crop) against the voxel ratio: 1 when memory is proportional to voxels. */
  linearity?: number;
  /** (measured - fitted) / measured at the check crop: how far the affine fit is off at a third point. */
  checkResidual?: number;
  /** The voxel-independent part of the affine fit (parameters, gradients, optimiser state, small tensors). */
  fixedGiB?: number;
}

/**
 * Peak memory of `full` (the paper's configuration). On a hardware adapter, two steps of it are run and measured.
 * Otherwise `crops` (two, same width and batch) are measured and the pool peak is fitted as fixed + perVoxel *
 * voxels (activations scale with the crop when each side divides by 16; parameters, gradients and optimiser state
 * do not), then evaluated at the full crop; the fit is checked against a third, smaller crop.
 */
export async function fullConfigPeak(
  gpu: Gpu, full: TGNetStepConfig, software: boolean, crops: [[number, number, number], [number, number, number]],
  checkCrop: [number, number, number] = [16, 16, 16],
): Promise<FullConfigPeak> {
  if (!software) {
    const peak = await stepPeakBytes(gpu, full, 2);
    return { tgnetGiB: peak / GIB, method: `measured on ${gpu.name}`, points: [{ crop: full.crop, peakGiB: peak / GIB }] };
  }
  const vox = (c: readonly number[]) => c[0] * c[1] * c[2];
  const points: FullConfigPeak['points'] = [];
  for (const crop of crops) {
    points.push({ crop, peakGiB: (await stepPeakBytes(gpu, { ...full, crop })) / GIB });
  }
  const [a, b] = points;
  const perVoxel = (b.peakGiB - a.peakGiB) / (vox(b.crop) - vox(a.crop));
  const fixed = a.peakGiB - perVoxel * vox(a.crop);
  const tgnetGiB = fixed + perVoxel * vox(full.crop);
  const linearity = (b.peakGiB / a.peakGiB) / (vox(b.crop) / vox(a.crop));
  const check = (await stepPeakBytes(gpu, { ...full, crop: checkCrop })) / GIB;
  points.push({ crop: checkCrop, peakGiB: check });
  const checkResidual = (check - (fixed + perVoxel * vox(checkCrop))) / check;
  const [d, h, w] = b.crop;
  return {
    tgnetGiB, points, linearity, fixedGiB: fixed, checkResidual,
    method: `scaled from width ${full.width} at crop ${d} ${h} ${w} on ${gpu.name}`,
  };
}

/**
 * The `stepCost` bench section: the counted step of `config` with its per-kernel table (printed), and the
 * full configuration's peak memory with its machine-readable line.
 */
export async function benchStepCost(
  gpu: Gpu, config: TGNetStepConfig, full: TGNetStepConfig, software: boolean,
  log: (line: string) => void = console.log,
): Promise<Record<string, unknown>[]> {
  const counted = async (c: TGNetStepConfig): Promise<StepCost> => {
    const setup = tgnetStepSetup(c);
    try {
      setup.step(); // compiles the pipelines and creates the optimiser state outside the counted step
      return await countStep(gpu, setup.step, setup.optimizerBytes);
    } finally {
      setup.dispose();
    }
  };
  const cost = await counted(config);
  // The same step on the unfused graph (TGNet fused: false): what the fused kernels save, on this adapter.
  const unfused = await counted({ ...config, fused: false });
  const [d, h, w] = config.crop;
  const name = `batch ${config.batch}, ${d}x${h}x${w}, width ${config.width}`;
  log(`step cost, ${name}, on ${gpu.name}: ${cost.dispatches} dispatches in ${cost.submits} submissions, ` +
    `${(cost.bytesRead / GB).toFixed(3)} GB read + ${(cost.bytesWritten / GB).toFixed(3)} GB written ` +
    `against ${(cost.opGraphBytes / GB).toFixed(3)} GB minimum (ratio ${cost.trafficRatio.toFixed(2)}; ` +
    `${cost.copies} copies, ${(cost.copyBytes / GB).toFixed(3)} GB more), ${(cost.flops / 1e9).toFixed(2)} GFLOP`);
  log(`(${OP_GRAPH_DEFINITION}; dispatch bytes = each binding's size once per dispatch)`);
  const moved = (c: StepCost) => (c.bytesRead + c.bytesWritten) / GB;
  log(`unfused graph (fused: false): ${unfused.dispatches} dispatches, ${moved(unfused).toFixed(3)} GB moved against ` +
    `${(unfused.opGraphBytes / GB).toFixed(3)} GB of its op graph; fused: ${cost.dispatches} dispatches, ${moved(cost).toFixed(3)} GB ` +
    `(${(100 * (1 - moved(cost) / moved(unfused))).toFixed(0)}% less traffic)`);
  log(table(kernelTable(cost)));
  const peak = await fullConfigPeak(gpu, full, software, [[16, 32, 32], [32, 32, 32]]);
  const [fd, fh, fw] = full.crop;
  if (peak.points.length > 1) {
    log(`pool peak at width ${full.width}, batch ${full.batch}: ${peak.points.map((p) => `${p.crop.join('x')} ${p.peakGiB.toFixed(3)} GiB`).join(', ')}; ` +
      `fit fixed + perVoxel * voxels on the first two: fixed part ${peak.fixedGiB?.toFixed(3)} GiB ` +
      `(peak ratio / voxel ratio ${peak.linearity?.toFixed(3)}), off by ${(100 * (peak.checkResidual ?? 0)).toFixed(1)}% at the third`);
  }
  log(`peak-memory-full-config: tgnet_gib=${peak.tgnetGiB.toFixed(2)} pytorch_fp32_gib=12.8 method=${peak.method}` +
    ` (batch ${full.batch}, ${fd}x${fh}x${fw}, width ${full.width}; pytorch figure from an H100)`);
  return [{
    config: name, ...stepCostRow(cost), copies: cost.copies, copyBytes: cost.copyBytes,
    unfused: { dispatches: unfused.dispatches, bytesRead: unfused.bytesRead, bytesWritten: unfused.bytesWritten, opGraphBytes: unfused.opGraphBytes },
    forwardOpBytes: cost.forwardOpBytes, backwardOpBytes: cost.backwardOpBytes, optimizerBytes: cost.optimizerBytes,
    trafficRatioWithCopies: cost.trafficRatioWithCopies, minimum: OP_GRAPH_DEFINITION,
    kernels: cost.kernels,
    fullConfigPeakGiB: peak.tgnetGiB, fullConfigPeakMethod: peak.method, fullConfigPeakPoints: peak.points,
  }];
}
