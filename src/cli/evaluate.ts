/**
 * `tgnet evaluate --pred DIR_OR_FILE --truth DIR_OR_FILE --task T [--json OUT.json]`: Dice and HD95 of
 * predicted label maps (1 organ, 2 tumour, as `tgnet predict` writes them) against the dataset's labels,
 * matched by file name, printed as a per-case / per-task table.
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { dhwFromXyz } from '../data/augment.js';
import { writeFileAtomic } from '../data/fs-util.js';
import { readNiftiFile } from '../data/nifti-file.js';
import { TASKS } from '../data/tasks.js';
import { evaluateCase } from '../eval/evaluate.js';
import { formatReport, reportToJson, type CaseEvaluation } from '../eval/report.js';
import type { Shape3D } from '../eval/sliding-window.js';
import { parseTaskArg } from './predict.js';

export const EVALUATE_USAGE = `usage: tgnet evaluate --pred DIR_OR_FILE --truth DIR_OR_FILE --task TASK [--json OUT.json] [--quiet]
  --pred PATH     a predicted label map (.nii/.nii.gz; 0 background, 1 organ, 2 tumour) or a folder of them
  --truth PATH    the ground-truth label map or a folder (an MSD dataset folder's labelsTr/ is used when
                  present); files are matched by name
  --task TASK     ${TASKS.map((t) => t.key).join(', ')} or an id 0..${TASKS.length - 1}: how the truth labels map to organ / tumour
  --json FILE     also write the report as JSON
  --quiet         print nothing (with --json)`;

export interface EvaluateArgs {
  pred: string;
  truth: string;
  task: number;
  json?: string;
  quiet: boolean;
}

export function parseEvaluateArgs(argv: readonly string[]): EvaluateArgs {
  const a: Partial<EvaluateArgs> = {};
  const value = (i: number, flag: string): string => {
    const v = argv[i];
    if (v === undefined || v.startsWith('--')) throw new Error(`tgnet evaluate: ${flag} needs a value\n${EVALUATE_USAGE}`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    switch (flag) {
      case '--pred': a.pred = value(++i, flag); break;
      case '--truth': a.truth = value(++i, flag); break;
      case '--task': a.task = parseTaskArg(argv[++i], 'evaluate', EVALUATE_USAGE).id; break;
      case '--json': a.json = value(++i, flag); break;
      case '--quiet': a.quiet = true; break;
      case '--help':
      case '-h':
        throw new Error(EVALUATE_USAGE);
      default:
        throw new Error(`tgnet evaluate: unknown argument ${JSON.stringify(flag)}\n${EVALUATE_USAGE}`);
    }
  }
  for (const [key, flag] of [['pred', '--pred PATH'], ['truth', '--truth PATH'], ['task', '--task TASK']] as const) {
    if (a[key] === undefined) throw new Error(`tgnet evaluate: ${flag} is required\n${EVALUATE_USAGE}`);
  }
  return { pred: a.pred!, truth: a.truth!, task: a.task!, json: a.json, quiet: a.quiet ?? false };
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
    const shape: Shape3D = dhwFromXyz(truth.shape);
    const spacing: Shape3D = [truth.spacing[2], truth.spacing[1], truth.spacing[0]];
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

export async function evaluateCommand(argv: string[]): Promise<void> {
  const args = parseEvaluateArgs(argv);
  const pairs = await matchCases(args.pred, args.truth);
  const results = await evaluateFiles(pairs, args.task);
  if (!args.quiet) console.log(formatReport(results));
  if (args.json) await writeFileAtomic(args.json, JSON.stringify(reportToJson(results), null, 2) + '\n');
}
