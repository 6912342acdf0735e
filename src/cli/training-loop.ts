/**
 * The loop `tgnet train` and `tgnet demo` share: Trainer steps to the end with a progress line (redrawn in place
 * on a terminal, plain lines in CI), every loss read back appended to the run's log.jsonl, validation Dice on
 * fixed crops every `valEvery` steps (logged and shown), and curves.svg redrawn whenever validation runs, so
 * a person can open it while the run goes on.
 */
import { validationDice, type ValidationCrop } from '../eval/validation-crops.js';
import type { Trainer } from '../tgnet/train.js';
import { warmUpPipelines } from '../eval/warm-up.js';
import { ProgressReporter } from './progress.js';
import type { RunFolder } from './run-folder.js';
import type { DHW } from '../common/shape.js';

export interface TrainingLoopOptions {
  trainer: Trainer;
  folder: RunFolder;
  /** Progress label, e.g. the variant. */
  label: string;
  /** Title of curves.svg. */
  curvesTitle: string;
  /** Validation crops (none: no validation). */
  crops: readonly ValidationCrop[];
  crop: DHW;
  /** Crops per validation forward pass. */
  batch: number;
  /** Validate every this many steps and at the last one (0: only at the end). */
  valEvery: number;
}

export interface TrainingLoopResult {
  seconds: number;
  /** The last validation Dice (mean over task channels); NaN when there was no validation. */
  lastValDice: number;
}

export async function runTrainingLoop(options: TrainingLoopOptions): Promise<TrainingLoopResult> {
  const { trainer, folder, crops } = options;
  const total = trainer.totalSteps;
  await compileKernels(options);
  const startStep = trainer.step;
  const progress = new ProgressReporter({ total, label: options.label });
  const t0 = performance.now();
  let lastValDice = Number.NaN;
  while (trainer.step < total) {
    const r = await trainer.trainStep();
    const fields: { loss?: number; lr: number; extra?: Record<string, string> } = { lr: r.lr };
    if (r.loss !== null) {
      fields.loss = r.loss;
      const elapsedSeconds = (performance.now() - t0) / 1000;
      await folder.appendLog({ step: r.step, loss: r.loss, lr: r.lr, elapsedSeconds, stepsPerSecond: (r.step - startStep) / elapsedSeconds });
    }
    const valDue = crops.length > 0 && ((options.valEvery > 0 && r.step % options.valEvery === 0) || r.step === total);
    if (valDue) {
      const val = await validationDice(trainer.model, crops, options.crop, options.batch);
      lastValDice = val.mean;
      await folder.appendLog({ step: r.step, val });
      await folder.writeCurves(options.curvesTitle);
      fields.extra = { 'val Dice': val.mean.toFixed(3) };
    }
    if (r.checkpoint) progress.log(`checkpoint (step ${r.step}) -> ${r.checkpoint}`);
    progress.update(r.step, fields);
  }
  progress.finish();
  await folder.writeCurves(options.curvesTitle);
  return { seconds: (performance.now() - t0) / 1000, lastValDice };
}

/**
 * Compiles the step's and validation's pipelines before the first step, with their own progress line ("compiling
 * kernels 12/84"), so the first step's time is the step's and a person sees why the start takes a while.
 */
async function compileKernels(options: TrainingLoopOptions): Promise<void> {
  let progress: ProgressReporter | null = null;
  const { pipelines, ms } = await warmUpPipelines(options.trainer.model, {
    crop: options.crop, batch: options.batch, optimizer: options.trainer.optimizerKind, inference: options.crops.length > 0,
    onProgress: (done, total) => {
      progress ??= new ProgressReporter({ total, label: 'compiling kernels', unit: 'kernel' });
      progress.update(done);
    },
  });
  if (progress) (progress as ProgressReporter).finish(`compiled ${pipelines} kernels in ${(ms / 1000).toFixed(1)} s`);
}
