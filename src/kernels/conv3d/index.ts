/**
 * conv3d on NCDHW tensors (cross-correlation as PyTorch's F.conv3d): forward, data gradient, weight
 * gradient (split-K, deterministic two-pass reduction) and bias gradient. Activations are f32 or, with
 * Conv3dOptions.dtype 'f16', half floats (loaded as f32, accumulated in f32, rounded once at the store);
 * weights, bias and their gradients are f32.
 *
 * Two families of kernels: implicit GEMMs (forward.ts, backward-data.ts, backward-weight.ts on the GEMM
 * skeleton of gemm.ts; the hardware path) and the direct kernels of direct/ (the default on software
 * adapters). Tensors larger than one storage binding are processed in slabs (slabs.ts).
 */
export { conv3dOutputShape, type Conv3dShape } from './geometry.js';
export { chooseConv3dTile, type Conv3dTile } from './tiles.js';
export type { Conv3dOptions } from './options.js';
export { DIRECT_MAX_KERNEL, type DirectBlocking } from './direct/common.js';
export { conv3dForward } from './forward.js';
export { conv3dBackwardData } from './backward-data.js';
export { conv3dBackwardBias, conv3dBackwardWeight } from './backward-weight.js';
