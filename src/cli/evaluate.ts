/**
 * `tgnet evaluate` in two modes.
 *
 * Models: `--model A.safetensors [--model B ...] --data DIR` runs the whole evaluation protocol on each model
 * (read CT and label, resample to the training spacing, sliding window at the training crop, optional flips,
 * post-processing, Dice and HD95 on the input grid) and prints the paper's Table 1: one row per model, per
 * task the organ and tumour Dice and HD95, then the averages; as text, Markdown and JSON.
 *
 * Masks: `--pred DIR_OR_FILE --truth DIR_OR_FILE --task T` measures predicted label maps (1 organ, 2 tumour,
 * as `tgnet predict` writes them) against the dataset's labels, matched by file name, per case and per task.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join, resolve, sep } from 'node:path';
import { loadDodnetList, loadMsdCollection, loadMsdDataset, validateSplit, type DatasetCase } from '../data/datasets.js';
import { writeFileAtomic } from '../common/node-files.js';
import { readNiftiFile, writeNiftiFile } from '../data/nifti-file.js';
import { TASKS, taskById } from '../data/tasks.js';
import type { CheckpointConfig } from '../eval/load-model.js';
import { evaluateCase } from '../eval/evaluate.js';
import { EMPTY_MASK_CONVENTION } from '../eval/metrics.js';
import {
  buildPaperTable, formatPaperTableMarkdown, formatPaperTableText, paperTableToJson, summaryJson, type PaperTable, type RunSummaryJson,
} from '../eval/paper-table.js';
import { formatReport, reportToJson, summariseByTask, type CaseEvaluation } from '../eval/report.js';
import { DEFAULT_TILE_SHAPE } from '../eval/sliding-window.js';
import { isGridSide, TOTAL_STRIDE } from '../tgnet/model.js';
import {
  choiceValue, CommandLine, flag, flagName, formatOptions, formatSynopsis, gridSide, integerValue, option, pathValue, repeated, textValue, triple, type OptionValues,
} from './args.js';
import { defineCommand, type CommandContext } from './command.js';
import { loadCheckpointFile, taskValue } from './predict.js';
import { ProgressReporter } from './progress.js';
import { segmentAndEvaluateCase } from './held-out-evaluation.js';
import { type DHW, type XYZ, dhwFromXyz } from '../common/shape.js';

/** DoDNet's preprocessing spacing [z, y, x] mm, the paper's. */
export const DEFAULT_EVALUATE_SPACING: XYZ = [1.5, 0.8, 0.8];

const MODEL_OPTIONS = {
  model: repeated('FILE', 'a checkpoint (tgnet train / tgnet demo / tgnet import-dodnet / tgnet export, or DoDNet\'s own .pth); repeat for more rows', pathValue,
    { required: '--model FILE is required (once per model to compare)' }),
  name: repeated('NAME', 'row name of the model at the same position (default: the shortest path suffix that tells the files apart, e.g. \'a\' for runs/a.safetensors); repeat once per --model',
    (words, at) => {
      const name = textValue(words, at);
      if (name.trim() === '') at.fail('--name is empty; expected a row name');
      return name;
    }),
  data: option('PATH', 'an MSD dataset folder (with dataset.json), a folder of them (tgnet synth --out, the demo\'s phantom cache, an MSD download), or with --list the root the list\'s paths start from',
    pathValue, { required: '--data PATH is required: the dataset folder (MSD layout) the models are evaluated on' }),
  split: option('FILE.json', 'evaluate the split\'s \'val\' cases (the split.json tgnet train / tgnet demo write, or {"val":\u00a0[ids]})', pathValue),
  list: option('FILE.txt', 'evaluate the cases of a DoDNet list (MOTS_test.txt: "image label" per line, relative to --data)', pathValue),
  cases: option('all', 'evaluate every case of --data (the default when neither --split nor --list is given)', (words, at) => {
    const text = textValue(words, at);
    if (text !== 'all') at.fail(`--cases is ${JSON.stringify(text)}; expected 'all' (or --split FILE.json / --list FILE.txt for a subset)`);
    return text;
  }),
  spacing: option('Z Y X', `spacing in mm the models were trained at; volumes are resampled to it for inference and the masks back to the input grid (default ${DEFAULT_EVALUATE_SPACING.join(' ')}, DoDNet's); --spacing native: no resampling, needed for tgnet demo checkpoints, which train on phantoms as they are`,
    (words, at): XYZ | null => (words.length === 1 && words[0] === 'native' ? null
      : triple((text, name) => at.number(name, text, (n) => n > 0 && Number.isFinite(n), "a positive number of mm (or '--spacing native')"))(words, at)),
    { minWords: 1 }),
  tile: option('D H W', `sliding-window tile, multiples of 16 (default: each checkpoint's training crop, else ${DEFAULT_TILE_SHAPE.join('\u00a0')})`, triple(gridSide)),
  flips: flag('average over the 8 mirrorings of the three axes (8x slower)'),
  batch: option('N', 'tiles per forward pass (default 1)', integerValue(1, 'a positive integer'), { default: 1 }),
  predictions: option('DIR', 'also write each model\'s label maps to DIR/<name>/<case>.nii.gz', pathValue),
  json: option('FILE', 'also write protocol, table, per-task summaries and per-case metrics as JSON', pathValue),
  markdown: option('FILE', 'also write the table as Markdown', pathValue),
  layout: option('L', 'wide (default: the paper\'s layout) or long (a line per task channel, for narrow terminals)',
    choiceValue(['wide', 'long'] as const, 'wide or long'), { default: 'wide' as 'wide' | 'long' }),
  quiet: flag('print nothing (with --json or --markdown)'),
};

const MASK_OPTIONS = {
  pred: option('PATH', 'a predicted label map (.nii/.nii.gz; 0 background, 1 organ, 2 tumour) or a folder of them', pathValue, { required: true }),
  truth: option('PATH', 'the ground-truth label map or a folder (an MSD dataset folder\'s labelsTr/ is used when present); files are matched by name',
    pathValue, { required: true }),
  task: option('TASK', `${TASKS.map((t) => t.key).join(', ')} or an id 0..${TASKS.length - 1}: how the truth labels map to organ / tumour`, taskValue, { required: true }),
  json: option('FILE', 'also write the report as JSON', pathValue),
  quiet: flag('print nothing (with --json)'),
};

export const EVALUATE_USAGE = [
  'usage: tgnet evaluate --model FILE [--model FILE ...] --data PATH [options]   (the paper\'s table, one row per model)',
  `       ${formatSynopsis('evaluate', MASK_OPTIONS).slice('usage: '.length)}   (masks)`,
  '',
  'models:',
  formatOptions(MODEL_OPTIONS),
  `Dice in %, HD95 in voxels of each case's own grid (as the paper; mm in the JSON). Empty masks:\n${EMPTY_MASK_CONVENTION.description}.`,
  '',
  'masks:',
  formatOptions(MASK_OPTIONS),
].join('\n');

export const EVALUATE_MODELS_CLI = new CommandLine('evaluate', MODEL_OPTIONS, { usage: EVALUATE_USAGE });
export const EVALUATE_MASKS_CLI = new CommandLine('evaluate', MASK_OPTIONS, { usage: EVALUATE_USAGE });

export type EvaluateArgs = OptionValues<typeof MASK_OPTIONS>;

export function parseEvaluateArgs(argv: readonly string[]): EvaluateArgs {
  return EVALUATE_MASKS_CLI.parse(argv).values;
}

const NIFTI_NAME = /\.nii(\.gz)?$/;

async function isDirectory(path: string, flag: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (e) {
    throw new Error(`tgnet evaluate: ${flag} ${path} cannot be read (${(e as Error).message})`);
  }
}

/** (prediction, truth) file pairs, matched by file name. */
export async function matchCases(pred: string, truth: string): Promise<{ name: string; pred: string; truth: string }[]> {
  const predIsDir = await isDirectory(pred, '--pred');
  const truthIsDir = await isDirectory(truth, '--truth');
  const predFiles = predIsDir
    ? (await readdir(pred)).filter((f) => NIFTI_NAME.test(f)).sort().map((f) => join(pred, f))
    : [pred];
  if (predFiles.length === 0) throw new Error(`tgnet evaluate: --pred folder ${pred} holds no .nii or .nii.gz files`);
  if (!truthIsDir) {
    if (predFiles.length !== 1) throw new Error(`tgnet evaluate: --pred ${pred} holds ${predFiles.length} files but --truth ${truth} is one file; expected a --truth folder`);
    return [{ name: basename(predFiles[0]), pred: predFiles[0], truth }];
  }
  let truthDir = truth;
  const labelsTr = join(truth, 'labelsTr');
  if (await stat(labelsTr).then((s) => s.isDirectory(), () => false)) truthDir = labelsTr;
  const truthNames = new Set((await readdir(truthDir)).filter((f) => NIFTI_NAME.test(f)));
  return predFiles.map((p) => {
    const name = basename(p);
    if (!truthNames.has(name)) throw new Error(`tgnet evaluate: prediction ${p} has no ground truth ${join(truthDir, name)}; expected a file of the same name`);
    return { name, pred: p, truth: join(truthDir, name) };
  });
}

/** Reads both volumes of every pair and evaluates them. */
export async function evaluateFiles(pairs: readonly { name: string; pred: string; truth: string }[], task: number): Promise<CaseEvaluation[]> {
  const results: CaseEvaluation[] = [];
  for (const pair of pairs) {
    const [pred, truth] = [await readNiftiFile(pair.pred), await readNiftiFile(pair.truth)];
    if (pred.shape.some((s, i) => s !== truth.shape[i])) {
      throw new Error(`${pair.pred}: shape ${pred.shape.join('x')} differs from the truth ${pair.truth} (${truth.shape.join('x')}); expected the same grid`);
    }
    pred.spacing.forEach((s, i) => {
      if (Math.abs(s - truth.spacing[i]) > 1e-3 * Math.max(1, truth.spacing[i])) {
        throw new Error(`${pair.pred}: spacing ${pred.spacing.join('x')} mm differs from the truth ${pair.truth} (${truth.spacing.join('x')} mm); expected the same grid`);
      }
    });
    const shape: DHW = dhwFromXyz(truth.shape);
    const spacing: DHW = [truth.spacing[2], truth.spacing[1], truth.spacing[0]];
    for (const [v, file] of [[pred, pair.pred], [truth, pair.truth]] as const) {
      for (let i = 0; i < v.data.length; i++) {
        const l = v.data[i];
        if (!(l >= 0 && l <= 255 && Number.isInteger(l))) throw new Error(`${file}: voxel ${i} is ${l}; expected an integer label`);
      }
    }
    try {
      results.push(evaluateCase(pair.name, pred.data, truth.data, shape, spacing, task));
    } catch (e) {
      throw new Error(`${pair.pred} vs ${pair.truth}: ${(e as Error).message}`);
    }
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// Models: the paper's table

export type CaseSelection = { kind: 'all' } | { kind: 'split'; path: string } | { kind: 'list'; path: string };

export interface EvaluateModelsArgs {
  models: string[];
  /** Row names, aligned with models. */
  names: string[];
  data: string;
  cases: CaseSelection;
  /** null: the input grid, no resampling. */
  spacingZYX: DHW | null;
  tile?: DHW;
  flips: boolean;
  batch: number;
  predictions?: string;
  json?: string;
  markdown?: string;
  layout: 'wide' | 'long';
  quiet: boolean;
}

const SHARED_FLAGS = Object.keys(MASK_OPTIONS).filter((k) => k in MODEL_OPTIONS);
const MODEL_FLAGS = Object.keys(MODEL_OPTIONS).filter((k) => !SHARED_FLAGS.includes(k)).map(flagName);
const MASK_FLAGS = Object.keys(MASK_OPTIONS).filter((k) => !SHARED_FLAGS.includes(k)).map(flagName);

/** The models mode when any flag of it appears; a flag of the masks mode next to one of it is refused. */
export function isModelsMode(argv: readonly string[]): boolean {
  const flags = argv.map((a) => a.replace(/=[\s\S]*$/, ''));
  const model = flags.find((a) => MODEL_FLAGS.includes(a));
  const mask = flags.find((a) => MASK_FLAGS.includes(a));
  if (model && mask) {
    EVALUATE_MODELS_CLI.fail(`${mask} (evaluate existing masks) cannot be combined with ${model} (run models on a dataset); expected either --pred/--truth/--task or --model/--data`);
  }
  return model !== undefined;
}

/**
 * Row names for checkpoint paths: the file name without .safetensors, or as many trailing folders as it takes
 * to tell the paths apart (runs/a/checkpoint and runs/b/checkpoint become a/checkpoint and b/checkpoint).
 */
export function defaultModelNames(paths: readonly string[]): string[] {
  const parts = paths.map((p) => resolve(p).replace(/\.(safetensors|pth|pt)$/i, '').split(sep).filter((c) => c !== ''));
  const longest = Math.max(...parts.map((p) => p.length));
  for (let k = 1; k <= longest; k++) {
    const names = parts.map((p) => p.slice(-k).join('/'));
    if (new Set(names).size === names.length) return names;
  }
  return parts.map((p) => p.join('/'));
}

export function parseEvaluateModelsArgs(argv: readonly string[]): EvaluateModelsArgs {
  const { values: v, order } = EVALUATE_MODELS_CLI.parse(argv);
  const fail = (message: string): never => EVALUATE_MODELS_CLI.fail(message);
  // One way of choosing cases: the first given counts, a second is refused.
  const selections = order.filter((k) => k === 'split' || k === 'list' || k === 'cases');
  const named = (k: (typeof selections)[number]): string => (k === 'cases' ? '--cases all' : `--${k}`);
  if (selections.length > 1) fail(`${named(selections[1])} given after ${named(selections[0])}; expected one of --split, --list, --cases all`);
  const cases: CaseSelection = v.split !== undefined ? { kind: 'split', path: v.split } : v.list !== undefined ? { kind: 'list', path: v.list } : { kind: 'all' };
  const models = v.model;
  const repeated = models.find((m, i) => models.findIndex((o) => resolve(o) === resolve(m)) !== i);
  if (repeated !== undefined) fail(`--model ${repeated} is given twice; expected each checkpoint once`);
  if (v.name.length > 0 && v.name.length !== models.length) fail(`got ${v.name.length} --name for ${models.length} --model; expected one --name per --model, or none`);
  const rowNames = v.name.length > 0 ? v.name : defaultModelNames(models);
  const twice = rowNames.find((n, i) => rowNames.indexOf(n) !== i);
  if (twice !== undefined) fail(`--name ${JSON.stringify(twice)} is given twice; expected a distinct name per row`);
  return {
    models, names: rowNames, data: v.data, cases, spacingZYX: v.spacing === undefined ? DEFAULT_EVALUATE_SPACING : v.spacing, tile: v.tile,
    flips: v.flips, batch: v.batch, predictions: v.predictions, json: v.json, markdown: v.markdown, layout: v.layout, quiet: v.quiet,
  };
}

async function statOrFail(path: string, flag: string): Promise<Awaited<ReturnType<typeof stat>>> {
  try {
    return await stat(path);
  } catch (e) {
    throw new Error(`tgnet evaluate: ${flag} ${path} cannot be read (${(e as Error).message})`);
  }
}

const byTaskThenId = (a: DatasetCase, b: DatasetCase): number => a.task - b.task || a.id.localeCompare(b.id);

/** Every case under `data`: one MSD dataset folder, or a folder of them. */
export async function loadEvaluationDataset(data: string): Promise<DatasetCase[]> {
  if (!(await statOrFail(data, '--data')).isDirectory()) throw new Error(`tgnet evaluate: --data ${data} is a file; expected a folder (an MSD dataset or a folder of them)`);
  if (await stat(join(data, 'dataset.json')).then(() => true, () => false)) return (await loadMsdDataset(data)).sort(byTaskThenId);
  const folders = (await readdir(data, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  const cases = await loadMsdCollection(data, folders);
  if (cases.length === 0) {
    throw new Error(`tgnet evaluate: --data ${data} holds no MSD dataset (no dataset.json in it or in its subfolders${folders.length ? `: ${folders.slice(0, 5).join(', ')}` : ''}); expected e.g. the folder tgnet synth --out wrote`);
  }
  return cases;
}

/** The cases to evaluate: every case of --data, a split file's val cases, or a DoDNet list's. */
export async function selectEvaluationCases(data: string, selection: CaseSelection): Promise<DatasetCase[]> {
  if (selection.kind === 'list') {
    await statOrFail(data, '--data');
    const cases = await loadDodnetList(selection.path, data);
    if (cases.length === 0) throw new Error(`tgnet evaluate: --list ${selection.path} names no case; expected "image label" lines`);
    return cases.sort(byTaskThenId);
  }
  const all = await loadEvaluationDataset(data);
  if (selection.kind === 'all') return all;
  let text: string;
  try {
    text = await readFile(selection.path, 'utf8');
  } catch (e) {
    throw new Error(`tgnet evaluate: --split ${selection.path} cannot be read (${(e as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (e) {
    throw new Error(`${selection.path}: invalid JSON (${(e as Error).message}); expected a split file {train: [...ids], val: [...ids]}`);
  }
  // A hand-written evaluation split may list only the cases to evaluate.
  if (parsed && typeof parsed === 'object' && !Array.isArray(parsed) && !('train' in parsed)) parsed = { ...parsed, train: [] };
  const split = validateSplit(parsed, selection.path);
  if (split.val.length === 0) throw new Error(`${selection.path}: field val is empty; expected the ids of the cases to evaluate`);
  const known = new Set(all.map((c) => c.id));
  const unknown = split.val.filter((id) => !known.has(id));
  if (unknown.length > 0) {
    const sample = all.slice(0, 3).map((c) => JSON.stringify(c.id)).join(', ');
    throw new Error(`${selection.path}: ${unknown.length} val case(s) are not in --data ${data} (first: ${JSON.stringify(unknown[0])}); expected ids of its cases, such as ${sample}`);
  }
  const wanted = new Set(split.val);
  return all.filter((c) => wanted.has(c.id));
}

export interface EvaluatedModel {
  name: string;
  path: string;
  config: CheckpointConfig;
  tile: DHW;
  /** Where the tile came from. */
  tileSource: '--tile' | 'checkpoint crop' | 'default';
  cases: CaseEvaluation[];
  seconds: number;
}

export interface EvaluateModelsJson {
  protocol: {
    data: string;
    cases: number;
    selection: string;
    spacingZYX: DHW | 'native';
    overlap: number;
    flips: boolean;
    postprocess: boolean;
    diceUnit: '%';
    hd95Unit: 'voxels';
    emptyMaskConvention: string;
  };
  table: PaperTable;
  models: {
    name: string;
    path: string;
    variant: string;
    width: number;
    numTasks: number;
    tile: DHW;
    seconds: number;
    /** Per task: Dice as a fraction, HD95 in voxels and mm. */
    summary: RunSummaryJson;
    cases: CaseEvaluation[];
  }[];
}

function selectionText(args: EvaluateModelsArgs): string {
  if (args.cases.kind === 'split') return `the val cases of ${args.cases.path}`;
  if (args.cases.kind === 'list') return `the cases of ${args.cases.path}`;
  return 'every case';
}

function spacingText(spacing: XYZ | null): string {
  return spacing ? `resampled to ${spacing.join(' x ')} mm (z, y, x)` : 'native spacing (no resampling)';
}

const rowFolder = (name: string): string => name.replace(/[^A-Za-z0-9._-]+/g, '_');

/** Runs the protocol on each model in turn; every checkpoint is loaded once first so a bad one fails early. */
export async function evaluateModels(args: EvaluateModelsArgs, cases: readonly DatasetCase[], log: (s: string) => void): Promise<EvaluatedModel[]> {
  const plans = [];
  for (const [i, path] of args.models.entries()) {
    const { model, config } = await loadCheckpointFile(path);
    model.dispose();
    const tileSource = args.tile ? '--tile' as const : config.crop ? 'checkpoint crop' as const : 'default' as const;
    const tile = args.tile ?? config.crop ?? DEFAULT_TILE_SHAPE;
    if (!tile.every(isGridSide)) throw new Error(`${path}: training crop [${tile.join(', ')}] is not made of multiples of ${TOTAL_STRIDE}; pass --tile D H W`);
    const beyond = cases.find((c) => c.task >= config.numTasks);
    if (beyond) throw new Error(`${path}: the model knows ${config.numTasks} task(s) but case ${beyond.id} is task ${beyond.task} (${taskById(beyond.task).key}); expected a model with at least ${beyond.task + 1} tasks`);
    plans.push({ name: args.names[i], path, config, tile, tileSource });
  }
  const results: EvaluatedModel[] = [];
  for (const plan of plans) {
    log(`${plan.name}: ${plan.config.variant} width ${plan.config.width} (${plan.config.numTasks} tasks) from ${plan.path}; tile ${plan.tile.join('x')} (${plan.tileSource})`);
    const t0 = performance.now();
    const { model } = await loadCheckpointFile(plan.path);
    const evaluations: CaseEvaluation[] = [];
    try {
      const progress = args.quiet ? null : new ProgressReporter({ total: cases.length, label: `${plan.name} evaluate` });
      for (const c of cases) {
        let done;
        try {
          done = await segmentAndEvaluateCase(model, c, { tileShape: plan.tile, targetSpacingZYX: args.spacingZYX, flips: args.flips, batchSize: args.batch });
        } catch (e) {
          throw new Error(`${plan.path} on case ${c.id}: ${(e as Error).message}`);
        }
        evaluations.push(done.evaluation);
        if (args.predictions) {
          const { image } = done;
          await writeNiftiFile(join(args.predictions, rowFolder(plan.name), `${done.name}.nii.gz`),
            { data: Float32Array.from(done.labelMap), shape: image.shape, spacing: image.spacing, affine: image.affine, header: image.header },
            { datatype: 'uint8', gzip: true, description: `tgnet ${plan.config.variant} ${taskById(done.task).key} prediction` });
        }
        progress?.update(evaluations.length, { extra: { case: c.id } });
      }
      progress?.finish();
    } finally {
      model.dispose();
    }
    results.push({ ...plan, cases: evaluations, seconds: (performance.now() - t0) / 1000 });
  }
  return results;
}

const UNITS_NOTE = `HD95 is measured on each case's own grid with a spacing of 1 (voxels, as the paper; the JSON also has mm). Empty masks: ${EMPTY_MASK_CONVENTION.description}.`;

function protocolText(args: EvaluateModelsArgs, cases: readonly DatasetCase[]): string {
  const tasks = new Set(cases.map((c) => c.task)).size;
  return `${cases.length} case(s) of ${tasks} task(s): ${selectionText(args)} under ${args.data}; ${spacingText(args.spacingZYX)}; sliding window overlap 0.5, Gaussian weights${args.flips ? ', 8 flips' : ''}; post-processing on.`;
}

/** The report as JSON data: protocol, table, and per model its summaries and per-case metrics (NaN as null). */
export function evaluateModelsJson(args: EvaluateModelsArgs, cases: readonly DatasetCase[], models: readonly EvaluatedModel[], table: PaperTable): EvaluateModelsJson {
  return {
    protocol: {
      data: args.data, cases: cases.length, selection: selectionText(args), spacingZYX: args.spacingZYX ?? 'native', overlap: 0.5, flips: args.flips,
      postprocess: true, diceUnit: '%', hd95Unit: 'voxels', emptyMaskConvention: EMPTY_MASK_CONVENTION.description,
    },
    table: paperTableToJson(table),
    models: models.map((m) => ({
      name: m.name, path: m.path, variant: m.config.variant, width: m.config.width, numTasks: m.config.numTasks, tile: m.tile,
      seconds: m.seconds, summary: summaryJson(summariseByTask(m.cases)), cases: reportToJson(m.cases).cases,
    })),
  };
}

async function runEvaluateModels(args: EvaluateModelsArgs, context: CommandContext): Promise<void> {
  const log = args.quiet ? () => undefined : (s: string) => console.log(s);
  for (const model of args.models) await statOrFail(model, '--model');
  const cases = await selectEvaluationCases(args.data, args.cases);
  log(`tgnet evaluate: ${protocolText(args, cases)}`);
  await context.gpu();
  const models = await evaluateModels(args, cases, log);
  const table = buildPaperTable(models.map((m) => ({ model: m.name, tasks: summariseByTask(m.cases) })));
  log('');
  log(formatPaperTableText(table, { layout: args.layout }));
  log(UNITS_NOTE);
  if (args.markdown) {
    const md = [
      '# tgnet evaluate', '', protocolText(args, cases), '', formatPaperTableMarkdown(table), '', UNITS_NOTE, '',
      ...models.map((m) => `- ${m.name}: ${m.config.variant}, width ${m.config.width}, tile ${m.tile.join('x')}, \`${m.path}\``), '',
    ].join('\n');
    await writeFileAtomic(args.markdown, md);
  }
  if (args.json) await writeFileAtomic(args.json, JSON.stringify(evaluateModelsJson(args, cases, models, table), null, 2) + '\n');
}

/** `tgnet evaluate` has two forms: models on a dataset (--model), or masks against the truth (--pred, --truth). */
type EvaluateForm = { models: EvaluateModelsArgs } | { masks: EvaluateArgs };

export const evaluateCommand = defineCommand<EvaluateForm>({
  usage: EVALUATE_USAGE,
  parse: (argv) => (isModelsMode(argv) ? { models: parseEvaluateModelsArgs(argv) } : { masks: parseEvaluateArgs(argv) }),
  run: (form, context) => ('models' in form ? runEvaluateModels(form.models, context) : runEvaluateMasks(form.masks)),
});

async function runEvaluateMasks(args: EvaluateArgs): Promise<void> {
  const pairs = await matchCases(args.pred, args.truth);
  const results = await evaluateFiles(pairs, args.task);
  if (!args.quiet) console.log(formatReport(results));
  if (args.json) await writeFileAtomic(args.json, JSON.stringify(reportToJson(results), null, 2) + '\n');
}
