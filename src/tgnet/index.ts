/** tgnet/tgnet: the TGNet model (and its DoDNet / attention-only variants) and its task table. */
export { TASK_NAMES, NUM_TASKS, taskId, type TaskName } from './tasks.js';
export {
  TGNet, TGNET_VARIANTS, HEAD_PARAM_COUNT, TOTAL_STRIDE, isGridSide, TASK_GUIDED_BLOCKS, type TGNetVariant, type TGNetOptions,
  type TaskGuidedBlocks, type SkipAttentionKind, variantLayout, describeLayoutMismatch,
  NormReluConv, TaskGate, SpatialGate, ResidualBlock, SkipAttention,
} from './model.js';
export {
  Trainer, train, type TrainerOptions, type TrainOptions, type TrainingBatch, type BatchSource, type TrainLogEvent,
  type TrainCheckpointEvent, type TrainStepResult, type TrainResult,
} from './train.js';
export {
  saveCheckpoint, loadCheckpoint, encodeCheckpoint, decodeCheckpoint, checkCheckpointFits, CHECKPOINT_FORMAT,
  CHECKPOINT_FORMAT_VERSION, type Checkpoint, type CheckpointMeta, type CheckpointTensor, type CheckpointTarget,
} from './checkpoint.js';
