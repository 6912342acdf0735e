/**
 * A training run on phantoms made in the page: the demo's recipe (src/session/recipes.ts, software profile: Adam,
 * warm-up then poly decay, whole-volume crops, no augmentation) on a smaller collection, as a training session
 * (src/session/training-session.ts) like the command line's. Nothing here touches the DOM, so Node runs the very
 * same code for the browser test's loss comparison.
 */
import { DEMO_CONFIGS, demoRecipe, fitWarmup, phantomSpacing, recipeProblems, type TrainingRecipe } from '../../../src/session/recipes.js';
import { createTrainingSession, inMemoryData, type TrainingSession } from '../../../src/session/training-session.js';
import type { DHW, XYZ } from '../../../src/common/shape.js';
import type { TrainingCase } from '../../../src/data/sampler.js';
import { TASKS } from '../../../src/data/tasks.js';
import { validationCrop, type ValidationCrop, type ValidationDice } from '../../../src/eval/validation-crops.js';
import type { OptimizerKind } from '../../../src/nn/optim.js';
import type { DType } from '../../../src/kernels/runtime/precision.js';
import { encodeCheckpoint } from '../../../src/tgnet/checkpoint.js';
import type { TGNet, TGNetVariant } from '../../../src/tgnet/model.js';
import type { Trainer } from '../../../src/tgnet/train.js';
import { CropWorkers } from './crop-workers.js';
import { phantomCase, trainingCase } from './phantoms.js';

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
  /** 'f16': mixed precision (needs the adapter's shader-f16). */
  precision: DType;
}

/**
 * The demo's software profile, shortened to what a tab trains in a few minutes on a CPU adapter: whole phantoms of
 * the demo's crop size (the grid of the bundled model; the demo's finer grid and tumour-centred crops need thousands
 * of steps).
 */
export function defaultTrainSettings(): TrainSettings {
  const demo = DEMO_CONFIGS.software;
  return {
    seed: 0, variant: 'tgnet', width: demo.width, volume: [...demo.crop], steps: 300, batch: demo.batch,
    casesPerTask: 4, valCasesPerTask: 1, optimizer: demo.optimizer, lr: demo.lr, warmupSteps: demo.warmupSteps,
    weightDecay: demo.weightDecay, foregroundFraction: demo.foregroundFraction, precision: 'f32',
  };
}

/** The session recipe of the page's settings: the demo's software profile with the form's values. */
export function trainRecipe(s: TrainSettings): TrainingRecipe {
  return {
    ...demoRecipe(DEMO_CONFIGS.software, { variant: s.variant, seed: s.seed, precision: s.precision }),
    width: s.width, crop: s.volume, steps: s.steps, batch: s.batch, optimizer: s.optimizer, lr: s.lr,
    warmupSteps: fitWarmup(s.warmupSteps, s.steps), weightDecay: s.weightDecay, foregroundFraction: s.foregroundFraction,
    // Every loss is read back: the page plots each step (a readback per step costs little at these sizes).
    logEvery: 1,
  };
}

/** The form's word for each recipe field the page lets a person set. */
const FIELD_NAMES: Partial<Record<keyof TrainingRecipe, string>> = { crop: 'volume', lr: 'learning rate', warmupSteps: 'warm-up steps', weightDecay: 'weight decay' };

/** Why a setting cannot be used, or null. */
export function checkTrainSettings(s: TrainSettings): string | null {
  if (!Number.isInteger(s.casesPerTask) || s.casesPerTask < 2) return `cases per task ${s.casesPerTask}: expected at least 2 (one is held out)`;
  if (!Number.isInteger(s.valCasesPerTask) || s.valCasesPerTask < 1 || s.valCasesPerTask >= s.casesPerTask) return `held-out cases ${s.valCasesPerTask}: expected 1..${s.casesPerTask - 1}`;
  const [problem] = recipeProblems(trainRecipe(s), (field) => FIELD_NAMES[field] ?? field);
  return problem ?? null;
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

/** The phantom cases made in this thread, yielding to the page between them. */
async function makePhantomsHere(specs: readonly { task: number; index: number }[], settings: TrainSettings, spacing: XYZ, progress: (done: number) => void): Promise<TrainingCase[]> {
  const cases: TrainingCase[] = [];
  for (const s of specs) {
    await yieldToUi();
    cases.push(trainingCase(phantomCase(s.task, s.index, settings.seed, settings.volume, spacing), spacing));
    progress(cases.length);
  }
  return cases;
}

export class TrainingRun {
  readonly spacing: XYZ;
  readonly model: TGNet;
  readonly trainer: Trainer;
  readonly validationCrops: readonly ValidationCrop[];
  readonly trainCases: number;
  private constructor(
    readonly settings: TrainSettings,
    private readonly session: TrainingSession,
    /** Seconds spent compiling the step's and validation's pipelines before the first step. */
    readonly compileSeconds: number,
  ) {
    this.spacing = phantomSpacing(settings.volume);
    this.model = session.model;
    this.trainer = session.trainer;
    this.validationCrops = session.validation;
    this.trainCases = session.trainCases;
  }

  /**
   * Makes the phantom collection, the model (seeded) and the trainer; the GPU must be initialised. With `workers`
   * (the page: CropWorkers) the phantoms are made and the crops cut in Web Workers, else in this thread (Node).
   */
  static async create(settings: TrainSettings, onProgress?: (p: RunProgress) => void, options: { workers?: CropWorkers } = {}): Promise<TrainingRun> {
    const problem = checkTrainSettings(settings);
    if (problem) throw new Error(`training settings: ${problem}`);
    const spacing = phantomSpacing(settings.volume);
    const specs = TASKS.flatMap((task) => Array.from({ length: settings.casesPerTask }, (_, index) => ({ task: task.id, index })));
    const total = specs.length;
    const progress = (done: number) => onProgress?.({ phase: 'making phantoms', done, total });
    progress(0);
    const { workers } = options;
    const cases = workers
      ? await workers.makePhantoms(specs, settings.seed, settings.volume, spacing, progress)
      : await makePhantomsHere(specs, settings, spacing, progress);
    const held = (i: number) => specs[i].index >= settings.casesPerTask - settings.valCasesPerTask;
    const train = cases.filter((_, i) => !held(i));
    const val: ValidationCrop[] = cases.filter((_, i) => held(i)).map((c) => validationCrop(c, settings.volume));
    const data = inMemoryData(train, val);
    const session = createTrainingSession(trainRecipe(settings), workers ? { ...data, sampler: (sampling) => workers.sampler(train, sampling) } : data);
    try {
      // Every pipeline of a step and of validation, compiled asynchronously and several at a time before the first
      // step: the tab stays responsive and shows the count instead of hanging in the first step.
      const warm = await session.warmUp((done, total) => onProgress?.({ phase: 'compiling kernels', done, total }));
      return new TrainingRun(settings, session, warm.ms / 1000);
    } catch (e) {
      await session.close();
      throw e;
    }
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
    return this.session.validate();
  }

  /** The run as the CLI's checkpoint file (weights, optimiser state, metadata): `tgnet predict --model` reads it. */
  async checkpointBytes(): Promise<Uint8Array> {
    return encodeCheckpoint(await this.trainer.snapshot());
  }

  dispose(): void {
    void this.session.close();
  }
}
