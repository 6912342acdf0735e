/**
 * `tgnet demo` (`npm run demo`): TGNet learns seven partially labelled phantom datasets and segments volumes it
 * has never seen, in one command. Synthesise the collection (once, cached), split each task's cases into
 * training and validation, train on whatever adapter is present with a progress line and validation Dice on
 * fixed crops, then run the evaluation protocol on every validation case (sliding window, post-processing,
 * Dice and HD95), and write the run folder: config.json, log.jsonl, checkpoint.safetensors, curves.svg,
 * summary.json, report.html, predictions/*.nii.gz. Prints the Table-1-style results and, last, the folder.
 * `--compare` trains dodnet, tgnet-a and tgnet with the same seed and budget and prints them side by side.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../common/node-files.js';
import type { DHW } from '../common/shape.js';
import { loadMsdCollection, loadOrCreateSplit, type DatasetCase } from '../data/datasets.js';
import { PHANTOM_GENERATOR_VERSION } from '../data/phantom.js';
import { synthesizeDatasets } from '../data/synth.js';
import { TASKS } from '../data/tasks.js';
import { buildPaperTable, formatPaperTableMarkdown, formatPaperTableText, jsonNumbers, paperTableToJson, summaryJson, type ModelResults } from '../eval/paper-table.js';
import { summariseByTask } from '../eval/report.js';
import { compareOverSeeds, formatSeedComparisonMarkdown, formatSeedComparisonText } from '../eval/seed-comparison.js';
import { reportHtml } from '../eval/report-html.js';
import { isSoftwareAdapter, type Gpu } from '../kernels/runtime/gpu.js';
import { DTYPES, type DType } from '../kernels/runtime/precision.js';
import { TGNET_VARIANTS, type TGNetVariant } from '../tgnet/model.js';
import { datasetData, type DatasetData } from '../session/dataset-data.js';
import { DEMO_CONFIGS, DEMO_PROFILES, demoRecipe, describeAugmentation, fitWarmup, phantomSpacing, type DemoConfig } from '../session/recipes.js';
import { createTrainingSession } from '../session/training-session.js';
import { defineCommand, type CommandContext } from './command.js';
import { choiceValue, CommandLine, flag, gridSide, integerValue, numberValue, option, pathValue, toggle, triple, type OptionValues } from './args.js';
import { formatDuration, ProgressReporter } from './progress.js';
import { runTrainingLoop } from './training-loop.js';
import { RunFolder } from './run-folder.js';
import { evaluateHeldOutCases } from './held-out-evaluation.js';

const DEMO_OPTIONS = {
  out: option('DIR', 'run folder (default runs/demo-<time>)', pathValue, { default: null }),
  seed: option('S', 'seed of phantoms, split, weights and crops (default 0); the same seed gives the same run', integerValue(0), { default: 0 }),
  profile: option('P', 'configuration: software (a CPU adapter), gpu (a hardware adapter) or tiny (seconds, for tests); default: chosen from the adapter',
    choiceValue(DEMO_PROFILES), { default: null }),
  steps: option('N', 'training steps (default: the profile\'s)', integerValue(1), { default: null }),
  width: option('W', 'channels of the first stage (default: the profile\'s)', integerValue(1), { default: null }),
  volume: option('D H W', 'phantom size in voxels, also the training crop and the sliding-window tile unless --crop says otherwise (multiples of 16; the field of view stays 360 mm, so this sets the resolution; default: the profile\'s)',
    triple(gridSide), { default: null }),
  crop: option('D H W', 'training crop and sliding-window tile, at most the volume (multiples of 16; default: the profile\'s, or the whole volume with --volume)',
    triple(gridSide), { default: null }),
  tumourFraction: option('F', 'share of training crops centred on a voxel of the case\'s own tumour (lesion-aware sampling; default: the profile\'s)',
    numberValue((n) => n >= 0 && n <= 1, 'a share in [0, 1]'), { default: null }),
  batch: option('B', 'crops per step (default: the profile\'s)', integerValue(1), { default: null }),
  cases: option('N', 'phantoms per task, of which the profile\'s share is held out (default: the profile\'s)', integerValue(2), { default: null }),
  lr: option('LR', 'peak learning rate (default: the profile\'s)', numberValue((n) => Number.isFinite(n) && n > 0, 'a positive learning rate'), { default: null }),
  variant: option('V', `${TGNET_VARIANTS.join(' | ')} (default tgnet)`, choiceValue(TGNET_VARIANTS), { default: 'tgnet' as TGNetVariant }),
  compare: flag('train dodnet, tgnet-a and tgnet with the same seed and budget; print them side by side'),
  seeds: option('N', 'train each model with N seeds (--seed, --seed + 1, ...: the weights and the crop stream; the phantoms and the split stay those of --seed) and report the mean and spread of every task channel, and which differences between models exceed the seed-to-seed spread (default 1)',
    integerValue(1), { default: 1 }),
  checkpointActivations: flag('recompute the encoder\'s first three stages in backward instead of keeping their activations: less GPU memory for some extra time, the same weights (bit-identical gradients)'),
  precision: option('P', 'f32, or f16: mixed precision where the adapter has shader-f16 (f16 activations and gradients, f32 weights, dynamic loss scaling; evaluation stays f32; default f32)',
    choiceValue(DTYPES), { default: 'f32' as DType }),
  flips: toggle('average the 8 mirrorings at evaluation (default: on for the gpu profile)'),
  cache: option('DIR', 'where the phantom collection and its preprocessed cases are kept (default .tgnet-cache); synthesised once per seed and size, then reused',
    pathValue, { default: '.tgnet-cache' }),
};

export const DEMO_CLI = new CommandLine('demo', DEMO_OPTIONS);

export type DemoArgs = OptionValues<typeof DEMO_OPTIONS>;

function checkDemoArgs({ values, given }: { values: DemoArgs; given: ReadonlySet<keyof DemoArgs> }): DemoArgs {
  if (values.compare && given.has('variant')) DEMO_CLI.fail('--compare trains dodnet, tgnet-a and tgnet; leave out --variant');
  if (values.crop && values.volume && values.crop.some((n, a) => n > (values.volume as DHW)[a])) {
    DEMO_CLI.fail(`--crop ${values.crop.join(' ')} is larger than --volume ${values.volume.join(' ')}; expected a crop within the volume`);
  }
  return values;
}

export function parseDemoArgs(argv: readonly string[]): DemoArgs {
  return checkDemoArgs(DEMO_CLI.parse(argv));
}

const COMPARE_VARIANTS: readonly TGNetVariant[] = ['dodnet', 'tgnet-a', 'tgnet'];

/** The phantom collection of a configuration, synthesised once; a marker written last tells a complete one. */
async function phantomCollection(config: DemoConfig, seed: number, cacheRoot: string, log: (s: string) => void): Promise<string> {
  const key = `${config.volume.join('x')}-${config.casesPerTask}-${seed}`;
  const dir = join(cacheRoot, `demo-phantoms-v${PHANTOM_GENERATOR_VERSION}-${key}`);
  const marker = join(dir, '.complete');
  if (await stat(marker).then(() => true, () => false)) {
    log(`phantoms: ${config.casesPerTask} cases per task at ${config.volume.join('x')} from ${dir} (cached)`);
    return dir;
  }
  const t0 = performance.now();
  await synthesizeDatasets({ outDir: dir, cases: config.casesPerTask, size: config.volume, seed, spacing: phantomSpacing(config.volume) });
  await writeFile(marker, `${JSON.stringify({ volume: config.volume, cases: config.casesPerTask, seed })}\n`);
  log(`phantoms: synthesised ${7 * config.casesPerTask} cases (${config.casesPerTask} per task, ${config.volume.join('x')} voxels of ${phantomSpacing(config.volume).map((s) => s.toFixed(1)).join('x')} mm) into ${dir} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return dir;
}

function timestamp(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, '').replace(/:/g, '-');
}

interface VariantResult {
  variant: TGNetVariant;
  /** The training seed (weights and crops). */
  seed: number;
  folder: string;
  results: ModelResults;
  trainSeconds: number;
  evalSeconds: number;
}

interface DemoData {
  train: DatasetCase[];
  val: DatasetCase[];
  spacingZYX: DHW;
  /** The training cases in the preprocessing cache, and one validation crop per task for the curve. */
  training: DatasetData;
}

async function prepareData(config: DemoConfig, seed: number, runDir: string, cacheRoot: string, log: (s: string) => void): Promise<DemoData> {
  const dataDir = await phantomCollection(config, seed, cacheRoot, log);
  const folders = (await readdir(dataDir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  const cases = await loadMsdCollection(dataDir, folders);
  const split = await loadOrCreateSplit(join(runDir, 'split.json'), cases, seed, 1 - config.valCases / config.casesPerTask);
  const [sx, sy, sz] = phantomSpacing(config.volume);
  const spacingZYX: DHW = [sz, sy, sx];
  const cacheDir = join(cacheRoot, 'preprocessed', createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 12));
  // The phantoms are made at the training spacing: preprocessing windows the HU and resamples nothing.
  // One validation case per task keeps the curve cheap (a forward pass per two crops); the table uses them all.
  const curveCases = TASKS.map((t) => split.val.find((c) => c.task === t.id)).filter((c): c is DatasetCase => c !== undefined);
  const training = await datasetData(split.train, curveCases, { cacheDir, crop: config.crop, targetSpacingZYX: spacingZYX, maxCases: split.train.length });
  log(`split: ${split.train.length} training / ${split.val.length} validation cases (${split.loaded ? 'read from' : 'written to'} ${join(runDir, 'split.json')})`);
  return { train: split.train, val: split.val, spacingZYX, training };
}

interface DemoRun {
  checkpointActivations: boolean;
  precision: DType;
}

async function trainAndEvaluate(gpu: Gpu, config: DemoConfig, data: DemoData, variant: TGNetVariant, run: DemoRun, seed: number, dir: string, log: (s: string) => void): Promise<VariantResult> {
  const folder = await RunFolder.open(dir);
  const { checkpointActivations, precision } = run;
  const recipe = demoRecipe(config, { variant, seed, checkpointActivations, precision });
  const session = createTrainingSession(recipe, data.training, { checkpointPath: folder.path('checkpoint.safetensors') });
  const { model } = session;
  const settings = {
    variant, width: config.width, parameters: model.parameterCount(), crop: config.crop.join('x'), batch: config.batch, steps: config.steps,
    optimizer: `${config.optimizer}, lr ${config.lr}, ${config.warmupSteps}-step linear warm-up, poly 0.9 decay, weight decay ${config.weightDecay}`,
    augmentation: describeAugmentation(config.augment),
    'foreground crops': (config.tumourFraction ?? 0) > 0
      ? `${Math.round((config.tumourFraction ?? 0) * 100)}% of crops centred on a voxel of the case's own tumour (lesion-aware sampling; DoDNet samples no tumour share), `
        + `then ${Math.round(config.foregroundFraction * 100)}% of the rest on a labelled voxel (DoDNet: 80%)`
      : `${Math.round(config.foregroundFraction * 100)}% of crops centred on a labelled voxel (DoDNet: 80%)`,
    phantoms: `${config.volume.join('x')} voxels, ${phantomSpacing(config.volume).map((s) => s.toFixed(2)).join('x')} mm, ${config.casesPerTask} per task`,
    profile: config.profile, reason: config.reason, adapter: gpu.name, seed,
    precision: precision === 'f16' ? 'f16 mixed precision (f16 activations and gradients, f32 weights, dynamic loss scaling)' : 'f32',
  };
  await folder.writeJson('config.json', { ...settings, volume: config.volume, cropSize: config.crop, lr: config.lr, warmupSteps: config.warmupSteps, valEvery: config.valEvery, logEvery: config.logEvery, flips: config.flips, checkpointActivations, precision });
  log(`${variant}: width ${config.width} (${model.parameterCount().toLocaleString('en-US')} parameters), ${config.steps} steps of batch ${config.batch} at ${config.crop.join('x')}, ${config.optimizer} lr ${config.lr}`);
  try {
    const { seconds: trainSeconds } = await runTrainingLoop({
      session, folder, label: variant, curvesTitle: `${variant}: training loss and validation Dice (fixed crops)`,
    });

    const t1 = performance.now();
    const evalProgress = new ProgressReporter({ total: data.val.length, label: `${variant} evaluate` });
    const cases = await evaluateHeldOutCases(model, data.val, {
      tileShape: config.crop, targetSpacingZYX: data.spacingZYX, predictionsDir: folder.path('predictions'), flips: config.flips,
      batchSize: config.batch, onCase: (done) => evalProgress.update(done),
    });
    evalProgress.finish();
    const evalSeconds = (performance.now() - t1) / 1000;
    const tasks = summariseByTask(cases.map((c) => c.evaluation));
    const results: ModelResults = { model: variant, tasks };
    await folder.writeJson('summary.json', { variant, ...summaryJson(tasks) });
    const curvesSvg = await readFile(folder.path('curves.svg'), 'utf8');
    await folder.writeText('report.html', reportHtml({
      title: `tgnet demo: ${variant} on phantom CT`,
      config: { ...settings, 'training time': formatDuration(trainSeconds), 'evaluation time': formatDuration(evalSeconds), 'validation cases': cases.length, 'test-time flips': config.flips },
      table: [results], curvesSvg,
      cases: cases.map((c) => ({ name: c.name, evaluation: c.evaluation, images: { axial: c.slices.axial, coronal: c.slices.coronal, sagittal: c.slices.sagittal }, centre: c.slices.centre })),
      notes: [
        'Data: synthetic abdominal CT phantoms (tgnet synth): every volume holds all organs, each task\'s dataset labels only its own organ/tumour (partial labels).',
        `Recipe: ${settings.optimizer} (the paper uses SGD, momentum 0.99, lr 0.01, poly 0.9 over 1000 epochs; that schedule does not converge in a few hundred steps).`,
        'Evaluation: sliding window with the training crop as the tile, overlap 0.5, Gaussian weights; largest organ component(s) kept (two for kidney), tumour pieces of at most 48 mm3 dropped (DoDNet\'s 50 voxels at 1.5 x 0.8 x 0.8 mm); organ and tumour channels scored separately, Dice and HD95 (voxels, and mm) on the input grid.',
        'The validation curve is Dice on one fixed crop per validation case, a cheap signal while training; the table is the full-volume evaluation.',
      ],
      generatedAt: new Date().toISOString(),
    }));
    return { variant, seed, folder: dir, results, trainSeconds, evalSeconds };
  } finally {
    await session.close();
    await folder.close();
  }
}

export const demoCommand = defineCommand({ cli: DEMO_CLI, check: checkDemoArgs, run: runDemo });

async function runDemo(args: DemoArgs, context: CommandContext): Promise<void> {
  const log = (s: string) => console.log(s);
  const t0 = performance.now();
  const gpu = await context.gpu();
  const software = isSoftwareAdapter(gpu);
  const profile = args.profile ?? (software ? 'software' : 'gpu');
  const base = DEMO_CONFIGS[profile];
  const volume = args.volume ?? base.volume;
  const config: DemoConfig = {
    ...base, steps: args.steps ?? base.steps, width: args.width ?? base.width, flips: args.flips ?? base.flips,
    volume, crop: args.crop ?? (args.volume ? volume : base.crop), tumourFraction: args.tumourFraction ?? base.tumourFraction, batch: args.batch ?? base.batch, casesPerTask: args.cases ?? base.casesPerTask,
    valCases: args.cases ? Math.max(1, Math.round((args.cases * base.valCases) / base.casesPerTask)) : base.valCases, lr: args.lr ?? base.lr,
  };
  config.warmupSteps = fitWarmup(config.warmupSteps, config.steps);
  if (config.crop.some((n, a) => n > config.volume[a])) {
    DEMO_CLI.fail(`the crop ${config.crop.join('x')} is larger than the volume ${config.volume.join('x')}; expected a crop within the volume (--crop)`);
  }
  log(`adapter: ${gpu.name} (${software ? 'software' : 'hardware'})`);
  log(`profile ${profile}${args.profile ? ' (--profile)' : ''}: ${config.reason}`);
  const overrides = [
    args.steps !== null && `--steps ${config.steps}`, args.width !== null && `--width ${config.width}`, args.volume !== null && `--volume ${config.volume.join(' ')}`,
    args.crop !== null && `--crop ${config.crop.join(' ')}`, args.tumourFraction !== null && `--tumour-fraction ${config.tumourFraction}`,
    args.batch !== null && `--batch ${config.batch}`, args.cases !== null && `--cases ${config.casesPerTask} (${config.valCases} held out)`, args.lr !== null && `--lr ${config.lr}`,
    args.flips !== null && `--${config.flips ? '' : 'no-'}flips`,
  ].filter(Boolean);
  if (overrides.length) {
    log(`overridden: ${overrides.join(', ')} (the profile's defaults: ${base.steps} steps, width ${base.width}, volume ${base.volume.join('x')}, crop ${base.crop.join('x')}, `
      + `tumour share ${base.tumourFraction ?? 0}, batch ${base.batch}, `
      + `${base.casesPerTask} cases per task, lr ${base.lr})`);
  }
  const runDir = args.out ?? join('runs', `demo-${timestamp()}`);
  const data = await prepareData(config, args.seed, runDir, args.cache, log);
  const variants = args.compare ? COMPARE_VARIANTS : [args.variant];
  const seeds = Array.from({ length: args.seeds }, (_, k) => args.seed + k);
  const results: VariantResult[] = [];
  for (const variant of variants) {
    for (const seed of seeds) {
      const dir = join(runDir, ...(args.compare ? [variant] : []), ...(seeds.length > 1 ? [`seed-${seed}`] : []));
      results.push(await trainAndEvaluate(gpu, config, data, variant, { checkpointActivations: args.checkpointActivations, precision: args.precision }, seed, dir, log));
    }
  }
  const rowName = (r: VariantResult) => (seeds.length > 1 ? `${r.variant}@${r.seed}` : r.variant);
  const table = buildPaperTable(results.map((r) => ({ ...r.results, model: rowName(r) })));
  log('');
  log(`Validation results (${data.val.length} held-out phantoms; Dice %, HD95 in voxels; ${TASKS.length} tasks):`);
  log(formatPaperTableText(table));
  for (const r of results) log(`${rowName(r)}: trained in ${formatDuration(r.trainSeconds)}, evaluated in ${formatDuration(r.evalSeconds)}; report ${join(r.folder, 'report.html')}`);
  const overSeeds = seeds.length > 1 ? compareOverSeeds(results.map((r) => ({ model: r.variant, seed: r.seed, tasks: r.results.tasks }))) : null;
  if (overSeeds) {
    log('');
    log(formatSeedComparisonText(overSeeds));
  }
  if (args.compare || overSeeds) {
    const seconds = results.map((r) => ({ variant: r.variant, seed: r.seed, train: r.trainSeconds, evaluate: r.evalSeconds }));
    await writeFileAtomic(join(runDir, 'compare.json'), `${JSON.stringify({ table: paperTableToJson(table), seeds: overSeeds && jsonNumbers(overSeeds), seconds }, null, 2)}\n`);
    await writeFileAtomic(join(runDir, 'compare.md'), `${formatPaperTableMarkdown(table)}\n${overSeeds ? `\n${formatSeedComparisonMarkdown(overSeeds)}\n` : ''}`);
  }
  log(`total time ${formatDuration((performance.now() - t0) / 1000)}`);
  log(resolve(runDir));
}
