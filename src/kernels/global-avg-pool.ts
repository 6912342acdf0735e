/**
 * Global average pooling [N, C, ...spatial] -> [N, C] and its backward, plus the slab machinery that the
 * [N, C] helper `splitNC` the per-channel kernels share. Slabs: runtime/windows.ts; reductions:
 * runtime/reduction.ts.
 */
import type { Gpu } from './runtime/gpu.js';
import { checkBuffer, checkShape, linearMain, linearWorkgroupSize, packParams, sizeOf } from './runtime/wgsl.js';
import { flatWindows, slabElements, type SlabOptions } from './runtime/windows.js';
import { segmentedReduce } from './runtime/reduction.js';

export function splitNC(shape: readonly number[], op: string): { N: number; C: number; S: number } {
  checkShape(shape, op);
  if (shape.length < 2) throw new RangeError(`${op}: expected an [N, C, ...spatial] shape, got [${shape.join(', ')}]`);
  const total = sizeOf(shape);
  if (total >= 2 ** 32) throw new RangeError(`${op}: ${total} elements exceed the 2^32 index range`);
  return { N: shape[0], C: shape[1], S: sizeOf(shape.slice(2)) };
}

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
  const { N, C, S } = splitNC(shape, 'globalAvgPoolBackward');
  checkBuffer(g, N * C, 'globalAvgPoolBackward gradient');
  checkBuffer(dx, N * C * S, 'globalAvgPoolBackward input gradient');
  const maxElems = slabElements(gpu, 'globalAvgPoolBackward', options);
  const V = S % 4 === 0 ? 4 : 1;
  const T = V === 4 ? 'vec4f' : 'f32';
  const wg = linearWorkgroupSize(gpu);
  const pipeline = gpu.pipeline(`gap-bwd:${V}:${wg}`, () => `
struct Params { n: u32, base: u32, sv: u32, inv: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<${T}>;
${linearMain(wg)}
  if (gid >= p.n) { return; }
  dx[gid] = ${T}(g[(p.base + gid) / p.sv] * p.inv);
}`);
  for (const [start, count] of flatWindows(N * C * S, maxElems)) {
    gpu.dispatch({
      pipeline, label: 'globalAvgPoolBackward',
      bindings: [g, { buffer: dx, offset: start * 4, size: count * 4 }],
      params: packParams([{ u: count / V }, { u: start / V }, { u: S / V }, { f: 1 / S }]),
      workgroups: Math.ceil(count / V / wg),
    });
  }
}
