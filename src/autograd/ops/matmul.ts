/** Batched matrix product and its gradient. */
import { matmul as matmulKernel, matmulShapes } from '../../kernels/matmul.js';
import { recordOp } from '../tape.js';
import { Tensor } from '../tensor.js';
import { sum } from './reduce.js';
import { asF32 } from './elementwise.js';

function matmulRaw(a: Tensor, b: Tensor, transposeA: boolean, transposeB: boolean): Tensor {
  const { outShape, options } = matmulShapes(a.shape, b.shape, transposeA, transposeB);
  const out = Tensor.empty(outShape, a.gpu);
  matmulKernel(a.gpu, a.buffer, b.buffer, out.buffer, options);
  return out;
}

/**
 * Gradient of one operand: `product` has the batch shape of the output; when the operand had no batch
 * axes (shared across the batch), sum the per-batch products.
 */
function collapseBatch(product: Tensor, shape: readonly number[]): Tensor {
  if (product.rank === shape.length) return product.shareAs(shape);
  const batchAxes = [...Array(product.rank - 2).keys()];
  const summed = sum(product, batchAxes);
  return summed.reshape(shape);
}

/** a @ b over the last two axes; leading axes are batch axes (equal, or absent on one side). */
export function matmul(a: Tensor, b: Tensor): Tensor {
  // The GEMM kernel is f32: f16 operands are converted (and their gradients converted back).
  a = asF32(a);
  b = asF32(b);
  const out = matmulRaw(a, b, false, false);
  return recordOp('matmul', [a, b], out, [a, b], (g, [sa, sb]) => [
    a.requiresGrad ? collapseBatch(matmulRaw(g, sb, false, true), a.shape) : null,
    b.requiresGrad ? collapseBatch(matmulRaw(sa, g, true, false), b.shape) : null,
  ]);
}
