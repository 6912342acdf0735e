/**
 * Channel-wise gating y[n, c, ...] = x[n, c, ...] * g[n, c] (TGNet's task-guided gates) and its backward:
 * dx = dy * g[n, c] (the same kernel) and dg[n, c] = sum over voxels of dy * x, a per-(n, c) reduction with
 * many workgroups per channel. Tensors larger than one storage binding are processed in slabs.
 */
import type { Gpu } from './runtime/gpu.js';
import { requireDType, type DType } from './runtime/precision.js';
import { checkBuffer } from './runtime/wgsl.js';
import { slabElements, type SlabOptions } from './runtime/windows.js';
import { channelMap, segmentedReduce } from './runtime/reduction.js';
import { splitNC } from './runtime/shapes.js';

export interface ChannelGateOptions extends SlabOptions {
  /** Element type of x, y, dy and dx (default 'f32'); the gate and its gradient ([N, C]) are f32 either way. */
  dtype?: DType;
}

/** y = x * g[ch] over [N * C, S] (the forward, and dx = dy * g). */
function scaleByChannel(
  gpu: Gpu, op: string, x: GPUBuffer, g: GPUBuffer, y: GPUBuffer, N: number, C: number, S: number, maxElems: number, dtype: DType,
): void {
  channelMap(gpu, {
    label: op, key: 'channel-gate', channels: N * C, spatial: S, inputs: { x }, dtype,
    perChannel: { gate: { buffer: g, type: 'f32' } }, value: 'x * gate[ch]', out: y, maxElems,
  });
}

/** y = x * g[n, c]; x, y: [N, C, ...spatial] of options.dtype, g: [N, C] f32. */
export function channelGate(
  gpu: Gpu, x: GPUBuffer, shape: readonly number[], g: GPUBuffer, y: GPUBuffer, options: ChannelGateOptions = {},
): void {
  const op = 'channelGate';
  const dtype = options.dtype ?? 'f32';
  requireDType(gpu, dtype, op);
  const { N, C, S } = splitNC(shape, op);
  checkBuffer(x, N * C * S, `${op} input`, dtype);
  checkBuffer(g, N * C, `${op} gate`);
  checkBuffer(y, N * C * S, `${op} output`, dtype);
  scaleByChannel(gpu, op, x, g, y, N, C, S, slabElements(gpu, op, options, dtype), dtype);
}

/**
 * dx = dy * g[n, c]; dg[n, c] = sum over the voxels of dy * x (an f32 sum). Needs the forward's x and g.
 * dy, x, dx are of options.dtype; g, dg f32.
 */
export function channelGateBackward(
  gpu: Gpu, dy: GPUBuffer, x: GPUBuffer, shape: readonly number[], g: GPUBuffer, dx: GPUBuffer, dg: GPUBuffer,
  options: ChannelGateOptions = {},
): void {
  const op = 'channelGateBackward';
  const dtype = options.dtype ?? 'f32';
  requireDType(gpu, dtype, op);
  const { N, C, S } = splitNC(shape, op);
  checkBuffer(dy, N * C * S, `${op} output gradient`, dtype);
  checkBuffer(x, N * C * S, `${op} input`, dtype);
  checkBuffer(g, N * C, `${op} gate`);
  checkBuffer(dx, N * C * S, `${op} input gradient`, dtype);
  checkBuffer(dg, N * C, `${op} gate gradient`);
  const maxElems = slabElements(gpu, op, options, dtype);
  scaleByChannel(gpu, op, dy, g, dx, N, C, S, maxElems, dtype);
  segmentedReduce(gpu, {
    label: op, key: 'gate-dg', segLen: S, numSegs: N * C, inputs: [dy, x], dtype, value: 'v0 * v1', width: 1,
    out: dg, scale: 1, maxElems,
  });
}
