/** tgnet/nn: optimisers, schedules and tensor files. */
export { SGD, type SgdConfig } from './optim.js';
export { polyLr } from './lr-schedule.js';
export * from './safetensors.js';
