/**
 * Loading a TGNet from a training checkpoint: a safetensors file whose `model.*` tensors are the model's
 * state dict (other prefixes, e.g. optimiser state, are ignored), or a PyTorch `.pth` (read without Python by
 * src/nn/pth): one that `tgnet export --format pth` wrote (the reference's names, the configuration in its
 * `extra/tgnet.json` record), or one of DoDNet's own (the authors' names, plain or FP16 layout), which is mapped
 * onto the `dodnet` variant at DoDNet's 64x192x192 crop. The architecture comes from, in order of
 * precedence: explicit overrides (CLI flags), the file's `__metadata__`, and the state dict's own keys and
 * shapes, which fix variant, width and numTasks unambiguously.
 */
import { isPth, readPthStateDict } from '../nn/pth/index.js';
import { readSafetensorsFile, type SafeTensor } from '../nn/safetensors.js';
import { importDodnetStateDict, looksLikeDodnet } from '../tgnet/dodnet.js';
import { TASK_GUIDED_BLOCKS, TGNet, TGNET_VARIANTS, type TaskGuidedBlocks, type TGNetVariant } from '../tgnet/model.js';
import type { DHW } from '../common/shape.js';

/** Prefix of the model's tensors in a checkpoint. */
export const CHECKPOINT_MODEL_PREFIX = 'model.';

export interface CheckpointConfig {
  variant: TGNetVariant;
  width: number;
  numTasks: number;
  /** tgnet only, and only when not the default 'first': every encoder block task-guided. */
  taskGuidedBlocks?: TaskGuidedBlocks;
  /** Training crop [D, H, W] when the checkpoint records it. */
  crop?: DHW;
}

export interface LoadedModelCheckpoint {
  model: TGNet;
  config: CheckpointConfig;
  /** The raw `__metadata__` strings. */
  metadata: Record<string, string>;
}

function parseCrop(value: unknown, source: string): DHW {
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

const CONFIG_KEYS = ['variant', 'width', 'numTasks', 'crop', 'taskGuidedBlocks'];

/**
 * The architecture fields found in safetensors metadata: either as separate keys (`variant`, `width`,
 * `numTasks`, `crop`, `taskGuidedBlocks`) or inside a key holding a JSON object with them (a trainer may store its config whole).
 */
export function configFromMetadata(metadata: Record<string, string>, source: string): Partial<CheckpointConfig> {
  const fields: Record<string, unknown> = {};
  for (const value of Object.values(metadata)) {
    if (!value.trim().startsWith('{')) continue;
    try {
      const obj = JSON.parse(value) as unknown;
      if (obj && typeof obj === 'object' && !Array.isArray(obj)) {
        for (const k of CONFIG_KEYS) if (k in obj) fields[k] ??= (obj as Record<string, unknown>)[k];
      }
    } catch {
      // Not JSON after all: an ordinary metadata string.
    }
  }
  for (const k of CONFIG_KEYS) if (k in metadata) fields[k] = metadata[k];
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
  if (fields.taskGuidedBlocks !== undefined) {
    if (!(TASK_GUIDED_BLOCKS as readonly unknown[]).includes(fields.taskGuidedBlocks)) {
      throw new Error(`${source}: metadata taskGuidedBlocks is ${JSON.stringify(fields.taskGuidedBlocks)}; expected one of ${TASK_GUIDED_BLOCKS.join(', ')}`);
    }
    out.taskGuidedBlocks = fields.taskGuidedBlocks as TaskGuidedBlocks;
  }
  return out;
}

/**
 * The variants whose state dicts have these names: one, except that serial and parallel share theirs (both
 * have a channel and a spatial gate on each skip), which only the metadata tells apart.
 */
export function variantsFromStateDict(keys: readonly string[]): TGNetVariant[] {
  if (keys.some((k) => k.startsWith('enc.') && k.includes('.gate.'))) return ['tgnet'];
  const spatial = keys.some((k) => k.startsWith('att.') && k.includes('.spatial.'));
  const channel = keys.some((k) => k.startsWith('att.') && k.includes('.gate.'));
  if (spatial) return channel ? ['serial', 'parallel'] : ['spatial'];
  return channel ? ['tgnet-a'] : ['dodnet'];
}

/**
 * Variant, width, numTasks (and taskGuidedBlocks 'all') as the state dict's names and shapes imply them.
 * `variant` (from metadata or a flag) settles serial vs parallel; without it those throw.
 */
export function configFromStateDict(
  state: ReadonlyMap<string, SafeTensor>, source: string, variant?: TGNetVariant,
): Omit<CheckpointConfig, 'crop'> {
  const stem = state.get('conv1.weight');
  const controller = state.get('controller.weight');
  if (!stem || !controller) {
    throw new Error(`${source}: no '${CHECKPOINT_MODEL_PREFIX}conv1.weight' or '${CHECKPOINT_MODEL_PREFIX}controller.weight' tensor; expected a TGNet checkpoint whose model tensors are named '${CHECKPOINT_MODEL_PREFIX}<state-dict name>'`);
  }
  const width = stem.shape[0];
  const numTasks = controller.shape[1] - 8 * width;
  const keys = [...state.keys()];
  const candidates = variantsFromStateDict(keys);
  if (!variant && candidates.length > 1) {
    throw new Error(`${source}: the tensors fit variants ${candidates.join(' and ')} alike (same state-dict names); the metadata has no 'variant', so pass it explicitly (--variant)`);
  }
  const config: Omit<CheckpointConfig, 'crop'> = { variant: variant ?? candidates[0], width, numTasks };
  if (keys.some((k) => /^enc\.\d+\.[1-9]\d*\.gate\./.test(k))) config.taskGuidedBlocks = 'all';
  return config;
}

/** DoDNet's training crop, recorded for its checkpoints (which store none). */
export const DODNET_CROP: DHW = [64, 192, 192];

/** Name of the record in a tgnet-written .pth that holds the configuration (as safetensors metadata strings). */
export const PTH_CONFIG_RECORD = 'tgnet.json';

export interface CheckpointTensors {
  /** The model's state dict under TGNet's names (no `model.` prefix). */
  state: Map<string, SafeTensor>;
  /** Configuration strings: safetensors `__metadata__`, a tgnet .pth's config record, or DoDNet's for its own files. */
  metadata: Record<string, string>;
  format: 'safetensors' | 'pth';
}

/**
 * The model's tensors and metadata from checkpoint bytes, whichever the format (no GPU needed): safetensors
 * `model.*`; a tgnet-exported .pth; a DoDNet .pth, renamed onto the dodnet variant.
 */
export function readCheckpointTensors(bytes: Uint8Array, source: string): CheckpointTensors {
  if (isPth(bytes)) {
    const pth = readPthStateDict(bytes, { source });
    const names = [...pth.tensors.keys()];
    if (looksLikeDodnet(names)) {
      const imported = importDodnetStateDict(pth.tensors, source);
      const state = new Map<string, SafeTensor>([...imported.model].map(([k, t]) => [k, { dtype: 'F32', shape: t.shape, data: t.data }]));
      return {
        state, format: 'pth',
        metadata: { variant: 'dodnet', width: String(imported.width), numTasks: String(imported.numTasks), crop: JSON.stringify(DODNET_CROP), importedFrom: `DoDNet (jianpengz/DoDNet unet3D): ${source}` },
      };
    }
    const state = new Map<string, SafeTensor>([...pth.tensors].map(([k, t]) => [k, { dtype: 'F32', shape: t.shape, data: t.data }]));
    let metadata: Record<string, string> = {};
    const record = pth.extra.get(PTH_CONFIG_RECORD);
    if (record !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(record);
      } catch (e) {
        throw new Error(`${source}: record extra/${PTH_CONFIG_RECORD} is not JSON (${(e as Error).message}); expected the configuration tgnet export wrote`);
      }
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed) || Object.values(parsed).some((v) => typeof v !== 'string')) {
        throw new Error(`${source}: record extra/${PTH_CONFIG_RECORD} is ${record.slice(0, 80)}; expected an object of strings`);
      }
      metadata = parsed as Record<string, string>;
    }
    return { state, metadata, format: 'pth' };
  }
  const file = readSafetensorsFile(bytes, { source });
  const state = new Map<string, SafeTensor>();
  for (const [name, t] of file.tensors) if (name.startsWith(CHECKPOINT_MODEL_PREFIX)) state.set(name.slice(CHECKPOINT_MODEL_PREFIX.length), t);
  if (state.size === 0) {
    const some = [...file.tensors.keys()].slice(0, 5).map((k) => `'${k}'`).join(', ');
    throw new Error(`${source}: no tensor named '${CHECKPOINT_MODEL_PREFIX}*' (found ${file.tensors.size}${some ? `: ${some}...` : ''}); expected the model's state dict under the prefix '${CHECKPOINT_MODEL_PREFIX}'`);
  }
  return { state, metadata: file.metadata, format: 'safetensors' };
}

/**
 * Builds the model a checkpoint (safetensors or .pth) describes and loads its weights (strict: every key and
 * shape must match).
 */
export function loadModelFromCheckpoint(bytes: Uint8Array, source: string, overrides: Partial<CheckpointConfig> = {}): LoadedModelCheckpoint {
  const file = readCheckpointTensors(bytes, source);
  const state = file.state;
  const given = { ...configFromMetadata(file.metadata, source), ...definedOnly(overrides) };
  const config = { ...configFromStateDict(state, source, given.variant), ...given };
  if (config.taskGuidedBlocks === 'first' || config.variant !== 'tgnet') delete config.taskGuidedBlocks;
  let model: TGNet;
  try {
    model = TGNet.create({ variant: config.variant, width: config.width, numTasks: config.numTasks, taskGuidedBlocks: config.taskGuidedBlocks });
  } catch (e) {
    throw new Error(`${source}: cannot build the model ${JSON.stringify(config)}: ${(e as Error).message}`);
  }
  try {
    model.loadStateDict(state);
  } catch (e) {
    model.dispose();
    const built = { variant: config.variant, width: config.width, numTasks: config.numTasks, ...(config.taskGuidedBlocks ? { taskGuidedBlocks: config.taskGuidedBlocks } : {}) };
    throw new Error(`${source}: the weights do not fit TGNet ${JSON.stringify(built)}: ${(e as Error).message}`);
  }
  return { model, config, metadata: file.metadata };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
