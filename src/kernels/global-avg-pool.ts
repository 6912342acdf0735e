/**
 * Global average pooling [N, C, ...spatial] -> [N, C] and its backward (runtime/reduction.ts: the per-channel
 * reduction and map; runtime/windows.ts: slabs).
 */
import type { Gpu } from './runtime/gpu.js';
import { checkBuffer } from './runtime/wgsl.js';
import { slabElements, type SlabOptions } from './runtime/windows.js';
import { channelMap, segmentedReduce } from './runtime/reduction.js';
import { splitNC } from './runtime/shapes.js';

/** out[n, c] = mean of x[n, c, ...] over the spatial dims. */
export function globalAvgPool(gpu: Gpu, x: GPUBuffer, shape: readonly number[], out: GPUBuffer, options: SlabOptions = {}): void {
  const { N, C, S } = splitNC(shape, 'globalAvgPool');
  checkBuffer(x, N * C * S, 'globalAvgPool input');
  checkBuffer(out, N * C, 'globalAvgPool output');
  segmentedReduce(gpu, {
    label: 'globalAvgPool', key: 'gap', segLen: S, numSegs: N * C, inputs: [x], value: 'v0', width: 1,
    out, scale: 1 / S, maxElems: slabElements(gpu, 'globalAvgPool', options),
  });
}

/** dx[n, c, ...] = g[n, c] / S (the broadcast adjoint of the mean). */
export function globalAvgPoolBackward(
  gpu: Gpu, g: GPUBuffer, shape: readonly number[], dx: GPUBuffer, options: SlabOptions = {},
): void {
  const op = 'globalAvgPoolBackward';
  const { N, C, S } = splitNC(shape, op);
  checkBuffer(g, N * C, `${op} gradient`);
  checkBuffer(dx, N * C * S, `${op} input gradient`);
  channelMap(gpu, {
    label: op, key: 'gap-bwd', channels: N * C, spatial: S, inputs: {},
    perChannel: { g: { buffer: g, type: 'f32' } }, scalars: { inv: 1 / S },
    value: 'Elem(g[ch] * p.inv)', out: dx, maxElems: slabElements(gpu, op, options),
  });
}
