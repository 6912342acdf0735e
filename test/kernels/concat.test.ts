import { describe, expect, it } from 'vitest';
import { concat, sliceAxis } from '../../src/kernels/concat.js';
import { concatRef, sliceAxisRef } from '../../src/kernels/reference/concat.js';
import type { Gpu } from '../../src/kernels/runtime/gpu.js';
import type { DType } from '../../src/kernels/runtime/precision.js';
import {
  asStored, download, downloadAs, empty, emptyAs, expectClose, randomArray, runsF16, size, upload, uploadAs, useGpu, withBindingLimit,
} from '../helpers/gpu.js';

const gpu = useGpu();

/** Copies are exact in either dtype (f16 values stored as they were uploaded). */
async function checkConcat(shapes: number[][], axis: number, seed: number, g: Gpu = gpu(), dtype: DType = 'f32'): Promise<void> {
  const datas = shapes.map((s, i) => asStored(randomArray(size(s), seed + i), dtype));
  const ref = concatRef(shapes.map((shape, i) => ({ data: datas[i], shape })), axis);
  const ob = emptyAs(g, Math.max(1, ref.data.length), dtype);
  const shape = concat(g, shapes.map((s, i) => ({ buffer: uploadAs(g, datas[i], dtype), shape: s })), axis, ob, dtype);
  expect(shape).toEqual(ref.shape);
  expectClose(await downloadAs(g, ob, ref.data.length, dtype), ref.data, 0, 0);
}

async function checkSlice(
  shape: number[], axis: number, start: number, length: number, seed: number, g: Gpu = gpu(), dtype: DType = 'f32',
): Promise<void> {
  const x = asStored(randomArray(size(shape), seed), dtype);
  const ref = sliceAxisRef(x, shape, axis, start, length);
  const ob = emptyAs(g, Math.max(1, ref.data.length), dtype);
  const outShape = sliceAxis(g, uploadAs(g, x, dtype), shape, axis, start, length, ob, dtype);
  expect(outShape).toEqual(ref.shape);
  expectClose(await downloadAs(g, ob, ref.data.length, dtype), ref.data, 0, 0);
}

describe('concat', () => {
  const cases: [number[][], number][] = [
    [[[3], [5], [1]], 0],
    [[[2, 3], [2, 5]], 1],
    [[[2, 3], [4, 3]], 0],
    [[[2, 3, 4], [2, 1, 4], [2, 7, 4]], 1],
    [[[40, 3], [40, 2]], -1],
    [[[37, 2, 5], [37, 3, 5]], 1],
    [[[2, 3, 4, 5], [2, 3, 4, 1]], 3],
    [[[2, 3, 1, 1, 5], [2, 3, 2, 1, 5]], 2],
    [[[2, 0, 3], [2, 4, 3]], 1],
    [[[1, 1], [1, 1]], 0],
  ];
  cases.forEach(([shapes, axis], i) => {
    it(`${shapes.map((s) => `[${s}]`).join(' + ')} on axis ${axis}`, () => checkConcat(shapes, axis, 10 * i + 1));
  });

  it('concatenates a feature vector with a task one-hot ([N, C] + [N, T] on axis 1)', () => checkConcat([[2, 256], [2, 7]], 1, 5));

  it('many rows past 65535 workgroups (70000 x 250 / 256 per workgroup)', () => checkConcat([[70000, 250], [70000, 57]], 1, 6));

  it('runs in windows when the tensor exceeds one binding', async () => {
    const g = withBindingLimit(gpu(), 4096);
    await checkConcat([[50, 30], [50, 20]], 1, 7, g);
    await checkSlice([60, 40], 1, 5, 30, 8, g);
  });

  it('copies f16 rows, at odd elements through the kernel (copyBufferToBuffer moves whole words)', async () => {
    const g = gpu();
    if (!runsF16(g, 'f16', () => concat(g, [{ buffer: emptyAs(g, 3, 'f16'), shape: [3] }], 0, emptyAs(g, 3, 'f16'), 'f16'))) return;
    await checkConcat([[3], [5], [1]], 0, 60, g, 'f16'); // contiguous runs at odd offsets
    await checkConcat([[2, 3], [2, 5]], 1, 61, g, 'f16'); // few rows of odd length
    await checkConcat([[2, 3, 4], [2, 1, 4], [2, 7, 4]], 1, 62, g, 'f16'); // even rows: copyBufferToBuffer
    await checkConcat([[37, 2, 5], [37, 3, 5]], 1, 63, g, 'f16'); // many rows: the kernel
    await checkSlice([5, 7], 1, 2, 5, 64, g, 'f16');
  });

  it('copies f16 in windows when the tensor exceeds one binding', async () => {
    const g = withBindingLimit(gpu(), 4096);
    if (!runsF16(g, 'f16', () => concat(g, [{ buffer: emptyAs(g, 3, 'f16'), shape: [3] }], 0, emptyAs(g, 3, 'f16'), 'f16'))) return;
    await checkConcat([[50, 30], [50, 20]], 1, 65, g, 'f16');
    await checkConcat([[1], [4999]], 0, 66, g, 'f16'); // a contiguous run at an odd offset, longer than a window
    await checkSlice([60, 40], 1, 5, 30, 67, g, 'f16');
  });

  it('names the op and the shapes that disagree', () => {
    const b = empty(gpu(), 64);
    const o = empty(gpu(), 64);
    expect(() => concat(gpu(), [{ buffer: b, shape: [2, 3] }, { buffer: b, shape: [3, 3] }], 1, o))
      .toThrow(/concat: input 1 has shape \[3, 3\] but input 0 has shape \[2, 3\]; shapes must agree on every axis except axis 1/);
    expect(() => concat(gpu(), [{ buffer: b, shape: [2, 3] }, { buffer: b, shape: [2, 3, 1] }], 0, o)).toThrow(/input 1 has shape \[2, 3, 1\]/);
    expect(() => concat(gpu(), [{ buffer: b, shape: [2, 3] }], 2, o)).toThrow(/concat: axis 2 is out of range for rank 2/);
    expect(() => concat(gpu(), [], 0, o)).toThrow(/concat: needs at least one input/);
    expect(() => concat(gpu(), [{ buffer: b, shape: [20, 3] }, { buffer: b, shape: [20, 3] }], 0, o))
      .toThrow(/concat output: buffer of 256 bytes is too small for 120 f32/);
    expect(() => concat(gpu(), [{ buffer: o, shape: [2, 3] }], 0, o)).toThrow(/must be different buffers/);
  });
});

describe('sliceAxis', () => {
  const cases: [number[], number, number, number][] = [
    [[10], 0, 3, 4],
    [[5, 7], 1, 2, 5],
    [[5, 7], 0, 4, 1],
    [[40, 9], 1, 0, 8],
    [[3, 4, 5, 6], 2, 1, 3],
    [[2, 3, 4, 5, 6], -1, 5, 1],
    [[2, 3, 4], 1, 3, 0],
  ];
  cases.forEach(([shape, axis, start, length], i) => {
    it(`[${shape}] axis ${axis} from ${start} length ${length}`, () => checkSlice(shape, axis, start, length, 50 + i));
  });

  it('undoes concat (the backward of concat)', async () => {
    const shapes = [[3, 2, 4], [3, 5, 4], [3, 1, 4]];
    const datas = shapes.map((s, i) => randomArray(size(s), 90 + i));
    const cb = empty(gpu(), 3 * 8 * 4);
    const cShape = concat(gpu(), shapes.map((s, i) => ({ buffer: upload(gpu(), datas[i]), shape: s })), 1, cb);
    let start = 0;
    for (const [i, s] of shapes.entries()) {
      const ob = empty(gpu(), size(s));
      sliceAxis(gpu(), cb, cShape, 1, start, s[1], ob);
      expectClose(await download(gpu(), ob, size(s)), datas[i], 0, 0);
      start += s[1];
    }
  });

  it('rejects a slice past the axis and a too-small buffer', () => {
    const b = empty(gpu(), 64);
    const o = empty(gpu(), 64);
    expect(() => sliceAxis(gpu(), b, [4, 5], 1, 3, 3, o)).toThrow(/sliceAxis: start 3 and length 3 do not fit axis 1 of size 5/);
    expect(() => sliceAxis(gpu(), b, [40, 5], 0, 0, 3, o)).toThrow(/sliceAxis input: buffer of 256 bytes is too small for 200 f32/);
  });
});
