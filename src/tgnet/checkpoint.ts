/**
 * Training checkpoints: one safetensors file holding the model's state dict (`model.<name>`), the optimiser
 * state of every parameter (same shape): SGD's momentum `optim.momentum.<name>`, or Adam/AdamW's moments
 * `optim.exp_avg.<name>` and `optim.exp_avg_sq.<name>`, and `__metadata__` (safetensors metadata values are
 * strings): `format` ("tgnet-checkpoint"), `variant` and `optimizer` ("sgd", "adam" or "adamw") as plain text;
 * `formatVersion`, `width`, `numTasks`, `crop` ([D, H, W]), `step`, `totalSteps`, `lr0`, `momentum`, `nesterov`,
 * `weightDecay`, `polyPower`, `seed`, `warmupSteps` and, for Adam/AdamW, `betas` ([beta1, beta2]) and `eps` as
 * JSON texts. A file without `optimizer` (written before Adam existed) is an SGD checkpoint with no warm-up.
 * Keys and encodings are those `src/eval/load-model.ts` (tgnet predict/evaluate) reads.
 *
 * `encodeCheckpoint` / `decodeCheckpoint` are pure (bytes in, bytes out) so a browser can use them;
 * `saveCheckpoint` / `loadCheckpoint` add Node file I/O, imported lazily so that importing this module never
 * pulls `node:fs` into a browser bundle. Saving writes a temporary sibling and renames it over the target, so a
 * crash mid-write leaves the previous checkpoint whole.
 */
import { OPTIMIZER_KINDS, type OptimizerKind } from '../nn/optim.js';
import { readSafetensorsFile, writeSafetensors, type SafeTensorInput } from '../nn/safetensors.js';
import { describeLayoutMismatch, TGNET_VARIANTS, type TaskGuidedBlocks, type TGNetVariant } from './model.js';
import { nodeModule, syncFolder } from '../common/node-files.js';
import type { DHW } from '../common/shape.js';

/** Identifies the file kind (a safetensors file of model weights alone is not a training checkpoint). */
export const CHECKPOINT_FORMAT = 'tgnet-checkpoint';
/** Bumped when the layout changes incompatibly; readers reject other versions. */
export const CHECKPOINT_FORMAT_VERSION = 1;
export const MODEL_PREFIX = 'model.';
export const MOMENTUM_PREFIX = 'optim.momentum.';
export const EXP_AVG_PREFIX = 'optim.exp_avg.';
export const EXP_AVG_SQ_PREFIX = 'optim.exp_avg_sq.';

/** Per-parameter optimiser state held in a checkpoint; the names are the optimisers' state slot names. */
export type CheckpointSlot = 'momentum' | 'expAvg' | 'expAvgSq';

/** The state tensors each optimiser kind stores, and their key prefixes. */
export const CHECKPOINT_SLOTS: Record<OptimizerKind, readonly { slot: CheckpointSlot; prefix: string }[]> = {
  sgd: [{ slot: 'momentum', prefix: MOMENTUM_PREFIX }],
  adam: [{ slot: 'expAvg', prefix: EXP_AVG_PREFIX }, { slot: 'expAvgSq', prefix: EXP_AVG_SQ_PREFIX }],
  adamw: [{ slot: 'expAvg', prefix: EXP_AVG_PREFIX }, { slot: 'expAvgSq', prefix: EXP_AVG_SQ_PREFIX }],
};
const ALL_SLOTS = [...new Map(Object.values(CHECKPOINT_SLOTS).flat().map((s) => [s.prefix, s])).values()];

/** What a run was and where it stood. */
export interface CheckpointMeta {
  variant: TGNetVariant;
  width: number;
  numTasks: number;
  /** Training crop [D, H, W]. */
  crop: DHW;
  /** Optimiser steps completed. */
  step: number;
  totalSteps: number;
  lr0: number;
  /** SGD's momentum settings (recorded for every optimiser, used by SGD only). */
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
  polyPower: number;
  seed: number;
  /** Which optimiser's state the file holds; absent means 'sgd' (decodeCheckpoint always fills it in). */
  optimizer?: OptimizerKind;
  /** Linear warm-up steps of the lr schedule; absent means 0 (decodeCheckpoint always fills it in). */
  warmupSteps?: number;
  /** Adam/AdamW's moment decay rates; required for those optimisers. */
  betas?: [number, number];
  /** Adam/AdamW's eps; required for those optimisers. */
  eps?: number;
  /** Crops per step. Absent in files written before exact resume. */
  batchSize?: number;
  /** Loss readback and checkpoint cadence (they do not change the weights; a resumed run keeps them by default). */
  logEvery?: number;
  checkpointEvery?: number;
  /** Where the batch sampler stood after `step` batches; a resumed run continues its stream from here. */
  sampler?: CheckpointSamplerPosition;
  /** What the command line needs to continue the run from this file alone (data folder, split, ...). */
  run?: CheckpointRunInfo;
  /** Storage of activations and their gradients ('f16': mixed precision); absent means 'f32'. */
  precision?: 'f32' | 'f16';
  /** Mixed precision's dynamic loss scale where it stood (see nn/loss-scaler.ts); present with precision 'f16'. */
  lossScaler?: CheckpointLossScaler;
}

/** A dynamic loss scaler's state (PyTorch GradScaler's scale and growth tracker), and the steps it skipped so far. */
export interface CheckpointLossScaler {
  scale: number;
  growthTracker: number;
  skippedSteps: number;
}

/** A batch sampler's position (the data layer's SamplerPosition, restated here to keep the layers apart). */
export interface CheckpointSamplerPosition {
  /** Batches handed out so far. */
  batches: number;
  /** The sampler's generator state at the start of the next batch (a 32-bit integer). */
  state: number;
}

/** The run's data as `tgnet train` saw it. */
export interface CheckpointRunInfo {
  /** The data folder (absolute), or null for the built-in phantom collection. */
  data?: string | null;
  /** Training and validation case ids, in the order the sampler used them. */
  split?: { train: string[]; val: string[] };
  /** Validation cadence (does not change the weights). */
  valEvery?: number;
  /** The preprocessing cache folder (absolute; does not change the weights, only saves preprocessing again). */
  cache?: string;
  /** The crops' augmentation by name (session/recipes' Augmentation), their foreground and tumour shares: the crop stream depends on them. */
  augment?: string;
  foregroundFraction?: number;
  tumourFraction?: number;
}

export interface CheckpointTensor {
  shape: number[];
  data: Float32Array;
}

export interface Checkpoint {
  meta: CheckpointMeta;
  /** State dict by parameter name (without the `model.` prefix), in the model's order. */
  model: Map<string, CheckpointTensor>;
  /** SGD's momentum by parameter name (same names and shapes as `model`); present exactly for SGD checkpoints. */
  momentum?: Map<string, Float32Array>;
  /** Adam/AdamW's first moment (exp_avg) by parameter name; present exactly for those optimisers. */
  expAvg?: Map<string, Float32Array>;
  /** Adam/AdamW's second moment (exp_avg_sq) by parameter name; present exactly for those optimisers. */
  expAvgSq?: Map<string, Float32Array>;
}

const shapeText = (s: readonly number[]): string => `[${s.join(', ')}]`;
const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/** Metadata key, the expected kind and how to check a parsed value. */
const META_FIELDS: { key: keyof CheckpointMeta; expected: string; ok: (v: unknown) => boolean; plain?: boolean }[] = [
  { key: 'variant', expected: `one of ${TGNET_VARIANTS.join(', ')}`, ok: (v) => (TGNET_VARIANTS as readonly unknown[]).includes(v), plain: true },
  { key: 'width', expected: 'a positive integer', ok: (v) => Number.isSafeInteger(v) && (v as number) > 0 },
  { key: 'numTasks', expected: 'a positive integer', ok: (v) => Number.isSafeInteger(v) && (v as number) > 0 },
  {
    key: 'crop', expected: '[D, H, W] of positive integers',
    ok: (v) => Array.isArray(v) && v.length === 3 && v.every((d) => Number.isSafeInteger(d) && d > 0),
  },
  { key: 'step', expected: 'a non-negative integer', ok: (v) => Number.isSafeInteger(v) && (v as number) >= 0 },
  { key: 'totalSteps', expected: 'a positive integer', ok: (v) => Number.isSafeInteger(v) && (v as number) > 0 },
  { key: 'lr0', expected: 'a finite number >= 0', ok: (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0 },
  { key: 'momentum', expected: 'a finite number >= 0', ok: (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0 },
  { key: 'nesterov', expected: 'true or false', ok: (v) => typeof v === 'boolean' },
  { key: 'weightDecay', expected: 'a finite number >= 0', ok: (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0 },
  { key: 'polyPower', expected: 'a finite number >= 0', ok: (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0 },
  { key: 'seed', expected: 'an integer', ok: (v) => Number.isSafeInteger(v) },
];

/** Fields added with Adam: optional in the file (a default when absent), `adam` ones required for Adam/AdamW. */
const OPTIMIZER_FIELDS: { key: 'optimizer' | 'warmupSteps' | 'betas' | 'eps'; expected: string; ok: (v: unknown) => boolean; plain?: boolean; fallback?: unknown; adam?: boolean }[] = [
  { key: 'optimizer', expected: `one of ${OPTIMIZER_KINDS.join(', ')}`, ok: (v) => (OPTIMIZER_KINDS as readonly unknown[]).includes(v), plain: true, fallback: 'sgd' },
  { key: 'warmupSteps', expected: 'a non-negative integer', ok: (v) => Number.isSafeInteger(v) && (v as number) >= 0, fallback: 0 },
  {
    key: 'betas', expected: '[beta1, beta2], each in [0, 1)', adam: true,
    ok: (v) => Array.isArray(v) && v.length === 2 && v.every((b) => typeof b === 'number' && b >= 0 && b < 1),
  },
  { key: 'eps', expected: 'a finite number > 0', adam: true, ok: (v) => typeof v === 'number' && Number.isFinite(v) && v > 0 },
];

const isStringList = (v: unknown): boolean => Array.isArray(v) && v.every((x) => typeof x === 'string');
const isCount = (v: unknown, min: number): boolean => Number.isSafeInteger(v) && (v as number) >= min;

/** Fields added for exact resume: optional (files written before them lack them), JSON texts. */
const RESUME_FIELDS: { key: 'batchSize' | 'logEvery' | 'checkpointEvery' | 'sampler' | 'run' | 'precision' | 'lossScaler'; expected: string; ok: (v: unknown) => boolean }[] = [
  { key: 'precision', expected: '"f32" or "f16"', ok: (v) => v === 'f32' || v === 'f16' },
  {
    key: 'lossScaler', expected: '{"scale": finite number > 0, "growthTracker": integer >= 0, "skippedSteps": integer >= 0}',
    ok: (v) => typeof v === 'object' && v !== null && typeof (v as CheckpointLossScaler).scale === 'number'
      && Number.isFinite((v as CheckpointLossScaler).scale) && (v as CheckpointLossScaler).scale > 0
      && isCount((v as CheckpointLossScaler).growthTracker, 0) && isCount((v as CheckpointLossScaler).skippedSteps, 0),
  },
  { key: 'batchSize', expected: 'a positive integer', ok: (v) => isCount(v, 1) },
  { key: 'logEvery', expected: 'a positive integer', ok: (v) => isCount(v, 1) },
  { key: 'checkpointEvery', expected: 'a non-negative integer', ok: (v) => isCount(v, 0) },
  {
    key: 'sampler', expected: '{"batches": integer >= 0, "state": 32-bit integer}',
    ok: (v) => typeof v === 'object' && v !== null && isCount((v as CheckpointSamplerPosition).batches, 0)
      && Number.isSafeInteger((v as CheckpointSamplerPosition).state) && Math.abs((v as CheckpointSamplerPosition).state) <= 0x80000000,
  },
  {
    key: 'run', expected: '{"data"?: string | null, "split"?: {"train": [ids], "val": [ids]}, "valEvery"?: integer >= 0, "cache"?: string, "augment"?: string, "foregroundFraction"?: number in [0, 1], "tumourFraction"?: number in [0, 1]}',
    ok: (v) => {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
      const r = v as CheckpointRunInfo;
      if (r.data !== undefined && r.data !== null && typeof r.data !== 'string') return false;
      if (r.valEvery !== undefined && !isCount(r.valEvery, 0)) return false;
      if (r.cache !== undefined && typeof r.cache !== 'string') return false;
      if (r.augment !== undefined && typeof r.augment !== 'string') return false;
      for (const share of [r.foregroundFraction, r.tumourFraction]) {
        if (share !== undefined && !(typeof share === 'number' && share >= 0 && share <= 1)) return false;
      }
      return r.split === undefined || (typeof r.split === 'object' && r.split !== null && isStringList(r.split.train) && isStringList(r.split.val));
    },
  },
];

/** Serialises a checkpoint to safetensors bytes. Throws (naming the tensor) when shapes and data disagree. */
export function encodeCheckpoint(checkpoint: Checkpoint): Uint8Array {
  const { meta, model } = checkpoint;
  for (const f of META_FIELDS) {
    if (!f.ok(meta[f.key])) throw new TypeError(`encodeCheckpoint: meta.${f.key} is ${JSON.stringify(meta[f.key])}; expected ${f.expected}`);
  }
  const kind = meta.optimizer ?? 'sgd';
  const optimizerMeta: Record<string, unknown> = { ...meta, optimizer: kind, warmupSteps: meta.warmupSteps ?? 0 };
  for (const f of OPTIMIZER_FIELDS) {
    const v = optimizerMeta[f.key];
    if (v === undefined && f.adam && kind === 'sgd') continue;
    if (!f.ok(v)) throw new TypeError(`encodeCheckpoint: meta.${f.key} is ${JSON.stringify(v)}; expected ${f.expected}${f.adam ? ` for optimizer ${kind}` : ''}`);
  }
  for (const f of RESUME_FIELDS) {
    const v = meta[f.key];
    if (v !== undefined && !f.ok(v)) throw new TypeError(`encodeCheckpoint: meta.${f.key} is ${JSON.stringify(v)}; expected ${f.expected}`);
  }
  const tensors = new Map<string, SafeTensorInput>();
  for (const [name, t] of model) {
    if (t.data.length !== numel(t.shape)) {
      throw new RangeError(`encodeCheckpoint: model tensor '${name}' has ${t.data.length} values for shape ${shapeText(t.shape)} (${numel(t.shape)} expected)`);
    }
    tensors.set(MODEL_PREFIX + name, { dtype: 'F32', shape: t.shape, data: t.data });
  }
  const slots = CHECKPOINT_SLOTS[kind];
  for (const { slot } of ALL_SLOTS) {
    if (checkpoint[slot] !== undefined && !slots.some((s) => s.slot === slot)) {
      throw new RangeError(`encodeCheckpoint: the checkpoint holds ${slot} state, which optimizer ${kind} does not have; expected ${slots.map((s) => s.slot).join(' and ')}`);
    }
  }
  for (const { slot, prefix } of slots) {
    const state = checkpoint[slot];
    if (!state) throw new RangeError(`encodeCheckpoint: no ${slot} state; optimizer ${kind} needs one buffer per model tensor`);
    for (const [name, t] of model) {
      const m = state.get(name);
      if (!m) throw new RangeError(`encodeCheckpoint: no ${slot} for parameter '${name}'; expected one buffer per model tensor`);
      if (m.length !== t.data.length) {
        throw new RangeError(`encodeCheckpoint: ${slot} of '${name}' has ${m.length} values; expected ${t.data.length} (shape ${shapeText(t.shape)})`);
      }
      tensors.set(prefix + name, { dtype: 'F32', shape: t.shape, data: m });
    }
    for (const name of state.keys()) {
      if (!model.has(name)) throw new RangeError(`encodeCheckpoint: ${slot} for '${name}' has no model tensor of that name`);
    }
  }
  const metadata: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    formatVersion: JSON.stringify(CHECKPOINT_FORMAT_VERSION),
  };
  for (const f of META_FIELDS) metadata[f.key] = f.plain ? String(meta[f.key]) : JSON.stringify(meta[f.key]);
  for (const f of OPTIMIZER_FIELDS) {
    const v = optimizerMeta[f.key];
    if (v !== undefined) metadata[f.key] = f.plain ? String(v) : JSON.stringify(v);
  }
  for (const f of RESUME_FIELDS) {
    if (meta[f.key] !== undefined) metadata[f.key] = JSON.stringify(meta[f.key]);
  }
  return writeSafetensors(tensors, metadata);
}

/**
 * Parses and validates checkpoint bytes. Errors name `source` (the file) and the field or tensor at fault:
 * truncated or non-safetensors bytes, another format or version, missing or malformed metadata, tensors that
 * are not F32, a model tensor without its optimiser state (or the reverse), state of another optimiser, shapes
 * that disagree. `optimizer` and `warmupSteps` are filled in ('sgd', 0) for files that predate them.
 */
export function decodeCheckpoint(bytes: Uint8Array, source = '(bytes)'): Checkpoint {
  const where = `checkpoint ${source}`;
  let file: ReturnType<typeof readSafetensorsFile>;
  try {
    file = readSafetensorsFile(bytes, { source });
  } catch (e) {
    throw new Error(`${where}: not a readable safetensors file (${(e as Error).message})`);
  }
  const raw = file.metadata;
  const parse = (key: string, plain = false, fallback?: unknown): unknown => {
    const text = raw[key];
    if (text === undefined && fallback !== undefined) return fallback;
    if (text === undefined) throw new Error(`${where}: metadata field '${key}' is missing; expected a ${CHECKPOINT_FORMAT} file written by saveCheckpoint`);
    if (plain) return text;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new Error(`${where}: metadata field '${key}' is ${JSON.stringify(text)}, which is not JSON`);
    }
  };
  const format = parse('format', true);
  if (format !== CHECKPOINT_FORMAT) throw new Error(`${where}: metadata field 'format' is ${JSON.stringify(format)}; expected "${CHECKPOINT_FORMAT}"`);
  const version = parse('formatVersion');
  if (version !== CHECKPOINT_FORMAT_VERSION) {
    throw new Error(`${where}: metadata field 'formatVersion' is ${JSON.stringify(version)}; this build reads version ${CHECKPOINT_FORMAT_VERSION}`);
  }
  const meta = {} as Record<keyof CheckpointMeta, unknown>;
  for (const f of META_FIELDS) {
    const v = parse(f.key, f.plain);
    if (!f.ok(v)) throw new Error(`${where}: metadata field '${f.key}' is ${JSON.stringify(v)}; expected ${f.expected}`);
    meta[f.key] = v;
  }
  const kind = parse('optimizer', true, 'sgd') as OptimizerKind;
  for (const f of OPTIMIZER_FIELDS) {
    if (f.adam && kind === 'sgd' && raw[f.key] === undefined) continue;
    const v = parse(f.key, f.plain, f.fallback);
    if (!f.ok(v)) throw new Error(`${where}: metadata field '${f.key}' is ${JSON.stringify(v)}; expected ${f.expected}`);
    (meta as Record<string, unknown>)[f.key] = v;
  }
  for (const f of RESUME_FIELDS) {
    if (raw[f.key] === undefined) continue;
    const v = parse(f.key);
    if (!f.ok(v)) throw new Error(`${where}: metadata field '${f.key}' is ${JSON.stringify(v)}; expected ${f.expected}`);
    (meta as Record<string, unknown>)[f.key] = v;
  }

  const model = new Map<string, CheckpointTensor>();
  const slots = CHECKPOINT_SLOTS[kind];
  const prefixes = [MODEL_PREFIX, ...ALL_SLOTS.map((s) => s.prefix)];
  for (const [key, t] of file.tensors) {
    const prefix = prefixes.find((p) => key.startsWith(p));
    if (!prefix) throw new Error(`${where}: tensor '${key}' is none of ${prefixes.map((p) => `'${p}<name>'`).join(', ')}`);
    if (prefix !== MODEL_PREFIX && !slots.some((s) => s.prefix === prefix)) {
      throw new Error(`${where}: tensor '${key}' is not state of optimizer ${kind} (metadata field 'optimizer'), which stores ${slots.map((s) => `'${s.prefix}<name>'`).join(' and ')}`);
    }
    if (t.dtype !== 'F32') throw new Error(`${where}: tensor '${key}' has dtype ${t.dtype}; expected F32`);
    if (prefix === MODEL_PREFIX) model.set(key.slice(MODEL_PREFIX.length), { shape: t.shape, data: t.data as Float32Array });
  }
  const checkpoint: Checkpoint = { meta: meta as unknown as CheckpointMeta, model };
  for (const { slot, prefix } of slots) {
    const state = new Map<string, Float32Array>();
    for (const [name, t] of model) {
      const m = file.tensors.get(prefix + name);
      if (!m) throw new Error(`${where}: tensor '${prefix}${name}' is missing; optimizer ${kind} stores ${slot} for every model tensor`);
      if (shapeText(m.shape) !== shapeText(t.shape)) {
        throw new Error(`${where}: tensor '${prefix}${name}' has shape ${shapeText(m.shape)}; expected ${shapeText(t.shape)} like '${MODEL_PREFIX}${name}'`);
      }
      state.set(name, m.data as Float32Array);
    }
    for (const key of file.tensors.keys()) {
      if (key.startsWith(prefix) && !model.has(key.slice(prefix.length))) {
        throw new Error(`${where}: tensor '${key}' has no '${MODEL_PREFIX}${key.slice(prefix.length)}'`);
      }
    }
    checkpoint[slot] = state;
  }
  if (model.size === 0) throw new Error(`${where}: holds no '${MODEL_PREFIX}*' tensors; expected a model state dict`);
  return checkpoint;
}

/** What the checkpoint must match to load into a model: its parameter names and shapes, in order. */
export interface CheckpointTarget {
  variant: TGNetVariant;
  width: number;
  numTasks: number;
  /** tgnet's task-guided encoder blocks (default 'first'). */
  taskGuidedBlocks?: TaskGuidedBlocks;
  namedParameters(): [string, { readonly shape: readonly number[] }][];
}

/**
 * Checks that a checkpoint fits a model before anything is written to it: same variant, width and task count,
 * every parameter present with its shape, and no extra tensors. Errors name `source` and the field.
 */
export function checkCheckpointFits(checkpoint: Checkpoint, target: CheckpointTarget, source = '(checkpoint)'): void {
  const where = `checkpoint ${source}`;
  const { meta } = checkpoint;
  for (const [key, got, want] of [
    ['variant', meta.variant, target.variant], ['width', meta.width, target.width], ['numTasks', meta.numTasks, target.numTasks],
  ] as const) {
    if (got !== want) throw new Error(`${where}: metadata field '${key}' is ${JSON.stringify(got)} but the model has ${JSON.stringify(want)}; build the model with the checkpoint's settings`);
  }
  const layout = describeLayoutMismatch(checkpoint.model.keys(), { variant: target.variant, taskGuidedBlocks: target.taskGuidedBlocks ?? 'first' });
  if (layout) throw new Error(`${where}: ${layout}`);
  const own = target.namedParameters();
  for (const [name, p] of own) {
    const t = checkpoint.model.get(name);
    if (!t) throw new Error(`${where}: tensor '${MODEL_PREFIX}${name}' is missing; the model needs it with shape ${shapeText(p.shape)}`);
    if (shapeText(t.shape) !== shapeText(p.shape)) {
      throw new Error(`${where}: tensor '${MODEL_PREFIX}${name}' has shape ${shapeText(t.shape)}; the model expects ${shapeText(p.shape)}`);
    }
  }
  const names = new Set(own.map(([n]) => n));
  for (const name of checkpoint.model.keys()) {
    if (!names.has(name)) throw new Error(`${where}: tensor '${MODEL_PREFIX}${name}' is not a parameter of this ${target.variant} model`);
  }
}

/** Where `saveCheckpoint` keeps the checkpoint it replaces: `run/checkpoint.safetensors` -> `run/checkpoint.prev.safetensors`. */
export function previousCheckpointPath(path: string): string {
  return /\.safetensors$/i.test(path) ? path.replace(/\.safetensors$/i, '.prev.safetensors') : `${path}.prev`;
}

let tempCounter = 0;

/**
 * Writes the checkpoint so that neither a crash (SIGKILL) nor a power loss at any moment leaves the run without
 * a whole checkpoint: the bytes go to a temporary sibling, which is fsynced; the checkpoint being replaced is
 * kept as `previousCheckpointPath(path)` (a hard link, so `path` itself never disappears); the temporary file
 * is renamed over `path`; and the folder is fsynced so that the renames themselves are on the disk.
 */
export async function saveCheckpoint(path: string, checkpoint: Checkpoint): Promise<void> {
  const bytes = encodeCheckpoint(checkpoint);
  const { mkdir, open, rename, unlink, link, copyFile, readdir } = await nodeModule<typeof import('node:fs/promises')>('node:fs/promises');
  const { basename, dirname, join } = await nodeModule<typeof import('node:path')>('node:path');
  const dir = dirname(path);
  const stem = `${basename(path)}.tmp-`;
  const temp = join(dir, `${stem}${process.pid}-${tempCounter++}`);
  const prev = previousCheckpointPath(path);
  try {
    await mkdir(dir, { recursive: true });
    const file = await open(temp, 'w');
    try {
      await file.writeFile(bytes);
      await file.sync();
    } finally {
      await file.close();
    }
    // The old checkpoint becomes the previous one only now that the new one is whole on the disk.
    const prevTemp = `${temp}.prev`;
    let hadOld = true;
    try {
      await link(path, prevTemp);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') hadOld = false;
      else await copyFile(path, prevTemp); // a filesystem without hard links
    }
    if (hadOld) await rename(prevTemp, prev);
    await rename(temp, path);
    await syncFolder(dir);
  } catch (e) {
    // unlink, not rm -r: only ever remove the files this call created.
    await unlink(temp).catch(() => undefined);
    await unlink(`${temp}.prev`).catch(() => undefined);
    throw new Error(`saveCheckpoint ${path}: write failed (${(e as Error).message}); the previous checkpoint, if any, is unchanged`);
  }
  // Temporary files of a process killed mid-write are never read; remove them so they do not pile up.
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (name.startsWith(stem)) await unlink(join(dir, name)).catch(() => undefined);
  }
}

/**
 * Reads and validates a checkpoint file (see decodeCheckpoint for what is checked). A truncated or corrupt file
 * is refused with an error that names it and, when the previous checkpoint exists beside it, suggests that one.
 */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  const { readFile, stat } = await nodeModule<typeof import('node:fs/promises')>('node:fs/promises');
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`checkpoint ${path}: file not found; expected a .safetensors file written by tgnet train${await previousHint(path)}`);
    if (code === 'EISDIR') throw new Error(`checkpoint ${path}: is a folder; expected a .safetensors file written by tgnet train (e.g. ${path}/checkpoint.safetensors)`);
    throw new Error(`checkpoint ${path}: cannot read (${(e as Error).message})`);
  }
  try {
    return decodeCheckpoint(bytes, path);
  } catch (e) {
    throw new Error(`${(e as Error).message}${await previousHint(path)}`);
  }

  async function previousHint(p: string): Promise<string> {
    const prev = previousCheckpointPath(p);
    if (prev === p || !(await stat(prev).then((s) => s.isFile(), () => false))) return '';
    return `; the previous checkpoint ${prev} is beside it: resume from that one (--resume ${prev})`;
  }
}
