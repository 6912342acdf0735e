/**
 * The launchers' side of the conv3d autotuner (autotune.ts): a synchronous look-up of the tuned options of a
 * (shape, pass) in an in-memory map, installed per Gpu by `enableConv3dTuning`, and a recorder of the shapes
 * the launchers see. No file IO here: the launchers import this module, and it is in the browser bundle.
 */
import type { Gpu } from '../runtime/gpu.js';
import type { DType } from '../runtime/precision.js';
import { geometry, type Conv3dShape } from './geometry.js';
import type { Conv3dOptions } from './options.js';

/** The three conv3d passes: forward, data gradient, weight gradient. */
export type Conv3dPass = 'forward' | 'data' | 'weight';

/** The options a tuned choice sets; a caller passing any of them keeps its own choice and gets no tuned one. */
export const TUNED_OPTION_KEYS = ['tile', 'direct', 'directBlocking', 'splitK'] as const;

export type Conv3dTunedChoice = Pick<Conv3dOptions, (typeof TUNED_OPTION_KEYS)[number]>;

/** A (shape, pass) as recorded by `recordConv3dShapes`. */
export interface Conv3dShapePass {
  shape: Conv3dShape;
  pass: Conv3dPass;
  /** The activations' element type the pass ran with (Conv3dOptions.dtype); f32 when absent. */
  dtype?: DType;
}

/**
 * The key of a (shape, pass, activation dtype) in the tuning cache, e.g. `forward x2,8,16,32,32 w16,8,3 s2 p1`,
 * with ` f16` appended for f16 activations: the kernels differ (half the bytes per load, conversions), so a choice
 * tuned for one element type is not taken for the other. f32 keys are as before f16 existed (old caches stay valid).
 */
export function conv3dShapeKey(shape: Conv3dShape, pass: Conv3dPass, dtype: DType = 'f32'): string {
  const g = geometry(shape, 'conv3d tuning');
  return `${pass} x${g.N},${g.Cin},${g.D},${g.H},${g.W} w${g.Cout},${g.Cin},${g.k} s${g.s} p${g.p}${dtype === 'f16' ? ' f16' : ''}`;
}

/** The identity of an adapter in the tuning cache: vendor, architecture, device and description. */
export function adapterKey(gpu: Gpu): string {
  const a = gpu.adapter;
  return [a.vendor, a.architecture, a.device, a.description || gpu.name].join(' | ');
}

const tuned = new WeakMap<Gpu, Map<string, Conv3dTunedChoice>>();
let recorder: Conv3dShapePass[] | null = null;

/** Installs (or, with null, removes) the tuned choices the launchers of `gpu` look up; keys from conv3dShapeKey. */
export function setConv3dTunedChoices(gpu: Gpu, choices: Map<string, Conv3dTunedChoice> | null): void {
  if (choices) tuned.set(gpu, choices);
  else tuned.delete(gpu);
}

/** Adds one choice to `gpu`'s look-up when tuning is enabled for it (a no-op otherwise). */
export function addConv3dTunedChoice(gpu: Gpu, key: string, choice: Conv3dTunedChoice): void {
  tuned.get(gpu)?.set(key, choice);
}

/** Whether the launchers of `gpu` look up tuned choices. */
export function conv3dTuningEnabled(gpu: Gpu): boolean {
  return tuned.has(gpu);
}

/** The tuned options of a (shape, pass, dtype) on `gpu`; null when tuning is off for it or the shape was never tuned. */
export function tunedConv3dOptions(gpu: Gpu, shape: Conv3dShape, pass: Conv3dPass, dtype: DType = 'f32'): Conv3dOptions | null {
  const map = tuned.get(gpu);
  if (!map || map.size === 0) return null;
  const choice = map.get(conv3dShapeKey(shape, pass, dtype));
  return choice ? { ...choice } : null;
}

/**
 * The options a launcher runs with: the caller's, under the tuned choice (for the caller's dtype) when tuning is on
 * for `gpu` and the caller chose none of tile, direct, directBlocking and splitK. Also records the (shape, pass,
 * dtype) while `recordConv3dShapes` runs.
 */
export function withTunedConv3dOptions(gpu: Gpu, shape: Conv3dShape, pass: Conv3dPass, options: Conv3dOptions): Conv3dOptions {
  const dtype = options.dtype ?? 'f32';
  recorder?.push({ shape: { x: [...shape.x], w: [...shape.w], stride: shape.stride, padding: shape.padding }, pass, dtype });
  if (!tuned.has(gpu) || TUNED_OPTION_KEYS.some((k) => options[k] !== undefined)) return options;
  const choice = tunedConv3dOptions(gpu, shape, pass, dtype);
  return choice ? { ...choice, ...options } : options;
}

/**
 * Runs `record` (which records GPU work synchronously, e.g. a model's forward and backward) and returns the
 * distinct (shape, pass, dtype) triples the conv3d launchers were called with, in first-call order.
 */
export function recordConv3dShapes(record: () => void): Conv3dShapePass[] {
  const outer = recorder;
  const seen: Conv3dShapePass[] = [];
  recorder = seen;
  try {
    record();
  } finally {
    recorder = outer;
    outer?.push(...seen);
  }
  const byKey = new Map<string, Conv3dShapePass>();
  for (const s of seen) {
    const key = conv3dShapeKey(s.shape, s.pass, s.dtype);
    if (!byKey.has(key)) byKey.set(key, s);
  }
  return [...byKey.values()];
}
