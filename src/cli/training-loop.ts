/**
 * The loop `tgnet train` and `tgnet demo` share: Trainer steps to the end with a progress line (redrawn in place
 * on a terminal, plain lines in CI), every loss read back appended to the run's log.jsonl, validation Dice on
 * fixed crops every `valEvery` steps (logged and shown), and curves.svg redrawn whenever validation runs, so
 * a person can open it while the run goes on.
 */
import type { TrainingSession } from '../session/training-session.js';
import { ProgressReporter } from './progress.js';
import type { RunFolder } from './run-folder.js';

export interface TrainingLoopOptions {
  session: TrainingSession;
  folder: RunFolder;
  /** Progress label, e.g. the variant. */
  label: string;
  /** Title of curves.svg. */
  curvesTitle: string;
}

export interface TrainingLoopResult {
  seconds: number;
  /** The last validation Dice (mean over task channels); NaN when there was no validation. */
  lastValDice: number;
}

export async function runTrainingLoop(options: TrainingLoopOptions): Promise<TrainingLoopResult> {
  const { session, folder } = options;
  const { trainer, validation } = session;
  const { valEvery } = session.recipe;
  const total = trainer.totalSteps;
  await compileKernels(session);
  const startStep = trainer.step;
  const progress = new ProgressReporter({ total, label: options.label });
  const t0 = performance.now();
  let lastValDice = Number.NaN;
  while (trainer.step < total) {
    const r = await trainer.trainStep();
    const fields: { loss?: number; lr: number; extra?: Record<string, string> } = { lr: r.lr };
    const scaler = trainer.lossScaler;
    if (r.loss !== null) {
      fields.loss = r.loss;
      const elapsedSeconds = (performance.now() - t0) / 1000;
      const scaling = scaler ? { lossScale: scaler.scale, skippedSteps: scaler.skippedSteps } : {};
      await folder.appendLog({ step: r.step, loss: r.loss, lr: r.lr, elapsedSeconds, stepsPerSecond: (r.step - startStep) / elapsedSeconds, ...scaling });
    }
    // Mixed precision: the loss scale and the steps its overflows skipped, on the progress line.
    if (scaler) fields.extra = { scale: String(scaler.scale), skipped: String(scaler.skippedSteps) };
    const valDue = validation.length > 0 && ((valEvery > 0 && r.step % valEvery === 0) || r.step === total);
    if (valDue) {
      const val = await session.validate();
      lastValDice = val.mean;
      await folder.appendLog({ step: r.step, val });
      await folder.writeCurves(options.curvesTitle);
      fields.extra = { ...fields.extra, 'val Dice': val.mean.toFixed(3) };
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
async function compileKernels(session: TrainingSession): Promise<void> {
  let progress: ProgressReporter | null = null;
  const { pipelines, ms } = await session.warmUp((done, total) => {
    progress ??= new ProgressReporter({ total, label: 'compiling kernels', unit: 'kernel' });
    progress.update(done);
  });
  if (progress) (progress as ProgressReporter).finish(`compiled ${pipelines} kernels in ${(ms / 1000).toFixed(1)} s`);
}
