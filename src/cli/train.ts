/**
 * `tgnet train`: trains TGNet on a folder of MSD-layout task datasets (as `tgnet synth` writes), or, with no
 * --data, on a small phantom collection it synthesises once into a cache, so that `npx tgnet train` runs out
 * of the box on a software GPU. Data: loadMsdCollection -> per-task split (kept in the run folder so a resumed
 * run trains on the same cases) -> preprocessDatasetToStore (cached; one case in memory at a time) ->
 * StreamingBatchSampler mixing tasks, reading cases on demand through an LRU of --cache-cases cases, its crops cut
 * and augmented by --workers worker threads -> Trainer.
 */
import { createHash } from 'node:crypto';
import { access, constants, readdir, stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { writeFileAtomic } from '../common/node-files.js';
import type { DHW } from '../common/shape.js';
import { loadMsdCollection, loadOrCreateSplit, type DatasetCase } from '../data/datasets.js';
import { checkCaseGeometry } from '../data/case-store.js';
import { defaultCropWorkerScript } from '../data/crop-workers.js';
import { defaultPreprocessWorkerScript } from '../data/case-cache.js';
import { synthesizeDatasets } from '../data/synth.js';
import { TASKS } from '../data/tasks.js';
import { DTYPES } from '../kernels/runtime/precision.js';
import { OPTIMIZER_KINDS } from '../nn/optim.js';
import { datasetData } from '../session/dataset-data.js';
import { AUGMENTATIONS, defaultLearningRate, describeAugmentation, recipeProblems, TRAIN_RECIPE, type Augmentation, type TrainingRecipe } from '../session/recipes.js';
import { createTrainingSession, type TrainingSession } from '../session/training-session.js';
import { loadCheckpoint, type Checkpoint, type CheckpointMeta } from '../tgnet/checkpoint.js';
import { isGridSide, TGNET_VARIANTS, TOTAL_STRIDE } from '../tgnet/model.js';
import { choiceValue, CommandLine, flag, flagName, integerValue, numberValue, option, pathValue, triple, type OptionValues, type ValueContext } from './args.js';
import { defineCommand, type CommandContext } from './command.js';
import { ProgressReporter } from './progress.js';
import { RunFolder } from './run-folder.js';
import { runTrainingLoop } from './training-loop.js';

const DEFAULTS = TRAIN_RECIPE;
/** The embedded phantom collection used without --data. */
const PHANTOMS = { cases: 2, size: [32, 64, 64] as DHW };
/** Preprocessed cases held in memory at once. */
const CACHE_CASES = 16;
const CACHE_ROOT = '.tgnet-cache';
/** A crop side: an integer first, then a multiple of the network's total stride. */
const cropSide = (text: string | undefined, name: string, at: ValueContext): number => {
  const n = at.integer(name, text, 1);
  if (!isGridSide(n)) at.fail(`${name} is ${n}; expected a positive multiple of ${TOTAL_STRIDE} (four stride-2 stages)`);
  return n;
};

// null: the checkpoint's value on --resume, else the default (the defaults are in DEFAULTS and the help text).
const TRAIN_OPTIONS = {
  data: option('DIR', `folder of MSD task folders (Task03_Liver/dataset.json, ...), e.g. from tgnet synth;\ndefault: ${PHANTOMS.cases} phantom cases per task at ${PHANTOMS.size.join('x')}, synthesised once into ${CACHE_ROOT}/phantoms-<seed>`,
    pathValue, { default: null }),
  out: option('DIR', 'run folder: split.json, config.json, log.jsonl (one JSON object per logged step), curves.svg, checkpoint.safetensors (default runs/<timestamp>; with --resume, the checkpoint\'s folder)',
    pathValue, { default: null }),
  steps: option('N', `total optimiser steps; the poly schedule decays to 0 there (default ${DEFAULTS.steps})`, integerValue(1), { default: null }),
  batch: option('N', `crops per step (default ${DEFAULTS.batch})`, integerValue(1), { default: null }),
  crop: option('D H W', `crop size, multiples of ${TOTAL_STRIDE} (default ${DEFAULTS.crop.join(' ')})`, triple(cropSide), { default: null }),
  width: option('W', `channels of the first stage (default ${DEFAULTS.width})`, integerValue(1), { default: null }),
  variant: option('V', `${TGNET_VARIANTS.join(' | ')} (default ${DEFAULTS.variant})`, choiceValue(TGNET_VARIANTS), { default: null }),
  optimizer: option('O', `sgd (the paper's: momentum 0.99 Nesterov), adam or adamw (default ${DEFAULTS.optimizer})`, choiceValue(OPTIMIZER_KINDS), { default: null }),
  lr: option('LR', `peak learning rate (default ${defaultLearningRate('sgd')} for sgd, ${defaultLearningRate('adam')} for adam/adamw)`, numberValue(), { default: null }),
  warmup: option('N', `steps of linear warm-up before the poly 0.9 decay (default ${DEFAULTS.warmupSteps})`, integerValue(0), { default: null }),
  tumourFraction: option('F', 'share of crops centred on a voxel of the case\'s own tumour (lesion-aware sampling, drawn before DoDNet\'s foreground share; recorded in the checkpoint; default 0: DoDNet\'s sampling)',
    numberValue((n) => Number.isFinite(n) && n >= 0 && n <= 1, 'a share in [0, 1]'), { default: null }),
  augment: option('A', `augmentation of the training crops: ${AUGMENTATIONS.join(' | ')} (default '${DEFAULTS.augment}': ${describeAugmentation(DEFAULTS.augment)}; 'dodnet': ${describeAugmentation('dodnet')})`,
    choiceValue(AUGMENTATIONS), { default: null }),
  weightDecay: option('WD', `weight decay (L2 for sgd/adam, decoupled for adamw; default ${DEFAULTS.weightDecay})`, numberValue(), { default: null }),
  logEvery: option('N', `read the loss back and log it every N steps (default ${DEFAULTS.logEvery})`, integerValue(1), { default: null }),
  valEvery: option('N', `validation Dice on one fixed crop per validation case every N steps and at the end (default ${DEFAULTS.valEvery}; 0: only at the end)`,
    integerValue(0), { default: null }),
  checkpointEvery: option('N', `also checkpoint every N steps (default ${DEFAULTS.checkpointEvery}: only at the end)`, integerValue(0), { default: null }),
  precision: option('P', `f32, or f16: mixed precision where the adapter has shader-f16 (f16 activations and gradients with f32 accumulation, f32 weights and optimiser, dynamic loss scaling as PyTorch's GradScaler; recorded in the checkpoint; default ${DEFAULTS.precision})`,
    choiceValue(DTYPES), { default: null }),
  checkpointActivations: flag('recompute the encoder\'s first three stages in backward instead of keeping their activations: less GPU memory for some extra time, the same weights (bit-identical gradients); not recorded in the checkpoint (give it again on --resume)'),
  resume: option('CKPT', 'continue exactly where the checkpoint stands: data folder, split, batch, crop, schedule, seed and the crop stream come from it (a run killed at any moment and resumed ends with the same weights as one never stopped); --steps may extend the run, --data may point at the moved data folder, and the logging, validation, checkpoint and cache options may change; any other option that disagrees with the checkpoint is an error',
    pathValue, { default: null }),
  seed: option('S', `seed of weights, split, crops and phantoms (default ${DEFAULTS.seed})`, integerValue(0), { default: null }),
  cache: option('DIR', `preprocessing cache (default ${CACHE_ROOT}/preprocessed/<hash of the data folder>)`, pathValue, { default: null }),
  cacheCases: option('N', `preprocessed cases held in memory at once; others are read from the cache when a crop needs them (default ${CACHE_CASES})`,
    integerValue(1), { default: CACHE_CASES }),
  workers: option('N', 'worker threads that cut and augment the training crops while the GPU trains; the batches are the same for any N, so a run may resume with another (default: cores - 1, at least 1; 0: build them on the main thread)',
    integerValue(0), { default: null }),
};

export const TRAIN_CLI = new CommandLine('train', TRAIN_OPTIONS, {
  notes: 'The defaults fit a CPU (software GPU); a real run uses --width 32 --crop 64 192 192 on a GPU (the paper\'s).',
});

export type TrainArgs = OptionValues<typeof TRAIN_OPTIONS>;

// A declared function, so the type checker knows it never returns.
function fail(message: string): never {
  return TRAIN_CLI.fail(message);
}

export function parseTrainArgs(argv: readonly string[]): TrainArgs {
  return TRAIN_CLI.parse(argv).values;
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** The phantom collection for runs without --data: synthesised once, reused while its marker file exists. */
async function defaultPhantoms(seed: number, log: (s: string) => void): Promise<string> {
  const dir = join(CACHE_ROOT, `phantoms-${seed}`);
  const marker = join(dir, '.complete');
  if (await stat(marker).then(() => true, () => false)) return dir;
  log(`no --data: synthesising ${PHANTOMS.cases} phantom cases per task at ${PHANTOMS.size.join('x')} into ${dir} (once)`);
  const t0 = performance.now();
  // The body scaled to the grid at CT-like voxels (fitToGrid), as before generator version 3: train resamples to
  // DoDNet's 1.5 x 0.8 x 0.8 mm, where the 360 mm phantom world would be a 240x450x450 volume per case.
  await synthesizeDatasets({ outDir: dir, cases: PHANTOMS.cases, size: PHANTOMS.size, seed, spacing: [0.85, 0.85, 2.5], fitToGrid: true });
  // Written last, so an interrupted synthesis is redone rather than trusted.
  await writeFile(marker, `${JSON.stringify({ ...PHANTOMS, seed })}\n`);
  log(`  done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return dir;
}

/**
 * The split a checkpoint recorded, resolved against the data: every case must still be there, and a split.json
 * in the run folder must agree (a different one would train on other cases); a missing split.json is rewritten.
 */
async function splitFromCheckpoint(recorded: { train: string[]; val: string[] }, cases: readonly DatasetCase[], file: string, checkpoint: string) {
  const byId = new Map(cases.map((c) => [c.id, c]));
  const pick = (ids: string[]) => ids.map((id) => {
    const c = byId.get(id);
    if (!c) fail(`the checkpoint ${checkpoint} was trained on case ${JSON.stringify(id)}, which the data folder does not have; pass --data with the run's data folder`);
    return c;
  });
  const train = pick(recorded.train);
  const val = pick(recorded.val);
  const onDisk = await stat(file).then(() => true, () => false);
  if (onDisk) {
    const fromFile = await loadOrCreateSplit(file, cases, 0);
    if (JSON.stringify(fromFile.split.train) !== JSON.stringify(recorded.train) || JSON.stringify(fromFile.split.val) !== JSON.stringify(recorded.val)) {
      fail(`${file} disagrees with the split recorded in the checkpoint ${checkpoint}; remove the file (the checkpoint's split is rewritten) or resume into another --out`);
    }
  } else {
    await writeFileAtomic(file, `${JSON.stringify({ train: recorded.train, val: recorded.val }, null, 2)}\n`);
  }
  return { split: { train: recorded.train, val: recorded.val }, train, val, loaded: true };
}

function timestamp(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, '').replace(/:/g, '-');
}

/**
 * On resume, an option that would change the weights must agree with the checkpoint (or be left out); the
 * message names the option, both values and what to do.
 */
function checkAgainstCheckpoint(args: TrainArgs, meta: CheckpointMeta, path: string): void {
  const given: [string, unknown, unknown][] = [
    ['--seed', args.seed, meta.seed], ['--variant', args.variant, meta.variant], ['--width', args.width, meta.width],
    ['--crop', args.crop?.join(' ') ?? null, meta.crop.join(' ')], ['--batch', args.batch, meta.batchSize ?? null],
    ['--optimizer', args.optimizer, meta.optimizer ?? 'sgd'], ['--lr', args.lr, meta.lr0], ['--warmup', args.warmup, meta.warmupSteps ?? 0],
    ['--weight-decay', args.weightDecay, meta.weightDecay], ['--augment', args.augment, meta.run?.augment ?? null],
    ['--precision', args.precision, meta.precision ?? 'f32'], ['--tumour-fraction', args.tumourFraction, meta.run?.tumourFraction ?? 0],
  ];
  for (const [flag, value, recorded] of given) {
    if (value === null || recorded === null || value === recorded) continue;
    fail(`${flag} ${String(value)} contradicts the checkpoint ${path}, which was trained with ${flag} ${String(recorded)}; leave ${flag} out to continue that run exactly (or start a new run without --resume)`);
  }
}

/** The flag of each recipe field whose flag is not its name. */
const RECIPE_FLAGS: Partial<Record<keyof TrainingRecipe, string>> = { warmupSteps: 'warmup', foregroundFraction: 'foreground-fraction', tumourFraction: 'tumour-fraction' };

/** Batches built ahead of training by the crop workers (StreamingBatchSampler's queue). */
const SAMPLER_QUEUE = 2;

/**
 * --workers, or cores - 1 (at least 1). Without a built worker script (running from the TypeScript sources
 * before `npm run build`) the default falls back to the main thread, which gives the same batches; an explicit
 * --workers N then fails in the sampler, naming the missing file.
 */
function cropWorkers(given: number | null, log: (s: string) => void): number {
  if (given !== null) return given;
  if (!defaultCropWorkerScript()) {
    log('note: no built crop worker (dist/src/data/crop-worker.js; npm run build makes it): batches are built on the main thread');
    return 0;
  }
  return Math.max(1, availableParallelism() - 1);
}

/** Fails unless `dir` is (or can be created as) a writable folder, before any work is done. */
async function checkOutputFolder(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => null);
  if (info && !info.isDirectory()) fail(`--out ${dir} is a file; expected a folder for the run (split.json, log.jsonl, checkpoint.safetensors, ...)`);
  // The nearest existing ancestor must be writable for the folder to be made and filled.
  let probe = resolve(dir);
  while (!(await stat(probe).then(() => true, () => false))) probe = dirname(probe);
  if (!(await stat(probe)).isDirectory()) fail(`--out ${dir}: ${probe} is a file, so the run folder cannot be created there`);
  await access(probe, constants.W_OK).catch(() => fail(`--out ${dir}: ${probe} is not writable; expected a folder this user can write to`));
}

export const trainCommand = defineCommand({ cli: TRAIN_CLI, run: runTrain });

async function runTrain(args: TrainArgs, context: CommandContext): Promise<void> {
  const log = (s: string) => console.log(s);
  const resumed: Checkpoint | null = args.resume ? await loadCheckpoint(args.resume) : null;
  const meta = resumed?.meta;
  if (meta && args.resume) checkAgainstCheckpoint(args, meta, args.resume);
  const optimizer = args.optimizer ?? meta?.optimizer ?? DEFAULTS.optimizer;
  const recipe: TrainingRecipe = {
    variant: args.variant ?? meta?.variant ?? DEFAULTS.variant,
    width: args.width ?? meta?.width ?? DEFAULTS.width,
    crop: args.crop ?? meta?.crop ?? DEFAULTS.crop,
    batch: args.batch ?? meta?.batchSize ?? DEFAULTS.batch,
    steps: args.steps ?? meta?.totalSteps ?? DEFAULTS.steps,
    optimizer,
    lr: args.lr ?? meta?.lr0 ?? defaultLearningRate(optimizer),
    warmupSteps: args.warmup ?? meta?.warmupSteps ?? DEFAULTS.warmupSteps,
    weightDecay: args.weightDecay ?? meta?.weightDecay ?? DEFAULTS.weightDecay,
    foregroundFraction: meta?.run?.foregroundFraction ?? DEFAULTS.foregroundFraction,
    tumourFraction: args.tumourFraction ?? meta?.run?.tumourFraction ?? 0,
    augment: args.augment ?? (meta?.run?.augment as Augmentation | undefined) ?? DEFAULTS.augment,
    seed: args.seed ?? meta?.seed ?? DEFAULTS.seed,
    logEvery: args.logEvery ?? meta?.logEvery ?? DEFAULTS.logEvery,
    valEvery: args.valEvery ?? meta?.run?.valEvery ?? DEFAULTS.valEvery,
    checkpointEvery: args.checkpointEvery ?? meta?.checkpointEvery ?? DEFAULTS.checkpointEvery,
    checkpointActivations: args.checkpointActivations,
    precision: args.precision ?? meta?.precision ?? DEFAULTS.precision,
  };
  const problems = recipeProblems(recipe, (field) => flagName(RECIPE_FLAGS[field] ?? field));
  if (problems.length) fail(problems[0]);
  const { seed, steps, crop, batch } = recipe;
  if (meta && meta.step >= steps) {
    fail(`${args.resume} is at step ${meta.step}, which already reaches --steps ${steps}; pass a larger --steps to train further`);
  }
  const out = args.out ?? (args.resume ? dirname(args.resume) : join('runs', timestamp()));
  await checkOutputFolder(out);

  // A resumed run reads the data folder it was trained on unless told where that folder now is.
  const recordedData = meta?.run?.data;
  const dataArg = args.data ?? (typeof recordedData === 'string' ? recordedData : null);
  let dataDir: string;
  if (dataArg) {
    if (!(await isDirectory(dataArg))) {
      fail(args.data
        ? `--data ${dataArg} is not a folder; expected a folder of MSD task folders (e.g. from tgnet synth --out)`
        : `the checkpoint ${args.resume} was trained on ${dataArg}, which is no longer a folder; pass --data with the folder's new place`);
    }
    dataDir = dataArg;
  } else {
    dataDir = await defaultPhantoms(seed, log);
  }
  const folders = (await readdir(dataDir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  const cases = await loadMsdCollection(dataDir, folders);
  if (cases.length === 0) {
    fail(`no datasets found in ${dataDir}: expected subfolders with a dataset.json (MSD layout), e.g. ${TASKS[0].datasetName}/dataset.json`);
  }

  const split = meta?.run?.split ? await splitFromCheckpoint(meta.run.split, cases, join(out, 'split.json'), args.resume ?? '') : await loadOrCreateSplit(join(out, 'split.json'), cases, seed);
  if (split.train.length === 0) fail(`the split ${join(out, 'split.json')} has no training cases`);
  const cacheDir = args.cache ?? meta?.run?.cache ?? join(CACHE_ROOT, 'preprocessed', createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 12));
  const tasks = [...new Set(split.train.map((c) => c.task))];
  log(`data: ${cases.length} cases of ${new Set(cases.map((c) => c.task)).size} tasks in ${dataDir}; ${split.train.length} train / ${split.val.length} val (${split.loaded ? 'split read from' : 'split written to'} ${join(out, 'split.json')})`);
  // Headers only, before any preprocessing: a 2-D image or a label off its image's grid is refused up front.
  await checkCaseGeometry([...split.train, ...split.val]);
  // On resume the Trainer moves the sampler to where the checkpoint's run stood (the crops it had not used yet).
  const workers = cropWorkers(args.workers, log);
  let preprocessing: ProgressReporter | null = null;
  const data = await datasetData(split.train, split.val, {
    cacheDir, crop, maxCases: args.cacheCases, workers, queue: SAMPLER_QUEUE,
    // The same threads preprocess the cases not cached yet, when the worker script is built (else this thread does).
    preprocessWorkers: defaultPreprocessWorkerScript() ? workers : 0,
    onPreprocess: (p) => {
      preprocessing ??= new ProgressReporter({ total: p.total, label: 'preprocessing', unit: 'case' });
      preprocessing.update(p.done);
    },
  });
  (preprocessing as ProgressReporter | null)?.finish();
  log(`preprocessed ${data.trainCases} training cases (cache ${cacheDir}, at most ${args.cacheCases} in memory) in ${data.preprocessSeconds.toFixed(1)} s`);
  log(workers > 0 ? `batches: built by ${workers} worker thread${workers > 1 ? 's' : ''}, ${SAMPLER_QUEUE} ahead` : 'batches: built on the main thread, one ahead');

  const startStep = meta?.step ?? 0;
  const gpu = await context.gpu();
  let session: TrainingSession | null = null;
  const folder = await RunFolder.open(out, resumed ? { resumeFromStep: resumed.meta.step } : {});
  try {
    const checkpointPath = join(out, 'checkpoint.safetensors');
    session = createTrainingSession(recipe, data, {
      checkpointPath,
      runInfo: {
        data: dataArg ? resolve(dataDir) : null, split: { train: split.split.train, val: split.split.val }, valEvery: recipe.valEvery, cache: resolve(cacheDir),
        augment: recipe.augment, foregroundFraction: recipe.foregroundFraction, tumourFraction: recipe.tumourFraction,
      },
    });
    const { model, trainer } = session;
    if (resumed && args.resume) {
      trainer.restore(resumed, args.resume);
      log(`resumed from ${args.resume} at step ${resumed.meta.step}`);
      if (!resumed.meta.sampler) log('note: this checkpoint predates exact resume (no sampler position): crops are drawn from the start of the stream, so the run will not match an uninterrupted one');
    }
    const { variant, width, lr, warmupSteps: warmup, weightDecay } = recipe;
    const recipeText = optimizer === 'sgd' ? `SGD momentum 0.99 Nesterov, lr ${lr}` : `${optimizer === 'adam' ? 'Adam' : 'AdamW'}, lr ${lr}`;
    const schedule = `${warmup ? `${warmup}-step linear warm-up, ` : ''}poly 0.9`;
    await folder.writeJson('config.json', {
      data: resolve(dataDir), variant, width, parameters: model.parameterCount(), crop, batch, steps, optimizer, lr, warmupSteps: warmup,
      schedule, weightDecay, augment: recipe.augment, foregroundFraction: recipe.foregroundFraction, tumourFraction: recipe.tumourFraction, seed, logEvery: recipe.logEvery, valEvery: recipe.valEvery,
      checkpointEvery: recipe.checkpointEvery, checkpointActivations: args.checkpointActivations, adapter: gpu.name,
      trainCases: split.train.length, valCases: split.val.length, resumedFrom: args.resume ?? null,
    });
    log(`model ${variant} width ${width} (${model.parameterCount().toLocaleString('en-US')} parameters) on ${gpu.name}; tasks ${tasks.map((t) => TASKS[t].key).join(', ')}`);
    log(`training ${steps - startStep} steps (to ${steps}): batch ${batch}, crop ${crop.join('x')}, ${recipeText}, ${schedule}, weight decay ${weightDecay}, augmentation ${recipe.augment}`);
    if (width < 32 || crop.some((c, i) => c < [64, 192, 192][i])) {
      log('note: these are small settings for a quick run; a real run uses --width 32 --crop 64 192 192 (the paper\'s) on a GPU');
    }
    const result = await runTrainingLoop({ session, folder, label: 'train', curvesTitle: `${variant}: training loss and validation Dice (fixed crops)` });
    log(`done: step ${trainer.step}/${steps} in ${result.seconds.toFixed(1)} s; checkpoint ${checkpointPath}; curves ${folder.path('curves.svg')}`);
  } finally {
    await session?.close();
    await folder.close();
  }
}
