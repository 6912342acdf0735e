/**
 * Concatenation along an axis and its adjoint, the slice along an axis. Both are strided block copies:
 * viewing a tensor as [outer, L, inner], concat copies input i's rows [outer, L_i * inner] to
 * out[outer, offset_i * inner ...] and sliceAxis copies x[outer, start * inner ...] rows to a dense output.
 * Few or contiguous rows go through copyBufferToBuffer (no binding limits); many rows through a copy
 * kernel, in windows of one storage binding. The tensors are f32 or f16 (`dtype`, a plain copy either way);
 * copyBufferToBuffer moves whole 4-byte words, so f16 rows at odd elements go through the kernel.
 */
import { alignedWindow, maxWindowElements } from './runtime/windows.js';
import type { Gpu } from './runtime/gpu.js';
import { cachedSignature, kernelSignature, readOnly, readWrite } from './runtime/kernel-signature.js';
import { bytesPerElement, requireDType, type DType } from './runtime/precision.js';
import { checkBuffer, checkShape, linearMain, linearWorkgroupSize, sizeOf } from './runtime/wgsl.js';

/** A tensor on the GPU as the launchers see it. */
export interface BufferWithShape {
  buffer: GPUBuffer;
  shape: readonly number[];
}

/** Rows at or below this count are copied with copyBufferToBuffer, one copy per row. */
const COPY_ROWS_MAX = 8;

/** ys[dstBase + r * dstStride + c] = xs[srcBase + r * srcStride + c] for the n = rows * rowLen elements. */
const copyRowsSignature = (dtype: DType) => cachedSignature(`copyRows:${dtype}`, () => kernelSignature('copyRows', {
  uniforms: { n: 'u32', rowLen: 'u32', srcStride: 'u32', dstStride: 'u32', srcBase: 'u32', dstBase: 'u32' },
  storage: { xs: readOnly(dtype), ys: readWrite(dtype) },
}));

function normalizeAxis(axis: number, rank: number, what: string): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new RangeError(`${what}: axis ${axis} is out of range for rank ${rank}`);
  }
  return axis < 0 ? axis + rank : axis;
}

/** The shape of concatenating `shapes` along `axis`, or an error naming the op and the shapes that disagree. */
export function concatShape(shapes: readonly (readonly number[])[], axis: number, what = 'concat'): number[] {
  if (shapes.length === 0) throw new RangeError(`${what}: needs at least one input`);
  const first = shapes[0];
  shapes.forEach((s, i) => checkShape(s, `${what} input ${i}`));
  if (first.length === 0) throw new RangeError(`${what}: cannot concatenate rank-0 tensors (input 0 has shape [])`);
  const ax = normalizeAxis(axis, first.length, what);
  const out = [...first];
  out[ax] = 0;
  shapes.forEach((s, i) => {
    const agree = s.length === first.length && s.every((d, k) => k === ax || d === first[k]);
    if (!agree) {
      throw new RangeError(
        `${what}: input ${i} has shape [${s.join(', ')}] but input 0 has shape [${first.join(', ')}]; ` +
        `shapes must agree on every axis except axis ${ax}`,
      );
    }
    out[ax] += s[ax];
  });
  return out;
}

/** out = the inputs concatenated along `axis` (negative allowed), all of `dtype`. Returns the output shape. */
export function concat(gpu: Gpu, inputs: readonly BufferWithShape[], axis: number, out: GPUBuffer, dtype: DType = 'f32'): number[] {
  requireDType(gpu, dtype, 'concat');
  const outShape = concatShape(inputs.map((t) => t.shape), axis);
  const ax = axis < 0 ? axis + outShape.length : axis;
  const n = sizeOf(outShape);
  checkBuffer(out, n, 'concat output', dtype);
  inputs.forEach((t, i) => {
    checkBuffer(t.buffer, sizeOf(t.shape), `concat input ${i}`, dtype);
    if (t.buffer === out) throw new RangeError(`concat: input ${i} and the output must be different buffers`);
  });
  const outer = sizeOf(outShape.slice(0, ax));
  const inner = sizeOf(outShape.slice(ax + 1));
  const total = outShape[ax];
  let offset = 0;
  for (const t of inputs) {
    const len = t.shape[ax];
    copyRows(gpu, 'concat', t.buffer, 0, len * inner, out, offset * inner, total * inner, outer, len * inner, dtype);
    offset += len;
  }
  return outShape;
}

/**
 * out = x[..., start:start+length, ...] along `axis` (negative allowed): the backward of concat for one
 * input, and a narrow/split. Both of `dtype`. Returns the output shape.
 */
export function sliceAxis(
  gpu: Gpu, x: GPUBuffer, shape: readonly number[], axis: number, start: number, length: number, out: GPUBuffer,
  dtype: DType = 'f32',
): number[] {
  requireDType(gpu, dtype, 'sliceAxis');
  checkShape(shape, 'sliceAxis input');
  if (shape.length === 0) throw new RangeError('sliceAxis: cannot slice a rank-0 tensor');
  const ax = normalizeAxis(axis, shape.length, 'sliceAxis');
  if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > shape[ax]) {
    throw new RangeError(
      `sliceAxis: start ${start} and length ${length} do not fit axis ${ax} of size ${shape[ax]} (shape [${shape.join(', ')}])`,
    );
  }
  checkBuffer(x, sizeOf(shape), 'sliceAxis input', dtype);
  const outShape = [...shape];
  outShape[ax] = length;
  checkBuffer(out, sizeOf(outShape), 'sliceAxis output', dtype);
  if (x === out) throw new RangeError('sliceAxis: input and output must be different buffers');
  const outer = sizeOf(shape.slice(0, ax));
  const inner = sizeOf(shape.slice(ax + 1));
  copyRows(gpu, 'sliceAxis', x, start * inner, shape[ax] * inner, out, 0, length * inner, outer, length * inner, dtype);
  return outShape;
}

/**
 * dst[dstBase + r * dstStride + c] = src[srcBase + r * srcStride + c] for r < rows, c < rowLen (elements of `dtype`).
 */
export function copyRows(
  gpu: Gpu, label: string, src: GPUBuffer, srcBase: number, srcStride: number,
  dst: GPUBuffer, dstBase: number, dstStride: number, rows: number, rowLen: number, dtype: DType = 'f32',
): void {
  if (rows === 0 || rowLen === 0) return;
  const eb = bytesPerElement(dtype);
  const maxElems = maxWindowElements(gpu, dtype);
  // copyBufferToBuffer takes offsets and sizes in whole 4-byte words: always so for f32, for f16 at even counts.
  const words = (...counts: number[]) => counts.every((c) => (c * eb) % 4 === 0);
  const contiguous = srcStride === rowLen && dstStride === rowLen;
  if (contiguous && words(srcBase, dstBase, rows * rowLen)) {
    gpu.copy(src, srcBase * eb, dst, dstBase * eb, rows * rowLen * eb);
    return;
  }
  const stride = Math.max(srcStride, dstStride);
  if (!contiguous && (rows <= COPY_ROWS_MAX || stride > maxElems) && words(srcBase, dstBase, srcStride, dstStride, rowLen)) {
    for (let r = 0; r < rows; r++) gpu.copy(src, (srcBase + r * srcStride) * eb, dst, (dstBase + r * dstStride) * eb, rowLen * eb);
    return;
  }
  if (rowLen > maxElems || (contiguous && rows * rowLen > maxElems)) {
    // Left only by f16 copies at odd elements, which copyBufferToBuffer cannot take: a contiguous run, or rows
    // longer than a window, go to the kernel in column pieces of one window each.
    const [n, len] = contiguous ? [1, rows * rowLen] : [rows, rowLen];
    for (let c0 = 0; c0 < len; c0 += maxElems) {
      const piece = Math.min(maxElems, len - c0);
      copyRowsKernel(gpu, label, src, srcBase + c0, contiguous ? len : srcStride, dst, dstBase + c0, contiguous ? len : dstStride, n, piece, dtype);
    }
    return;
  }
  copyRowsKernel(gpu, label, src, srcBase, srcStride, dst, dstBase, dstStride, rows, rowLen, dtype);
}

/** copyRows by the copy kernel, in windows of whole rows (rowLen must fit one window). */
function copyRowsKernel(
  gpu: Gpu, label: string, src: GPUBuffer, srcBase: number, srcStride: number,
  dst: GPUBuffer, dstBase: number, dstStride: number, rows: number, rowLen: number, dtype: DType,
): void {
  const maxElems = maxWindowElements(gpu, dtype);
  const stride = Math.max(srcStride, dstStride);
  const wg = linearWorkgroupSize(gpu);
  const COPY_ROWS = copyRowsSignature(dtype);
  const pipeline = COPY_ROWS.pipeline(gpu, `copyRows:${dtype}:${wg}`, () => `
${linearMain(wg)}
  if (gid >= p.n) { return; }
  let r = gid / p.rowLen;
  let c = gid - r * p.rowLen;
  ys[p.dstBase + r * p.dstStride + c] = xs[p.srcBase + r * p.srcStride + c];
}`);
  // Rows per window: the last row only needs rowLen elements.
  const chunk = Math.max(1, Math.floor((maxElems - rowLen) / stride) + 1);
  for (let r0 = 0; r0 < rows; r0 += chunk) {
    const count = Math.min(chunk, rows - r0);
    const sw = alignedWindow(gpu, src, srcBase + r0 * srcStride, (count - 1) * srcStride + rowLen, dtype);
    const dw = alignedWindow(gpu, dst, dstBase + r0 * dstStride, (count - 1) * dstStride + rowLen, dtype);
    const n = count * rowLen;
    gpu.dispatch({
      pipeline, label: `${label}:copyRows`, workgroups: Math.ceil(n / wg),
      ...COPY_ROWS.bind({ n, rowLen, srcStride, dstStride, srcBase: sw.base, dstBase: dw.base }, { xs: sw.binding, ys: dw.binding }),
    });
  }
}
