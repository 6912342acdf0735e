/**
 * What the page knows about a set of weights beyond the checkpoint itself: the phantom volume and voxel size it
 * was trained on (the checkpoint records the crop, not the spacing), where it came from and how it scored.
 * The committed default model ships one beside its .safetensors (`scripts/make-web-model.mjs` writes both);
 * architecture (variant, width, tasks) is always read from the checkpoint, never from here.
 */
import type { DHW, XYZ } from '../../../src/common/shape.js';

export interface WebModelInfo {
  /** The .safetensors file, relative to the JSON's URL. */
  file: string;
  /** A line for the page: what this model is. */
  title: string;
  /** Phantom volume [D, H, W] it was trained on (also the Train tab's default). */
  volume: DHW;
  /** Voxel size it was trained at, [x, y, z] mm: inputs are resampled to it. */
  spacing: XYZ;
  /** Training steps, for the description. */
  steps?: number;
  /** Held-out Dice per task key (organ / tumour, 0..1) from the run's summary, for the description. */
  dice?: Record<string, { organ?: number; tumour?: number }>;
  /** The run folder the weights were taken from. */
  source?: string;
}

function positiveTriple(value: unknown, field: string, where: string, integer: boolean): [number, number, number] {
  if (!Array.isArray(value) || value.length !== 3 || value.some((n) => typeof n !== 'number' || !(n > 0) || (integer && !Number.isInteger(n)))) {
    throw new Error(`${where}: ${field} is ${JSON.stringify(value)}; expected three positive ${integer ? 'integers' : 'numbers'}`);
  }
  return [value[0], value[1], value[2]];
}

/** Checks a parsed model JSON, naming the field that is wrong. */
export function parseWebModelInfo(json: unknown, where: string): WebModelInfo {
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${where}: expected a JSON object, got ${JSON.stringify(json)?.slice(0, 80)}`);
  const o = json as Record<string, unknown>;
  if (typeof o.file !== 'string' || !/\.safetensors$/.test(o.file)) throw new Error(`${where}: file is ${JSON.stringify(o.file)}; expected the name of a .safetensors file`);
  const info: WebModelInfo = {
    file: o.file,
    title: typeof o.title === 'string' ? o.title : o.file,
    volume: positiveTriple(o.volume, 'volume', where, true),
    spacing: positiveTriple(o.spacing, 'spacing', where, false),
  };
  if (typeof o.steps === 'number') info.steps = o.steps;
  if (o.dice && typeof o.dice === 'object') info.dice = o.dice as WebModelInfo['dice'];
  if (typeof o.source === 'string') info.source = o.source;
  return info;
}

/** DoDNet's voxel size, [x, y, z] mm: its checkpoints do not record it, its preprocessing (re_spacing.py) fixes it. */
export const DODNET_SPACING: XYZ = [0.8, 0.8, 1.5];

/**
 * What the page knows about DoDNet's own weights (a .pth from its train.py): trained on CT resampled to
 * 1.5 x 0.8 x 0.8 mm with 64x192x192 crops.
 */
export function dodnetModelInfo(name: string, crop: DHW): WebModelInfo {
  return { file: name, title: `DoDNet (jianpengz/DoDNet) weights ${name}`, volume: crop, spacing: DODNET_SPACING };
}

/** [x, y, z] -> [z, y, x], the order segmentCt's target spacing is given in. */
export function zyx(spacing: XYZ): XYZ {
  return [spacing[2], spacing[1], spacing[0]];
}
