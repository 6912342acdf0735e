import { describe, expect, it } from 'vitest';
import { collapsePermute, inversePerm, permute } from '../../src/kernels/permute.js';
import { permuteRef } from '../../src/kernels/reference/permute.js';
import type { Gpu } from '../../src/kernels/runtime/gpu.js';
import type { DType } from '../../src/kernels/runtime/precision.js';
import {
  asStored, download, downloadAs, empty, emptyAs, expectClose, randomArray, runsF16, size, upload, uploadAs, useGpu, withBindingLimit,
} from '../helpers/gpu.js';

const gpu = useGpu();

/** A permute moves values: exact in either dtype. */
async function check(shape: number[], perm: number[], seed: number, g: Gpu = gpu(), dtype: DType = 'f32'): Promise<void> {
  const x = asStored(randomArray(size(shape), seed), dtype);
  const ref = permuteRef(x, shape, perm);
  const ob = emptyAs(g, Math.max(1, ref.data.length), dtype);
  const outShape = permute(g, uploadAs(g, x, dtype), shape, perm, ob, dtype);
  expect(outShape).toEqual(ref.shape);
  expectClose(await downloadAs(g, ob, ref.data.length, dtype), ref.data, 0, 0);
}

describe('permute', () => {
  const cases: [number[], number[]][] = [
    [[7], [0]],
    [[5, 3], [1, 0]],
    [[33, 65], [1, 0]],
    [[1, 70], [1, 0]],
    [[3, 37, 45], [0, 2, 1]],
    [[3, 37, 45], [2, 0, 1]],
    [[4, 5, 6], [1, 0, 2]],
    [[2, 3, 4, 5], [3, 1, 0, 2]],
    [[2, 3, 1, 5], [0, 3, 2, 1]],
    [[2, 1, 3, 4, 5], [4, 2, 0, 3, 1]],
    [[2, 3, 4, 5, 3, 2], [5, 4, 3, 2, 1, 0]],
    [[2, 3, 2, 3, 2, 3], [1, 3, 5, 0, 2, 4]],
    [[3, 4, 5], [-1, 0, 1]],
  ];
  cases.forEach(([shape, perm], i) => {
    it(`[${shape}] by [${perm}]`, () => check(shape, perm, 10 + i));
  });

  it('every permutation of a rank-4 tensor with odd sizes', async () => {
    const shape = [3, 5, 2, 7];
    const perms: number[][] = [];
    const rec = (p: number[]) => {
      if (p.length === 4) perms.push(p);
      else for (let a = 0; a < 4; a++) if (!p.includes(a)) rec([...p, a]);
    };
    rec([]);
    for (const [i, perm] of perms.entries()) await check(shape, perm, 100 + i);
  });

  it('runs in slabs when the tensor exceeds one binding', async () => {
    const g = withBindingLimit(gpu(), 4096);
    const before = g.dispatchCount;
    await check([9, 20, 30], [0, 2, 1], 7, g);
    expect(g.dispatchCount - before).toBe(9); // one 600-element slab per window of 960
    await check([9, 4, 5, 6], [0, 3, 1, 2], 8, g);
  });

  it('permutes f16 (identity of an odd count, tiled transpose, gather, slabs)', async () => {
    const g = gpu();
    if (!runsF16(g, 'f16', () => permute(g, emptyAs(g, 6, 'f16'), [2, 3], [1, 0], emptyAs(g, 6, 'f16'), 'f16'))) return;
    await check([7], [0], 70, g, 'f16');
    await check([33, 65], [1, 0], 71, g, 'f16');
    await check([2, 3, 4, 5], [3, 1, 0, 2], 72, g, 'f16');
    const small = withBindingLimit(g, 4096);
    await check([9, 20, 30], [0, 2, 1], 73, small, 'f16');
    await check([9, 4, 5, 6], [0, 3, 1, 2], 74, small, 'f16');
  });

  it('collapses size-1 and adjacent axes', () => {
    expect(collapsePermute([2, 3, 4, 5], [0, 1, 3, 2])).toEqual({ shape: [6, 4, 5], perm: [0, 2, 1] });
    expect(collapsePermute([2, 1, 3], [2, 1, 0])).toEqual({ shape: [2, 3], perm: [1, 0] });
    expect(collapsePermute([4, 1, 5], [0, 2, 1])).toEqual({ shape: [20], perm: [0] });
    expect(inversePerm([2, 0, 1])).toEqual([1, 2, 0]);
  });

  it('round-trips through the inverse permutation', async () => {
    const shape = [4, 3, 6, 5];
    const perm = [2, 3, 0, 1];
    const x = randomArray(size(shape), 3);
    const xb = upload(gpu(), x);
    const yb = empty(gpu(), x.length);
    const zb = empty(gpu(), x.length);
    const yShape = permute(gpu(), xb, shape, perm, yb);
    permute(gpu(), yb, yShape, inversePerm(perm), zb);
    expectClose(await download(gpu(), zb, x.length), x, 0, 0);
  });

  it('rejects a bad permutation and a too-small buffer', () => {
    const b = empty(gpu(), 64);
    const o = empty(gpu(), 64);
    expect(() => permute(gpu(), b, [2, 3], [0, 0], o)).toThrow(/permute: perm \[0, 0\] repeats axis 0/);
    expect(() => permute(gpu(), b, [2, 3], [1], o)).toThrow(/permute: perm must list 2 axes/);
    expect(() => permute(gpu(), b, [2, 3], [0, 2], o)).toThrow(/axis 2 out of range for rank 2/);
    expect(() => permute(gpu(), b, [20, 30], [1, 0], o)).toThrow(/permute input: buffer of 256 bytes is too small for 600 f32/);
  });
});
