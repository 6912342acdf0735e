import { describe, expect, it } from 'vitest';
import {
  REDUCE_OPS, reduce, reduceBackward, reducedShape, reducedShapeKeepDims, sumToShape, sumToShapeAxes, type ReduceOp,
} from '../../src/kernels/reduce.js';
import { dot, maxRelativeError, numericGradient } from '../../src/kernels/reference/gradcheck.js';
import { reduceBackwardRef, reduceRef, sumToShapeRef } from '../../src/kernels/reference/reduce.js';
import type { Gpu } from '../../src/kernels/runtime/gpu.js';
import { download, empty, expectClose, randomArray, size, upload, useGpu, withBindingLimit } from '../helpers/gpu.js';

const gpu = useGpu();


async function check(
  op: ReduceOp, shape: number[], axes: number[] | undefined, seed: number, g: Gpu = gpu(), x = randomArray(size(shape), seed),
): Promise<void> {
  const ref = reduceRef(op, x, shape, axes);
  const ob = empty(g, Math.max(1, ref.data.length));
  const outShape = reduce(g, op, upload(g, x), shape, axes, ob);
  expect(outShape).toEqual(ref.shape);
  const tol = op === 'max' ? 0 : 1e-5;
  expectClose(await download(g, ob, ref.data.length), ref.data, tol, 1e-5);
}

/** Every subset of 0..rank-1. */
function subsets(rank: number): number[][] {
  const out: number[][] = [];
  for (let m = 0; m < 1 << rank; m++) out.push([...Array(rank).keys()].filter((a) => (m >> a) & 1));
  return out;
}

describe('reduce', () => {
  for (const op of REDUCE_OPS) {
    it(`${op}: every axis subset of a rank-3 tensor [5, 7, 3]`, async () => {
      for (const [i, axes] of subsets(3).entries()) await check(op, [5, 7, 3], axes, 10 + i);
    });

    it(`${op}: every axis subset of a rank-4 tensor [3, 1, 6, 5]`, async () => {
      for (const [i, axes] of subsets(4).entries()) await check(op, [3, 1, 6, 5], axes, 40 + i);
    });

    it(`${op}: ranks 1..5, all axes and negative axes`, async () => {
      await check(op, [37], undefined, 1);
      await check(op, [37], [0], 2);
      await check(op, [9, 11], [-1], 3);
      await check(op, [4, 3, 5], [-3, -1], 4);
      await check(op, [2, 3, 4, 5], undefined, 5);
      await check(op, [2, 3, 2, 3, 2], [0, 2, 4], 6);
      await check(op, [2, 3, 2, 3, 2], [1, 3], 7);
      await check(op, [1, 1, 1], [1], 8);
      await check(op, [1], undefined, 9);
    });
  }

  it('reduces the batch and spatial axes of an NCDHW tensor (a bias gradient)', () => check('sum', [2, 6, 3, 5, 7], [0, 2, 3, 4], 70));

  it('a long reduction over one axis takes the two-pass path', async () => {
    const n = 300_001;
    // Positive data: the sum is large, so f32 accuracy is meaningful (Kahan per lane + tree).
    const x = randomArray(n, 71, 0, 1);
    const before = gpu().dispatchCount;
    await check('sum', [n], undefined, 71, gpu(), x);
    expect(gpu().dispatchCount - before).toBe(2);
    await check('mean', [n], [0], 72, gpu(), x);
    await check('max', [n], [0], 73, gpu(), x);
  });

  it('a long strided reduction (axis 0 of [40000, 5]) and a long one with several outputs', async () => {
    await check('sum', [40000, 5], [0], 74);
    await check('mean', [3, 70000], [1], 75);
  });

  it('70000 outputs: the last axis of [70000, 3], and of [70000, 129] (one workgroup per row: past 65535)', async () => {
    await check('sum', [70000, 3], [1], 76);
    await check('max', [70000, 129], [-1], 77);
  });

  it('runs in slabs when the input exceeds one binding', async () => {
    const g = withBindingLimit(gpu(), 4096); // 960 elements per window
    await check('sum', [7, 300], [1], 80, g); // slabs of a kept axis
    await check('mean', [7, 300], [0], 81, g); // slabs of a reduced axis, then partials
    await check('max', [5, 4, 100], [0, 2], 82, g);
    await check('sum', [2, 3000], undefined, 83, g); // one slab is larger than a window: recursion
    await check('mean', [3, 600], [0], 84, g); // slabs of a reduced axis accumulate into the output
    await check('max', [3, 700, 2], [0, 2], 85, g);
    await check('mean', [4, 5, 300], [0, 2], 86, g);
  });

  it('an empty reduced extent gives 0 / NaN / -Infinity', async () => {
    const xb = empty(gpu(), 4);
    const ob = empty(gpu(), 3);
    const want: Record<ReduceOp, number> = { sum: 0, mean: NaN, max: -Infinity };
    for (const op of REDUCE_OPS) {
      expect(reduce(gpu(), op, xb, [3, 0], [1], ob)).toEqual([3]);
      expect([...(await download(gpu(), ob, 3))]).toEqual([want[op], want[op], want[op]]);
    }
  });

  it('shape helpers', () => {
    expect(reducedShape([2, 3, 4], [1])).toEqual([2, 4]);
    expect(reducedShape([2, 3, 4])).toEqual([]);
    expect(reducedShape([2, 3, 4], [-1, 0])).toEqual([3]);
    expect(reducedShapeKeepDims([2, 3, 4], [-1, 0])).toEqual([1, 3, 1]);
    expect(reducedShapeKeepDims([2, 3, 4])).toEqual([1, 1, 1]);
    expect(sumToShapeAxes([2, 3, 4], [3, 1])).toEqual([0, 2]);
  });

  it('rejects bad axes, an unknown op and a too-small buffer', () => {
    const b = empty(gpu(), 64);
    const o = empty(gpu(), 64);
    expect(() => reduce(gpu(), 'sum', b, [2, 3], [2], o)).toThrow(/reduce sum: axis 2 is out of range for a rank-2 input/);
    expect(() => reduce(gpu(), 'prod' as ReduceOp, b, [2, 3], [0], o)).toThrow(/reduce: unknown op 'prod'/);
    expect(() => reduce(gpu(), 'max', b, [20, 30], [0], o)).toThrow(/reduce max input: buffer of 256 bytes is too small for 600 f32/);
    expect(() => reduce(gpu(), 'sum', empty(gpu(), 640), [8, 80], [0], o)).toThrow(/reduce sum output: buffer of 256 bytes is too small for 80 f32/);
  });
});

describe('sumToShape (the adjoint of broadcasting)', () => {
  const cases: [number[], number[]][] = [
    [[3, 5, 7], [7]],
    [[3, 5, 7], [5, 1]],
    [[3, 5, 7], [3, 1, 7]],
    [[3, 5, 7], [1, 1, 1]],
    [[3, 5, 7], []],
    [[3, 5, 7], [3, 5, 7]],
    [[2, 4, 3, 2, 3], [4, 1, 1, 1]],
  ];
  cases.forEach(([gShape, target], i) => {
    it(`[${gShape}] -> [${target}]`, async () => {
      const g = randomArray(size(gShape), 200 + i);
      const ob = empty(gpu(), Math.max(1, size(target)));
      expect(sumToShape(gpu(), upload(gpu(), g), gShape, target, ob)).toEqual(target);
      expectClose(await download(gpu(), ob, size(target)), sumToShapeRef(g, gShape, target), 1e-5, 1e-5);
    });
  });

  it('names both shapes when the target does not broadcast', () => {
    const b = empty(gpu(), 64);
    expect(() => sumToShape(gpu(), b, [3, 5], [4], b)).toThrow(/sumToShape: target shape \[4\] does not broadcast to the gradient shape \[3, 5\]/);
    expect(() => sumToShape(gpu(), b, [5], [2, 5], b)).toThrow(/target shape \[2, 5\] does not broadcast/);
  });
});

describe('reduce backward', () => {
  const cases: [number[], number[] | undefined][] = [
    [[4, 5, 3], [1]],
    [[4, 5, 3], [0, 2]],
    [[4, 5, 3], undefined],
    [[2, 3, 1, 4], [-1, 1]],
  ];
  for (const op of REDUCE_OPS) {
    it(`${op}: the CPU twin passes gradcheck`, () => {
      for (const [i, [shape, axes]] of cases.entries()) {
        const x = Float64Array.from(randomArray(size(shape), 300 + i));
        const v = Float64Array.from(randomArray(size(reducedShape(shape, axes)), 310 + i));
        const numeric = numericGradient((xx) => dot(reduceRef(op, xx, shape, axes).data, v), x);
        expect(maxRelativeError(reduceBackwardRef(op, x, shape, axes, v), numeric, 1e-6, 1e-5)).toBeLessThanOrEqual(1);
      }
    });

    it(`${op}: the GPU backward matches the CPU twin`, async () => {
      for (const [i, [shape, axes]] of cases.entries()) {
        const x = randomArray(size(shape), 320 + i);
        const gy = randomArray(size(reducedShape(shape, axes)), 330 + i);
        const xb = upload(gpu(), x);
        const yb = empty(gpu(), gy.length);
        reduce(gpu(), op, xb, shape, axes, yb);
        const gxb = empty(gpu(), x.length);
        reduceBackward(gpu(), op, shape, axes, upload(gpu(), gy), gxb, xb, yb);
        expectClose(await download(gpu(), gxb, x.length), reduceBackwardRef(op, x, shape, axes, gy), 1e-6, 1e-5);
      }
    });
  }

  it('runs in windows when the gradient exceeds one binding', async () => {
    const g = withBindingLimit(gpu(), 4096);
    const shape = [30, 70];
    const gy = randomArray(70, 340);
    const gxb = empty(g, 2100);
    reduceBackward(g, 'mean', shape, [0], upload(g, gy), gxb);
    expectClose(await download(g, gxb, 2100), reduceBackwardRef('mean', new Float32Array(2100), shape, [0], gy), 1e-7, 1e-6);
  });

  it('max needs the forward tensors', () => {
    const b = empty(gpu(), 64);
    expect(() => reduceBackward(gpu(), 'max', [4], [0], b, empty(gpu(), 4))).toThrow(/reduceBackward max: the forward input x and output y are required/);
  });
});
