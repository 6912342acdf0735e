/**
 * conv3d(relu(groupNorm(x))) as one differentiable op: TGNet's pre-activation (GN, ReLU, conv) without the
 * normalised tensor. The forward pass computes the group statistics, and the conv normalises each input element
 * as it loads it (Conv3dOptions.inputNormRelu); the backward pass does the same in the weight gradient. So the
 * GN output is neither written, read back, nor kept for backward: per pre-activation one activation-sized tensor
 * less of traffic twice and of saved memory (what PyTorch keeps: x for GN's backward and relu(GN(x)) for the
 * conv's). Gradients: gy = conv's data gradient (w.r.t. relu(GN(x))), then GN-ReLU's backward from x, the
 * statistics and gy, as groupNormRelu's rule.
 */
import { conv3dBackwardBias, conv3dBackwardData, conv3dBackwardWeight, conv3dForward, conv3dOutputShape, type Conv3dShape } from '../../kernels/conv3d/index.js';
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

/** F.conv3d(relu(F.group_norm(x, groups, weight, bias, eps)), w, bias, stride, padding), NCDHW, cubic kernel. */
export function normReluConv3d(x: Tensor, norm: NormArgs, w: Tensor, args: Conv3dArgs = {}): Tensor {
  const { bias = null, stride = 1, padding = 0 } = args;
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
  const out = Tensor.empty(conv3dOutputShape(x.shape, w.shape, { stride, padding }), x.gpu);
  const mean = Tensor.empty([N * groups], x.gpu);
  const rstd = Tensor.empty([N * groups], x.gpu);
  const coef = Tensor.empty([N * C * 4], x.gpu);
  groupNormCoefficients(x.gpu, x.buffer, x.shape, groups, gnWeight.buffer, gnBias.buffer, mean.buffer, rstd.buffer, coef.buffer, { eps });
  conv3dForward(x.gpu, x.buffer, w.buffer, bias?.buffer ?? null, out.buffer, shape, { inputNormRelu: coef.buffer });
  const inputs = bias ? [x, gnWeight, gnBias, w, bias] : [x, gnWeight, gnBias, w];
  recordOp('normReluConv3d', inputs, out, [x, gnWeight, gnBias, w, mean, rstd, coef], (g, [sx, sgw, sgb, sw, sm, sr, sc]) => {
    const grads: (Tensor | null)[] = [null, null, null, null, null];
    if (x.requiresGrad || gnWeight.requiresGrad || gnBias.requiresGrad) {
      const gy = Tensor.empty(x.shape, g.gpu);
      conv3dBackwardData(g.gpu, g.buffer, sw.buffer, gy.buffer, shape);
      const [dx, dgw, dgb] = [Tensor.empty(x.shape, g.gpu), Tensor.empty([C], g.gpu), Tensor.empty([C], g.gpu)];
      groupNormBackward(g.gpu, gy.buffer, sx.buffer, x.shape, groups, sgw.buffer, sgb.buffer, sm.buffer, sr.buffer,
        dx.buffer, dgw.buffer, dgb.buffer, { relu: true });
      gy.dispose();
      grads[0] = dx;
      grads[1] = dgw;
      grads[2] = dgb;
    }
    if (w.requiresGrad) {
      grads[3] = Tensor.empty(w.shape, g.gpu);
      conv3dBackwardWeight(g.gpu, sx.buffer, g.buffer, grads[3].buffer, shape, { inputNormRelu: sc.buffer });
    }
    if (bias?.requiresGrad) {
      grads[4] = Tensor.empty(bias.shape, g.gpu);
      conv3dBackwardBias(g.gpu, g.buffer, grads[4].buffer, shape);
    }
    return grads.slice(0, inputs.length);
  });
  mean.dispose();
  rstd.dispose();
  coef.dispose();
  return out;
}
