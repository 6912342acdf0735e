/** tgnet/nn: optimisers, schedules and tensor files. */
export { SGD, type SgdConfig } from './optim.js';
export { polyLr } from './lr-schedule.js';
export * from './safetensors.js';
export { Module, ModuleList, createParameter, type Parameter, type HostTensor, type LoadStateDictOptions, type LoadStateDictResult } from './module.js';
export { Conv3d, GroupNorm, type Conv3dOptions, type GroupNormOptions } from './layers.js';
export { createRng, uniformInit, fanIn, kaimingUniformDefault, defaultBiasInit, type Rng } from './init.js';
