/** CPU twins of the reductions, in float64. */
import { normalizeAxes, sumToShapeAxes, type ReduceOp } from '../reduce.js';
import { sizeOf, stridesOf } from '../runtime/wgsl.js';

/** op over `axes` (undefined: all) of x; the output shape drops the reduced axes. */
export function reduceRef(
  op: ReduceOp, x: ArrayLike<number>, shape: readonly number[], axes?: readonly number[],
): { data: Float64Array; shape: number[] } {
  const ax = normalizeAxes(shape.length, axes, 'reduceRef');
  const outShape = shape.filter((_, i) => !ax.includes(i));
  const keptAxes = shape.map((_, i) => i).filter((i) => !ax.includes(i));
  const inStrides = stridesOf(shape);
  const outStrides = stridesOf(outShape);
  const n = sizeOf(shape);
  const nOut = sizeOf(outShape);
  const data = new Float64Array(nOut).fill(op === 'max' ? -Infinity : 0);
  for (let i = 0; i < n; i++) {
    let o = 0;
    keptAxes.forEach((a, k) => {
      o += (Math.floor(i / inStrides[a]) % shape[a]) * outStrides[k];
    });
    data[o] = op === 'max' ? Math.max(data[o], x[i]) : data[o] + x[i];
  }
  if (op === 'mean') {
    const count = n / Math.max(nOut, 1);
    const R = sizeOf(ax.map((a) => shape[a]));
    for (let o = 0; o < nOut; o++) data[o] = R === 0 ? NaN : data[o] / count;
  }
  return { data, shape: outShape };
}

/** Sums a broadcast gradient back to `targetShape` (the adjoint of broadcasting). */
export function sumToShapeRef(g: ArrayLike<number>, gShape: readonly number[], targetShape: readonly number[]): Float64Array {
  return reduceRef('sum', g, gShape, sumToShapeAxes(gShape, targetShape, 'sumToShapeRef')).data;
}

/**
 * The backward of reduceRef: gy (reduced shape) broadcast back to `shape`, divided by R for mean; for max
 * the gradient goes to every element equal to its maximum (as the GPU kernel).
 */
export function reduceBackwardRef(
  op: ReduceOp, x: ArrayLike<number>, shape: readonly number[], axes: readonly number[] | undefined, gy: ArrayLike<number>,
): Float64Array {
  const ax = normalizeAxes(shape.length, axes, 'reduceBackwardRef');
  const outShape = shape.filter((_, i) => !ax.includes(i));
  const keptAxes = shape.map((_, i) => i).filter((i) => !ax.includes(i));
  const inStrides = stridesOf(shape);
  const outStrides = stridesOf(outShape);
  const n = sizeOf(shape);
  const R = n / Math.max(1, sizeOf(outShape));
  const y = op === 'max' ? reduceRef('max', x, shape, axes).data : null;
  const gx = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let o = 0;
    keptAxes.forEach((a, k) => {
      o += (Math.floor(i / inStrides[a]) % shape[a]) * outStrides[k];
    });
    if (op === 'sum') gx[i] = gy[o];
    else if (op === 'mean') gx[i] = gy[o] / R;
    else gx[i] = x[i] === (y as Float64Array)[o] ? gy[o] : 0;
  }
  return gx;
}
