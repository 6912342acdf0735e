import { describe, expect, it } from 'vitest';
import { MATMUL_TILES, matmul, matmulBackward, matmulShapes, pickMatmulTile, type MatmulOptions, type MatmulTile } from '../../src/kernels/matmul.js';
import { dot, maxRelativeError, numericGradient } from '../../src/kernels/reference/gradcheck.js';
import { matmulBackwardRef, matmulRef } from '../../src/kernels/reference/matmul.js';
import type { Gpu } from '../../src/kernels/runtime/gpu.js';
import { download, empty, expectClose, randomArray, upload, useGpu, withBindingLimit } from '../helpers/gpu.js';

const gpu = useGpu();


async function check(opts: MatmulOptions, seed: number, tile?: MatmulTile, g: Gpu = gpu()): Promise<void> {
  const batch = opts.batch ?? 1;
  const sA = opts.batchStrideA ?? opts.m * opts.k;
  const sB = opts.batchStrideB ?? opts.k * opts.n;
  const a = randomArray(Math.max(1, (batch - 1) * sA + opts.m * opts.k), seed);
  const b = randomArray(Math.max(1, (batch - 1) * sB + opts.k * opts.n), seed + 1);
  const want = matmulRef(a, b, opts);
  const ob = empty(g, Math.max(1, want.length));
  matmul(g, upload(g, a), upload(g, b), ob, opts, tile);
  expectClose(await download(g, ob, want.length), want, 1e-5, 1e-4);
}

const TRANSPOSES: [boolean, boolean][] = [[false, false], [true, false], [false, true], [true, true]];

describe('matmul', () => {
  it('picks a tile that fits the device limits', () => {
    const t = pickMatmulTile(gpu());
    expect(t.threads).toBeLessThanOrEqual(gpu().limits.maxComputeInvocationsPerWorkgroup);
    expect(t.storageBytes).toBeLessThanOrEqual(gpu().limits.maxComputeWorkgroupStorageSize);
    expect(t.name).toBe('128x128x8/8x8');
    expect(pickMatmulTile(gpu(), { m: 7, n: 13 }).bm).toBeLessThanOrEqual(16);
  });

  for (const [ta, tb] of TRANSPOSES) {
    const tag = `${ta ? 'T' : 'N'}${tb ? 'T' : 'N'}`;
    it(`${tag}: odd sizes 1x1x1, 7x13x5, 65x129x33 with the automatic tile`, async () => {
      await check({ m: 1, n: 1, k: 1, transposeA: ta, transposeB: tb }, 1);
      await check({ m: 7, n: 13, k: 5, transposeA: ta, transposeB: tb }, 3);
      await check({ m: 65, n: 129, k: 33, transposeA: ta, transposeB: tb }, 5);
    });
  }

  // Each pipeline costs seconds to compile on lavapipe: every tile runs once, on the plain layout.
  for (const tile of MATMUL_TILES) {
    it(`tile ${tile.name} on 37x70x19 and batched 3 x 20x9x17 with B shared`, async () => {
      await check({ m: 37, n: 70, k: 19 }, 7, tile);
      await check({ batch: 3, m: 20, n: 9, k: 17, batchStrideB: 0 }, 9, tile);
    });
  }

  it('batch broadcast: A shared, B shared, both shared, and strided batches', async () => {
    await check({ batch: 4, m: 9, n: 11, k: 6, batchStrideA: 0 }, 11);
    await check({ batch: 4, m: 9, n: 11, k: 6, batchStrideB: 0, transposeB: true }, 13);
    await check({ batch: 3, m: 5, n: 4, k: 3, batchStrideA: 0, batchStrideB: 0 }, 15);
    await check({ batch: 3, m: 5, n: 4, k: 3, batchStrideA: 20, batchStrideB: 13 }, 17);
    await check({ batch: 2, m: 9, n: 11, k: 6, batchStrideA: 0, transposeA: true, transposeB: true }, 18);
  });

  it('k = 0 gives zeros; k larger than many tiles', async () => {
    await check({ m: 5, n: 6, k: 0 }, 19);
    await check({ m: 3, n: 2, k: 1000 }, 21);
  });

  it('chunks the batch when operands exceed one binding', async () => {
    const g = withBindingLimit(gpu(), 4096); // 960 elements per window
    const before = g.dispatchCount;
    await check({ batch: 20, m: 10, n: 12, k: 9 }, 23, undefined, g);
    expect(g.dispatchCount - before).toBe(3); // 8 output matrices of 120 elements per window of 960
    await check({ batch: 5, m: 10, n: 12, k: 9, batchStrideB: 0, transposeA: true }, 25, undefined, g);
  });

  it('matmulShapes broadcasts batches and names mismatched shapes', () => {
    expect(matmulShapes([2, 3, 4], [4, 5])).toEqual({
      outShape: [2, 3, 5],
      options: { batch: 2, m: 3, n: 5, k: 4, transposeA: false, transposeB: false, batchStrideA: 12, batchStrideB: 0 },
    });
    expect(matmulShapes([4, 3], [2, 5, 4], true, true).outShape).toEqual([2, 3, 5]);
    expect(() => matmulShapes([2, 3, 4], [5, 6])).toThrow(/matmul: inner dimensions differ \(4 vs 5\) for A \[2, 3, 4\] and B \[5, 6\]/);
    expect(() => matmulShapes([2, 1, 3, 4], [1, 3, 4, 5])).toThrow(/matmul: batch dimensions of A \[2, 1, 3, 4\] and B \[1, 3, 4, 5\] do not match/);
    expect(() => matmulShapes([3], [3, 4])).toThrow(/must both have rank >= 2/);
  });

  it('rejects a too-small buffer, bad sizes and aliasing', () => {
    const s = empty(gpu(), 64);
    const big = empty(gpu(), 4096);
    expect(() => matmul(gpu(), s, big, big, { m: 10, n: 10, k: 10 }))
      .toThrow(/matmul A \(batch 1, \[10, 10\], stride 100\): buffer of 256 bytes is too small for 100 f32/);
    expect(() => matmul(gpu(), big, big, s, { batch: 2, m: 10, n: 10, k: 10 }))
      .toThrow(/matmul output \(\[2, 10, 10\]\): buffer of 256 bytes is too small for 200 f32/);
    expect(() => matmul(gpu(), big, big, s, { m: -1, n: 10, k: 10 })).toThrow(/matmul: m must be a non-negative integer, got -1/);
    expect(() => matmul(gpu(), big, s, big, { m: 2, n: 2, k: 2 })).toThrow(/must not be an input buffer/);
  });
});

describe('matmul backward', () => {
  const cases: MatmulOptions[] = [];
  for (const [ta, tb] of TRANSPOSES) {
    cases.push({ batch: 2, m: 3, n: 4, k: 5, transposeA: ta, transposeB: tb });
    cases.push({ batch: 3, m: 4, n: 2, k: 3, transposeA: ta, transposeB: tb, batchStrideB: 0 });
    cases.push({ batch: 3, m: 2, n: 3, k: 4, transposeA: ta, transposeB: tb, batchStrideA: 0 });
  }
  const lengths = (o: MatmulOptions) => {
    const batch = o.batch ?? 1;
    return [
      o.batchStrideA === 0 ? o.m * o.k : batch * o.m * o.k,
      o.batchStrideB === 0 ? o.k * o.n : batch * o.k * o.n,
    ];
  };

  it('the CPU twin passes gradcheck', () => {
    for (const [i, o] of cases.entries()) {
      const [la, lb] = lengths(o);
      const a = Float64Array.from(randomArray(la, 400 + i));
      const b = Float64Array.from(randomArray(lb, 500 + i));
      const v = Float64Array.from(randomArray((o.batch ?? 1) * o.m * o.n, 600 + i));
      const { gradA, gradB } = matmulBackwardRef(a, b, v, o);
      expect(maxRelativeError(gradA, numericGradient((x) => dot(matmulRef(x, b, o), v), a))).toBeLessThanOrEqual(1);
      expect(maxRelativeError(gradB, numericGradient((x) => dot(matmulRef(a, x, o), v), b))).toBeLessThanOrEqual(1);
    }
  });

  it('the GPU backward matches the CPU twin (all transposes, shared A or B)', async () => {
    for (const [i, o] of cases.entries()) {
      const [la, lb] = lengths(o);
      const a = randomArray(la, 700 + i);
      const b = randomArray(lb, 800 + i);
      const g = randomArray((o.batch ?? 1) * o.m * o.n, 900 + i);
      const ref = matmulBackwardRef(a, b, g, o);
      const ga = empty(gpu(), la);
      const gb = empty(gpu(), lb);
      matmulBackward(gpu(), upload(gpu(), a), upload(gpu(), b), upload(gpu(), g), ga, gb, o);
      expectClose(await download(gpu(), ga, la), ref.gradA, 1e-5, 1e-4);
      expectClose(await download(gpu(), gb, lb), ref.gradB, 1e-5, 1e-4);
    }
  });

  it('rejects strides it cannot differentiate', () => {
    const s = empty(gpu(), 256);
    expect(() => matmulBackward(gpu(), s, s, s, null, null, { batch: 2, m: 2, n: 2, k: 2, batchStrideA: 3 }))
      .toThrow(/matmulBackward: batchStrideA must be 0 \(shared\) or 4 \(dense\) for gradients, got 3/);
  });
});
