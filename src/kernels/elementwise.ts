/**
 * Element-wise kernels: unary maps (with an optional scalar) and binary maps with NumPy broadcasting.
 * Tensors larger than one storage binding are processed in windows of the binding size.
 */
import type { Gpu } from './runtime/gpu.js';
import { cachedSignature, f32Bits, kernelSignature, readOnly, readWrite } from './runtime/kernel-signature.js';
import { bytesPerElement, computeType, requireDType, storageType, type DType } from './runtime/precision.js';
import {
  blockedMain, checkBuffer, checkShape, invocationBlock, linearWorkgroupSize, maxBindingElements, sizeOf, stridesOf,
} from './runtime/wgsl.js';
import { alignElements, forEachWindow } from './runtime/windows.js';

/** WGSL expression of each unary op in terms of `x` and the scalar `s`. */
export const UNARY_OPS = {
  neg: '-x',
  relu: 'max(x, 0.0)',
  sigmoid: '1.0 / (1.0 + exp(-x))',
  exp: 'exp(x)',
  log: 'log(x)',
  sqrt: 'sqrt(x)',
  abs: 'abs(x)',
  square: 'x * x',
  reciprocal: '1.0 / x',
  addScalar: 'x + s',
  subScalar: 'x - s',
  mulScalar: 'x * s',
  divScalar: 'x / s',
  rsubScalar: 's - x',
  powScalar: 'pow(x, s)',
  maxScalar: 'max(x, s)',
  fill: 's',
  copy: 'x',
} as const;
export type UnaryOp = keyof typeof UNARY_OPS;

/** WGSL expression of each binary op in terms of `a` and `b`. */
export const BINARY_OPS = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  div: 'a / b',
  max: 'max(a, b)',
  min: 'min(a, b)',
  /** ReLU backward: a is the ReLU input, b the upstream gradient. */
  reluGrad: 'select(0.0, b, a > 0.0)',
  /** Sigmoid backward: a is the sigmoid output, b the upstream gradient. */
  sigmoidGrad: 'b * a * (1.0 - a)',
  /** 1 where equal (max backward's mask). */
  eq: 'select(0.0, 1.0, a == b)',
} as const;
export type BinaryOp = keyof typeof BINARY_OPS;

/** ys = op(xs, s): `s` travels as f32 bits, so fills and bounds may be infinite or NaN. Loads convert to f32. */
const unarySignature = (x: DType | null, y: DType, V: 1 | 4) => cachedSignature(`unary:${x}:${y}:${V}`, () => kernelSignature('unary', {
  uniforms: { n: 'u32', s: 'u32' },
  storage: { ...(x ? { xs: readOnly(storageType(x, V)) } : {}), ys: readWrite(storageType(y, V)) },
}));

/** ys[i] = op(as_[ia], bs[ib]) for output indices i = base + gid (both inputs of the output's dtype). */
const binarySignature = (T: DType, V: 1 | 4) => cachedSignature(`binary:${T}:${V}`, () => kernelSignature('binary', {
  uniforms: { n: 'u32', base: 'u32' },
  storage: { as_: readOnly(storageType(T, V)), bs: readOnly(storageType(T, V)), ys: readWrite(storageType(T, V)) },
}));

/** acc[i] += gs[i]: one read-write binding, since WebGPU refuses a buffer bound both read-only and writable. */
const addInPlaceSignature = (T: DType, V: 1 | 4) => cachedSignature(`addInPlace:${T}:${V}`, () => kernelSignature('addInPlace', {
  uniforms: { n: 'u32' },
  storage: { gs: readOnly(storageType(T, V)), acc: readWrite(storageType(T, V)) },
}));

const expandSignature = (T: DType) => cachedSignature(`expand:${T}`, () => kernelSignature('expand', {
  uniforms: { n: 'u32', base: 'u32' },
  storage: { xs: readOnly(T), ys: readWrite(T) },
}));

/** A binding window over elements [start, start + count) of a `dtype` buffer (windows start at aligned elements). */
function elementWindow(buffer: GPUBuffer, start: number, count: number, dtype: DType) {
  const eb = bytesPerElement(dtype);
  return { buffer, offset: start * eb, size: Math.ceil((count * eb) / 4) * 4 };
}

/** The broadcast of two shapes (NumPy rules), or an error naming both. */
export function broadcastShapes(a: readonly number[], b: readonly number[], what = 'broadcast'): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new RangeError(`${what}: shapes [${a.join(', ')}] and [${b.join(', ')}] cannot be broadcast together (axis ${i}: ${da} vs ${db})`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/**
 * out[i] = op(x[i], scalar) for i < n, computed in f32. `x` may be omitted for `fill`. `dtype` is the element
 * type of both buffers unless `outDType` differs: `unary(gpu, 'copy', x, out, n, 0, 'f32', 'f16')` is a cast.
 */
export function unary(
  gpu: Gpu, op: UnaryOp, x: GPUBuffer | null, out: GPUBuffer, n: number, scalar = 0, dtype: DType = 'f32', outDType: DType = dtype,
): void {
  if (!(op in UNARY_OPS)) throw new RangeError(`unary: unknown op '${op}', expected one of ${Object.keys(UNARY_OPS).join(', ')}`);
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`unary ${op}: element count must be a non-negative integer, got ${n}`);
  requireDType(gpu, dtype, `unary ${op}`);
  requireDType(gpu, outDType, `unary ${op} output`);
  const needsInput = op !== 'fill';
  if (needsInput && !x) throw new TypeError(`unary ${op}: input buffer is required`);
  if (x && needsInput) checkBuffer(x, n, `unary ${op} input`, dtype);
  checkBuffer(out, n, `unary ${op} output`, outDType);
  const wg = linearWorkgroupSize(gpu);
  const { V, per } = vectorBlock(gpu, n);
  const C = computeType(V);
  const sig = unarySignature(needsInput ? dtype : null, outDType, V);
  const pipeline = sig.pipeline(gpu, `unary:${op}:${wg}:${V}:${per}:${needsInput ? dtype : ''}>${outDType}`, () => `
fn unaryOp(x: f32) -> f32 {
  let s = bitcast<f32>(p.s);
  return ${UNARY_OPS[op]};
}
${blockedMain(wg, per)}
  if (gid >= p.n) { return; }
  ${needsInput ? `let x = ${C}(xs[gid]);` : `let x = ${C}(0.0);`}
  ys[gid] = ${storageType(outDType, V)}(${V === 4 ? 'vec4f(unaryOp(x.x), unaryOp(x.y), unaryOp(x.z), unaryOp(x.w))' : 'unaryOp(x)'});
}`);
  // A window's start must be aligned in both buffers: with two dtypes, a multiple of the f16 alignment in elements
  // (which is also the f32 one), and no longer than an f32 binding.
  const step = dtype === outDType ? maxBindingElements(gpu, dtype)
    : Math.floor(maxBindingElements(gpu, 'f32') / alignElements(gpu, 'f16')) * alignElements(gpu, 'f16');
  for (let start = 0; start < n; start += step) {
    const count = Math.min(step, n - start);
    gpu.dispatch({
      pipeline, label: `unary:${op}`, workgroups: Math.ceil(count / V / (wg * per)),
      ...sig.bind({ n: count / V, s: f32Bits(scalar) }, {
        xs: needsInput && x ? elementWindow(x, start, count, dtype) : undefined, ys: elementWindow(out, start, count, outDType),
      }),
    });
  }
}

/** out = x converted to `outDType` (f16 stores round to nearest even; beyond 65504 they become infinite). */
export function cast(gpu: Gpu, x: GPUBuffer, dtype: DType, out: GPUBuffer, outDType: DType, n: number): void {
  unary(gpu, 'copy', x, out, n, 0, dtype, outDType);
}

/**
 * vec4 lanes and indices per invocation of a same-shape element-wise launch over n elements: on software
 * adapters 4 x vec4 (when n % 4 == 0; windows are multiples of 4 elements), on GPUs one f32 as before.
 */
function vectorBlock(gpu: Gpu, n: number): { V: 1 | 4; per: number } {
  const per = invocationBlock(gpu);
  return { V: per > 1 && n % 4 === 0 ? 4 : 1, per };
}

/** out = op(a, b) with broadcasting, computed in f32; `out` holds broadcastShapes(aShape, bShape) elements, all three of `dtype`. */
export function binary(
  gpu: Gpu, op: BinaryOp, a: GPUBuffer, aShape: readonly number[], b: GPUBuffer, bShape: readonly number[], out: GPUBuffer,
  dtype: DType = 'f32',
): number[] {
  if (!(op in BINARY_OPS)) throw new RangeError(`binary: unknown op '${op}', expected one of ${Object.keys(BINARY_OPS).join(', ')}`);
  checkShape(aShape, `${op} first input`);
  checkShape(bShape, `${op} second input`);
  const outShape = broadcastShapes(aShape, bShape, op);
  const n = sizeOf(outShape);
  requireDType(gpu, dtype, op);
  checkBuffer(a, sizeOf(aShape), `${op} first input`, dtype);
  checkBuffer(b, sizeOf(bShape), `${op} second input`, dtype);
  checkBuffer(out, n, `${op} output`, dtype);
  const wg = linearWorkgroupSize(gpu);
  const aIndex = broadcastIndexExpr(aShape, outShape);
  const bIndex = broadcastIndexExpr(bShape, outShape);
  const same = aIndex === 'i' && bIndex === 'i';
  const { V, per } = same ? vectorBlock(gpu, n) : { V: 1 as const, per: invocationBlock(gpu) };
  const C = computeType(V);
  // Shape-specialised only when broadcasting; same-shape ops share one pipeline per op.
  const key = `binary:${op}:${dtype}:${wg}:${V}:${per}:${aIndex === 'i' ? '' : aShape.join('x') + '>' + outShape.join('x')}:${bIndex === 'i' ? '' : bShape.join('x') + '>' + outShape.join('x')}`;
  const sig = binarySignature(dtype, V);
  const pipeline = sig.pipeline(gpu, key, () => `
fn binaryOp(a: f32, b: f32) -> f32 {
  return ${BINARY_OPS[op]};
}
${blockedMain(wg, per)}
  if (gid >= p.n) { return; }
  let i = gid + p.base;
  let a = ${C}(as_[${aIndex === 'i' ? 'gid' : aIndex}]);
  let b = ${C}(bs[${bIndex === 'i' ? 'gid' : bIndex}]);
  ys[gid] = ${storageType(dtype, V)}(${V === 4 ? 'vec4f(binaryOp(a.x, b.x), binaryOp(a.y, b.y), binaryOp(a.z, b.z), binaryOp(a.w, b.w))' : 'binaryOp(a, b)'});
}`);
  forEachWindow(gpu, n, (start, count) => {
    // Inputs with the output's shape are windowed like the output; broadcast ones are bound whole.
    const bind = (buf: GPUBuffer, expr: string) => expr === 'i' ? elementWindow(buf, start, count, dtype) : { buffer: buf };
    gpu.dispatch({
      pipeline, label: `binary:${op}`, workgroups: Math.ceil(count / V / (wg * per)),
      ...sig.bind({ n: count / V, base: start / V }, {
        as_: bind(a, aIndex), bs: bind(b, bIndex), ys: elementWindow(out, start, count, dtype),
      }),
    });
  }, dtype);
  return outShape;
}

/**
 * acc[i] += g[i] for i < n, in place: gradient accumulation without a third buffer (one activation-sized
 * tensor less at the peak of backward and a third less traffic than `binary('add')` into a new one).
 */
export function addInPlace(gpu: Gpu, acc: GPUBuffer, g: GPUBuffer, n: number, dtype: DType = 'f32'): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`addInPlace: element count must be a non-negative integer, got ${n}`);
  if (acc === g) throw new RangeError('addInPlace: the accumulator and the addend must be different buffers');
  requireDType(gpu, dtype, 'addInPlace');
  checkBuffer(acc, n, 'addInPlace accumulator', dtype);
  checkBuffer(g, n, 'addInPlace addend', dtype);
  const wg = linearWorkgroupSize(gpu);
  const { V, per } = vectorBlock(gpu, n);
  const sig = addInPlaceSignature(dtype, V);
  const C = computeType(V);
  const pipeline = sig.pipeline(gpu, `addInPlace:${dtype}:${wg}:${V}:${per}`, () => `
${blockedMain(wg, per)}
  if (gid >= p.n) { return; }
  acc[gid] = ${storageType(dtype, V)}(${C}(acc[gid]) + ${C}(gs[gid]));
}`);
  forEachWindow(gpu, n, (start, count) => {
    gpu.dispatch({
      pipeline, label: 'addInPlace', workgroups: Math.ceil(count / V / (wg * per)),
      ...sig.bind({ n: count / V }, { gs: elementWindow(g, start, count, dtype), acc: elementWindow(acc, start, count, dtype) }),
    });
  }, dtype);
}

/** out = x broadcast to `outShape` (the forward of expand, the backward of a sum). */
export function expand(
  gpu: Gpu, x: GPUBuffer, xShape: readonly number[], outShape: readonly number[], out: GPUBuffer, dtype: DType = 'f32',
): void {
  checkShape(xShape, 'expand input');
  checkShape(outShape, 'expand output');
  const target = broadcastShapes(xShape, outShape, 'expand');
  if (target.length !== outShape.length || target.some((d, i) => d !== outShape[i])) {
    throw new RangeError(`expand: [${xShape.join(', ')}] cannot be expanded to [${outShape.join(', ')}]`);
  }
  const n = sizeOf(outShape);
  requireDType(gpu, dtype, 'expand');
  checkBuffer(x, sizeOf(xShape), 'expand input', dtype);
  checkBuffer(out, n, 'expand output', dtype);
  const wg = linearWorkgroupSize(gpu);
  const index = broadcastIndexExpr(xShape, outShape);
  const per = invocationBlock(gpu);
  const sig = expandSignature(dtype);
  const pipeline = sig.pipeline(gpu, `expand:${dtype}:${wg}:${per}:${xShape.join('x')}>${outShape.join('x')}`, () => `
${blockedMain(wg, per)}
  if (gid >= p.n) { return; }
  let i = gid + p.base;
  ys[gid] = xs[${index === 'i' ? 'gid' : index}];
}`);
  forEachWindow(gpu, n, (start, count) => {
    gpu.dispatch({
      pipeline, label: 'expand', workgroups: Math.ceil(count / (wg * per)),
      ...sig.bind({ n: count, base: start }, {
        xs: index === 'i' ? elementWindow(x, start, count, dtype) : { buffer: x },
        ys: elementWindow(out, start, count, dtype),
      }),
    });
  }, dtype);
}

/** WGSL expression mapping the output linear index `i` to the input's linear index ('i' when identical). */
function broadcastIndexExpr(inShape: readonly number[], outShape: readonly number[]): string {
  const n = outShape.length;
  const padded = [...new Array<number>(n - inShape.length).fill(1), ...inShape];
  if (padded.every((d, k) => d === outShape[k])) return 'i';
  const outStrides = stridesOf(outShape);
  const inStrides = stridesOf(padded);
  const terms: string[] = [];
  for (let k = 0; k < n; k++) {
    if (padded[k] === 1 || outShape[k] === 1) continue;
    terms.push(`((i / ${outStrides[k]}u) % ${outShape[k]}u) * ${inStrides[k]}u`);
  }
  return terms.length ? terms.join(' + ') : '0u';
}

