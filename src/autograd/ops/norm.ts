/** Group normalisation (optionally fused with the ReLU that follows it in TGNet) and its gradient. */
import { groupNormBackward, groupNormForward } from '../../kernels/group-norm.js';
import { recordOp } from '../tape.js';
import { asF32 } from './elementwise.js';
import { Tensor } from '../tensor.js';

function groupNormImpl(x: Tensor, groups: number, weight: Tensor, bias: Tensor, eps: number, relu: boolean): Tensor {
  const C = x.shape[1];
  for (const [name, t] of [['weight', weight], ['bias', bias]] as const) {
    if (t.rank !== 1 || t.shape[0] !== C) {
      throw new RangeError(`groupNorm: ${name} [${t.shape.join(', ')}] must be [${C}] for input [${x.shape.join(', ')}]`);
    }
  }
  const N = x.shape[0];
  // x, y and their gradients in x's dtype; the statistics, weight, bias and their gradients f32.
  const dtype = x.dtype;
  weight = asF32(weight);
  bias = asF32(bias);
  const y = Tensor.empty(x.shape, x.gpu, dtype);
  const mean = Tensor.empty([N * groups], x.gpu);
  const rstd = Tensor.empty([N * groups], x.gpu);
  groupNormForward(x.gpu, x.buffer, x.shape, groups, weight.buffer, bias.buffer, y.buffer, mean.buffer, rstd.buffer, { eps, relu, dtype });
  recordOp(relu ? 'groupNormRelu' : 'groupNorm', [x, weight, bias], y, [x, weight, bias, mean, rstd], (g, [sx, sw, sb, sm, sr]) => {
    const dx = Tensor.empty(x.shape, g.gpu, dtype);
    const dw = Tensor.empty([C], g.gpu);
    const db = Tensor.empty([C], g.gpu);
    groupNormBackward(g.gpu, g.buffer, sx.buffer, x.shape, groups, sw.buffer, sb.buffer, sm.buffer, sr.buffer,
      dx.buffer, dw.buffer, db.buffer, { relu, dtype });
    return [x.requiresGrad ? dx : (dx.dispose(), null), weight.requiresGrad ? dw : (dw.dispose(), null), bias.requiresGrad ? db : (db.dispose(), null)];
  });
  mean.dispose();
  rstd.dispose();
  return y;
}

/** nn.GroupNorm semantics: x [N, C, ...], groups dividing C, affine weight and bias [C]. */
export function groupNorm(x: Tensor, groups: number, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  return groupNormImpl(x, groups, weight, bias, eps, false);
}

/** relu(groupNorm(x)) in one pass over memory (TGNet's pre-activation). */
export function groupNormRelu(x: Tensor, groups: number, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  return groupNormImpl(x, groups, weight, bias, eps, true);
}
