/** Shape helpers shared by the per-channel kernel families (group norm, pooling, gating). */
import { checkShape, sizeOf } from './wgsl.js';

/** Checks an [N, C, ...spatial] shape (at least 2 dims, < 2^32 elements) and returns N, C and the spatial size S. */
export function splitNC(shape: readonly number[], op: string): { N: number; C: number; S: number } {
  checkShape(shape, op);
  if (shape.length < 2) throw new RangeError(`${op}: expected an [N, C, ...spatial] shape, got [${shape.join(', ')}]`);
  const total = sizeOf(shape);
  if (total >= 2 ** 32) throw new RangeError(`${op}: ${total} elements exceed the 2^32 index range`);
  return { N: shape[0], C: shape[1], S: sizeOf(shape.slice(2)) };
}
