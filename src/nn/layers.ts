/** The layers TGNet is built from: Conv3d (optionally weight-standardised) and GroupNorm. */
import { conv3d, weightStandardize } from '../autograd/ops/conv.js';
import { groupNorm, groupNormRelu } from '../autograd/ops/norm.js';
import { normReluConv3d } from '../autograd/ops/norm-relu-conv.js';
import type { Tensor } from '../autograd/tensor.js';
import { createRng, defaultBiasInit, kaimingUniformDefault, type Rng } from './init.js';
import { createParameter, Module, type Parameter } from './module.js';

function checkPositiveInt(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${what} must be a positive integer, got ${value}`);
}

export interface Conv3dOptions {
  stride?: number;
  /** Zero padding on every side; default k >> 1 ("same" for odd k at stride 1). */
  padding?: number;
  /** Learnable bias (default true, as nn.Conv3d). */
  bias?: boolean;
  /** DoDNet's WSConv3d: standardise each filter ((w - mean) / sqrt(unbiased var + 1e-12)) before convolving. */
  weightStandardization?: boolean;
  /** Initialisation generator; defaults to a fixed seed so that construction is reproducible. */
  rng?: Rng;
}

/** nn.Conv3d with a cubic kernel: weight [cout, cin, k, k, k], bias [cout]. */
export class Conv3d extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly stride: number;
  readonly padding: number;
  readonly weightStandardization: boolean;

  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernelSize: number, options: Conv3dOptions = {}) {
    super();
    checkPositiveInt(inChannels, 'Conv3d: inChannels');
    checkPositiveInt(outChannels, 'Conv3d: outChannels');
    checkPositiveInt(kernelSize, 'Conv3d: kernelSize');
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? kernelSize >> 1;
    checkPositiveInt(this.stride, 'Conv3d: stride');
    if (!Number.isInteger(this.padding) || this.padding < 0) {
      throw new RangeError(`Conv3d: padding must be a non-negative integer, got ${this.padding}`);
    }
    this.weightStandardization = options.weightStandardization ?? false;
    const rng = options.rng ?? createRng(0);
    const shape = [outChannels, inChannels, kernelSize, kernelSize, kernelSize];
    this.weight = this.registerParameter('weight', createParameter(kaimingUniformDefault(shape, rng), shape));
    this.bias = (options.bias ?? true)
      ? this.registerParameter('bias', createParameter(defaultBiasInit(shape, rng), [outChannels]))
      : null;
  }

  forward(x: Tensor): Tensor {
    if (x.rank !== 5 || x.shape[1] !== this.inChannels) {
      throw new RangeError(`Conv3d.forward: input [${x.shape.join(', ')}] must be [N, ${this.inChannels}, D, H, W]`);
    }
    return conv3d(x, this.effectiveWeight(), { bias: this.bias, stride: this.stride, padding: this.padding });
  }

  /**
   * forward(norm.forwardRelu(x)) without the normalised tensor: the conv normalises its input as it loads it
   * (see normReluConv3d), the same values up to float rounding. With `residual`, adds it (times `gate` [N, Cout]
   * per sample and channel when given) in the conv's store: a residual block's sum in one write.
   */
  forwardAfterNormRelu(norm: GroupNorm, x: Tensor, shortcut: { residual?: Tensor; gate?: Tensor | null } = {}): Tensor {
    if (norm.channels !== this.inChannels) {
      throw new RangeError(`Conv3d.forwardAfterNormRelu: GroupNorm of ${norm.channels} channels in front of a conv of ${this.inChannels} input channels`);
    }
    if (x.rank !== 5 || x.shape[1] !== this.inChannels) {
      throw new RangeError(`Conv3d.forwardAfterNormRelu: input [${x.shape.join(', ')}] must be [N, ${this.inChannels}, D, H, W]`);
    }
    return normReluConv3d(x, { groups: norm.groups, weight: norm.weight, bias: norm.bias, eps: norm.eps }, this.effectiveWeight(),
      { bias: this.bias, stride: this.stride, padding: this.padding, residual: shortcut.residual ?? null, gate: shortcut.gate ?? null });
  }

  private effectiveWeight(): Tensor {
    return this.weightStandardization ? weightStandardize(this.weight) : this.weight;
  }
}

export interface GroupNormOptions {
  eps?: number;
}

/** nn.GroupNorm(groups, channels) with affine weight (ones) and bias (zeros), eps 1e-5. */
export class GroupNorm extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  readonly eps: number;

  constructor(readonly groups: number, readonly channels: number, options: GroupNormOptions = {}) {
    super();
    checkPositiveInt(groups, 'GroupNorm: groups');
    checkPositiveInt(channels, 'GroupNorm: channels');
    if (channels % groups !== 0) {
      throw new RangeError(`GroupNorm: ${channels} channels do not split into ${groups} groups; expected channels divisible by groups`);
    }
    this.eps = options.eps ?? 1e-5;
    this.weight = this.registerParameter('weight', createParameter(new Float32Array(channels).fill(1), [channels]));
    this.bias = this.registerParameter('bias', createParameter(new Float32Array(channels), [channels]));
  }

  forward(x: Tensor): Tensor {
    this.checkInput(x, 'forward');
    return groupNorm(x, this.groups, this.weight, this.bias, this.eps);
  }

  /** relu(forward(x)) in one fused pass: TGNet's pre-activation. */
  forwardRelu(x: Tensor): Tensor {
    this.checkInput(x, 'forwardRelu');
    return groupNormRelu(x, this.groups, this.weight, this.bias, this.eps);
  }

  private checkInput(x: Tensor, method: string): void {
    if (x.rank < 2 || x.shape[1] !== this.channels) {
      throw new RangeError(`GroupNorm.${method}: input [${x.shape.join(', ')}] must be [N, ${this.channels}, ...]`);
    }
  }
}
