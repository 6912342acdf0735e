/**
 * Channel-wise gating y[n, c, ...] = x[n, c, ...] * g[n, c] (TGNet's task-guided gates) and its backward:
 * dx = dy * g[n, c] (the same kernel) and dg[n, c] = sum over voxels of dy * x, a per-(n, c) reduction with
 * many workgroups per channel. Tensors larger than one storage binding are processed in slabs.
 */
import type { Gpu } from './runtime/gpu.js';
import { checkBuffer } from './runtime/wgsl.js';
import { slabElements, type SlabOptions } from './runtime/windows.js';
import { channelMap, segmentedReduce } from './runtime/reduction.js';
import { splitNC } from './runtime/shapes.js';

/** y = x * g[ch] over [N * C, S] (the forward, and dx = dy * g). */
function scaleByChannel(gpu: Gpu, op: string, x: GPUBuffer, g: GPUBuffer, y: GPUBuffer, N: number, C: number, S: number, maxElems: number): void {
  channelMap(gpu, {
    label: op, key: 'channel-gate', channels: N * C, spatial: S, inputs: { x },
    perChannel: { gate: { buffer: g, type: 'f32' } }, value: 'x * gate[ch]', out: y, maxElems,
  });
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
