/**
 * `tgnet predict --model CKPT.safetensors --input CT.nii.gz --task liver --out MASK.nii.gz [...]`: segments
 * one CT volume with a trained checkpoint and writes a uint8 label map (0 background, 1 organ, 2 tumour)
 * with the input's geometry.
 */
import { access, constants, readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { writeNiftiFile } from '../data/nifti-file.js';
import { readCtInput, type CtInput } from '../data/dicom-file.js';
import { describeDicomSeries } from '../data/dicom.js';
import { TASKS, taskFromName } from '../data/tasks.js';
import { loadModelFromCheckpoint, type CheckpointConfig, type LoadedModelCheckpoint } from '../eval/load-model.js';
import { segmentCt } from '../eval/pipeline.js';
import { DEFAULT_TILE_SHAPE } from '../eval/sliding-window.js';
import { isGridSide, TGNET_VARIANTS, TOTAL_STRIDE } from '../tgnet/model.js';
import { defineCommand, type CommandContext } from './command.js';
import { choiceValue, CommandLine, flag, gridSide, integerValue, numberValue, option, pathValue, textValue, triple, type ReadValue } from './args.js';
import type { DHW } from '../common/shape.js';

/** A task by key, dataset name (`Task03_Liver`, `0Liver`) or id -> its id. */
export const taskValue: ReadValue<number> = ([text], at) => {
  const t = text ?? '';
  const task = /^\d+$/.test(t) ? TASKS[Number(t)] : taskFromName(t);
  if (!task || t === '') return at.fail(`${at.flag} is ${JSON.stringify(text ?? null)}; expected one of ${TASKS.map((x) => `${x.id}/${x.key}`).join(', ')}`);
  return task.id;
};

const positiveInteger = integerValue(1, 'a positive integer');

const PREDICT_OPTIONS = {
  model: option('FILE', 'checkpoint: safetensors with the state dict under \'model.*\' (architecture from its __metadata__ or its tensor names and shapes), a .pth that tgnet export wrote, or DoDNet\'s own .pth (read without Python)',
    pathValue, { required: true }),
  input: option('PATH', 'CT volume: a .nii or .nii.gz file (values in HU), or a DICOM series: its folder, a .zip of it, or one of its files', pathValue, { required: true }),
  series: option('UID', 'which DICOM series, when the folder or zip holds several: its SeriesInstanceUID, a unique prefix, or its number in the list the error prints', textValue),
  allowNonCt: flag('go on with a DICOM series whose Modality is not CT (the model knows CT values in HU only)'),
  allowTilt: flag('read a gantry-tilted DICOM series with its sheared geometry (as dcm2niix\'s plain output) instead of refusing it'),
  task: option('TASK', `${TASKS.map((t) => t.key).join(', ')} or an id 0..${TASKS.length - 1}`, taskValue, { required: true }),
  out: option('FILE', 'label map to write (.nii or .nii.gz, in the input\'s geometry, a DICOM series\' too): 0 background, 1 organ, 2 tumour, uint8', pathValue, { required: true }),
  flips: flag('average over the 8 mirrorings of the three axes (8x slower)'),
  overlap: option('F', 'tile overlap in [0, 1) (default 0.5)', numberValue((n) => n >= 0 && n < 1, 'a number in [0, 1)'), { default: 0.5 }),
  crop: option('D H W', `tile size, multiples of 16 (default: the checkpoint's crop, else ${DEFAULT_TILE_SHAPE.join(' ')})`, triple(gridSide)),
  batch: option('N', 'tiles per forward pass (default 1)', positiveInteger, { default: 1 }),
  width: option('W', 'model width (default: from the checkpoint)', positiveInteger),
  variant: option('V', `${TGNET_VARIANTS.join(' | ')} (default: from the checkpoint)`, choiceValue(TGNET_VARIANTS)),
  numTasks: option('N', 'task count of the model (default: from the checkpoint)', positiveInteger),
  spacing: option('Z Y X', 'training spacing in mm to resample to (default 1.5 0.8 0.8)',
    triple((text, name, at) => at.number(name, text, (n) => n > 0 && Number.isFinite(n), 'a positive number of mm'))),
  nativeSpacing: flag('run on the input grid without resampling'),
  noPostprocess: flag('skip the largest-component / small-tumour clean-up'),
  quiet: flag('no progress lines'),
};

export const PREDICT_CLI = new CommandLine('predict', PREDICT_OPTIONS);

export interface PredictArgs {
  model: string;
  input: string;
  /** DICOM SeriesInstanceUID (or prefix, or number) for an input holding several series. */
  series?: string;
  allowNonCt: boolean;
  allowTilt: boolean;
  task: number;
  out: string;
  flips: boolean;
  overlap: number;
  crop?: DHW;
  batch: number;
  overrides: Partial<CheckpointConfig>;
  /** null: no resampling. */
  spacingZYX: DHW | null;
  postprocess: boolean;
  quiet: boolean;
}

export function parsePredictArgs(argv: readonly string[]): PredictArgs {
  const { values: v, order } = PREDICT_CLI.parse(argv);
  if (!/\.nii(\.gz)?$/.test(v.out)) PREDICT_CLI.fail(`--out is ${JSON.stringify(v.out)}; expected a .nii or .nii.gz file name`);
  const overrides: Partial<CheckpointConfig> = {};
  if (v.width !== undefined) overrides.width = v.width;
  if (v.variant !== undefined) overrides.variant = v.variant;
  if (v.numTasks !== undefined) overrides.numTasks = v.numTasks;
  // --spacing and --native-spacing: the later one wins.
  const native = order.lastIndexOf('nativeSpacing') > order.lastIndexOf('spacing');
  return {
    model: v.model, input: v.input, series: v.series, allowNonCt: v.allowNonCt, allowTilt: v.allowTilt, task: v.task, out: v.out, flips: v.flips, overlap: v.overlap, crop: v.crop, batch: v.batch, overrides,
    spacingZYX: native ? null : v.spacing ?? [1.5, 0.8, 0.8], postprocess: !v.noPostprocess, quiet: v.quiet,
  };
}

/** Reads a checkpoint file and builds its model (the GPU must be initialised). */
export async function loadCheckpointFile(path: string, overrides: Partial<CheckpointConfig> = {}): Promise<LoadedModelCheckpoint> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read the checkpoint (${(e as Error).message})`);
  }
  return loadModelFromCheckpoint(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), path, overrides);
}

/**
 * Fails unless `out` can be written as a file: not a folder, and its nearest existing parent a writable folder.
 * Checked before the model is loaded, so a typo costs nothing.
 */
export async function checkOutputFile(out: string, command: string): Promise<void> {
  const info = await stat(out).catch(() => null);
  if (info?.isDirectory()) throw new Error(`tgnet ${command}: --out ${out} is a folder; expected a file name such as ${out.replace(/\/+$/, '')}/mask.nii.gz`);
  let probe = dirname(resolve(out));
  while (!(await stat(probe).then(() => true, () => false))) probe = dirname(probe);
  if (!(await stat(probe)).isDirectory()) throw new Error(`tgnet ${command}: --out ${out}: ${probe} is a file, so ${out} cannot be written`);
  const target = info ? resolve(out) : probe;
  await access(target, constants.W_OK).catch(() => {
    throw new Error(`tgnet ${command}: --out ${out}: ${target} is not writable; expected a path this user can write to`);
  });
}

/**
 * Reads `--input` (NIfTI, or a DICOM folder, zip or file) and refuses a DICOM series that is not CT unless
 * `allowNonCt`: HU are what the model learnt, and an MR series "segments" into confident nonsense.
 */
export async function readCtInputChecked(path: string, options: { series?: string; allowNonCt?: boolean; allowTilt?: boolean }, command: string): Promise<CtInput> {
  const input = await readCtInput(path, { series: options.series, allowTilt: options.allowTilt });
  const modality = input.dicom?.series.modality;
  if (input.dicom && modality !== 'CT' && !options.allowNonCt) {
    throw new Error(`tgnet ${command}: ${path}: series ${input.dicom.series.uid} has Modality ${modality ? JSON.stringify(modality) : '(none)'}; expected CT (the model reads HU). Pass --allow-non-ct to segment it anyway`);
  }
  return input;
}

/** One line on a DICOM input: series, size, voxel size, and anything skipped. */
export function describeCtInput(input: CtInput): string {
  const v = input.volume;
  const d = input.dicom;
  const size = `${v.shape.join('x')} voxels (x y z) of ${v.spacing.map((s) => +s.toFixed(3)).join(' x ')} mm`;
  if (!d) return size;
  return `DICOM series ${describeDicomSeries(d.series)}: ${size}${d.notes.length ? `; ${d.notes.join('; ')}` : ''}`;
}

/** A CT volume with one slice (a 2-D image saved as NIfTI, shape [X, Y, 1]) cannot go through a 3-D network. */
export function checkVolumeIs3d(shape: readonly number[], path: string, command: string): void {
  if (shape.some((n) => n < 2)) {
    throw new Error(`tgnet ${command}: ${path} has shape [${shape.join(', ')}], a 2-D image; expected a 3-D CT volume (at least 2 voxels along x, y and z)`);
  }
}

export const predictCommand = defineCommand({ usage: PREDICT_CLI.usage, parse: parsePredictArgs, run: runPredict });

async function runPredict(args: PredictArgs, context: CommandContext): Promise<void> {
  const log = args.quiet ? () => undefined : (s: string) => console.log(s);
  await checkOutputFile(args.out, 'predict');
  await context.gpu();
  let phase = 'reading the input';
  try {
    const input = await readCtInputChecked(args.input, { series: args.series, allowNonCt: args.allowNonCt, allowTilt: args.allowTilt }, 'predict');
    const volume = input.volume;
    if (input.dicom) log(describeCtInput(input));
    checkVolumeIs3d(volume.shape, args.input, 'predict');
    phase = 'loading the model';
    const { model, config } = await loadCheckpointFile(args.model, args.overrides);
    try {
      const tileShape = args.crop ?? config.crop ?? DEFAULT_TILE_SHAPE;
      if (!tileShape.every(isGridSide)) throw new Error(`${args.model}: crop [${tileShape.join(', ')}] is not made of multiples of ${TOTAL_STRIDE}; pass --crop D H W`);
      log(`model ${config.variant} width ${config.width} (${config.numTasks} tasks) from ${args.model}; task ${TASKS[args.task].key}; tile ${tileShape.join('x')}${args.flips ? ', 8 flips' : ''}`);
      phase = 'the sliding-window pass (before the first tile batch)';
      const seg = await segmentCt(model, volume, args.task, {
        tileShape, overlap: args.overlap, flips: args.flips, batchSize: args.batch,
        targetSpacingZYX: args.spacingZYX, postprocess: args.postprocess,
        onProgress: (p) => {
          phase = p.done === p.total ? 'post-processing' : `the sliding-window pass (after tile pass ${p.done} of ${p.total})`;
          if (args.quiet) return;
          if (p.done === p.total || p.done % Math.max(1, Math.round(p.total / 10)) === 0) log(`  ${p.done}/${p.total} tile passes (${p.seconds.toFixed(1)} s)`);
        },
      });
      phase = 'writing the output';
      // The label map's own bytes: a float32 copy would add 4 bytes a voxel (1.2 GB on a 512x512x900 CT).
      await writeNiftiFile(args.out, { ...volume, data: seg.labelMap }, { datatype: 'uint8', sclSlope: 1, sclInter: 0, description: `tgnet ${TASKS[args.task].key} prediction` });
      const count = (m: Uint8Array) => m.reduce((s, v) => s + v, 0);
      log(`wrote ${args.out}: organ ${count(seg.organ)} voxels, tumour ${count(seg.tumour)} voxels; ${seg.tiles} tiles on a ${seg.inferenceShape.join('x')} grid in ${seg.seconds.toFixed(1)} s`);
    } finally {
      model.dispose();
    }
  } catch (e) {
    const message = (e as Error).message ?? String(e);
    if (!/GPU device lost|GPU runtime was destroyed/.test(message)) throw e;
    throw new Error(`tgnet predict: the GPU device was lost during ${phase} (${message}); ${args.out} was not written`, { cause: e });
  }
}
