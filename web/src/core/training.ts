/**
 * A training run on phantoms made in the page: the demo's recipe (src/session/recipes.ts, software profile:
 * Adam, warm-up then poly decay, whole-volume crops, no augmentation) on a smaller collection, with the
 * library's Trainer, BatchSampler and validation Dice. Nothing here touches the DOM, so Node runs the very same
 * code for the browser test's loss comparison.
 */
import { DEMO_CONFIGS, phantomSpacing } from '../../../src/session/recipes.js';
import { NO_AUGMENT } from '../../../src/data/augment.js';
import { BatchSampler } from '../../../src/data/sampler.js';
import { TASKS } from '../../../src/data/tasks.js';
import { validationCrop, validationDice, type ValidationCrop, type ValidationDice } from '../../../src/eval/validation-crops.js';
import { warmUpPipelines } from '../../../src/eval/warm-up.js';
import type { OptimizerKind } from '../../../src/nn/optim.js';
import { encodeCheckpoint } from '../../../src/tgnet/checkpoint.js';
import { isGridSide, TGNet, TOTAL_STRIDE, type TGNetVariant } from '../../../src/tgnet/model.js';
import { Trainer } from '../../../src/tgnet/train.js';
import { phantomCase, trainingCase } from './phantoms.js';
import type { DHW, XYZ } from '../../../src/common/shape.js';

export interface TrainSettings {
  seed: number;
  variant: TGNetVariant;
  width: number;
  /** Phantom volume [D, H, W], also the crop (multiples of 16). */
  volume: DHW;
  steps: number;
  batch: number;
  /** Phantoms per task; the last `valCasesPerTask` of each are held out for the Dice curve. */
  casesPerTask: number;
  valCasesPerTask: number;
  optimizer: OptimizerKind;
  lr: number;
  warmupSteps: number;
  weightDecay: number;
  foregroundFraction: number;
}

/** The demo's software profile, shortened to what a tab trains in a few minutes on a CPU adapter. */
export function defaultTrainSettings(): TrainSettings {
  const demo = DEMO_CONFIGS.software;
  return {
    seed: 0, variant: 'tgnet', width: demo.width, volume: [...demo.volume], steps: 300, batch: demo.batch,
    casesPerTask: 4, valCasesPerTask: 1, optimizer: demo.optimizer, lr: demo.lr, warmupSteps: demo.warmupSteps,
    weightDecay: demo.weightDecay, foregroundFraction: demo.foregroundFraction,
  };
}

/** Why a setting cannot be used, or null. */
export function checkTrainSettings(s: TrainSettings): string | null {
  if (!s.volume.every(isGridSide)) return `volume ${s.volume.join('x')}: every side must be a multiple of ${TOTAL_STRIDE} (the network halves the grid four times)`;
  if (!Number.isInteger(s.width) || s.width < 1) return `width ${s.width}: expected a positive integer`;
  if (!Number.isInteger(s.steps) || s.steps < 1) return `steps ${s.steps}: expected a positive integer`;
  if (!Number.isInteger(s.batch) || s.batch < 1) return `batch ${s.batch}: expected a positive integer`;
  if (!Number.isInteger(s.casesPerTask) || s.casesPerTask < 2) return `cases per task ${s.casesPerTask}: expected at least 2 (one is held out)`;
  if (!Number.isInteger(s.valCasesPerTask) || s.valCasesPerTask < 1 || s.valCasesPerTask >= s.casesPerTask) return `held-out cases ${s.valCasesPerTask}: expected 1..${s.casesPerTask - 1}`;
  if (!(s.lr > 0)) return `learning rate ${s.lr}: expected a positive number`;
  if (!Number.isSafeInteger(s.seed) || s.seed < 0) return `seed ${s.seed}: expected a non-negative integer`;
  return null;
}

export interface StepRecord {
  step: number;
  loss: number;
  lr: number;
  seconds: number;
}

export interface RunProgress {
  phase: string;
  done: number;
  total: number;
}

/** Lets the page repaint between phantoms (generation is synchronous CPU work). */
const yieldToUi = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

export class TrainingRun {
  readonly spacing: XYZ;
  private constructor(
    readonly settings: TrainSettings,
    readonly model: TGNet,
    readonly trainer: Trainer,
    readonly validationCrops: ValidationCrop[],
    readonly trainCases: number,
    /** Seconds spent compiling the step's and validation's pipelines before the first step. */
    readonly compileSeconds: number,
  ) {
    this.spacing = phantomSpacing(settings.volume);
  }

  /** Makes the phantom collection, the model (seeded) and the trainer; the GPU must be initialised. */
  static async create(settings: TrainSettings, onProgress?: (p: RunProgress) => void): Promise<TrainingRun> {
    const problem = checkTrainSettings(settings);
    if (problem) throw new Error(`training settings: ${problem}`);
    const spacing = phantomSpacing(settings.volume);
    const train = [];
    const val: ValidationCrop[] = [];
    const total = TASKS.length * settings.casesPerTask;
    for (const task of TASKS) {
      for (let i = 0; i < settings.casesPerTask; i++) {
        onProgress?.({ phase: 'making phantoms', done: task.id * settings.casesPerTask + i, total });
        await yieldToUi();
        const c = trainingCase(phantomCase(task.id, i, settings.seed, settings.volume, spacing), spacing);
        if (i < settings.casesPerTask - settings.valCasesPerTask) train.push(c);
        else val.push(validationCrop(c, settings.volume));
      }
    }
    onProgress?.({ phase: 'making phantoms', done: total, total });
    const sampler = new BatchSampler(train, {
      batchSize: settings.batch, cropSize: settings.volume, seed: settings.seed, augment: NO_AUGMENT, foregroundFraction: settings.foregroundFraction,
    });
    const model = TGNet.create({ variant: settings.variant, width: settings.width, seed: settings.seed });
    let trainer: Trainer;
    let compileSeconds: number;
    try {
      trainer = new Trainer({
        model, batches: sampler, totalSteps: settings.steps, optimizer: settings.optimizer, lr0: settings.lr,
        warmupSteps: Math.min(settings.warmupSteps, settings.steps - 1), weightDecay: settings.weightDecay,
        // Every loss is read back: the page plots each step (a readback per step costs little at these sizes).
        logEvery: 1, seed: settings.seed, crop: settings.volume, batchSize: settings.batch,
      });
      // Every pipeline of a step and of validation, compiled asynchronously and several at a time before the first
      // step: the tab stays responsive and shows the count instead of hanging in the first step.
      const warm = await warmUpPipelines(model, {
        crop: settings.volume, batch: settings.batch, optimizer: settings.optimizer, inference: true,
        onProgress: (done, total) => onProgress?.({ phase: 'compiling kernels', done, total }),
      });
      compileSeconds = warm.ms / 1000;
    } catch (e) {
      model.dispose();
      throw e;
    }
    return new TrainingRun(settings, model, trainer, val, train.length, compileSeconds);
  }

  get step(): number {
    return this.trainer.step;
  }

  get done(): boolean {
    return this.trainer.step >= this.settings.steps;
  }

  /** One optimiser step; the loss is read back (it waits for the GPU). */
  async trainStep(): Promise<StepRecord> {
    const t0 = performance.now();
    const r = await this.trainer.trainStep();
    if (r.loss === null) throw new Error(`TrainingRun: step ${r.step} read no loss back; expected one every step (logEvery 1)`);
    return { step: r.step, loss: r.loss, lr: r.lr, seconds: (performance.now() - t0) / 1000 };
  }

  /** Thresholded Dice on one fixed crop per held-out phantom. */
  validate(): Promise<ValidationDice> {
    return validationDice(this.model, this.validationCrops, this.settings.volume, 2);
  }

  /** The run as the CLI's checkpoint file (weights, optimiser state, metadata): `tgnet predict --model` reads it. */
  async checkpointBytes(): Promise<Uint8Array> {
    return encodeCheckpoint(await this.trainer.snapshot());
  }

  dispose(): void {
    this.trainer.dispose();
    this.model.dispose();
  }
}
