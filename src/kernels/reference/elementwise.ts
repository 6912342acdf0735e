/** CPU twins of the element-wise kernels, in float64. */
import { BINARY_OPS, UNARY_OPS, broadcastShapes, type BinaryOp, type UnaryOp } from '../elementwise.js';
import { sizeOf, stridesOf } from '../runtime/wgsl.js';

const UNARY: Record<UnaryOp, (x: number, s: number) => number> = {
  neg: (x) => -x,
  relu: (x) => Math.max(x, 0),
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  abs: Math.abs,
  square: (x) => x * x,
  reciprocal: (x) => 1 / x,
  addScalar: (x, s) => x + s,
  subScalar: (x, s) => x - s,
  mulScalar: (x, s) => x * s,
  divScalar: (x, s) => x / s,
  rsubScalar: (x, s) => s - x,
  powScalar: (x, s) => x ** s,
  maxScalar: (x, s) => Math.max(x, s),
  fill: (_x, s) => s,
  copy: (x) => x,
};

const BINARY: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  max: Math.max,
  min: Math.min,
  reluGrad: (a, b) => (a > 0 ? b : 0),
  sigmoidGrad: (a, b) => b * a * (1 - a),
  eq: (a, b) => (a === b ? 1 : 0),
};

// Keep the twins in step with the WGSL tables: a new op without a twin fails at import.
for (const k of Object.keys(UNARY_OPS)) if (!(k in UNARY)) throw new Error(`reference: unary op ${k} has no CPU twin`);
for (const k of Object.keys(BINARY_OPS)) if (!(k in BINARY)) throw new Error(`reference: binary op ${k} has no CPU twin`);

export function unaryRef(op: UnaryOp, x: ArrayLike<number>, scalar = 0): Float64Array {
  const f = UNARY[op];
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = f(x[i], scalar);
  return y;
}

export function binaryRef(
  op: BinaryOp, a: ArrayLike<number>, aShape: readonly number[], b: ArrayLike<number>, bShape: readonly number[],
): { data: Float64Array; shape: number[] } {
  const shape = broadcastShapes(aShape, bShape, op);
  const n = sizeOf(shape);
  const ai = broadcastIndexer(aShape, shape);
  const bi = broadcastIndexer(bShape, shape);
  const f = BINARY[op];
  const data = new Float64Array(n);
  for (let i = 0; i < n; i++) data[i] = f(a[ai(i)], b[bi(i)]);
  return { data, shape };
}

/** Maps an output linear index to the linear index of a broadcast input. */
export function broadcastIndexer(inShape: readonly number[], outShape: readonly number[]): (i: number) => number {
  const n = outShape.length;
  const padded = [...new Array<number>(n - inShape.length).fill(1), ...inShape];
  const os = stridesOf(outShape);
  const is = stridesOf(padded);
  return (i) => {
    let j = 0;
    for (let k = 0; k < n; k++) if (padded[k] !== 1) j += (Math.floor(i / os[k]) % outShape[k]) * is[k];
    return j;
  };
}

/** x broadcast to outShape. */
export function expandRef(x: ArrayLike<number>, xShape: readonly number[], outShape: readonly number[]): Float64Array {
  const idx = broadcastIndexer(xShape, outShape);
  const out = new Float64Array(sizeOf(outShape));
  for (let i = 0; i < out.length; i++) out[i] = x[idx(i)];
  return out;
}
