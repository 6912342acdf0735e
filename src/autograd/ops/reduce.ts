/** Reductions and their gradients: sum, mean, max over any set of axes. */
import { expand } from '../../kernels/elementwise.js';
import { normalizeAxes, reduce, reduceBackward, reducedShape, reducedShapeKeepDims, type ReduceOp } from '../../kernels/reduce.js';
import { recordOp } from '../tape.js';
import { Tensor } from '../tensor.js';
import { asF32, mapBinary } from './elementwise.js';

function reduceRaw(op: ReduceOp, x: Tensor, axes: readonly number[] | undefined): Tensor {
  const out = Tensor.empty(reducedShape(x.shape, axes), x.gpu);
  reduce(x.gpu, op, x.buffer, x.shape, axes, out.buffer);
  return out;
}

/** g (the reduced shape) broadcast back over the reduced axes of `shape`. */
function expandBack(g: Tensor, shape: readonly number[], axes: readonly number[] | undefined): Tensor {
  const keepShape = reducedShapeKeepDims(shape, axes);
  const out = Tensor.empty(shape, g.gpu);
  expand(g.gpu, g.buffer, keepShape, shape, out.buffer);
  return out;
}

/** The gradient of a sum or mean: g broadcast back over the reduced axes (scaled for a mean), one kernel. */
function sumLikeBackward(op: 'sum' | 'mean', g: Tensor, shape: readonly number[], axes: readonly number[] | undefined): Tensor {
  const gx = Tensor.empty(shape, g.gpu);
  reduceBackward(g.gpu, op, shape, axes, g.buffer, gx.buffer);
  return gx;
}

function finish(x: Tensor, out: Tensor, keepDims: boolean, axes: readonly number[] | undefined): Tensor {
  if (!keepDims) return out;
  const kept = out.reshape(reducedShapeKeepDims(x.shape, axes));
  out.dispose();
  return kept;
}

/** Sum over `axes` (all when omitted), in f32 whatever x's dtype (as the result). */
export function sum(x: Tensor, axes?: readonly number[], keepDims = false): Tensor {
  x = asF32(x);
  const ax = axes === undefined ? undefined : normalizeAxes(x.rank, axes, 'sum');
  const out = recordOp('sum', [x], reduceRaw('sum', x, ax), [], (g) => [sumLikeBackward('sum', g, x.shape, ax)]);
  return finish(x, out, keepDims, ax);
}

/** Mean over `axes` (all when omitted), in f32 whatever x's dtype (as the result). */
export function mean(x: Tensor, axes?: readonly number[], keepDims = false): Tensor {
  x = asF32(x);
  const ax = axes === undefined ? undefined : normalizeAxes(x.rank, axes, 'mean');
  const out = recordOp('mean', [x], reduceRaw('mean', x, ax), [], (g) => [sumLikeBackward('mean', g, x.shape, ax)]);
  return finish(x, out, keepDims, ax);
}

/** Maximum over `axes`; the gradient is shared equally among tied maxima (as torch.amax). */
export function max(x: Tensor, axes?: readonly number[], keepDims = false): Tensor {
  x = asF32(x);
  const ax = axes === undefined ? undefined : normalizeAxes(x.rank, axes, 'max');
  const y = reduceRaw('max', x, ax);
  const out = recordOp('max', [x], y, [x, y], (g, [sx, sy]) => {
    const mask = mapBinary('eq', sx, expandBack(sy, x.shape, ax));
    const ties = reduceRaw('sum', mask, ax);
    const share = mapBinary('div', g, ties);
    return [mapBinary('mul', mask, expandBack(share, x.shape, ax))];
  });
  return finish(x, out, keepDims, ax);
}
