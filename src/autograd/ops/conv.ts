/** conv3d and weight standardisation with their gradients. */
import {
  conv3dBackwardBias, conv3dBackwardData, conv3dBackwardWeight, conv3dForward, conv3dOutputShape, type Conv3dShape,
} from '../../kernels/conv3d/index.js';
import { weightStandardize as wsKernel, weightStandardizeBackward } from '../../kernels/weight-standardize.js';
import { recordOp } from '../tape.js';
import { asF32 } from './elementwise.js';
import { Tensor } from '../tensor.js';

export interface Conv3dArgs {
  bias?: Tensor | null;
  stride?: number;
  padding?: number;
}

/**
 * F.conv3d(x, w, bias, stride, padding) on NCDHW with a cubic kernel. The output (and x's gradient) has x's dtype;
 * the weights, the bias and their gradients are f32 (mixed precision keeps master weights in f32).
 */
export function conv3d(x: Tensor, w: Tensor, args: Conv3dArgs = {}): Tensor {
  const { bias = null, stride = 1, padding = 0 } = args;
  w = asF32(w);
  const dtype = x.dtype;
  const shape: Conv3dShape = { x: x.shape, w: w.shape, stride, padding };
  const outShape = conv3dOutputShape(x.shape, w.shape, { stride, padding });
  if (bias && (bias.rank !== 1 || bias.shape[0] !== w.shape[0])) {
    throw new RangeError(`conv3d: bias [${bias.shape.join(', ')}] must be [${w.shape[0]}] (one per output channel)`);
  }
  const out = Tensor.empty(outShape, x.gpu, dtype);
  conv3dForward(x.gpu, x.buffer, w.buffer, bias?.buffer ?? null, out.buffer, shape, { dtype });
  const inputs = bias ? [x, w, bias] : [x, w];
  return recordOp('conv3d', inputs, out, [x, w], (g, [sx, sw]) => {
    const grads: (Tensor | null)[] = [null, null, null];
    if (x.requiresGrad) {
      grads[0] = Tensor.empty(x.shape, g.gpu, dtype);
      conv3dBackwardData(g.gpu, g.buffer, sw.buffer, grads[0].buffer, shape, { dtype });
    }
    if (w.requiresGrad) {
      grads[1] = Tensor.empty(w.shape, g.gpu);
      conv3dBackwardWeight(g.gpu, sx.buffer, g.buffer, grads[1].buffer, shape, { dtype });
    }
    if (bias?.requiresGrad) {
      grads[2] = Tensor.empty(bias.shape, g.gpu);
      conv3dBackwardBias(g.gpu, g.buffer, grads[2].buffer, shape, { dtype });
    }
    return grads.slice(0, inputs.length);
  });
}

/** DoDNet's weight standardisation: per output filter, (w - mean) / sqrt(unbiased var + 1e-12). */
export function weightStandardize(w: Tensor): Tensor {
  w = asF32(w);
  const cout = w.shape[0];
  const out = Tensor.empty(w.shape, w.gpu);
  const mean = Tensor.empty([cout], w.gpu);
  const rstd = Tensor.empty([cout], w.gpu);
  wsKernel(w.gpu, w.buffer, w.shape, out.buffer, mean.buffer, rstd.buffer);
  recordOp('weightStandardize', [w], out, [w, mean, rstd], (g, [sw, sm, sr]) => {
    const dw = Tensor.empty(w.shape, g.gpu);
    weightStandardizeBackward(g.gpu, g.buffer, sw.buffer, w.shape, sm.buffer, sr.buffer, dw.buffer);
    return [dw];
  });
  mean.dispose();
  rstd.dispose();
  return out;
}
