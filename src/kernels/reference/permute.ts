/** CPU twin of the permute kernel. */
import { normalizePerm } from '../permute.js';
import { sizeOf, stridesOf } from '../runtime/wgsl.js';

/** out[i_0, ..., i_{r-1}] = x[j] with j's axis perm[d] at coordinate i_d. */
export function permuteRef(x: ArrayLike<number>, shape: readonly number[], perm: readonly number[]): { data: Float64Array; shape: number[] } {
  const p = normalizePerm(perm, shape.length, 'permuteRef');
  const outShape = p.map((a) => shape[a]);
  const inStrides = stridesOf(shape);
  const outStrides = stridesOf(outShape);
  const n = sizeOf(shape);
  const data = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let j = 0;
    for (let d = 0; d < outShape.length; d++) j += (Math.floor(i / outStrides[d]) % outShape[d]) * inStrides[p[d]];
    data[i] = x[j];
  }
  return { data, shape: outShape };
}
