/**
 * Voxel-wise gating y[n, c, v] = x[n, c, v] * g[n, v] (the spatial skip attention of the paper's Table 2: one
 * weight per voxel, shared by the channels) and its backward: dx = dy * g[n, v] (the same kernel) and
 * dg[n, v] = sum over channels of dy * x, one thread per voxel walking the channels (coalesced, no temporary).
 * Tensors larger than one storage binding are processed in windows that never straddle two samples; the
 * channel sum then runs over channel chunks, each adding to the previous (in order, so deterministic).
 */
import type { Gpu } from './runtime/gpu.js';
import { kernelSignature, readOnly, readWrite } from './runtime/kernel-signature.js';
import { checkBuffer, linearMain, linearWorkgroupSize } from './runtime/wgsl.js';
import { alignedWindow, slabElements, windowSlack, type SlabOptions } from './runtime/windows.js';
import { splitNC } from './runtime/shapes.js';

interface Dims { N: number; C: number; S: number }

/** y[n, c, v] = x[n, c, v] * g[n, v] over a window starting at flat element `start` (sample n0's gate at gbase). */
const SCALE = kernelSignature('spatialGate', {
  uniforms: { count: 'u32', start: 'u32', base: 'u32', cs: 'u32', s: 'u32', n0: 'u32', gbase: 'u32' },
  storage: { xs: readOnly('f32'), gs: readOnly('f32'), ys: readWrite('f32') },
});

/** dg[n, v] (+)= sum over `cc` channels of dy * x. */
const GATE_GRAD = kernelSignature('spatialGateBackward:dg', {
  uniforms: { voxels: 'u32', s: 'u32', cc: 'u32', cs: 'u32', xbase: 'u32', gbase: 'u32', accumulate: 'u32' },
  storage: { dys: readOnly('f32'), xs: readOnly('f32'), dgs: readWrite('f32') },
});

function dims(shape: readonly number[], op: string): Dims {
  const d = splitNC(shape, op);
  if (d.S === 0 || d.N === 0 || d.C === 0) throw new RangeError(`${op}: shape [${shape.join(', ')}] is empty; expected N, C and voxels >= 1`);
  return d;
}

/** Window capacity in elements once the alignment shift is paid; throws when one sample's gate cannot fit. */
function capacity(gpu: Gpu, op: string, S: number, options: SlabOptions): number {
  const cap = slabElements(gpu, op, options) - windowSlack(gpu);
  if (S > cap) {
    throw new RangeError(`${op}: one sample's gate has ${S} voxels, more than one storage binding window holds (${cap} f32); expected smaller volumes or a larger maxBindingBytes`);
  }
  return cap;
}

function scaleByVoxel(gpu: Gpu, op: string, x: GPUBuffer, g: GPUBuffer, y: GPUBuffer, { N, C, S }: Dims, cap: number): void {
  const wg = linearWorkgroupSize(gpu);
  const pipeline = SCALE.pipeline(gpu, `spatial-gate:${wg}`, () => `
${linearMain(wg)}
  if (gid >= p.count) { return; }
  let i = p.start + gid;
  let n = i / p.cs;
  let v = i % p.s;
  ys[p.base + gid] = xs[p.base + gid] * gs[p.gbase + (n - p.n0) * p.s + v];
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
    const xw = alignedWindow(gpu, x, w.start, w.count);
    const yw = alignedWindow(gpu, y, w.start, w.count);
    const gw = alignedWindow(gpu, g, w.gateStart, w.gateCount);
    gpu.dispatch({
      pipeline, label: op, workgroups: Math.ceil(w.count / wg),
      ...SCALE.bind(
        { count: w.count, start: w.start, base: xw.base, cs: CS, s: S, n0: w.n0, gbase: gw.base },
        { xs: xw.binding, gs: gw.binding, ys: yw.binding },
      ),
    });
  }
}

/** y = x * g[n, v]; x, y: [N, C, ...spatial], g: [N, 1, ...spatial] (N * voxels values). */
export function spatialGate(
  gpu: Gpu, x: GPUBuffer, shape: readonly number[], g: GPUBuffer, y: GPUBuffer, options: SlabOptions = {},
): void {
  const op = 'spatialGate';
  const d = dims(shape, op);
  checkBuffer(x, d.N * d.C * d.S, `${op} input`);
  checkBuffer(g, d.N * d.S, `${op} gate`);
  checkBuffer(y, d.N * d.C * d.S, `${op} output`);
  scaleByVoxel(gpu, op, x, g, y, d, capacity(gpu, op, d.S, options));
}

/** dx = dy * g[n, v]; dg[n, v] = sum over channels of dy * x. Needs the forward's x and g. */
export function spatialGateBackward(
  gpu: Gpu, dy: GPUBuffer, x: GPUBuffer, shape: readonly number[], g: GPUBuffer, dx: GPUBuffer, dg: GPUBuffer,
  options: SlabOptions = {},
): void {
  const op = 'spatialGateBackward';
  const d = dims(shape, op);
  const { N, C, S } = d;
  checkBuffer(dy, N * C * S, `${op} output gradient`);
  checkBuffer(x, N * C * S, `${op} input`);
  checkBuffer(g, N * S, `${op} gate`);
  checkBuffer(dx, N * C * S, `${op} input gradient`);
  checkBuffer(dg, N * S, `${op} gate gradient`);
  const cap = capacity(gpu, op, S, options);
  scaleByVoxel(gpu, op, dy, g, dx, d, cap);
  const wg = linearWorkgroupSize(gpu);
  const pipeline = GATE_GRAD.pipeline(gpu, `spatial-gate-dg:${wg}`, () => `
${linearMain(wg)}
  if (gid >= p.voxels) { return; }
  let n = gid / p.s;
  let v = gid - n * p.s;
  var acc = 0.0;
  var idx = p.xbase + n * p.cs + v;
  for (var c = 0u; c < p.cc; c = c + 1u) {
    acc = acc + dys[idx] * xs[idx];
    idx = idx + p.s;
  }
  let o = p.gbase + gid;
  if (p.accumulate != 0u) { dgs[o] = dgs[o] + acc; } else { dgs[o] = acc; }
}`);
  const run = (start: number, count: number, gateStart: number, voxels: number, cc: number, accumulate: boolean) => {
    const dyw = alignedWindow(gpu, dy, start, count);
    const xw = alignedWindow(gpu, x, start, count);
    const gw = alignedWindow(gpu, dg, gateStart, voxels);
    gpu.dispatch({
      pipeline, label: `${op}:dg`, workgroups: Math.ceil(voxels / wg),
      ...GATE_GRAD.bind(
        { voxels, s: S, cc, cs: C * S, xbase: xw.base, gbase: gw.base, accumulate: accumulate ? 1 : 0 },
        { dys: dyw.binding, xs: xw.binding, dgs: gw.binding },
      ),
    });
  };
  if (N * C * S <= cap) {
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
}
