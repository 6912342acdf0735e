import { describe, expect, it } from 'vitest';
import { BINARY_OPS, UNARY_OPS, addInPlace, binary, expand, unary, type BinaryOp, type UnaryOp } from '../../src/kernels/elementwise.js';
import { binaryRef, expandRef, unaryRef } from '../../src/kernels/reference/elementwise.js';
import { download, empty, expectClose, randomArray, upload, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();
const POSITIVE: UnaryOp[] = ['log', 'sqrt', 'powScalar', 'reciprocal'];

describe('unary kernels', () => {
  for (const op of Object.keys(UNARY_OPS) as UnaryOp[]) {
    // An odd length runs f32 lanes; a multiple of 4 runs vec4s on software adapters (the last block partial).
    it.each([1037, 4004])(`${op} matches the CPU twin on length %i`, async (n) => {
      const x = POSITIVE.includes(op) ? randomArray(n, 1, 0.1, 3) : randomArray(n, 1, -4, 4);
      const xb = upload(gpu(), x);
      const yb = empty(gpu(), n);
      unary(gpu(), op, xb, yb, n, 1.7);
      expectClose(await download(gpu(), yb, n), unaryRef(op, x, 1.7), 1e-5, 1e-5);
    });
  }

  // GPUs: 65552 workgroups of 256, folded into y (software adapters take 4 indices per invocation: 16388).
  it('runs a long launch (past 65535 workgroups of 256 on GPUs)', async () => {
    const n = 65535 * 256 + 4099;
    const x = randomArray(n, 2);
    const xb = upload(gpu(), x);
    const yb = empty(gpu(), n);
    unary(gpu(), 'mulScalar', xb, yb, n, -2);
    const y = await download(gpu(), yb, n);
    expect(y[0]).toBeCloseTo(-2 * x[0], 5);
    expect(y[n - 1]).toBeCloseTo(-2 * x[n - 1], 5);
    expectClose(y, unaryRef('mulScalar', x, -2), 1e-6, 1e-6);
  });

  it('rejects an unknown op and a too-small buffer', () => {
    const b = empty(gpu(), 4);
    expect(() => unary(gpu(), 'nope' as UnaryOp, b, b, 4)).toThrow(/unknown op 'nope'/);
    expect(() => unary(gpu(), 'relu', b, b, 100)).toThrow(/unary relu input: buffer of 256 bytes is too small for 100 f32/);
  });
});

describe('binary kernels with broadcasting', () => {
  const cases: [number[], number[]][] = [
    [[3, 5, 7], [3, 5, 7]],
    [[4, 6, 43], [4, 6, 43]], // same shape, 1032 elements: vec4 blocks on software adapters
    [[2, 2, 1, 1, 1], [2, 2, 4, 5, 6]],
    [[3, 5, 7], [7]],
    [[3, 1, 7], [1, 5, 1]],
    [[2, 3, 1, 1, 1], [2, 3, 4, 5, 6]],
    [[1], [9, 1]],
    [[], [4, 3]],
  ];
  for (const op of Object.keys(BINARY_OPS) as BinaryOp[]) {
    for (const [as, bs] of cases) {
      it(`${op} [${as}] with [${bs}]`, async () => {
        const a = randomArray(as.reduce((x, y) => x * y, 1), 3, -2, 2);
        const b = randomArray(bs.reduce((x, y) => x * y, 1), 4, 0.5, 2);
        const ref = binaryRef(op, a, as, b, bs);
        const ob = empty(gpu(), ref.data.length);
        const shape = binary(gpu(), op, upload(gpu(), a), as, upload(gpu(), b), bs, ob);
        expect(shape).toEqual(ref.shape);
        expectClose(await download(gpu(), ob, ref.data.length), ref.data, 1e-5, 1e-5);
      });
    }
  }

  it('names the op and both shapes when they do not broadcast', () => {
    const b = empty(gpu(), 64);
    expect(() => binary(gpu(), 'add', b, [2, 3], b, [4, 3], b)).toThrow(/add: shapes \[2, 3\] and \[4, 3\] cannot be broadcast/);
  });
});

describe('addInPlace', () => {
  it('adds into the accumulator, vec4 and scalar lengths, and refuses aliasing', async () => {
    const g = gpu();
    for (const n of [1, 7, 4096]) {
      const a = randomArray(n, 60 + n);
      const b = randomArray(n, 61 + n);
      const [ab, bb] = [upload(g, a), upload(g, b)];
      addInPlace(g, ab, bb, n);
      expectClose(await download(g, ab, n), a.map((v, i) => v + b[i]), 1e-7, 1e-7);
      expect(() => addInPlace(g, ab, ab, n)).toThrow(/different buffers/);
      g.pool.release(ab);
      g.pool.release(bb);
    }
  });
});

describe('expand', () => {
  for (const [xs, os] of [[[3, 1, 5], [2, 3, 4, 5]], [[1], [7, 3]], [[4, 3], [4, 3]]] as [number[], number[]][]) {
    it(`[${xs}] -> [${os}]`, async () => {
      const x = randomArray(xs.reduce((a, b) => a * b, 1), 5);
      const n = os.reduce((a, b) => a * b, 1);
      const ob = empty(gpu(), n);
      expand(gpu(), upload(gpu(), x), xs, os, ob);
      expectClose(await download(gpu(), ob, n), expandRef(x, xs, os), 0, 0);
    });
  }
  it('refuses a shape it cannot expand to', () => {
    const b = empty(gpu(), 64);
    expect(() => expand(gpu(), b, [3, 2], [3, 1], b)).toThrow(/expand/);
  });
});
