/**
 * Global average pooling [N, C, ...spatial] -> [N, C] and its backward (runtime/reduction.ts: the per-channel
 * reduction and map; runtime/windows.ts: slabs).
 */
import type { Gpu } from './runtime/gpu.js';
import { requireDType, type DType } from './runtime/precision.js';
import { checkBuffer } from './runtime/wgsl.js';
import { slabElements, type SlabOptions } from './runtime/windows.js';
import { channelMap, segmentedReduce } from './runtime/reduction.js';
import { splitNC } from './runtime/shapes.js';

export interface GlobalAvgPoolOptions extends SlabOptions {
  /** Element type of x and dx (default 'f32'); the pooled [N, C] values and their gradient are f32 either way. */
  dtype?: DType;
}

/** out[n, c] = mean of x[n, c, ...] over the spatial dims (x of options.dtype, summed in f32; out f32). */
export function globalAvgPool(gpu: Gpu, x: GPUBuffer, shape: readonly number[], out: GPUBuffer, options: GlobalAvgPoolOptions = {}): void {
  const dtype = options.dtype ?? 'f32';
  requireDType(gpu, dtype, 'globalAvgPool');
  const { N, C, S } = splitNC(shape, 'globalAvgPool');
  checkBuffer(x, N * C * S, 'globalAvgPool input', dtype);
  checkBuffer(out, N * C, 'globalAvgPool output');
  segmentedReduce(gpu, {
    label: 'globalAvgPool', key: 'gap', segLen: S, numSegs: N * C, inputs: [x], dtype, value: 'v0', width: 1,
    out, scale: 1 / S, maxElems: slabElements(gpu, 'globalAvgPool', options, dtype),
  });
}

/** dx[n, c, ...] = g[n, c] / S (the broadcast adjoint of the mean; g f32, dx of options.dtype). */
export function globalAvgPoolBackward(
  gpu: Gpu, g: GPUBuffer, shape: readonly number[], dx: GPUBuffer, options: GlobalAvgPoolOptions = {},
): void {
  const op = 'globalAvgPoolBackward';
  const dtype = options.dtype ?? 'f32';
  requireDType(gpu, dtype, op);
  const { N, C, S } = splitNC(shape, op);
  checkBuffer(g, N * C, `${op} gradient`);
  checkBuffer(dx, N * C * S, `${op} input gradient`, dtype);
  channelMap(gpu, {
    label: op, key: 'gap-bwd', channels: N * C, spatial: S, inputs: {}, dtype,
    perChannel: { g: { buffer: g, type: 'f32' } }, scalars: { inv: 1 / S },
    value: 'Elem(g[ch] * p.inv)', out: dx, maxElems: slabElements(gpu, op, options, dtype),
  });
}
