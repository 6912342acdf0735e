/**
 * Loading a TGNet from a training checkpoint: a safetensors file whose `model.*` tensors are the model's
 * state dict (other prefixes, e.g. optimiser state, are ignored). The architecture comes from, in order of
 * precedence: explicit overrides (CLI flags), the file's `__metadata__`, and the state dict's own keys and
 * shapes, which fix variant, width and numTasks unambiguously.
 */
import { readSafetensorsFile, type SafeTensor } from '../nn/safetensors.js';
import { TGNet, TGNET_VARIANTS, type TGNetVariant } from '../tgnet/model.js';
import type { Shape3D } from './sliding-window.js';

/** Prefix of the model's tensors in a checkpoint. */
export const CHECKPOINT_MODEL_PREFIX = 'model.';

export interface CheckpointConfig {
  variant: TGNetVariant;
  width: number;
  numTasks: number;
  /** Training crop [D, H, W] when the checkpoint records it. */
  crop?: Shape3D;
}

export interface LoadedModelCheckpoint {
  model: TGNet;
  config: CheckpointConfig;
  /** The raw `__metadata__` strings. */
  metadata: Record<string, string>;
}

function parseCrop(value: unknown, source: string): Shape3D {
  let v = value;
  if (typeof v === 'string') {
    const text = v.trim();
    v = text.startsWith('[') ? JSON.parse(text) : text.split(/[\sx,]+/).filter((s) => s !== '').map(Number);
  }
  if (!Array.isArray(v) || v.length !== 3 || v.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error(`${source}: metadata crop is ${JSON.stringify(value)}; expected three positive integers [D, H, W]`);
  }
  return [v[0], v[1], v[2]];
}

function parsePositiveInt(value: unknown, field: string, source: string): number {
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new Error(`${source}: metadata ${field} is ${JSON.stringify(value)}; expected a positive integer`);
  return n;
}

/**
 * The architecture fields found in safetensors metadata: either as separate keys (`variant`, `width`,
 * `numTasks`, `crop`) or inside a key holding a JSON object with them (a trainer may store its config whole).
 */
export function configFromMetadata(metadata: Record<string, string>, source: string): Partial<CheckpointConfig> {
  const fields: Record<string, unknown> = {};
  for (const value of Object.values(metadata)) {
    if (!value.trim().startsWith('{')) continue;
    try {
      const obj = JSON.parse(value) as unknown;
      if (obj && typeof obj === 'object' && !Array.isArray(obj)) {
        for (const k of ['variant', 'width', 'numTasks', 'crop']) if (k in obj) fields[k] ??= (obj as Record<string, unknown>)[k];
      }
    } catch {
      // Not JSON after all: an ordinary metadata string.
    }
  }
  for (const k of ['variant', 'width', 'numTasks', 'crop']) if (k in metadata) fields[k] = metadata[k];
  const out: Partial<CheckpointConfig> = {};
  if (fields.variant !== undefined) {
    if (!(TGNET_VARIANTS as readonly unknown[]).includes(fields.variant)) {
      throw new Error(`${source}: metadata variant is ${JSON.stringify(fields.variant)}; expected one of ${TGNET_VARIANTS.join(', ')}`);
    }
    out.variant = fields.variant as TGNetVariant;
  }
  if (fields.width !== undefined) out.width = parsePositiveInt(fields.width, 'width', source);
  if (fields.numTasks !== undefined) out.numTasks = parsePositiveInt(fields.numTasks, 'numTasks', source);
  if (fields.crop !== undefined) out.crop = parseCrop(fields.crop, source);
  return out;
}

/** Variant, width and numTasks as the state dict's names and shapes imply them. */
export function configFromStateDict(state: ReadonlyMap<string, SafeTensor>, source: string): Omit<CheckpointConfig, 'crop'> {
  const stem = state.get('conv1.weight');
  const controller = state.get('controller.weight');
  if (!stem || !controller) {
    throw new Error(`${source}: no '${CHECKPOINT_MODEL_PREFIX}conv1.weight' or '${CHECKPOINT_MODEL_PREFIX}controller.weight' tensor; expected a TGNet checkpoint whose model tensors are named '${CHECKPOINT_MODEL_PREFIX}<state-dict name>'`);
  }
  const width = stem.shape[0];
  const numTasks = controller.shape[1] - 8 * width;
  const keys = [...state.keys()];
  const variant: TGNetVariant = keys.some((k) => k.startsWith('enc.') && k.includes('.gate.'))
    ? 'tgnet'
    : keys.some((k) => k.startsWith('att.')) ? 'tgnet-a' : 'dodnet';
  return { variant, width, numTasks };
}

/** Builds the model a checkpoint describes and loads its weights (strict: every key and shape must match). */
export function loadModelFromCheckpoint(bytes: Uint8Array, source: string, overrides: Partial<CheckpointConfig> = {}): LoadedModelCheckpoint {
  const file = readSafetensorsFile(bytes, { source });
  const state = new Map<string, SafeTensor>();
  for (const [name, t] of file.tensors) if (name.startsWith(CHECKPOINT_MODEL_PREFIX)) state.set(name.slice(CHECKPOINT_MODEL_PREFIX.length), t);
  if (state.size === 0) {
    const some = [...file.tensors.keys()].slice(0, 5).map((k) => `'${k}'`).join(', ');
    throw new Error(`${source}: no tensor named '${CHECKPOINT_MODEL_PREFIX}*' (found ${file.tensors.size}${some ? `: ${some}...` : ''}); expected the model's state dict under the prefix '${CHECKPOINT_MODEL_PREFIX}'`);
  }
  const config = { ...configFromStateDict(state, source), ...configFromMetadata(file.metadata, source), ...definedOnly(overrides) };
  let model: TGNet;
  try {
    model = TGNet.create({ variant: config.variant, width: config.width, numTasks: config.numTasks });
  } catch (e) {
    throw new Error(`${source}: cannot build the model ${JSON.stringify(config)}: ${(e as Error).message}`);
  }
  try {
    model.loadStateDict(state);
  } catch (e) {
    model.dispose();
    throw new Error(`${source}: the weights do not fit TGNet ${JSON.stringify({ variant: config.variant, width: config.width, numTasks: config.numTasks })}: ${(e as Error).message}`);
  }
  return { model, config, metadata: file.metadata };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
