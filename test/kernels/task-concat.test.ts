import { describe, expect, it } from 'vitest';
import { taskConcat, taskConcatBackward } from '../../src/kernels/task-concat.js';
import { taskConcatBackwardRef, taskConcatRef } from '../../src/kernels/reference/task-concat.js';
import { dot, maxRelativeError, numericGradient } from '../../src/kernels/reference/gradcheck.js';
import {
  asStored, download, downloadAs, empty, emptyAs, expectClose, randomArray, rng, runsF16, upload, uploadAs, useGpu,
} from '../helpers/gpu.js';

const gpu = useGpu();

describe('task concat: GPU vs CPU twin, forward and backward', () => {
  const cases: [number, number, number][] = [[2, 256, 7], [3, 5, 7], [1, 1, 1], [130, 9, 4]]; // 130 rows: 3 dispatches
  for (const [N, C, T] of cases) {
    it(`N=${N} C=${C} T=${T}`, async () => {
      const g = gpu();
      const r = rng(N + C);
      const ids = Array.from({ length: N }, () => Math.floor(r() * T));
      const f = randomArray(N * C, 1);
      const dout = randomArray(N * (C + T), 2);
      const ob = empty(g, N * (C + T));
      const dfb = empty(g, N * C);
      taskConcat(g, upload(g, f), [N, C], ids, ob, T);
      taskConcatBackward(g, upload(g, dout), [N, C], dfb, T);
      expectClose(await download(g, ob, N * (C + T)), taskConcatRef(f, [N, C], ids, T), 0, 0);
      expectClose(await download(g, dfb, N * C), taskConcatBackwardRef(dout, [N, C], T), 0, 0);
    });
  }

  it('copies f16 features and writes an f16 one-hot (exact)', async () => {
    const g = gpu();
    const [N, C, T] = [130, 9, 4];
    if (!runsF16(g, 'f16', () => taskConcat(g, emptyAs(g, N * C, 'f16'), [N, C], new Array<number>(N).fill(0), emptyAs(g, N * (C + T), 'f16'), T, 'f16'))) return;
    const r = rng(3);
    const ids = Array.from({ length: N }, () => Math.floor(r() * T));
    const f = asStored(randomArray(N * C, 4), 'f16');
    const dout = asStored(randomArray(N * (C + T), 5), 'f16');
    const ob = emptyAs(g, N * (C + T), 'f16');
    const dfb = emptyAs(g, N * C, 'f16');
    taskConcat(g, uploadAs(g, f, 'f16'), [N, C], ids, ob, T, 'f16');
    taskConcatBackward(g, uploadAs(g, dout, 'f16'), [N, C], dfb, T, 'f16');
    expectClose(await downloadAs(g, ob, N * (C + T), 'f16'), taskConcatRef(f, [N, C], ids, T), 0, 0);
    expectClose(await downloadAs(g, dfb, N * C, 'f16'), taskConcatBackwardRef(dout, [N, C], T), 0, 0);
  });

  it('writes [features, one-hot] with TGNet\'s 7 tasks', async () => {
    const g = gpu();
    const ob = empty(g, 2 * 9);
    taskConcat(g, upload(g, new Float32Array([0.5, -1, 2, 3])), [2, 2], [6, 0], ob, 7);
    expect(Array.from(await download(g, ob, 18))).toEqual([0.5, -1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 1, 0, 0, 0, 0, 0, 0]);
  });

  it('names the id, its position and the valid range when a task id is out of range', () => {
    const g = gpu();
    const b = empty(g, 64);
    expect(() => taskConcat(g, b, [3, 2], [0, 1, 7], b, 7)).toThrow(/taskConcat: task id 7 at position 2 is out of range; expected an integer in \[0, 6\]/);
    expect(() => taskConcat(g, b, [2, 2], [-1, 1], b, 7)).toThrow(/task id -1 at position 0/);
    expect(() => taskConcat(g, b, [2, 2], [0.5, 1], b, 7)).toThrow(/task id 0.5 at position 0/);
    expect(() => taskConcat(g, b, [2, 2], [1], b, 7)).toThrow(/taskConcat: expected 2 task ids \(one per sample\), got 1/);
  });
});

describe('task concat CPU twin gradcheck', () => {
  it('central differences agree with the backward twin', () => {
    const shape = [3, 4];
    const ids = [2, 0, 6];
    const f = Float64Array.from(randomArray(12, 3));
    const v = Float64Array.from(randomArray(33, 4));
    const num = numericGradient((t) => dot(taskConcatRef(t, shape, ids, 7), v), f);
    expect(maxRelativeError(num, taskConcatBackwardRef(v, shape, 7))).toBeLessThanOrEqual(1);
  });
});
