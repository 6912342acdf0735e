/** tgnet/nn: optimisers, schedules and tensor files. */
export { SGD, Adam, AdamW, OPTIMIZER_KINDS, type SgdConfig, type AdamConfig, type Optimizer, type OptimizerKind, type OptimizerState, type StepOptions } from './optim.js';
export { LossScaler, type LossScalerOptions, type LossScalerState } from './loss-scaler.js';
export { polyLr, scheduledLr, type LrDecay, type ScheduleOptions } from './lr-schedule.js';
export * from './safetensors.js';
export { Module, ModuleList, createParameter, type Parameter, type HostTensor, type LoadStateDictOptions, type LoadStateDictResult } from './module.js';
export { Conv3d, GroupNorm, type Conv3dOptions, type GroupNormOptions } from './layers.js';
export { createRng, uniformInit, fanIn, kaimingUniformDefault, defaultBiasInit, type Rng } from './init.js';
export * from './pth/index.js';
