/**
 * The training loop (DoDNet/TGNet recipe): SGD with Nesterov momentum 0.99, lr0 0.01 on a poly-0.9 schedule
 * over the whole run, DoDNet's partial-label loss (Dice + BCE on annotated channels only).
 *
 * That recipe is built for 1000 epochs; for short runs the trainer also offers Adam or AdamW (`optimizer`,
 * lr0 default 1e-3) and a linear warm-up before the poly decay (`warmupSteps`), which on a tiny TGNet lower the
 * loss far faster than the SGD recipe in a few hundred steps. The default stays the paper's SGD recipe.
 *
 * A step records upload -> forward -> loss -> backward -> SGD -> zeroGrad inside one `tidy`, so every
 * intermediate is freed when it ends and GPU memory stays flat across steps. The loss is read back only on log
 * and checkpoint steps: a readback waits for the GPU to drain, so reading every step would serialise host and
 * GPU. Between reads only that step's loss tensor is kept. A non-finite loss stops the run with an error naming
 * the step and lr; because earlier steps were not read, the error says between which steps it went wrong. The
 * same readback carries the sum of all parameters, since NaN weights can hide behind a finite loss (ReLU's max
 * drops NaN on some GPUs).
 *
 * Mixed precision (`precision: 'f16'`, where the adapter has 'shader-f16'): the batch is uploaded as f16, so
 * every activation and activation gradient is stored in f16 (kernels accumulate in f32; the dynamic head and
 * the loss run in f32); weights, their gradients and the optimiser state stay f32. The loss is scaled before
 * backward (LossScaler, PyTorch's GradScaler semantics); each step then reads one overflow flag back, as
 * GradScaler does, and a step whose gradients overflowed is skipped (its batch is still consumed).
 *
 * Weight decay defaults to 3e-5: the DESIGN recipe names none, and 3e-5 is what the PyTorch twin's
 * benchmark (bench/torch/tgnet_torch.py) uses (nnU-Net's value, the recipe DoDNet's training derives from).
 *
 * The data layer is not imported here (layering): anything with a `next()` returning a `TrainingBatch` will do,
 * and `tgnet/data`'s BatchSampler does so structurally.
 */
import { mul } from '../autograd/ops/elementwise.js';
import { partialLabelLoss } from '../autograd/ops/head.js';
import { tidy } from '../autograd/scope.js';
import { Tensor } from '../autograd/tensor.js';
import { checkFinite } from '../kernels/partial-label-loss.js';
import { requireDType, type DType } from '../kernels/runtime/precision.js';
import { LossScaler, type LossScalerOptions } from '../nn/loss-scaler.js';
import { scheduledLr } from '../nn/lr-schedule.js';
import { Adam, DEFAULT_LEARNING_RATES, OPTIMIZER_KINDS, SGD, type Optimizer, type OptimizerKind, type OptimizerState } from '../nn/optim.js';
import {
  CHECKPOINT_SLOTS, checkCheckpointFits, loadCheckpoint, saveCheckpoint, type Checkpoint, type CheckpointRunInfo,
  type CheckpointSamplerPosition, type CheckpointTensor,
} from './checkpoint.js';
import type { TGNet } from './model.js';
import type { DHW } from '../common/shape.js';

/** One batch of crops: what `tgnet/data`'s BatchSampler.next() returns (extra fields are ignored). */
export interface TrainingBatch {
  /** [N, 1, D, H, W] CT crops. */
  image: Float32Array;
  /** [N, 2, D, H, W] organ / tumour targets; a channel of -1 is unannotated for that sample's task. */
  target: Float32Array;
  /** One task id per sample. */
  taskIds: readonly number[];
  /** [N, D, H, W]. */
  shape: readonly [number, number, number, number];
}

/**
 * An endless supply of batches; may be async (e.g. a worker that prepares crops). A source that can say where
 * it stands (`position`) and continue from there (`restorePosition`, before its first batch), as the data
 * layer's samplers do, makes checkpoints exact: a resumed run draws the very batches the uninterrupted one would.
 */
export interface BatchSource {
  next(): TrainingBatch | Promise<TrainingBatch>;
  /** Where the stream stands after the batches handed out so far. */
  position?(): CheckpointSamplerPosition;
  /** Continues from a saved position. */
  restorePosition?(position: CheckpointSamplerPosition): void;
}

export interface TrainLogEvent {
  /** Steps completed (1-based index of the step just taken). */
  step: number;
  totalSteps: number;
  loss: number;
  /** Learning rate the step used. */
  lr: number;
  /** Steps per second since the previous log line (GPU time included: the readback waits for it). */
  stepsPerSecond: number;
  /** Seconds since `run` started. */
  elapsedSeconds: number;
  /** Mixed precision only: the loss scale and the steps skipped for an overflow so far. */
  lossScale?: number;
  skippedSteps?: number;
}

export interface TrainCheckpointEvent {
  step: number;
  path: string;
  seconds: number;
}

export interface TrainerOptions {
  model: TGNet;
  batches: BatchSource;
  /** Length of the run; the poly schedule decays to 0 at this step. */
  totalSteps: number;
  /** 'sgd' (default: the paper's recipe), 'adam' (torch.optim.Adam, L2 decay) or 'adamw' (decoupled decay). */
  optimizer?: OptimizerKind;
  /** Peak learning rate (default 0.01 for SGD, 1e-3 for Adam and AdamW). */
  lr0?: number;
  /** Steps of linear warm-up to lr0 before the poly decay (default 0: the poly schedule alone). */
  warmupSteps?: number;
  /** SGD momentum (default 0.99). */
  momentum?: number;
  /** Nesterov momentum (default true). */
  nesterov?: boolean;
  /** Adam/AdamW moment decay rates (default [0.9, 0.999]). */
  betas?: readonly [number, number];
  /** Adam/AdamW eps (default 1e-8). */
  eps?: number;
  /** Weight decay (default 3e-5, see the module comment): L2 for SGD and Adam, decoupled for AdamW. */
  weightDecay?: number;
  /** Exponent of the poly schedule (default 0.9). */
  polyPower?: number;
  /** Read, check and report the loss every this many steps, and at the last step (default 10). */
  logEvery?: number;
  /** Save a checkpoint every this many steps (0: only at the end; default 0). Needs `checkpointPath`. */
  checkpointEvery?: number;
  /** Where checkpoints go (overwritten atomically each time); none: no checkpoints are written. */
  checkpointPath?: string;
  /** Recorded in checkpoints so a run can be reproduced. */
  seed?: number;
  /** Training crop [D, H, W] recorded in checkpoints; default: the first batch's. */
  crop?: DHW;
  /** Crops per step, recorded in checkpoints and checked on every batch; default: the first batch's. */
  batchSize?: number;
  /** Recorded in checkpoints as it is, for the command line to continue the run (data folder, split, ...). */
  runInfo?: CheckpointRunInfo;
  /** 'f32' (default) or 'f16': mixed precision (see the module comment); needs the adapter's 'shader-f16'. */
  precision?: DType;
  /** Mixed precision's loss scaler settings (PyTorch GradScaler's defaults). */
  lossScaler?: LossScalerOptions;
  onLog?: (event: TrainLogEvent) => void;
  onCheckpoint?: (event: TrainCheckpointEvent) => void;
}

export interface TrainStepResult {
  /** Steps completed after this one. */
  step: number;
  lr: number;
  /** The loss when this step read it back (log and checkpoint steps), else null. */
  loss: number | null;
  /** Path of the checkpoint this step wrote, else null. */
  checkpoint: string | null;
}

export interface TrainResult {
  /** Steps completed (equals totalSteps when the run finished). */
  step: number;
  /** Every loss that was read back, by step. */
  losses: { step: number; loss: number }[];
  /** The last checkpoint written, if any. */
  checkpointPath: string | null;
  seconds: number;
}

function positiveInteger(what: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`Trainer: ${what} must be a positive integer, got ${v}`);
  return v;
}

function nonNegative(what: string, v: number): number {
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`Trainer: ${what} must be a finite number >= 0, got ${v}`);
  return v;
}

export class Trainer {
  readonly model: TGNet;
  readonly optimizer: Optimizer;
  readonly optimizerKind: OptimizerKind;
  readonly totalSteps: number;
  readonly lr0: number;
  readonly warmupSteps: number;
  readonly polyPower: number;
  /** SGD's settings, recorded in checkpoints whatever the optimiser. */
  readonly momentum: number;
  readonly nesterov: boolean;
  readonly logEvery: number;
  readonly checkpointEvery: number;
  readonly checkpointPath: string | null;
  readonly seed: number;
  readonly precision: DType;
  /** Present under mixed precision. */
  readonly lossScaler: LossScaler | null;
  private readonly batches: BatchSource;
  private readonly onLog: TrainerOptions['onLog'];
  private readonly onCheckpoint: TrainerOptions['onCheckpoint'];
  private crop: DHW | null;
  private batchSize: number | null;
  private readonly runInfo: CheckpointRunInfo | undefined;
  private stepCount = 0;
  /** Last loss read back, to say where a divergence began. */
  private lastFinite: { step: number; loss: number } | null = null;
  private readonly losses: { step: number; loss: number }[] = [];
  private lastCheckpoint: string | null = null;
  private lastCheckpointStep = 0;
  private runStart = 0;
  private window = { time: 0, step: 0 };

  constructor(options: TrainerOptions) {
    this.model = options.model;
    this.batches = options.batches;
    if (typeof this.batches?.next !== 'function') throw new TypeError('Trainer: batches must have a next() method returning { image, target, taskIds, shape }');
    this.totalSteps = positiveInteger('totalSteps', options.totalSteps);
    this.optimizerKind = options.optimizer ?? 'sgd';
    if (!OPTIMIZER_KINDS.includes(this.optimizerKind)) {
      throw new RangeError(`Trainer: optimizer must be one of ${OPTIMIZER_KINDS.join(', ')}, got ${JSON.stringify(this.optimizerKind)}`);
    }
    const sgd = this.optimizerKind === 'sgd';
    this.lr0 = nonNegative('lr0', options.lr0 ?? DEFAULT_LEARNING_RATES[this.optimizerKind]);
    this.warmupSteps = options.warmupSteps ?? 0;
    if (!Number.isSafeInteger(this.warmupSteps) || this.warmupSteps < 0 || this.warmupSteps >= this.totalSteps) {
      throw new RangeError(`Trainer: warmupSteps must be an integer in [0, totalSteps) = [0, ${this.totalSteps}), got ${this.warmupSteps}`);
    }
    this.polyPower = nonNegative('polyPower', options.polyPower ?? 0.9);
    this.logEvery = positiveInteger('logEvery', options.logEvery ?? 10);
    this.checkpointEvery = options.checkpointEvery ?? 0;
    if (!Number.isSafeInteger(this.checkpointEvery) || this.checkpointEvery < 0) {
      throw new RangeError(`Trainer: checkpointEvery must be an integer >= 0 (0: only at the end), got ${this.checkpointEvery}`);
    }
    this.checkpointPath = options.checkpointPath ?? null;
    this.seed = options.seed ?? 0;
    if (!Number.isSafeInteger(this.seed)) throw new RangeError(`Trainer: seed must be an integer, got ${this.seed}`);
    this.crop = options.crop ? [...options.crop] : null;
    this.batchSize = options.batchSize === undefined ? null : positiveInteger('batchSize', options.batchSize);
    this.runInfo = options.runInfo;
    this.onLog = options.onLog;
    this.onCheckpoint = options.onCheckpoint;
    this.precision = options.precision ?? 'f32';
    requireDType(this.model.parameters()[0].gpu, this.precision, 'Trainer: precision');
    this.lossScaler = this.precision === 'f16' ? new LossScaler(options.lossScaler) : null;
    this.momentum = nonNegative('momentum', options.momentum ?? 0.99);
    this.nesterov = options.nesterov ?? true;
    const weightDecay = nonNegative('weightDecay', options.weightDecay ?? 3e-5);
    // Adam validates betas and eps itself, naming the value.
    this.optimizer = sgd
      ? new SGD(this.model.parameters(), { lr: this.lr0, momentum: this.momentum, nesterov: this.nesterov, weightDecay })
      : new Adam(this.model.parameters(), {
        lr: this.lr0, betas: options.betas, eps: options.eps, weightDecay, decoupled: this.optimizerKind === 'adamw',
      });
  }

  /** Steps completed so far (restored by `restore`). */
  get step(): number {
    return this.stepCount;
  }

  /** Learning rate of the next step. */
  get lr(): number {
    return this.lrAt(Math.min(this.stepCount, this.totalSteps));
  }

  /**
   * Continues a run: weights, optimiser state and the step count come from the checkpoint (validated against
   * the model and this trainer's optimiser first, so a mismatch changes nothing). A checkpoint of another
   * optimiser is refused: its state means nothing to this one. The schedule (lr0, warm-up, totalSteps) follows
   * this trainer's options.
   */
  restore(checkpoint: Checkpoint, source = '(checkpoint)'): void {
    const kind = checkpoint.meta.optimizer ?? 'sgd';
    if (kind !== this.optimizerKind) {
      throw new Error(`checkpoint ${source}: metadata field 'optimizer' is ${JSON.stringify(kind)} but this trainer uses ${JSON.stringify(this.optimizerKind)}; resume with optimizer ${JSON.stringify(kind)} (its state does not carry over to another optimizer)`);
    }
    checkCheckpointFits(checkpoint, this.model, source);
    const { batchSize, sampler, precision = 'f32', lossScaler } = checkpoint.meta;
    if (precision !== this.precision) {
      throw new Error(`checkpoint ${source}: metadata field 'precision' is ${JSON.stringify(precision)} but this trainer uses ${JSON.stringify(this.precision)}; resume with precision ${JSON.stringify(precision)} (another one changes every step that follows)`);
    }
    if (this.lossScaler && !lossScaler) throw new Error(`checkpoint ${source}: holds no 'lossScaler' state; a precision "f16" run needs it to resume exactly`);
    if (batchSize !== undefined && this.batchSize !== null && batchSize !== this.batchSize) {
      throw new Error(`checkpoint ${source}: metadata field 'batchSize' is ${batchSize} but this trainer uses ${this.batchSize}; resume with batch size ${batchSize} (another one changes every step that follows)`);
    }
    const named = this.model.namedParameters();
    const slots: OptimizerState['slots'] = {};
    for (const { slot } of CHECKPOINT_SLOTS[kind]) {
      const state = checkpoint[slot];
      if (!state) throw new Error(`checkpoint ${source}: holds no ${slot} state; optimizer ${kind} needs it`);
      slots[slot] = named.map(([name]) => state.get(name) as Float32Array);
    }
    // The sampler and the optimiser validate before changing anything, so a bad file throws with the run untouched.
    if (sampler && this.batches.restorePosition) this.batches.restorePosition(sampler);
    this.optimizer.importState({ kind, steps: checkpoint.meta.step, slots });
    if (this.lossScaler && lossScaler) this.lossScaler.importState(lossScaler);
    this.model.loadStateDict(new Map(named.map(([name]) => [name, checkpoint.model.get(name) as CheckpointTensor])));
    this.stepCount = checkpoint.meta.step;
    this.crop ??= [...checkpoint.meta.crop];
    this.batchSize ??= batchSize ?? null;
    if (source !== '(checkpoint)') {
      // Until this run saves one, the file it resumed from is the checkpoint to fall back on.
      this.lastCheckpoint = source;
      this.lastCheckpointStep = checkpoint.meta.step;
    }
    this.lastFinite = null;
  }

  /** Reads `path` (see loadCheckpoint) and restores from it. */
  async resume(path: string): Promise<Checkpoint> {
    const checkpoint = await loadCheckpoint(path);
    this.restore(checkpoint, path);
    return checkpoint;
  }

  /** The run's current state on the host: weights, optimiser state and metadata (one readback per tensor). */
  async snapshot(): Promise<Checkpoint> {
    if (!this.crop) throw new Error('Trainer.snapshot: the crop size is unknown; pass options.crop or take a step first');
    const named = this.model.namedParameters();
    const values = await Promise.all(named.map(([, p]) => p.toArray()));
    const state = await this.optimizer.exportState();
    const opt = this.optimizer;
    const checkpoint: Checkpoint = {
      meta: {
        variant: this.model.variant, width: this.model.width, numTasks: this.model.numTasks, crop: [...this.crop],
        step: this.stepCount, totalSteps: this.totalSteps, lr0: this.lr0, momentum: this.momentum, nesterov: this.nesterov,
        weightDecay: opt.weightDecay, polyPower: this.polyPower, seed: this.seed,
        optimizer: this.optimizerKind, warmupSteps: this.warmupSteps,
        ...(opt instanceof Adam ? { betas: [opt.betas[0], opt.betas[1]] as [number, number], eps: opt.eps } : {}),
        logEvery: this.logEvery, checkpointEvery: this.checkpointEvery,
        ...(this.batchSize !== null ? { batchSize: this.batchSize } : {}),
        ...(this.batches.position ? { sampler: this.batches.position() } : {}),
        ...(this.runInfo ? { run: this.runInfo } : {}),
        ...(this.precision !== 'f32' ? { precision: this.precision } : {}),
        ...(this.lossScaler ? { lossScaler: this.lossScaler.exportState() } : {}),
      },
      model: new Map(named.map(([name, p], i) => [name, { shape: [...p.shape], data: values[i] }])),
    };
    for (const { slot } of CHECKPOINT_SLOTS[this.optimizerKind]) {
      checkpoint[slot] = new Map(named.map(([name], i) => [name, state.slots[slot][i]]));
    }
    return checkpoint;
  }

  /** Writes a checkpoint of the current state to `path` (default: options.checkpointPath). */
  async save(path = this.checkpointPath): Promise<string> {
    if (!path) throw new Error('Trainer.save: no checkpoint path; pass one or set options.checkpointPath');
    const t0 = performance.now();
    await saveCheckpoint(path, await this.snapshot());
    this.lastCheckpoint = path;
    this.lastCheckpointStep = this.stepCount;
    this.onCheckpoint?.({ step: this.stepCount, path, seconds: (performance.now() - t0) / 1000 });
    return path;
  }

  /**
   * One optimiser step on the next batch, then the log and checkpoint work this step is due for. A lost GPU
   * device stops the run with an error naming the phase and the step, and the last checkpoint (never touched by
   * a failed save) to resume from.
   */
  async trainStep(): Promise<TrainStepResult> {
    const phase = { name: 'reading the batch' };
    const step = this.stepCount + 1;
    try {
      return await this.runStep(phase);
    } catch (e) {
      const message = (e as Error).message ?? String(e);
      if (!/GPU device lost|GPU runtime was destroyed/.test(message)) throw e;
      const resume = this.lastCheckpoint ? `the last checkpoint, ${this.lastCheckpoint} (step ${this.lastCheckpointStep}), is intact: resume from it` : 'no checkpoint was written in this run';
      throw new Error(`Trainer: the GPU device was lost during ${phase.name} of step ${step} of ${this.totalSteps} (${message}); ${resume}`, { cause: e });
    }
  }

  private async runStep(phase: { name: string }): Promise<TrainStepResult> {
    if (this.stepCount >= this.totalSteps) {
      throw new RangeError(`Trainer.trainStep: the run is complete (${this.stepCount} of ${this.totalSteps} steps); raise totalSteps to train further`);
    }
    if (this.runStart === 0) this.startClock();
    const index = this.stepCount;
    const batch = await this.batches.next();
    const shape = this.checkBatch(batch, index + 1);
    this.crop ??= [shape[1], shape[2], shape[3]];
    this.batchSize ??= shape[0];
    phase.name = 'the forward and backward pass and the update';
    const lr = this.lrAt(index);
    const done = index + 1;
    const last = done === this.totalSteps;
    const logDue = done % this.logEvery === 0 || last;
    const checkpointDue = this.checkpointPath !== null && (last || (this.checkpointEvery > 0 && done % this.checkpointEvery === 0));
    const readLoss = logDue || checkpointDue;

    const [n, d, h, w] = shape;
    const scaler = this.lossScaler;
    const lossOfStep = tidy(() => {
      // Under mixed precision the f16 input makes every activation f16 (see the module comment).
      const x = Tensor.fromArray(batch.image, [n, 1, d, h, w], { dtype: this.precision });
      const y = Tensor.fromArray(batch.target, [n, 2, d, h, w]);
      const l = partialLabelLoss(this.model.forward(x, batch.taskIds), y);
      (scaler ? mul(l, scaler.scale) : l).backward();
      return l;
    });
    let lossTensor: Tensor | null;
    try {
      const overflow = scaler ? await this.optimizer.nonFiniteGradients() : false;
      lossTensor = tidy(() => {
        if (!overflow) this.optimizer.step({ lr, ...(scaler ? { gradScale: 1 / scaler.scale } : {}) });
        this.optimizer.zeroGrad();
        // Built (and kept alive) only when it will be read.
        if (!readLoss) return null;
        // [loss, sum of all parameters] in one buffer: one readback checks both (see Optimizer.parameterSum).
        const probe = Tensor.empty([2], lossOfStep.gpu);
        lossOfStep.gpu.copy(lossOfStep.buffer, 0, probe.buffer, 0, 4);
        lossOfStep.gpu.copy(this.optimizer.parameterSum().buffer, 0, probe.buffer, 4, 4);
        return probe;
      });
      scaler?.update(overflow);
    } finally {
      lossOfStep.dispose();
    }
    this.stepCount = done;

    let loss: number | null = null;
    if (lossTensor) {
      phase.name = 'the loss readback';
      let values: Float32Array;
      try {
        values = await lossTensor.toArray();
      } finally {
        lossTensor.dispose();
      }
      loss = values[0];
      this.checkHealth(loss, values[1], done, lr);
      this.losses.push({ step: done, loss });
    }
    if (logDue && loss !== null) {
      const now = performance.now();
      const stepsPerSecond = (done - this.window.step) / Math.max(1e-9, (now - this.window.time) / 1000);
      this.window = { time: now, step: done };
      this.onLog?.({
        step: done, totalSteps: this.totalSteps, loss, lr, stepsPerSecond, elapsedSeconds: (now - this.runStart) / 1000,
        ...(scaler ? { lossScale: scaler.scale, skippedSteps: scaler.skippedSteps } : {}),
      });
    }
    let checkpoint: string | null = null;
    if (checkpointDue) {
      phase.name = 'the checkpoint';
      checkpoint = await this.save();
      // Time spent writing is not training speed.
      this.window.time = performance.now();
    }
    return { step: done, lr, loss, checkpoint };
  }

  /** Trains from the current step to totalSteps. */
  async run(): Promise<TrainResult> {
    this.startClock();
    const firstLoss = this.losses.length;
    while (this.stepCount < this.totalSteps) await this.trainStep();
    return {
      step: this.stepCount,
      losses: this.losses.slice(firstLoss),
      checkpointPath: this.lastCheckpoint,
      seconds: (performance.now() - this.runStart) / 1000,
    };
  }

  /** Frees the optimiser's GPU buffers (the model belongs to the caller). */
  dispose(): void {
    this.optimizer.dispose();
  }

  private lrAt(step: number): number {
    return scheduledLr(this.lr0, step, this.totalSteps, { warmupSteps: this.warmupSteps, power: this.polyPower });
  }

  private startClock(): void {
    this.runStart = performance.now();
    this.window = { time: this.runStart, step: this.stepCount };
  }

  private checkHealth(loss: number, parameterSum: number, step: number, lr: number): void {
    try {
      checkFinite(loss, `loss at step ${step} of ${this.totalSteps} (lr ${lr.toPrecision(4)})`);
      checkFinite(parameterSum, `the sum of the model parameters after step ${step} of ${this.totalSteps} (lr ${lr.toPrecision(4)}; loss ${loss.toPrecision(4)})`);
    } catch (e) {
      const since = this.lastFinite
        ? `the last finite loss was ${this.lastFinite.loss.toPrecision(4)} at step ${this.lastFinite.step}, so it went wrong in steps ${this.lastFinite.step + 1}-${step}`
        : `no finite loss was read before (steps 1-${step})`;
      const resume = this.lastCheckpoint ? `; resume from ${this.lastCheckpoint} with a lower learning rate` : '';
      throw new Error(`Trainer: ${(e as Error).message}; ${since}${resume}`);
    }
    this.lastFinite = { step, loss };
  }

  private checkBatch(batch: TrainingBatch, step: number): [number, number, number, number] {
    const where = `Trainer: batch for step ${step}`;
    if (!batch || !Array.isArray(batch.shape) || batch.shape.length !== 4 || batch.shape.some((v) => !Number.isSafeInteger(v) || v < 1)) {
      throw new TypeError(`${where}: shape is ${JSON.stringify(batch?.shape)}; expected [N, D, H, W] of positive integers`);
    }
    const [n, d, h, w] = batch.shape;
    if (this.batchSize !== null && n !== this.batchSize) {
      throw new RangeError(`${where}: ${n} samples; expected the run's batch size ${this.batchSize}`);
    }
    const voxels = d * h * w;
    if (!(batch.image instanceof Float32Array) || batch.image.length !== n * voxels) {
      throw new RangeError(`${where}: image has ${batch.image?.length} values; expected a Float32Array of N*D*H*W = ${n * voxels} for shape [${batch.shape.join(', ')}]`);
    }
    if (!(batch.target instanceof Float32Array) || batch.target.length !== 2 * n * voxels) {
      throw new RangeError(`${where}: target has ${batch.target?.length} values; expected a Float32Array of N*2*D*H*W = ${2 * n * voxels} for shape [${batch.shape.join(', ')}]`);
    }
    if (!Array.isArray(batch.taskIds) || batch.taskIds.length !== n) {
      throw new RangeError(`${where}: ${Array.isArray(batch.taskIds) ? batch.taskIds.length : String(batch.taskIds)} task ids; expected ${n} (one per sample)`);
    }
    return [n, d, h, w];
  }
}

export interface TrainOptions extends TrainerOptions {
  /** Checkpoint to continue from. */
  resume?: string;
}

/** Builds a Trainer, optionally resumes it, runs it to the end and frees the optimiser. */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const trainer = new Trainer(options);
  try {
    if (options.resume) await trainer.resume(options.resume);
    return await trainer.run();
  } finally {
    trainer.dispose();
  }
}
