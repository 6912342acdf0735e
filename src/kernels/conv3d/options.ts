/** Options shared by the conv3d launchers, and the choice between the implicit GEMMs and the direct kernels. */
import { isSoftwareAdapter, type Gpu } from '../runtime/gpu.js';
import { requireDType, type DType } from '../runtime/precision.js';
import { checkBuffer } from '../runtime/wgsl.js';
import type { DirectBlocking } from './direct/common.js';
import type { Conv3dTile } from './tiles.js';

export interface Conv3dOptions {
  /**
   * Element type of the activation buffers (x, out, residual for forward; dy and dx for backward data; x and dy
   * for backward weight and bias); weights, bias, their gradients, the GN coefficients and the residual gate stay
   * f32. Default 'f32'. The kernels load f16 as f32, compute and accumulate in f32 and round once when they store
   * (except where slabs over channel chunks add partial sums into an f16 output: each chunk's store rounds).
   */
  dtype?: DType;
  /** Largest storage binding to use, in bytes (default and upper bound: the device's maxStorageBufferBindingSize). Tests lower it to force slabs. */
  maxBindingBytes?: number;
  /** Overrides the tile chosen from the shape and the device limits. */
  tile?: Conv3dTile;
  /** Weight gradient: number of split-K chunks per sample (default chosen from the shape). */
  splitK?: number;
  /**
   * Compile the tensor sizes into the shader as constants (one pipeline per layer shape; divisions by constants
   * are cheap) instead of reading them from the params (one pipeline per kernel size, stride and tile).
   * Default: true on hardware adapters, false on software ones, where each pipeline takes seconds to compile.
   */
  specialize?: boolean;
  /** Register prefetch of the next tile's operands (default: true on hardware adapters, false on software ones). */
  prefetch?: boolean;
  /**
   * Use the direct kernels of conv3d/direct (no workgroup memory, no barriers) instead of the implicit GEMMs.
   * Default: true on software adapters unless a `tile` is given. Shapes the direct kernels do not take (one
   * sample past a binding) fall back to the GEMMs.
   */
  direct?: boolean;
  /** Register blocking of the direct kernels (default chosen from the channel count). */
  directBlocking?: DirectBlocking;
  /**
   * Forward and weight gradient only: the conv reads relu(GN(x)) in place of x, normalising each element as it
   * is loaded (the GN output is never written). One vec4f per (sample, input channel), (mean, rstd * gamma,
   * beta, 0), as `groupNormCoefficients` writes them. Padding stays zero (it pads the normalised tensor).
   */
  inputNormRelu?: GPUBuffer;
  /**
   * Forward only: the store adds a residual, out = conv + bias + residual, or with `gate` a channel-gated one,
   * out = conv + bias + residual * gate[n, co] (TGNet's task-guided shortcut): the residual block's sum is then
   * written once instead of as conv output, gated shortcut and sum. `buffer` has the output's shape, `gate` [N, Cout].
   */
  residual?: { buffer: GPUBuffer; gate?: GPUBuffer };
}

/** The storage bindings of the forward's store epilogue: the residual, and its gate when there is one. */
export type ResidualKind = 'none' | 'add' | 'gated';

export function residualKind(residual: Conv3dOptions['residual']): ResidualKind {
  return residual ? (residual.gate ? 'gated' : 'add') : 'none';
}

/** The input prologue's coefficients (Conv3dOptions.inputNormRelu) checked against the input's N * Cin, or null. */
export function inputCoefficients(options: Conv3dOptions, N: number, Cin: number, what: string): GPUBuffer | null {
  const coef = options.inputNormRelu ?? null;
  if (coef) checkBuffer(coef, 4 * N * Cin, `${what} input coefficients`);
  return coef;
}

/** The activations' element type of `options`, checked and required of `gpu` (throws naming 'shader-f16' without it). */
export function activationDType(gpu: Gpu, options: Conv3dOptions, what: string): DType {
  const dtype = options.dtype ?? 'f32';
  requireDType(gpu, dtype, what);
  return dtype;
}

/**
 * WGSL of a load of `dtype` storage as an f32 value. An f32 load is left as written, so the f32 kernels' WGSL
 * (and their pipeline cache) is what it was before f16 storage existed.
 */
export function loadF32(dtype: DType, expr: string): string {
  return dtype === 'f16' ? `f32(${expr})` : expr;
}

/** WGSL of an f32 value rounded for a `dtype` store (once, at the store). */
export function storeAs(dtype: DType, expr: string): string {
  return dtype === 'f16' ? `f16(${expr})` : expr;
}

/** The pipeline-key suffix of `dtype`: empty for f32, so the f32 keys stay as they were. */
export function dtypeKey(dtype: DType): string {
  return dtype === 'f16' ? ':f16' : '';
}

/**
 * What the store adds to the conv sum at output element `index` of output channel `channel` (WGSL expressions),
 * reading `rs` (the residual, of the activations' `dtype`) and `gts` (the f32 gate) at `gate` (an index
 * expression of [N, Cout]).
 */
export function residualTerm(kind: ResidualKind, index: string, gate: string, dtype: DType = 'f32'): string {
  const r = loadF32(dtype, `rs[${index}]`);
  return kind === 'none' ? '' : kind === 'add' ? ` + ${r}` : ` + ${r} * gts[${gate}]`;
}

/** The WGSL of the input prologue: relu(GN(v)) from the channel's coefficients (mean, rstd * gamma, beta, 0). */
export const NORM_RELU_WGSL = 'fn normRelu(v: f32, c: vec4f) -> f32 { return max(fma(v - c.x, c.y, c.z), 0.0); }';

export function useDirect(gpu: Gpu, options: Conv3dOptions): boolean {
  return options.direct ?? (options.tile === undefined && isSoftwareAdapter(gpu));
}

/** The GEMM path's compile-time choices: sizes as constants, register prefetch. */
export function gemmChoices(gpu: Gpu, options: Conv3dOptions): { specialize: boolean; prefetch: boolean } {
  const hardware = !isSoftwareAdapter(gpu);
  return { specialize: options.specialize ?? hardware, prefetch: options.prefetch ?? hardware };
}
