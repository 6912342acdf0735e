/** CPU twins of concat and sliceAxis. */
import { concatShape } from '../concat.js';
import { sizeOf } from '../runtime/wgsl.js';

export function concatRef(inputs: readonly { data: ArrayLike<number>; shape: readonly number[] }[], axis: number): { data: Float64Array; shape: number[] } {
  const shape = concatShape(inputs.map((t) => t.shape), axis, 'concatRef');
  const ax = axis < 0 ? axis + shape.length : axis;
  const outer = sizeOf(shape.slice(0, ax));
  const inner = sizeOf(shape.slice(ax + 1));
  const data = new Float64Array(sizeOf(shape));
  let offset = 0;
  for (const t of inputs) {
    const len = t.shape[ax];
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < len * inner; j++) data[(o * shape[ax] + offset) * inner + j] = t.data[o * len * inner + j];
    }
    offset += len;
  }
  return { data, shape };
}

export function sliceAxisRef(
  x: ArrayLike<number>, shape: readonly number[], axis: number, start: number, length: number,
): { data: Float64Array; shape: number[] } {
  const ax = axis < 0 ? axis + shape.length : axis;
  const outShape = [...shape];
  outShape[ax] = length;
  const outer = sizeOf(shape.slice(0, ax));
  const inner = sizeOf(shape.slice(ax + 1));
  const data = new Float64Array(sizeOf(outShape));
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < length * inner; j++) data[o * length * inner + j] = x[(o * shape[ax] + start) * inner + j];
  }
  return { data, shape: outShape };
}
