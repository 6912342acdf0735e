/** Element-wise ops and their gradients: add, sub, mul, div (broadcasting), and unary maps. */
import { binary, broadcastShapes, unary, type BinaryOp, type UnaryOp } from '../../kernels/elementwise.js';
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

/** Raw element-wise map without recording (used by rules). */
export function mapUnary(op: UnaryOp, x: Tensor, scalar = 0): Tensor {
  const y = Tensor.empty(x.shape, x.gpu);
  unary(x.gpu, op, x.buffer, y.buffer, x.size, scalar);
  return y;
}

/** Raw broadcasting binary map without recording (used by rules). */
export function mapBinary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const y = Tensor.empty(broadcastShapes(a.shape, b.shape, op), a.gpu);
  binary(a.gpu, op, a.buffer, a.shape, b.buffer, b.shape, y.buffer);
  return y;
}

/** The adjoint of broadcasting: sums g over the axes that were broadcast to reach `shape`. */
export function reduceGradTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g.shareAs(shape);
  const out = Tensor.empty(shape, g.gpu);
  sumToShape(g.gpu, g.buffer, g.shape, shape, out.buffer);
  return out;
}

export function add(a: Tensor, b: Tensor | number): Tensor {
  assertLive(a, 'add');
  if (typeof b === 'number') return affine(a, 1, b, 'add');
  assertLive(b, 'add');
  const out = mapBinary('add', a, b);
  return recordOp('add', [a, b], out, [], (g) => [
    a.requiresGrad ? reduceGradTo(g, a.shape) : null,
    b.requiresGrad ? reduceGradTo(g, b.shape) : null,
  ]);
}

export function sub(a: Tensor, b: Tensor | number): Tensor {
  assertLive(a, 'sub');
  if (typeof b === 'number') return affine(a, 1, -b, 'sub');
  assertLive(b, 'sub');
  const out = mapBinary('sub', a, b);
  return recordOp('sub', [a, b], out, [], (g) => [
    a.requiresGrad ? reduceGradTo(g, a.shape) : null,
    b.requiresGrad ? reduceGradTo(mapUnary('neg', g), b.shape) : null,
  ]);
}

export function mul(a: Tensor, b: Tensor | number): Tensor {
  assertLive(a, 'mul');
  if (typeof b === 'number') return affine(a, b, 0, 'mul');
  assertLive(b, 'mul');
  const out = mapBinary('mul', a, b);
  return recordOp('mul', [a, b], out, [a, b], (g, [sa, sb]) => [
    a.requiresGrad ? reduceGradTo(mapBinary('mul', g, sb), a.shape) : null,
    b.requiresGrad ? reduceGradTo(mapBinary('mul', g, sa), b.shape) : null,
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
    a.requiresGrad ? reduceGradTo(mapBinary('div', g, sb), a.shape) : null,
    // d(a/b)/db = -(a/b)/b
    b.requiresGrad ? reduceGradTo(mapUnary('neg', mapBinary('div', mapBinary('mul', g, so), sb)), b.shape) : null,
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
