/**
 * tgnet/kernels: the GPU runtime and every WGSL kernel as a typed launcher on raw GPUBuffers, usable
 * without tgnet's Tensor (see examples/embed-kernels.ts). CPU twins: tgnet/kernels/reference is internal.
 */
export * from './runtime/gpu.js';
export { BufferPool, sizeClass, type PoolStats } from './runtime/buffer-pool.js';
export { packParams, sizeOf, stridesOf } from './runtime/wgsl.js';
export * from './runtime/kernel-signature.js';
export { splitNC } from './runtime/shapes.js';
export * from './runtime/windows.js';
export * from './runtime/precision.js';
export * from './elementwise.js';
export * from './reduce.js';
export * from './matmul.js';
export * from './permute.js';
export * from './concat.js';
export * from './conv3d/index.js';
export * from './weight-standardize.js';
export * from './group-norm.js';
export * from './global-avg-pool.js';
export * from './channel-gate.js';
export * from './spatial-gate.js';
export * from './upsample.js';
export * from './dynamic-head.js';
export * from './partial-label-loss.js';
export * from './sgd.js';
export * from './adam.js';
export * from './task-concat.js';
export * from './non-finite.js';
