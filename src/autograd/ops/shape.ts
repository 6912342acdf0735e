/** Layout ops and their gradients: permute/transpose, concat, slice. */
import { concat as concatKernel, concatShape, sliceAxis } from '../../kernels/concat.js';
import { inversePerm, normalizePerm, permute as permuteKernel, permuteShape } from '../../kernels/permute.js';
import { recordOp } from '../tape.js';
import { Tensor } from '../tensor.js';

function permuteRaw(x: Tensor, perm: readonly number[]): Tensor {
  const out = Tensor.empty(permuteShape(x.shape, perm), x.gpu, x.dtype);
  permuteKernel(x.gpu, x.buffer, x.shape, perm, out.buffer, x.dtype);
  return out;
}

/** Reorders axes (a copy, like torch's permute followed by contiguous()). */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const p = normalizePerm(perm, x.rank, 'permute');
  return recordOp('permute', [x], permuteRaw(x, p), [], (g) => [permuteRaw(g, inversePerm(p))]);
}

/** Swaps two axes (default: the last two). */
export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  const r = x.rank;
  const a = dim0 < 0 ? dim0 + r : dim0;
  const b = dim1 < 0 ? dim1 + r : dim1;
  if (a < 0 || a >= r || b < 0 || b >= r) throw new RangeError(`transpose: axes ${dim0}, ${dim1} out of range for rank ${r}`);
  const perm = [...Array(r).keys()];
  [perm[a], perm[b]] = [perm[b], perm[a]];
  return permute(x, perm);
}

/** x[..., start:start+length, ...] along `axis`. */
export function slice(x: Tensor, axis: number, start: number, length: number): Tensor {
  const ax = axis < 0 ? axis + x.rank : axis;
  const shape = [...x.shape];
  shape[ax] = length;
  const out = Tensor.empty(shape, x.gpu, x.dtype);
  sliceAxis(x.gpu, x.buffer, x.shape, ax, start, length, out.buffer, x.dtype);
  return recordOp('slice', [x], out, [], (g) => {
    // The adjoint pads g with zeros back to x's extent: a concat of zeros, g, zeros.
    const parts: Tensor[] = [];
    const before = [...x.shape];
    before[ax] = start;
    const after = [...x.shape];
    after[ax] = x.shape[ax] - start - length;
    if (start > 0) parts.push(Tensor.zeros(before, { dtype: g.dtype }));
    parts.push(g);
    if (after[ax] > 0) parts.push(Tensor.zeros(after, { dtype: g.dtype }));
    return [concatRaw(parts, ax)];
  });
}

function concatRaw(ts: readonly Tensor[], axis: number): Tensor {
  const dtype = ts[0].dtype;
  const bad = ts.findIndex((t) => t.dtype !== dtype);
  if (bad >= 0) throw new TypeError(`concat: input ${bad} is ${ts[bad].dtype} but input 0 is ${dtype}; expected one dtype (cast first)`);
  const out = Tensor.empty(concatShape(ts.map((t) => t.shape), axis), ts[0].gpu, dtype);
  concatKernel(ts[0].gpu, ts.map((t) => ({ buffer: t.buffer, shape: t.shape })), axis, out.buffer, dtype);
  return out;
}

/** Concatenates tensors along `axis` (shapes must agree elsewhere). */
export function concat(ts: readonly Tensor[], axis: number): Tensor {
  if (ts.length === 0) throw new RangeError('concat: needs at least one tensor');
  const rank = ts[0].rank;
  const ax = axis < 0 ? axis + rank : axis;
  const out = concatRaw(ts, ax);
  return recordOp('concat', ts, out, [], (g) => {
    let offset = 0;
    return ts.map((t) => {
      const len = t.shape[ax];
      const start = offset;
      offset += len;
      if (!t.requiresGrad) return null;
      const gi = Tensor.empty(t.shape, g.gpu, g.dtype);
      sliceAxis(g.gpu, g.buffer, g.shape, ax, start, len, gi.buffer, g.dtype);
      return gi;
    });
  });
}
