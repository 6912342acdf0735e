/**
 * TGNet (and DoDNet, its baseline) exactly as the PyTorch twin's TGNet (bench/torch/tgnet_torch.py): same module tree, same
 * state-dict names and shapes, same numerics, so PyTorch weights load by name and logits and gradients match.
 *
 * Encoder: stem conv, five stages of pre-activation residual blocks (GN-ReLU-conv), strides 1, 2, 2, 2, 2.
 * Bottleneck: GN-ReLU-conv fusion; a controller turns [GAP(ReLU(GN(bottleneck))); task one-hot] into the
 * 162 weights of a per-sample dynamic head. Decoder: trilinear x2, add the skip, residual block, four times.
 * TGNet's additions: task-guided residual blocks in the encoder (the first block of each stage; its shortcut is
 * gated by the task) and task-guided attention on each skip connection. The paper's Table 2 ablation replaces
 * the channel attention by a spatial gate (`spatial`), by both in CBAM's order (`serial`) or by both summed as in
 * scSE (`parallel`), all three without task-guided residual blocks.
 */
import {
  add, channelGate, conv3d, dynamicHead, globalAvgPool, sigmoid, slice, spatialGate, taskConcat, upsampleTrilinear2x,
} from '../autograd/index.js';
import { checkpoint } from '../autograd/activation-checkpoint.js';
import { tidy } from '../autograd/scope.js';
import { Tensor } from '../autograd/tensor.js';
import { HEAD_PARAMS } from '../kernels/dynamic-head.js';
import { HEAD_CHANNELS } from '../kernels/dynamic-head-layout.js';
import { checkTaskIds } from '../kernels/task-concat.js';
import { createRng, type Rng } from '../nn/init.js';
import { Conv3d, GroupNorm } from '../nn/layers.js';
import { Module, ModuleList } from '../nn/module.js';
import { NUM_TASKS } from './tasks.js';

/** Weights of the dynamic head per sample: 8x8 + 8x8 + 2x8 weights, then 8 + 8 + 2 biases. */
export const HEAD_PARAM_COUNT = HEAD_PARAMS;
/** Four stride-2 stages: each spatial side of TGNet's input (crop, tile, volume) must halve four times. */
export const TOTAL_STRIDE = 16;

/** Whether `side` can be a spatial side of TGNet's input: a positive multiple of TOTAL_STRIDE. */
export function isGridSide(side: number): boolean {
  return Number.isInteger(side) && side >= TOTAL_STRIDE && side % TOTAL_STRIDE === 0;
}

export const TGNET_VARIANTS = ['tgnet', 'tgnet-a', 'dodnet', 'spatial', 'serial', 'parallel'] as const;
/**
 * tgnet: task-guided residual blocks + channel skip attention; tgnet-a: channel skip attention only; dodnet: no
 * task guidance in the backbone; spatial / serial / parallel: the Table 2 skip attentions (see SkipAttention),
 * without task-guided residual blocks.
 */
export type TGNetVariant = (typeof TGNET_VARIANTS)[number];

/** How a skip connection is gated (the twin's SkipAttention kinds). */
export type SkipAttentionKind = 'channel' | 'spatial' | 'serial' | 'parallel';

/** Which encoder blocks of a `tgnet` are task-guided: the first of each stage (the paper's) or every one. */
export const TASK_GUIDED_BLOCKS = ['first', 'all'] as const;
export type TaskGuidedBlocks = (typeof TASK_GUIDED_BLOCKS)[number];

/** The architecture switches of a variant (the twin's variant_layout). */
export function variantLayout(variant: TGNetVariant): { taskGuidedEncoder: boolean; attention: SkipAttentionKind | null } {
  switch (variant) {
    case 'tgnet': return { taskGuidedEncoder: true, attention: 'channel' };
    case 'tgnet-a': return { taskGuidedEncoder: false, attention: 'channel' };
    case 'dodnet': return { taskGuidedEncoder: false, attention: null };
    default: return { taskGuidedEncoder: false, attention: variant };
  }
}

/** DoDNet's norm: GroupNorm with up to 16 groups. */
function groupNormFor(channels: number): GroupNorm {
  return new GroupNorm(Math.min(16, channels), channels);
}

/** ReLU(GN(x)) then a conv: the 1x1 shortcut of a residual block, the fusion and the pre-classifier. */
export class NormReluConv extends Module {
  readonly norm: GroupNorm;
  readonly conv: Conv3d;

  /** Whether the conv normalises its input as it loads it (normReluConv3d) or runs after a materialised GN-ReLU. */
  readonly fused: boolean;

  constructor(cin: number, cout: number, k: number, options: { stride?: number; bias?: boolean; weightStandardization?: boolean; fused?: boolean; rng: Rng }) {
    super();
    this.fused = options.fused ?? true;
    this.norm = this.registerModule('norm', groupNormFor(cin));
    this.conv = this.registerModule('conv', new Conv3d(cin, cout, k, {
      stride: options.stride ?? 1, bias: options.bias ?? false,
      weightStandardization: options.weightStandardization ?? true, rng: options.rng,
    }));
  }

  forward(x: Tensor): Tensor {
    return this.fused ? this.conv.forwardAfterNormRelu(this.norm, x) : this.conv.forward(this.norm.forwardRelu(x));
  }
}

/** sigmoid(W [GAP(h); one-hot(task)] + b): one gate value per channel and sample. `fc` is a 1x1x1 conv as in PyTorch. */
export class TaskGate extends Module {
  readonly fc: Conv3d;

  constructor(readonly inChannels: number, readonly outChannels: number, readonly numTasks: number, rng: Rng) {
    super();
    this.fc = this.registerModule('fc', new Conv3d(inChannels + numTasks, outChannels, 1, { bias: true, rng }));
  }

  /** h [N, inChannels, ...] -> gate [N, outChannels]. */
  forward(h: Tensor, taskIds: readonly number[]): Tensor {
    const n = h.shape[0];
    const code = taskConcat(globalAvgPool(h), taskIds, this.numTasks).reshape([n, this.inChannels + this.numTasks, 1, 1, 1]);
    return sigmoid(this.fc.forward(code)).reshape([n, this.outChannels]);
  }
}

/**
 * Pre-activation residual block: h = conv1(ReLU(GN(x))), out = conv2(ReLU(GN(h))) + shortcut(x). Task-guided
 * (TGNet's encoder), the shortcut is scaled per channel by a gate computed from GAP(h) and the task.
 */
export class ResidualBlock extends Module {
  readonly gn1: GroupNorm;
  readonly conv1: Conv3d;
  readonly gn2: GroupNorm;
  readonly conv2: Conv3d;
  /** 1x1 projection shortcut, present when the block changes the shape (stride or channels). */
  readonly down: NormReluConv | null;
  readonly gate: TaskGate | null;
  /** See TGNetOptions.fused. */
  readonly fused: boolean;

  constructor(cin: number, cout: number, options: { stride?: number; taskGuided?: boolean; numTasks: number; fused?: boolean; rng: Rng }) {
    super();
    const stride = options.stride ?? 1;
    this.fused = options.fused ?? true;
    const rng = options.rng;
    this.gn1 = this.registerModule('gn1', groupNormFor(cin));
    this.conv1 = this.registerModule('conv1', new Conv3d(cin, cout, 3, { stride, bias: false, weightStandardization: true, rng }));
    this.gn2 = this.registerModule('gn2', groupNormFor(cout));
    this.conv2 = this.registerModule('conv2', new Conv3d(cout, cout, 3, { bias: false, weightStandardization: true, rng }));
    this.down = stride !== 1 || cin !== cout ? this.registerModule('down', new NormReluConv(cin, cout, 1, { stride, fused: this.fused, rng })) : null;
    this.gate = options.taskGuided ? this.registerModule('gate', new TaskGate(cout, cout, options.numTasks, rng)) : null;
  }

  forward(x: Tensor, taskIds: readonly number[]): Tensor {
    const skip = this.down ? this.down.forward(x) : x;
    if (!this.fused) {
      const h = this.conv1.forward(this.gn1.forwardRelu(x));
      const out = this.conv2.forward(this.gn2.forwardRelu(h));
      return add(out, this.gate ? channelGate(skip, this.gate.forward(h, taskIds)) : skip);
    }
    const h = this.conv1.forwardAfterNormRelu(this.gn1, x);
    // conv2(ReLU(GN(h))) + skip [* gate]: the sum is the conv's store (see normReluConv3d).
    return this.conv2.forwardAfterNormRelu(this.gn2, h, { residual: skip, gate: this.gate?.forward(h, taskIds) });
  }
}

/**
 * sigmoid(W [h; one-hot(task) broadcast over space] + b): one gate value per voxel and sample, [N, 1, D, H, W].
 * `fc` is the reference's 1x1x1 conv over C + numTasks channels; since the task channels are constant over
 * space, their share is a per-sample bias, so the conv runs over h's C channels (a slice of the weight) and the
 * task term W[:, C + task] + b comes from a 1x1x1 conv over the [N, numTasks] one-hot.
 */
export class SpatialGate extends Module {
  readonly fc: Conv3d;

  constructor(readonly inChannels: number, readonly numTasks: number, rng: Rng) {
    super();
    this.fc = this.registerModule('fc', new Conv3d(inChannels + numTasks, 1, 1, { bias: true, rng }));
  }

  /** h [N, inChannels, D, H, W] -> gate [N, 1, D, H, W]. */
  forward(h: Tensor, taskIds: readonly number[]): Tensor {
    const n = h.shape[0];
    const c = this.inChannels;
    checkTaskIds(taskIds, n, this.numTasks, 'SpatialGate.forward');
    const oneHot = new Float32Array(n * this.numTasks);
    taskIds.forEach((t, i) => { oneHot[i * this.numTasks + t] = 1; });
    const taskCode = Tensor.fromArray(oneHot, [n, this.numTasks, 1, 1, 1]);
    const taskTerm = conv3d(taskCode, slice(this.fc.weight, 1, c, this.numTasks), { bias: this.fc.bias });
    return sigmoid(add(conv3d(h, slice(this.fc.weight, 1, 0, c)), taskTerm));
  }
}

/**
 * Task-guided attention on a skip connection, from g = ReLU(GN(up)), `up` the upsampled decoder feature
 * (the twin's SkipAttention): channel (TGNet's): skip * ca, ca = TaskGate(g) per channel; spatial:
 * skip * sa, sa = SpatialGate(g) per voxel; serial (CBAM's order): skip * ca * SpatialGate(g * ca);
 * parallel (scSE's sum): skip * ca + skip * sa.
 */
export class SkipAttention extends Module {
  readonly gn: GroupNorm;
  readonly gate: TaskGate | null;
  readonly spatial: SpatialGate | null;

  constructor(channels: number, numTasks: number, rng: Rng, readonly kind: SkipAttentionKind = 'channel') {
    super();
    this.gn = this.registerModule('gn', groupNormFor(channels));
    this.gate = kind !== 'spatial' ? this.registerModule('gate', new TaskGate(channels, channels, numTasks, rng)) : null;
    this.spatial = kind !== 'channel' ? this.registerModule('spatial', new SpatialGate(channels, numTasks, rng)) : null;
  }

  forward(skip: Tensor, up: Tensor, taskIds: readonly number[]): Tensor {
    const g = this.gn.forwardRelu(up);
    if (this.kind === 'spatial') return spatialGate(skip, this.spatial!.forward(g, taskIds));
    const ca = this.gate!.forward(g, taskIds);
    if (this.kind === 'channel') return channelGate(skip, ca);
    if (this.kind === 'serial') return spatialGate(channelGate(skip, ca), this.spatial!.forward(channelGate(g, ca), taskIds));
    return add(channelGate(skip, ca), spatialGate(skip, this.spatial!.forward(g, taskIds)));
  }
}

export interface TGNetOptions {
  variant: TGNetVariant;
  /** Channels of the first stage (the paper: 32); stages use width x 1, 2, 4, 8, 8. */
  width?: number;
  numTasks?: number;
  /** Seed of the initial weights (PyTorch's default init distributions). */
  seed?: number;
  /**
   * tgnet only: 'first' (default, the paper's +1.45% parameters over DoDNet) gates the first block of each
   * encoder stage, 'all' every encoder block (the layout before the reference was corrected; --tg-res-blocks all).
   */
  taskGuidedBlocks?: TaskGuidedBlocks;
  /**
   * Recompute the big encoder stages' activations in backward instead of keeping them from the forward pass
   * (`checkpoint`, --checkpoint-activations): less memory for some extra forward work; outputs and gradients are
   * bit-identical. Off by default. Not part of the state dict.
   */
  checkpointActivations?: boolean;
  /**
   * Fused kernels (default true): each GN-ReLU-conv normalises the conv's input as it loads it, and each residual
   * block's sum (shortcut, gated or not) is written by conv2's store. False runs the unfused graph (GN-ReLU
   * written out, separate gate and add): the same function up to float rounding, for comparisons and benchmarks.
   * Not part of the state dict.
   */
  fused?: boolean;
}

/** Encoder stages recomputed under checkpointActivations: the first three, which hold most of the encoder's activations. */
export const CHECKPOINTED_ENCODER_STAGES = 3;

function checkWidth(width: number): void {
  if (!Number.isInteger(width) || width < 1) throw new RangeError(`TGNet.create: width must be a positive integer, got ${width}`);
  for (const c of [width, 2 * width, 4 * width, 8 * width]) {
    const groups = Math.min(16, c);
    if (c % groups !== 0) {
      throw new RangeError(`TGNet.create: width ${width} gives a stage of ${c} channels, which GroupNorm(${groups}) cannot split; expected every stage width (w, 2w, 4w, 8w) below 16 or a multiple of 16, e.g. width 2, 4, 8, 16 or 32`);
    }
  }
}

export class TGNet extends Module {
  readonly variant: TGNetVariant;
  readonly width: number;
  readonly numTasks: number;
  readonly taskGuidedBlocks: TaskGuidedBlocks;
  /** How many leading encoder stages run under `checkpoint` (0: none; see TGNetOptions.checkpointActivations). */
  readonly checkpointedStages: number;
  readonly conv1: Conv3d;
  readonly enc: ModuleList<ModuleList<ResidualBlock>>;
  readonly fusion: NormReluConv;
  readonly gapGn: GroupNorm;
  readonly controller: Conv3d;
  readonly dec: ModuleList<ResidualBlock>;
  readonly att: ModuleList<SkipAttention> | null;
  readonly precls: NormReluConv;

  /** Builds a model with freshly initialised weights; see TGNetOptions. */
  static create(options: TGNetOptions): TGNet {
    return new TGNet(options);
  }

  private constructor(options: TGNetOptions) {
    super();
    const variant = options?.variant;
    if (!(TGNET_VARIANTS as readonly string[]).includes(variant)) {
      throw new RangeError(`TGNet.create: variant '${String(variant)}' is unknown; expected one of ${TGNET_VARIANTS.join(', ')}`);
    }
    const width = options.width ?? 32;
    checkWidth(width);
    const numTasks = options.numTasks ?? NUM_TASKS;
    if (!Number.isInteger(numTasks) || numTasks < 1) throw new RangeError(`TGNet.create: numTasks must be a positive integer, got ${numTasks}`);
    const taskGuidedBlocks = options.taskGuidedBlocks ?? 'first';
    if (!(TASK_GUIDED_BLOCKS as readonly string[]).includes(taskGuidedBlocks)) {
      throw new RangeError(`TGNet.create: taskGuidedBlocks '${String(taskGuidedBlocks)}' is unknown; expected one of ${TASK_GUIDED_BLOCKS.join(', ')}`);
    }
    const { taskGuidedEncoder, attention } = variantLayout(variant);
    if (taskGuidedBlocks === 'all' && !taskGuidedEncoder) {
      throw new RangeError(`TGNet.create: taskGuidedBlocks 'all' needs variant 'tgnet' (the only one with task-guided residual blocks), got '${variant}'`);
    }
    this.variant = variant;
    this.width = width;
    this.numTasks = numTasks;
    this.taskGuidedBlocks = taskGuidedBlocks;
    this.checkpointedStages = options.checkpointActivations ? CHECKPOINTED_ENCODER_STAGES : 0;
    const fused = options.fused ?? true;
    const rng = createRng(options.seed ?? 0);
    const w = width;

    // Registration order follows the reference's __init__, so namedParameters() lists names in state_dict order.
    this.conv1 = this.registerModule('conv1', new Conv3d(1, w, 3, { bias: false, weightStandardization: true, rng }));
    const stages: [number, number, number, number][] = [[w, w, 1, 1], [w, 2 * w, 2, 2], [2 * w, 4 * w, 2, 2], [4 * w, 8 * w, 2, 2], [8 * w, 8 * w, 2, 2]];
    this.enc = this.registerModule('enc', new ModuleList(stages.map(([cin, cout, stride, blocks]) => {
      const stage = [new ResidualBlock(cin, cout, { stride, taskGuided: taskGuidedEncoder, numTasks, fused, rng })];
      const laterGuided = taskGuidedEncoder && taskGuidedBlocks === 'all';
      for (let b = 1; b < blocks; b++) stage.push(new ResidualBlock(cout, cout, { taskGuided: laterGuided, numTasks, fused, rng }));
      return new ModuleList(stage);
    })));
    // No bias, as DoDNet's fusionConv.
    this.fusion = this.registerModule('fusion', new NormReluConv(8 * w, 8 * w, 1, { fused, rng }));
    this.gapGn = this.registerModule('gap_gn', groupNormFor(8 * w));
    this.controller = this.registerModule('controller', new Conv3d(8 * w + numTasks, HEAD_PARAM_COUNT, 1, { bias: true, rng }));
    const decoder: [number, number][] = [[8 * w, 4 * w], [4 * w, 2 * w], [2 * w, w], [w, w]];
    this.dec = this.registerModule('dec', new ModuleList(decoder.map(([cin, cout]) => new ResidualBlock(cin, cout, { numTasks, fused, rng }))));
    this.att = attention
      ? this.registerModule('att', new ModuleList(decoder.map(([c]) => new SkipAttention(c, numTasks, rng, attention))))
      : null;
    this.precls = this.registerModule('precls', new NormReluConv(w, HEAD_CHANNELS, 1, { bias: true, weightStandardization: false, fused, rng }));
  }

  /**
   * Strict load by state-dict name (Module.loadStateDict), after refusing, with what changed, a state dict of
   * the layout used before the reference was corrected (see describeLayoutMismatch).
   */
  override loadStateDict(...args: Parameters<Module['loadStateDict']>): ReturnType<Module['loadStateDict']> {
    const problem = describeLayoutMismatch(args[0].keys(), this);
    if (problem) throw new Error(`TGNet.loadStateDict: ${problem}`);
    return super.loadStateDict(...args);
  }

  /**
   * x [N, 1, D, H, W] (D, H, W multiples of 16), one task id per sample -> logits [N, 2, D, H, W]
   * (organ, tumour; sigmoid gives probabilities). Intermediates not needed by backward are freed on return.
   */
  forward(x: Tensor, taskIds: readonly number[]): Tensor {
    this.checkInputs(x, taskIds);
    return tidy(() => {
      let h = this.conv1.forward(x);
      const skips: Tensor[] = [];
      for (let i = 0; i < this.enc.length; i++) {
        const stage = this.enc.at(i);
        const runStage = (input: Tensor): Tensor => {
          let out = input;
          for (const block of stage) out = block.forward(out, taskIds);
          return out;
        };
        h = i < this.checkpointedStages ? checkpoint(runStage, [h]) : runStage(h);
        if (i < this.enc.length - 1) skips.push(h);
      }
      h = this.fusion.forward(h);
      const n = x.shape[0];
      const code = taskConcat(globalAvgPool(this.gapGn.forwardRelu(h)), taskIds, this.numTasks);
      const headParams = this.controller.forward(code.reshape([n, 8 * this.width + this.numTasks, 1, 1, 1])).reshape([n, HEAD_PARAM_COUNT]);
      for (let i = 0; i < this.dec.length; i++) {
        const up = upsampleTrilinear2x(h);
        let skip = skips[skips.length - 1 - i];
        if (this.att) skip = this.att.at(i).forward(skip, up, taskIds);
        h = this.dec.at(i).forward(add(up, skip), taskIds);
      }
      return dynamicHead(this.precls.forward(h), headParams);
    });
  }

  private checkInputs(x: Tensor, taskIds: readonly number[]): void {
    const shape = `[${x.shape.join(', ')}]`;
    if (x.rank !== 5 || x.shape[1] !== 1) {
      throw new RangeError(`TGNet.forward: input ${shape} must be [N, 1, D, H, W] (one CT channel)`);
    }
    const [n, , ...spatial] = x.shape;
    if (n < 1 || spatial.some((d) => d < TOTAL_STRIDE || d % TOTAL_STRIDE !== 0)) {
      throw new RangeError(`TGNet.forward: input ${shape} needs N >= 1 and D, H, W positive multiples of ${TOTAL_STRIDE} (four stride-2 stages)`);
    }
    if (!Array.isArray(taskIds) || taskIds.length !== n) {
      const got = Array.isArray(taskIds) ? `${taskIds.length} task ids` : String(taskIds);
      throw new RangeError(`TGNet.forward: expected ${n} task ids (one per sample of input ${shape}), got ${got}`);
    }
    taskIds.forEach((t, i) => {
      if (!Number.isInteger(t) || t < 0 || t >= this.numTasks) {
        throw new RangeError(`TGNet.forward: task id ${t} at position ${i} is out of range; expected an integer in [0, ${this.numTasks - 1}]`);
      }
    });
  }
}

/** State-dict names of the task gate on encoder block `block` of stage `stage`. */
const encoderGatePattern = /^enc\.(\d+)\.(\d+)\.gate\./;

/**
 * Why a state dict with these names cannot load into `target` because of a layout change, or null when no such
 * change explains the difference (ordinary missing or unexpected names are reported by loadStateDict itself).
 * Checkpoints written before the reference was corrected have a fusion conv bias (every variant) and, for tgnet,
 * a task gate on each of the nine encoder blocks; the corrected model has no fusion bias and gates the first
 * block of each stage (five gates) unless built with taskGuidedBlocks: 'all'.
 */
export function describeLayoutMismatch(
  names: Iterable<string>, target: { variant: TGNetVariant; taskGuidedBlocks: TaskGuidedBlocks },
): string | null {
  let fusionBias = false;
  let laterGates = 0;
  let gates = 0;
  for (const name of names) {
    if (name === 'fusion.conv.bias') fusionBias = true;
    const m = encoderGatePattern.exec(name);
    if (m && name.endsWith('.gate.fc.weight')) {
      gates++;
      if (Number(m[2]) > 0) laterGates++;
    }
  }
  if (fusionBias) {
    const gated = gates > 5 ? ` and a task gate on all ${gates} encoder blocks (now only the first block of each stage, five gates)` : '';
    return `the state dict has 'fusion.conv.bias'${gated}: it was written by an older TGNet whose layout no longer exists `
      + `(the fusion conv has no bias since the reference follows DoDNet's fusionConv${gates > 5 ? ', and task-guided residual blocks are the first of each encoder stage' : ''}); `
      + 'its weights cannot be mapped onto the corrected model, so retrain (or export again from the corrected PyTorch model)';
  }
  if (laterGates > 0 && target.variant === 'tgnet' && target.taskGuidedBlocks === 'first') {
    return `the state dict has task gates on ${gates} encoder blocks, including blocks after the first of a stage (the `
      + 'taskGuidedBlocks \'all\' layout, --tg-res-blocks all in the reference), but this model gates only the first block of each '
      + "stage; build it with TGNet.create({ variant: 'tgnet', taskGuidedBlocks: 'all' })";
  }
  return null;
}
