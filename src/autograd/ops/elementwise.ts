/** Element-wise ops and their gradients: add, sub, mul, div (broadcasting), and unary maps. */
import { binary, broadcastShapes, cast as castKernel, unary, type BinaryOp, type UnaryOp } from '../../kernels/elementwise.js';
import type { DType } from '../../kernels/runtime/precision.js';
import { sumToShape } from '../../kernels/reduce.js';
import { recordOp } from '../tape.js';
import { Tensor } from '../tensor.js';

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function assertLive(t: Tensor, op: string): void {
  if (!(t instanceof Tensor)) throw new TypeError(`${op}: expected a Tensor, got ${typeof t}`);
  if (t.isDisposed) throw new Error(`${op}: input tensor [${t.shape.join(', ')}] was disposed`);
}

/** Raw element-wise map without recording (used by rules); the result has x's dtype. */
export function mapUnary(op: UnaryOp, x: Tensor, scalar = 0): Tensor {
  const y = Tensor.empty(x.shape, x.gpu, x.dtype);
  unary(x.gpu, op, x.buffer, y.buffer, x.size, scalar, x.dtype);
  return y;
}

/** Raw copy of x converted to `dtype` without recording. */
export function mapCast(x: Tensor, dtype: DType): Tensor {
  const y = Tensor.empty(x.shape, x.gpu, dtype);
  castKernel(x.gpu, x.buffer, x.dtype, y.buffer, dtype, x.size);
  return y;
}

/** Raw broadcasting binary map without recording (used by rules); an f16 and an f32 operand compute in f32. */
export function mapBinary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  if (a.dtype !== b.dtype) {
    const [fa, fb] = [a.dtype === 'f32' ? a : mapCast(a, 'f32'), b.dtype === 'f32' ? b : mapCast(b, 'f32')];
    const y = mapBinary(op, fa, fb);
    if (fa !== a) fa.dispose();
    if (fb !== b) fb.dispose();
    return y;
  }
  const y = Tensor.empty(broadcastShapes(a.shape, b.shape, op), a.gpu, a.dtype);
  binary(a.gpu, op, a.buffer, a.shape, b.buffer, b.shape, y.buffer, a.dtype);
  return y;
}

/** The adjoint of broadcasting: sums g over the axes that were broadcast to reach `shape` (the sum in f32). */
export function reduceGradTo(g: Tensor, shape: readonly number[], dtype: DType = g.dtype): Tensor {
  if (sameShape(g.shape, shape)) return g.dtype === dtype ? g.shareAs(shape) : mapCast(g, dtype);
  const g32 = g.dtype === 'f32' ? g : mapCast(g, 'f32');
  const out = Tensor.empty(shape, g.gpu);
  sumToShape(g.gpu, g32.buffer, g32.shape, shape, out.buffer);
  if (g32 !== g) g32.dispose();
  if (dtype === 'f32') return out;
  const half = mapCast(out, dtype);
  out.dispose();
  return half;
}

/**
 * x converted to `dtype` (a copy even when the dtype is the same); differentiable: the gradient is converted
 * back. Mixed precision enters and leaves f16 through it: an f16 store rounds to nearest even and becomes
 * infinite beyond 65504.
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  assertLive(x, 'cast');
  return recordOp('cast', [x], mapCast(x, dtype), [], (g) => [mapCast(g, x.dtype)]);
}

/** x itself when it is f32, else cast(x, 'f32'): what an op without an f16 kernel does with its input. */
export function asF32(x: Tensor): Tensor {
  return x.dtype === 'f32' ? x : cast(x, 'f32');
}

export function add(a: Tensor, b: Tensor | number): Tensor {
  assertLive(a, 'add');
  if (typeof b === 'number') return affine(a, 1, b, 'add');
  assertLive(b, 'add');
  const out = mapBinary('add', a, b);
  return recordOp('add', [a, b], out, [], (g) => [
    a.requiresGrad ? reduceGradTo(g, a.shape, a.dtype) : null,
    b.requiresGrad ? reduceGradTo(g, b.shape, b.dtype) : null,
  ]);
}

export function sub(a: Tensor, b: Tensor | number): Tensor {
  assertLive(a, 'sub');
  if (typeof b === 'number') return affine(a, 1, -b, 'sub');
  assertLive(b, 'sub');
  const out = mapBinary('sub', a, b);
  return recordOp('sub', [a, b], out, [], (g) => [
    a.requiresGrad ? reduceGradTo(g, a.shape, a.dtype) : null,
    b.requiresGrad ? reduceGradTo(mapUnary('neg', g), b.shape, b.dtype) : null,
  ]);
}

export function mul(a: Tensor, b: Tensor | number): Tensor {
  assertLive(a, 'mul');
  if (typeof b === 'number') return affine(a, b, 0, 'mul');
  assertLive(b, 'mul');
  const out = mapBinary('mul', a, b);
  return recordOp('mul', [a, b], out, [a, b], (g, [sa, sb]) => [
    a.requiresGrad ? reduceGradTo(mapBinary('mul', g, sb), a.shape, a.dtype) : null,
    b.requiresGrad ? reduceGradTo(mapBinary('mul', g, sa), b.shape, b.dtype) : null,
  ]);
}

export function div(a: Tensor, b: Tensor | number): Tensor {
  assertLive(a, 'div');
  if (typeof b === 'number') {
    if (b === 0) throw new RangeError('div: division by the scalar 0');
    return affine(a, 1 / b, 0, 'div');
  }
  assertLive(b, 'div');
  const out = mapBinary('div', a, b);
  return recordOp('div', [a, b], out, [b, out], (g, [sb, so]) => [
    a.requiresGrad ? reduceGradTo(mapBinary('div', g, sb), a.shape, a.dtype) : null,
    // d(a/b)/db = -(a/b)/b
    b.requiresGrad ? reduceGradTo(mapUnary('neg', mapBinary('div', mapBinary('mul', g, so), sb)), b.shape, b.dtype) : null,
  ]);
}

/** a * scale + shift, one kernel per non-trivial part. */
function affine(a: Tensor, scale: number, shift: number, op: string): Tensor {
  let out: Tensor;
  if (scale !== 1 && shift !== 0) {
    const t = mapUnary('mulScalar', a, scale);
    out = mapUnary('addScalar', t, shift);
    t.dispose();
  } else if (scale !== 1) out = mapUnary('mulScalar', a, scale);
  else out = mapUnary('addScalar', a, shift);
  return recordOp(op, [a], out, [], (g) => [scale === 1 ? g.shareAs(g.shape) : mapUnary('mulScalar', g, scale)]);
}

export function neg(x: Tensor): Tensor {
  assertLive(x, 'neg');
  return recordOp('neg', [x], mapUnary('neg', x), [], (g) => [mapUnary('neg', g)]);
}

export function relu(x: Tensor): Tensor {
  assertLive(x, 'relu');
  return recordOp('relu', [x], mapUnary('relu', x), [x], (g, [sx]) => [mapBinary('reluGrad', sx, g)]);
}

export function sigmoid(x: Tensor): Tensor {
  assertLive(x, 'sigmoid');
  const y = mapUnary('sigmoid', x);
  return recordOp('sigmoid', [x], y, [y], (g, [sy]) => [mapBinary('sigmoidGrad', sy, g)]);
}

export function exp(x: Tensor): Tensor {
  assertLive(x, 'exp');
  const y = mapUnary('exp', x);
  return recordOp('exp', [x], y, [y], (g, [sy]) => [mapBinary('mul', g, sy)]);
}

export function log(x: Tensor): Tensor {
  assertLive(x, 'log');
  return recordOp('log', [x], mapUnary('log', x), [x], (g, [sx]) => [mapBinary('div', g, sx)]);
}

export function sqrt(x: Tensor): Tensor {
  assertLive(x, 'sqrt');
  const y = mapUnary('sqrt', x);
  // d sqrt(x) = 1 / (2 sqrt(x))
  return recordOp('sqrt', [x], y, [y], (g, [sy]) => [mapUnary('mulScalar', mapBinary('div', g, sy), 0.5)]);
}

export function square(x: Tensor): Tensor {
  assertLive(x, 'square');
  return recordOp('square', [x], mapUnary('square', x), [x], (g, [sx]) => [mapUnary('mulScalar', mapBinary('mul', g, sx), 2)]);
}

export function pow(x: Tensor, exponent: number): Tensor {
  assertLive(x, 'pow');
  return recordOp('pow', [x], mapUnary('powScalar', x, exponent), [x], (g, [sx]) => [
    mapBinary('mul', g, mapUnary('mulScalar', mapUnary('powScalar', sx, exponent - 1), exponent)),
  ]);
}
