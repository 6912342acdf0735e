/**
 * Voxel-wise gating y[n, c, v] = x[n, c, v] * g[n, v] (the spatial skip attention of the paper's Table 2: one
 * weight per voxel, shared by the channels) and its backward: dx = dy * g[n, v] (the same kernel) and
 * dg[n, v] = sum over channels of dy * x, one thread per voxel walking the channels (coalesced, no temporary).
 * Tensors larger than one storage binding are processed in windows that never straddle two samples; the
 * channel sum then runs over channel chunks, each adding to the previous (in order, so deterministic).
 * Every tensor here is volume-shaped, so all take the launch's dtype (f16: loaded into f32, the channel sum in
 * f32, rounded once when stored; the chunked sum of an f16 gate gradient accumulates in an f32 scratch).
 */
import { cast } from './elementwise.js';
import type { Gpu } from './runtime/gpu.js';
import { cachedSignature, kernelSignature, readOnly, readWrite } from './runtime/kernel-signature.js';
import { requireDType, type DType } from './runtime/precision.js';
import { checkBuffer, linearMain, linearWorkgroupSize } from './runtime/wgsl.js';
import { alignedWindow, slabElements, windowSlack, type SlabOptions } from './runtime/windows.js';
import { splitNC } from './runtime/shapes.js';

export interface SpatialGateOptions extends SlabOptions {
  /** Element type of x, y, the gate and their gradients (default 'f32'). */
  dtype?: DType;
}

interface Dims { N: number; C: number; S: number }

/** y[n, c, v] = x[n, c, v] * g[n, v] over a window starting at flat element `start` (sample n0's gate at gbase). */
const scaleSignature = (dtype: DType) => cachedSignature(`spatialGate:${dtype}`, () => kernelSignature('spatialGate', {
  uniforms: { count: 'u32', start: 'u32', base: 'u32', cs: 'u32', s: 'u32', n0: 'u32', gbase: 'u32' },
  storage: { xs: readOnly(dtype), gs: readOnly(dtype), ys: readWrite(dtype) },
}));

/** dg[n, v] (+)= sum over `cc` channels of dy * x; dg of `dgType` (f32 when it is a scratch accumulating chunks). */
const gateGradSignature = (dtype: DType, dgType: DType) => cachedSignature(`spatialGateBackward:dg:${dtype}:${dgType}`, () => kernelSignature('spatialGateBackward:dg', {
  uniforms: { voxels: 'u32', s: 'u32', cc: 'u32', cs: 'u32', xbase: 'u32', gbase: 'u32', accumulate: 'u32' },
  storage: { dys: readOnly(dtype), xs: readOnly(dtype), dgs: readWrite(dgType) },
}));

function dims(shape: readonly number[], op: string): Dims {
  const d = splitNC(shape, op);
  if (d.S === 0 || d.N === 0 || d.C === 0) throw new RangeError(`${op}: shape [${shape.join(', ')}] is empty; expected N, C and voxels >= 1`);
  return d;
}

/** Window capacity in `dtype` elements once the alignment shift is paid; throws when one sample's gate cannot fit. */
function capacity(gpu: Gpu, op: string, S: number, options: SlabOptions, dtype: DType): number {
  const cap = slabElements(gpu, op, options, dtype) - windowSlack(gpu, dtype);
  if (S > cap) {
    throw new RangeError(`${op}: one sample's gate has ${S} voxels, more than one storage binding window holds (${cap} ${dtype}); expected smaller volumes or a larger maxBindingBytes`);
  }
  return cap;
}

function scaleByVoxel(gpu: Gpu, op: string, x: GPUBuffer, g: GPUBuffer, y: GPUBuffer, { N, C, S }: Dims, cap: number, dtype: DType): void {
  const wg = linearWorkgroupSize(gpu);
  const SCALE = scaleSignature(dtype);
  const pipeline = SCALE.pipeline(gpu, `spatial-gate:${dtype}:${wg}`, () => `
${linearMain(wg)}
  if (gid >= p.count) { return; }
  let i = p.start + gid;
  let n = i / p.cs;
  let v = i % p.s;
  ys[p.base + gid] = ${dtype}(f32(xs[p.base + gid]) * f32(gs[p.gbase + (n - p.n0) * p.s + v]));
}`);
  const CS = C * S;
  const windows: { start: number; count: number; n0: number; gateStart: number; gateCount: number }[] = [];
  if (N * CS <= cap) windows.push({ start: 0, count: N * CS, n0: 0, gateStart: 0, gateCount: N * S });
  else {
    for (let n = 0; n < N; n++) {
      for (let off = 0; off < CS; off += cap) windows.push({ start: n * CS + off, count: Math.min(cap, CS - off), n0: n, gateStart: n * S, gateCount: S });
    }
  }
  for (const w of windows) {
    const xw = alignedWindow(gpu, x, w.start, w.count, dtype);
    const yw = alignedWindow(gpu, y, w.start, w.count, dtype);
    const gw = alignedWindow(gpu, g, w.gateStart, w.gateCount, dtype);
    gpu.dispatch({
      pipeline, label: op, workgroups: Math.ceil(w.count / wg),
      ...SCALE.bind(
        { count: w.count, start: w.start, base: xw.base, cs: CS, s: S, n0: w.n0, gbase: gw.base },
        { xs: xw.binding, gs: gw.binding, ys: yw.binding },
      ),
    });
  }
}

/** y = x * g[n, v]; x, y: [N, C, ...spatial], g: [N, 1, ...spatial] (N * voxels values), all of options.dtype. */
export function spatialGate(
  gpu: Gpu, x: GPUBuffer, shape: readonly number[], g: GPUBuffer, y: GPUBuffer, options: SpatialGateOptions = {},
): void {
  const op = 'spatialGate';
  const dtype = options.dtype ?? 'f32';
  requireDType(gpu, dtype, op);
  const d = dims(shape, op);
  checkBuffer(x, d.N * d.C * d.S, `${op} input`, dtype);
  checkBuffer(g, d.N * d.S, `${op} gate`, dtype);
  checkBuffer(y, d.N * d.C * d.S, `${op} output`, dtype);
  scaleByVoxel(gpu, op, x, g, y, d, capacity(gpu, op, d.S, options, dtype), dtype);
}

/** dx = dy * g[n, v]; dg[n, v] = sum over channels of dy * x (in f32). Needs the forward's x and g. All of options.dtype. */
export function spatialGateBackward(
  gpu: Gpu, dy: GPUBuffer, x: GPUBuffer, shape: readonly number[], g: GPUBuffer, dx: GPUBuffer, dg: GPUBuffer,
  options: SpatialGateOptions = {},
): void {
  const op = 'spatialGateBackward';
  const dtype = options.dtype ?? 'f32';
  requireDType(gpu, dtype, op);
  const d = dims(shape, op);
  const { N, C, S } = d;
  checkBuffer(dy, N * C * S, `${op} output gradient`, dtype);
  checkBuffer(x, N * C * S, `${op} input`, dtype);
  checkBuffer(g, N * S, `${op} gate`, dtype);
  checkBuffer(dx, N * C * S, `${op} input gradient`, dtype);
  checkBuffer(dg, N * S, `${op} gate gradient`, dtype);
  const cap = capacity(gpu, op, S, options, dtype);
  scaleByVoxel(gpu, op, dy, g, dx, d, cap, dtype);
  const single = N * C * S <= cap;
  // When a sample's channels come in chunks, each adds to the previous chunks' sum: an f16 gate gradient would
  // round at every chunk, so the sum goes to an f32 scratch (one sample's gate per window, so that must fit
  // too) and is rounded once at the end.
  const dgType: DType = C * S > cap ? 'f32' : dtype;
  if (dgType !== dtype) capacity(gpu, `${op} (f32 gate-gradient sum)`, S, options, dgType);
  const sums = dgType === dtype ? dg : gpu.pool.acquire(N * S * 4, `${op} gate-gradient sums`);
  const wg = linearWorkgroupSize(gpu);
  const GATE_GRAD = gateGradSignature(dtype, dgType);
  const pipeline = GATE_GRAD.pipeline(gpu, `spatial-gate-dg:${dtype}>${dgType}:${wg}`, () => `
${linearMain(wg)}
  if (gid >= p.voxels) { return; }
  let n = gid / p.s;
  let v = gid - n * p.s;
  var acc = 0.0;
  var idx = p.xbase + n * p.cs + v;
  for (var c = 0u; c < p.cc; c = c + 1u) {
    acc = acc + f32(dys[idx]) * f32(xs[idx]);
    idx = idx + p.s;
  }
  let o = p.gbase + gid;
  if (p.accumulate != 0u) { dgs[o] = ${dgType}(f32(dgs[o]) + acc); } else { dgs[o] = ${dgType}(acc); }
}`);
  const run = (start: number, count: number, gateStart: number, voxels: number, cc: number, accumulate: boolean) => {
    const dyw = alignedWindow(gpu, dy, start, count, dtype);
    const xw = alignedWindow(gpu, x, start, count, dtype);
    const gw = alignedWindow(gpu, sums, gateStart, voxels, dgType);
    gpu.dispatch({
      pipeline, label: `${op}:dg`, workgroups: Math.ceil(voxels / wg),
      ...GATE_GRAD.bind(
        { voxels, s: S, cc, cs: C * S, xbase: xw.base, gbase: gw.base, accumulate: accumulate ? 1 : 0 },
        { dys: dyw.binding, xs: xw.binding, dgs: gw.binding },
      ),
    });
  };
  if (single) {
    run(0, N * C * S, 0, N * S, C, false);
    return;
  }
  const chunk = Math.max(1, Math.floor(cap / S));
  for (let n = 0; n < N; n++) {
    for (let c0 = 0; c0 < C; c0 += chunk) {
      const cc = Math.min(chunk, C - c0);
      run((n * C + c0) * S, cc * S, n * S, S, cc, c0 > 0);
    }
  }
  if (sums !== dg) {
    cast(gpu, sums, 'f32', dg, dtype, N * S);
    gpu.pool.release(sums);
  }
}
