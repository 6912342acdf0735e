/**
 * conv3d(relu(groupNorm(x))) as one differentiable op: TGNet's pre-activation (GN, ReLU, conv) without the
 * normalised tensor. The forward pass computes the group statistics, and the conv normalises each input element
 * as it loads it (Conv3dOptions.inputNormRelu); the backward pass does the same in the weight gradient. So the
 * GN output is neither written, read back, nor kept for backward: per pre-activation one activation-sized tensor
 * less of traffic twice and of saved memory (what PyTorch keeps: x for GN's backward and relu(GN(x)) for the
 * conv's). Gradients: gy = conv's data gradient (w.r.t. relu(GN(x))), then GN-ReLU's backward from x, the
 * statistics and gy, as groupNormRelu's rule.
 *
 * A residual block ends in conv2(...) + shortcut, TGNet's task-guided one in conv2(...) + shortcut * gate: with
 * `residual` (and `gate`) the conv's store adds it (Conv3dOptions.residual), so the block's sum is written once;
 * the shortcut's gradient is the output's (times the gate), the gate's the voxel sum of output gradient x shortcut.
 */
import { conv3dBackwardBias, conv3dBackwardData, conv3dBackwardWeight, conv3dForward, conv3dOutputShape, type Conv3dShape } from '../../kernels/conv3d/index.js';
import { channelGateBackward } from '../../kernels/channel-gate.js';
import { groupNormBackward, groupNormCoefficients } from '../../kernels/group-norm.js';
import { recordOp } from '../tape.js';
import { Tensor } from '../tensor.js';
import type { Conv3dArgs } from './conv.js';

/** The group norm in front of the conv: nn.GroupNorm(groups, C) with affine weight and bias [C]. */
export interface NormArgs {
  groups: number;
  weight: Tensor;
  bias: Tensor;
  eps?: number;
}

export interface NormReluConvArgs extends Conv3dArgs {
  /** Added to the output (shape of the output): a residual block's shortcut. */
  residual?: Tensor | null;
  /** [N, Cout]: the residual is scaled per (sample, channel) before it is added (needs `residual`). */
  gate?: Tensor | null;
}

/**
 * F.conv3d(relu(F.group_norm(x, groups, weight, bias, eps)), w, bias, stride, padding) [+ residual [* gate]],
 * NCDHW, cubic kernel.
 */
export function normReluConv3d(x: Tensor, norm: NormArgs, w: Tensor, args: NormReluConvArgs = {}): Tensor {
  const { bias = null, stride = 1, padding = 0, residual = null, gate = null } = args;
  const { groups, weight: gnWeight, bias: gnBias, eps = 1e-5 } = norm;
  if (x.rank !== 5) throw new RangeError(`normReluConv3d: input [${x.shape.join(', ')}] must be [N, C, D, H, W]`);
  const [N, C] = x.shape;
  for (const [name, t] of [['norm weight', gnWeight], ['norm bias', gnBias]] as const) {
    if (t.rank !== 1 || t.shape[0] !== C) {
      throw new RangeError(`normReluConv3d: ${name} [${t.shape.join(', ')}] must be [${C}] for input [${x.shape.join(', ')}]`);
    }
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== w.shape[0])) {
    throw new RangeError(`normReluConv3d: bias [${bias.shape.join(', ')}] must be [${w.shape[0]}] (one per output channel)`);
  }
  const shape: Conv3dShape = { x: x.shape, w: w.shape, stride, padding };
  const outShape = conv3dOutputShape(x.shape, w.shape, { stride, padding });
  if (residual && (residual.rank !== 5 || residual.shape.some((d, i) => d !== outShape[i]))) {
    throw new RangeError(`normReluConv3d: residual [${residual.shape.join(', ')}] must have the output's shape [${outShape.join(', ')}]`);
  }
  if (gate && !residual) throw new RangeError('normReluConv3d: a gate needs a residual to scale');
  if (gate && (gate.rank !== 2 || gate.shape[0] !== N || gate.shape[1] !== outShape[1])) {
    throw new RangeError(`normReluConv3d: gate [${gate.shape.join(', ')}] must be [N, Cout] = [${N}, ${outShape[1]}]`);
  }
  if (residual && residual.dtype !== x.dtype) {
    throw new TypeError(`normReluConv3d: residual is ${residual.dtype} but the input is ${x.dtype}; expected the same dtype`);
  }
  // Activations (x, the output, the residual and their gradients) in x's dtype; statistics and parameters f32.
  const dtype = x.dtype;
  const out = Tensor.empty(outShape, x.gpu, dtype);
  const mean = Tensor.empty([N * groups], x.gpu);
  const rstd = Tensor.empty([N * groups], x.gpu);
  const coef = Tensor.empty([N * C * 4], x.gpu);
  groupNormCoefficients(x.gpu, x.buffer, x.shape, groups, gnWeight.buffer, gnBias.buffer, mean.buffer, rstd.buffer, coef.buffer, { eps, dtype });
  conv3dForward(x.gpu, x.buffer, w.buffer, bias?.buffer ?? null, out.buffer, shape, {
    dtype, inputNormRelu: coef.buffer,
    ...(residual ? { residual: { buffer: residual.buffer, ...(gate ? { gate: gate.buffer } : {}) } } : {}),
  });
  // x, the norm's parameters, the weight, then whichever of bias, residual and gate are given.
  const optional = [bias, residual, gate].filter((t): t is Tensor => t !== null);
  const inputs = [x, gnWeight, gnBias, w, ...optional];
  const saved = [x, gnWeight, gnBias, w, mean, rstd, coef, ...(gate && residual ? [residual, gate] : [])];
  recordOp('normReluConv3d', inputs, out, saved, (g, [sx, sgw, sgb, sw, sm, sr, sc, sres, sgate]) => {
    // Pushed in the order of `inputs`.
    const grads: (Tensor | null)[] = [];
    if (x.requiresGrad || gnWeight.requiresGrad || gnBias.requiresGrad) {
      const gy = Tensor.empty(x.shape, g.gpu, dtype);
      conv3dBackwardData(g.gpu, g.buffer, sw.buffer, gy.buffer, shape, { dtype });
      const [dx, dgw, dgb] = [Tensor.empty(x.shape, g.gpu, dtype), Tensor.empty([C], g.gpu), Tensor.empty([C], g.gpu)];
      groupNormBackward(g.gpu, gy.buffer, sx.buffer, x.shape, groups, sgw.buffer, sgb.buffer, sm.buffer, sr.buffer,
        dx.buffer, dgw.buffer, dgb.buffer, { relu: true, dtype });
      gy.dispose();
      grads.push(dx, dgw, dgb);
    } else {
      grads.push(null, null, null);
    }
    let dw: Tensor | null = null;
    if (w.requiresGrad) {
      dw = Tensor.empty(w.shape, g.gpu);
      conv3dBackwardWeight(g.gpu, sx.buffer, g.buffer, dw.buffer, shape, { dtype, inputNormRelu: sc.buffer });
    }
    grads.push(dw);
    if (bias) {
      const db = bias.requiresGrad ? Tensor.empty(bias.shape, g.gpu) : null;
      if (db) conv3dBackwardBias(g.gpu, g.buffer, db.buffer, shape, { dtype });
      grads.push(db);
    }
    if (residual && gate) {
      const [dres, dgate] = [Tensor.empty(residual.shape, g.gpu, dtype), Tensor.empty(gate.shape, g.gpu)];
      channelGateBackward(g.gpu, g.buffer, sres.buffer, residual.shape, sgate.buffer, dres.buffer, dgate.buffer, { dtype });
      grads.push(dres, dgate);
    } else if (residual) {
      // The sum passes its gradient through unchanged: a view of it (the tape releases g itself).
      grads.push(g.shareAs(g.shape));
    }
    return grads;
  });
  mean.dispose();
  rstd.dispose();
  coef.dispose();
  return out;
}
