/**
 * Channel-wise gating y[n, c, ...] = x[n, c, ...] * g[n, c] (TGNet's task-guided gates) and its backward:
 * dx = dy * g[n, c] (the same kernel) and dg[n, c] = sum over voxels of dy * x, a per-(n, c) reduction with
 * many workgroups per channel. Tensors larger than one storage binding are processed in slabs.
 */
import type { Gpu } from './runtime/gpu.js';
import { checkBuffer, linearMain, linearWorkgroupSize, packParams } from './runtime/wgsl.js';
import { splitNC } from './global-avg-pool.js';
import { flatWindows, slabElements, type SlabOptions } from './runtime/windows.js';
import { segmentedReduce } from './runtime/reduction.js';

function scaleByChannel(gpu: Gpu, op: string, x: GPUBuffer, g: GPUBuffer, y: GPUBuffer, N: number, C: number, S: number, maxElems: number): void {
  const V = S % 4 === 0 ? 4 : 1;
  const T = V === 4 ? 'vec4f' : 'f32';
  const wg = linearWorkgroupSize(gpu);
  const pipeline = gpu.pipeline(`channel-gate:${V}:${wg}`, () => `
struct Params { n: u32, base: u32, sv: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> xs: array<${T}>;
@group(0) @binding(2) var<storage, read> gs: array<f32>;
@group(0) @binding(3) var<storage, read_write> ys: array<${T}>;
${linearMain(wg)}
  if (gid >= p.n) { return; }
  ys[gid] = xs[gid] * gs[(p.base + gid) / p.sv];
}`);
  for (const [start, count] of flatWindows(N * C * S, maxElems)) {
    const win = (b: GPUBuffer) => ({ buffer: b, offset: start * 4, size: count * 4 });
    gpu.dispatch({
      pipeline, label: op, bindings: [win(x), g, win(y)],
      params: packParams([{ u: count / V }, { u: start / V }, { u: S / V }]),
      workgroups: Math.ceil(count / V / wg),
    });
  }
}

/** y = x * g[n, c]; x, y: [N, C, ...spatial], g: [N, C]. */
export function channelGate(
  gpu: Gpu, x: GPUBuffer, shape: readonly number[], g: GPUBuffer, y: GPUBuffer, options: SlabOptions = {},
): void {
  const op = 'channelGate';
  const { N, C, S } = splitNC(shape, op);
  checkBuffer(x, N * C * S, `${op} input`);
  checkBuffer(g, N * C, `${op} gate`);
  checkBuffer(y, N * C * S, `${op} output`);
  scaleByChannel(gpu, op, x, g, y, N, C, S, slabElements(gpu, op, options));
}

/** dx = dy * g[n, c]; dg[n, c] = sum over the voxels of dy * x. Needs the forward's x and g. */
export function channelGateBackward(
  gpu: Gpu, dy: GPUBuffer, x: GPUBuffer, shape: readonly number[], g: GPUBuffer, dx: GPUBuffer, dg: GPUBuffer,
  options: SlabOptions = {},
): void {
  const op = 'channelGateBackward';
  const { N, C, S } = splitNC(shape, op);
  checkBuffer(dy, N * C * S, `${op} output gradient`);
  checkBuffer(x, N * C * S, `${op} input`);
  checkBuffer(g, N * C, `${op} gate`);
  checkBuffer(dx, N * C * S, `${op} input gradient`);
  checkBuffer(dg, N * C, `${op} gate gradient`);
  const maxElems = slabElements(gpu, op, options);
  scaleByChannel(gpu, op, dy, g, dx, N, C, S, maxElems);
  segmentedReduce(gpu, {
    label: op, key: 'gate-dg', segLen: S, numSegs: N * C, inputs: [dy, x], value: 'v0 * v1', width: 1,
    out: dg, scale: 1, maxElems,
  });
}
