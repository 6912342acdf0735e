/**
 * `tgnet predict --model CKPT.safetensors --input CT.nii.gz --task liver --out MASK.nii.gz [...]`: segments
 * one CT volume with a trained checkpoint and writes a uint8 label map (0 background, 1 organ, 2 tumour)
 * with the input's geometry.
 */
import { access, constants, readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Shape3 } from '../data/nifti.js';
import { readNiftiFile, writeNiftiFile } from '../data/nifti-file.js';
import { TASKS, taskFromName, type TaskInfo } from '../data/tasks.js';
import { loadModelFromCheckpoint, type CheckpointConfig, type LoadedModelCheckpoint } from '../eval/checkpoint.js';
import { segmentCt } from '../eval/pipeline.js';
import { DEFAULT_TILE_SHAPE, type Shape3D } from '../eval/sliding-window.js';
import { getGpu, hasGpu, initGpu } from '../kernels/runtime/gpu.js';
import { TGNET_VARIANTS, type TGNetVariant } from '../tgnet/model.js';

export const PREDICT_USAGE = `usage: tgnet predict --model CKPT.safetensors --input CT.nii.gz --task TASK --out MASK.nii.gz [options]
  --model FILE        checkpoint: safetensors with the state dict under 'model.*' (architecture from its
                      __metadata__ or its tensor names and shapes)
  --input FILE        CT volume (.nii or .nii.gz), values in HU
  --task TASK         ${TASKS.map((t) => t.key).join(', ')} or an id 0..${TASKS.length - 1}
  --out FILE          label map to write (.nii or .nii.gz): 0 background, 1 organ, 2 tumour, uint8
  --flips             average over the 8 mirrorings of the three axes (8x slower)
  --overlap F         tile overlap in [0, 1) (default 0.5)
  --crop D H W        tile size, multiples of 16 (default: the checkpoint's crop, else ${DEFAULT_TILE_SHAPE.join(' ')})
  --batch N           tiles per forward pass (default 1)
  --width W           model width (default: from the checkpoint)
  --variant V         ${TGNET_VARIANTS.join(' | ')} (default: from the checkpoint)
  --num-tasks N       task count of the model (default: from the checkpoint)
  --spacing Z Y X     training spacing in mm to resample to (default 1.5 0.8 0.8)
  --native-spacing    run on the input grid without resampling
  --no-postprocess    skip the largest-component / small-tumour clean-up
  --quiet             no progress lines`;

export interface PredictArgs {
  model: string;
  input: string;
  task: number;
  out: string;
  flips: boolean;
  overlap: number;
  crop?: Shape3D;
  batch: number;
  overrides: Partial<CheckpointConfig>;
  /** null: no resampling. */
  spacingZYX: Shape3 | null;
  postprocess: boolean;
  quiet: boolean;
}

/** A task by key, dataset name (`Task03_Liver`, `0Liver`) or id. */
export function parseTaskArg(text: string | undefined, command: string, usage: string): TaskInfo {
  const t = text ?? '';
  const task = /^\d+$/.test(t) ? TASKS[Number(t)] : taskFromName(t);
  if (!task || t === '') {
    throw new Error(`tgnet ${command}: --task is ${JSON.stringify(text)}; expected one of ${TASKS.map((x) => `${x.id}/${x.key}`).join(', ')}\n${usage}`);
  }
  return task;
}

function parseNumber(flag: string, text: string | undefined, check: (n: number) => boolean, expected: string): number {
  const n = text === undefined || text.trim() === '' ? NaN : Number(text);
  if (!check(n)) throw new Error(`tgnet predict: ${flag} is ${JSON.stringify(text)}; expected ${expected}\n${PREDICT_USAGE}`);
  return n;
}

const positiveInt = (n: number): boolean => Number.isInteger(n) && n >= 1;

export function parsePredictArgs(argv: readonly string[]): PredictArgs {
  const a: Partial<PredictArgs> & { overrides: Partial<CheckpointConfig> } = { overrides: {} };
  let spacing: Shape3 | null | undefined;
  const value = (i: number, flag: string): string => {
    const v = argv[i];
    if (v === undefined || v.startsWith('--')) throw new Error(`tgnet predict: ${flag} needs a value\n${PREDICT_USAGE}`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    switch (flag) {
      case '--model': a.model = value(++i, flag); break;
      case '--input': a.input = value(++i, flag); break;
      case '--out': a.out = value(++i, flag); break;
      case '--task': a.task = parseTaskArg(argv[++i], 'predict', PREDICT_USAGE).id; break;
      case '--flips': a.flips = true; break;
      case '--overlap': a.overlap = parseNumber(flag, argv[++i], (n) => n >= 0 && n < 1, 'a number in [0, 1)'); break;
      case '--crop': {
        const dims = [0, 1, 2].map((k) => parseNumber(`--crop ${'DHW'[k]}`, argv[++i], (n) => positiveInt(n) && n % 16 === 0, 'a positive multiple of 16'));
        a.crop = [dims[0], dims[1], dims[2]];
        break;
      }
      case '--batch': a.batch = parseNumber(flag, argv[++i], positiveInt, 'a positive integer'); break;
      case '--width': a.overrides.width = parseNumber(flag, argv[++i], positiveInt, 'a positive integer'); break;
      case '--num-tasks': a.overrides.numTasks = parseNumber(flag, argv[++i], positiveInt, 'a positive integer'); break;
      case '--variant': {
        const v = argv[++i];
        if (!(TGNET_VARIANTS as readonly (string | undefined)[]).includes(v)) {
          throw new Error(`tgnet predict: --variant is ${JSON.stringify(v)}; expected one of ${TGNET_VARIANTS.join(', ')}\n${PREDICT_USAGE}`);
        }
        a.overrides.variant = v as TGNetVariant;
        break;
      }
      case '--spacing': {
        const s = [0, 1, 2].map((k) => parseNumber(`--spacing ${'ZYX'[k]}`, argv[++i], (n) => n > 0 && Number.isFinite(n), 'a positive number of mm'));
        spacing = [s[0], s[1], s[2]];
        break;
      }
      case '--native-spacing': spacing = null; break;
      case '--no-postprocess': a.postprocess = false; break;
      case '--quiet': a.quiet = true; break;
      case '--help':
      case '-h':
        throw new Error(PREDICT_USAGE);
      default:
        throw new Error(`tgnet predict: unknown argument ${JSON.stringify(flag)}\n${PREDICT_USAGE}`);
    }
  }
  for (const [key, flag] of [['model', '--model FILE'], ['input', '--input FILE'], ['task', '--task TASK'], ['out', '--out FILE']] as const) {
    if (a[key] === undefined) throw new Error(`tgnet predict: ${flag} is required\n${PREDICT_USAGE}`);
  }
  if (!/\.nii(\.gz)?$/.test(a.out!)) throw new Error(`tgnet predict: --out is ${JSON.stringify(a.out)}; expected a .nii or .nii.gz file name`);
  return {
    model: a.model!, input: a.input!, task: a.task!, out: a.out!,
    flips: a.flips ?? false, overlap: a.overlap ?? 0.5, crop: a.crop, batch: a.batch ?? 1, overrides: a.overrides,
    spacingZYX: spacing === undefined ? [1.5, 0.8, 0.8] : spacing,
    postprocess: a.postprocess ?? true, quiet: a.quiet ?? false,
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

/** A CT volume with one slice (a 2-D image saved as NIfTI, shape [X, Y, 1]) cannot go through a 3-D network. */
export function checkVolumeIs3d(shape: readonly number[], path: string, command: string): void {
  if (shape.some((n) => n < 2)) {
    throw new Error(`tgnet ${command}: ${path} has shape [${shape.join(', ')}], a 2-D image; expected a 3-D CT volume (at least 2 voxels along x, y and z)`);
  }
}

export async function predictCommand(argv: string[]): Promise<void> {
  const args = parsePredictArgs(argv);
  const log = args.quiet ? () => undefined : (s: string) => console.log(s);
  await checkOutputFile(args.out, 'predict');
  // Reuse a GPU someone already opened (tests, embedding); otherwise own one for this command.
  const ownsGpu = !hasGpu();
  const gpu = ownsGpu ? await initGpu() : getGpu();
  let phase = 'reading the input';
  try {
    const volume = await readNiftiFile(args.input);
    checkVolumeIs3d(volume.shape, args.input, 'predict');
    phase = 'loading the model';
    const { model, config } = await loadCheckpointFile(args.model, args.overrides);
    try {
      const tileShape = args.crop ?? config.crop ?? DEFAULT_TILE_SHAPE;
      if (tileShape.some((t) => t % 16 !== 0)) throw new Error(`${args.model}: crop [${tileShape.join(', ')}] is not made of multiples of 16; pass --crop D H W`);
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
      await writeNiftiFile(args.out, { ...volume, data: Float32Array.from(seg.labelMap) }, { datatype: 'uint8', sclSlope: 1, sclInter: 0, description: `tgnet ${TASKS[args.task].key} prediction` });
      const count = (m: Uint8Array) => m.reduce((s, v) => s + v, 0);
      log(`wrote ${args.out}: organ ${count(seg.organ)} voxels, tumour ${count(seg.tumour)} voxels; ${seg.tiles} tiles on a ${seg.inferenceShape.join('x')} grid in ${seg.seconds.toFixed(1)} s`);
    } finally {
      model.dispose();
    }
  } catch (e) {
    const message = (e as Error).message ?? String(e);
    if (!/GPU device lost|GPU runtime was destroyed/.test(message)) throw e;
    throw new Error(`tgnet predict: the GPU device was lost during ${phase} (${message}); ${args.out} was not written`, { cause: e });
  } finally {
    if (ownsGpu) gpu.destroy();
  }
}
