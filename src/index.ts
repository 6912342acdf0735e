/**
 * tgnet: a WebGPU tensor engine with hand-written WGSL kernels and a small autograd, for TGNet
 * (task-guided multi-organ and tumour segmentation from partially labelled 3D CT).
 * Subpaths: tgnet/kernels, tgnet/autograd, tgnet/nn, tgnet/tgnet, tgnet/data, tgnet/eval.
 */
export { initGpu, getGpu, hasGpu, Gpu, type InitGpuOptions } from './kernels/runtime/gpu.js';
export * from './autograd/index.js';
export * from './nn/index.js';
export * from './tgnet/index.js';
export * from './eval/index.js';
