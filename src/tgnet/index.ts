/** tgnet/tgnet: the TGNet model (and its DoDNet / attention-only variants) and its task table. */
export { TASK_NAMES, NUM_TASKS, taskId, type TaskName } from './tasks.js';
export {
  TGNet, TGNET_VARIANTS, HEAD_PARAM_COUNT, type TGNetVariant, type TGNetOptions,
  NormReluConv, TaskGate, ResidualBlock, SkipAttention,
} from './model.js';
