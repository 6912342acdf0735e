/**
 * Fused SGD update with torch.optim.SGD semantics (momentum, dampening, Nesterov, weight decay):
 *   g = gradScale * grad + weightDecay * p      (gradScale: 1, or 1 / the loss scale under mixed precision)
 *   if momentum != 0: buf = firstStep ? g : momentum * buf + (1 - dampening) * g    (PyTorch: buf = clone(g) at first)
 *                     g = nesterov ? g + momentum * buf : buf
 *   p = p - lr * g
 *
 * Design: all parameters of a model live in ONE flat f32 buffer (and their gradients and momentum buffers in
 * two more flat buffers with the same layout), so a whole optimiser step is ONE dispatch (or one per
 * maxStorageBufferBindingSize window). `packedLayout` gives each parameter an offset aligned to
 * minStorageBufferOffsetAlignment, so every parameter (and its gradient) can still be bound on its own as a
 * `{ buffer, offset, size }` window by the other kernels; padding elements are updated harmlessly (their
 * gradient is whatever is there: keep the padding of the gradient buffer zero, e.g. zero the whole flat
 * gradient buffer before backward). `sgdStepList` is the fallback for parameters in separate buffers: one
 * dispatch per parameter, all in the same command batch.
 *
 * Every hyper-parameter, including lr and the first-step flag, is a uniform: the poly schedule and the first
 * step cost no recompilation (one pipeline in total).
 */
import { forEachWindow } from './runtime/windows.js';
import type { Binding, Gpu } from './runtime/gpu.js';
import { kernelSignature, readOnly, readWrite } from './runtime/kernel-signature.js';
import { blockedMain, checkBuffer, invocationBlock, linearMain, linearWorkgroupSize } from './runtime/wgsl.js';

export interface SgdOptions {
  /** Learning rate of this step (e.g. `polyLr(0.01, step, total)`). */
  lr: number;
  /** Momentum factor; default 0.99 (DoDNet/TGNet). 0 disables the momentum buffer (it is then left untouched). */
  momentum?: number;
  /** Nesterov momentum; default true. Requires momentum > 0 and dampening 0, as PyTorch. */
  nesterov?: boolean;
  /** L2 penalty added to the gradient; default 0 (the PyTorch twin's benchmark, bench/torch, uses 3e-5). */
  weightDecay?: number;
  /** Dampening of the momentum update; default 0. */
  dampening?: number;
  /** True on the optimiser's first step: the momentum buffer is set to the gradient (its old contents are ignored). */
  firstStep: boolean;
  /** Factor applied to the gradient first; default 1 (mixed precision: 1 / the loss scale, unscaling in the update). */
  gradScale?: number;
}

/** Flat packed storage: element `i < count` of params, grads and momentum belong together. */
export interface SgdBuffers {
  params: GPUBuffer;
  grads: GPUBuffer;
  momentum: GPUBuffer;
  /** Number of f32 elements to update (from element 0). */
  count: number;
}

/** One parameter in its own buffers (or windows of shared buffers). `size` is its number of f32 elements. */
export interface SgdTensor {
  param: Binding;
  grad: Binding;
  momentum: Binding;
  size: number;
}

function resolved(o: SgdOptions): Required<SgdOptions> {
  const r = {
    lr: o.lr, momentum: o.momentum ?? 0.99, nesterov: o.nesterov ?? true, weightDecay: o.weightDecay ?? 0,
    dampening: o.dampening ?? 0, firstStep: o.firstStep, gradScale: o.gradScale ?? 1,
  };
  if (!Number.isFinite(r.gradScale) || r.gradScale <= 0) throw new RangeError(`sgdStep: gradScale must be a finite positive number, got ${r.gradScale}`);
  for (const k of ['lr', 'momentum', 'weightDecay', 'dampening'] as const) {
    if (!Number.isFinite(r[k]) || r[k] < 0) throw new RangeError(`sgdStep: ${k} must be a finite non-negative number, got ${r[k]}`);
  }
  if (typeof r.firstStep !== 'boolean') throw new TypeError(`sgdStep: firstStep must be a boolean, got ${String(r.firstStep)}`);
  if (r.nesterov && (r.momentum <= 0 || r.dampening !== 0)) {
    throw new RangeError(`sgdStep: Nesterov momentum requires momentum > 0 and dampening 0, got momentum ${r.momentum}, dampening ${r.dampening}`);
  }
  return r;
}

/** ps: parameters, gs: gradients, ms: momentum buffers; first = 1 on the optimiser's first step. */
const SGD = kernelSignature('sgd', {
  uniforms: { n: 'u32', lr: 'f32', mom: 'f32', wd: 'f32', damp: 'f32', nesterov: 'u32', first: 'u32', gscale: 'f32' },
  storage: { ps: readWrite('f32'), gs: readOnly('f32'), ms: readWrite('f32') },
});

const SGD4 = kernelSignature('sgd', {
  uniforms: { n: 'u32', lr: 'f32', mom: 'f32', wd: 'f32', damp: 'f32', nesterov: 'u32', first: 'u32', gscale: 'f32' },
  storage: { ps: readWrite('vec4f'), gs: readOnly('vec4f'), ms: readWrite('vec4f') },
});

/** One element's update (f32 or, in the blocked kernel, vec4: the same arithmetic on each lane). */
const SGD_UPDATE = `  if (gid >= p.n) { return; }
  let w = ps[gid];
  var g = gs[gid] * p.gscale + p.wd * w;
  if (p.mom != 0.0) {
    var b = g;
    if (p.first == 0u) { b = p.mom * ms[gid] + (1.0 - p.damp) * g; }
    ms[gid] = b;
    g = select(b, g + p.mom * b, p.nesterov != 0u);
  }
  ps[gid] = w - p.lr * g;
}`;

/**
 * Software adapters, n % 4 == 0: 4 vec4s per invocation (`n` counts vec4s), as the element-wise kernels there
 * (lavapipe pays per invocation and per load instruction); the same arithmetic on each element.
 */
function sgdPipeline4(gpu: Gpu): { pipeline: GPUComputePipeline; wg: number; per: number } {
  const wg = linearWorkgroupSize(gpu);
  const per = invocationBlock(gpu);
  const pipeline = SGD4.pipeline(gpu, `sgd4:${wg}:${per}`, () => `
${blockedMain(wg, per)}
${SGD_UPDATE}`);
  return { pipeline, wg, per };
}

function sgdPipeline(gpu: Gpu): { pipeline: GPUComputePipeline; wg: number } {
  const wg = linearWorkgroupSize(gpu);
  const pipeline = SGD.pipeline(gpu, `sgd:${wg}`, () => `
${linearMain(wg)}
${SGD_UPDATE}`);
  return { pipeline, wg };
}

function packed(count: number, o: Required<SgdOptions>): ArrayBuffer {
  return SGD.params({
    n: count, lr: o.lr, mom: o.momentum, wd: o.weightDecay, damp: o.dampening,
    nesterov: o.nesterov ? 1 : 0, first: o.firstStep ? 1 : 0, gscale: o.gradScale,
  });
}

/** One SGD step over flat packed buffers: one dispatch per storage-binding window (one for any real model). */
export function sgdStep(gpu: Gpu, buffers: SgdBuffers, options: SgdOptions): void {
  const o = resolved(options);
  const { params, grads, momentum, count } = buffers;
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`sgdStep: count must be a non-negative integer, got ${count}`);
  checkBuffer(params, count, 'sgdStep params');
  checkBuffer(grads, count, 'sgdStep grads');
  checkBuffer(momentum, count, 'sgdStep momentum');
  if (params === grads || params === momentum || grads === momentum) {
    throw new RangeError('sgdStep: params, grads and momentum must be three different buffers');
  }
  const { pipeline, wg } = sgdPipeline(gpu);
  forEachWindow(gpu, count, (start, n) => {
    const win = (b: GPUBuffer) => ({ buffer: b, offset: start * 4, size: n * 4 });
    if (invocationBlock(gpu) > 1 && n % 4 === 0) {
      const v = sgdPipeline4(gpu);
      gpu.dispatch({
        pipeline: v.pipeline, label: 'sgd', workgroups: Math.ceil(n / 4 / (v.wg * v.per)), params: packed(n / 4, o),
        bindings: SGD4.bindings({ ps: win(params), gs: win(grads), ms: win(momentum) }),
      });
      return;
    }
    gpu.dispatch({
      pipeline, label: 'sgd', workgroups: Math.ceil(n / wg), params: packed(n, o),
      bindings: SGD.bindings({ ps: win(params), gs: win(grads), ms: win(momentum) }),
    });
  });
}

/** One SGD step over parameters held in separate buffers or windows: one dispatch each, one command batch. */
export function sgdStepList(gpu: Gpu, tensors: readonly SgdTensor[], options: SgdOptions): void {
  const o = resolved(options);
  const { pipeline, wg } = sgdPipeline(gpu);
  tensors.forEach((t, i) => {
    if (!Number.isInteger(t.size) || t.size < 0) throw new RangeError(`sgdStepList: tensor ${i} size must be a non-negative integer, got ${t.size}`);
    if (t.size === 0) return;
    const bind = (b: Binding, what: string) => tensorWindow(b, t.size, `sgdStepList: tensor ${i} ${what}`);
    gpu.dispatch({
      pipeline, label: 'sgd', workgroups: Math.ceil(t.size / wg), params: packed(t.size, o),
      bindings: SGD.bindings({ ps: bind(t.param, 'param'), gs: bind(t.grad, 'grad'), ms: bind(t.momentum, 'momentum') }),
    });
  });
}

/**
 * The `{ buffer, offset, size }` window of one tensor of `size` f32 elements given as a buffer or a window, for
 * the per-tensor (list) variants of the fused optimiser kernels. Throws, naming `what`, when it does not fit.
 */
export function tensorWindow(b: Binding, size: number, what: string): { buffer: GPUBuffer; offset: number; size: number } {
  const r = 'buffer' in b ? b : { buffer: b };
  const off = r.offset ?? 0;
  if (r.buffer.size < off + size * 4 || (r.size !== undefined && r.size < size * 4)) {
    throw new RangeError(`${what} window (offset ${off}, buffer ${r.buffer.size} bytes) is too small for ${size} f32 elements`);
  }
  return { buffer: r.buffer, offset: off, size: size * 4 };
}

/**
 * Offsets (in f32 elements) that pack tensors of the given sizes into one flat buffer, each starting at a
 * multiple of `alignBytes` (pass gpu.limits.minStorageBufferOffsetAlignment, default 256 which suits every
 * adapter) so each can be bound as a window. `total` is the flat length to allocate.
 */
export function packedLayout(sizes: readonly number[], alignBytes = 256): { offsets: number[]; total: number } {
  if (!Number.isInteger(alignBytes) || alignBytes < 4 || alignBytes % 4) {
    throw new RangeError(`packedLayout: alignBytes must be a positive multiple of 4, got ${alignBytes}`);
  }
  const a = alignBytes / 4;
  const offsets: number[] = [];
  let total = 0;
  sizes.forEach((s, i) => {
    if (!Number.isInteger(s) || s < 0) throw new RangeError(`packedLayout: size ${i} must be a non-negative integer, got ${s}`);
    offsets.push(total);
    total += Math.ceil(s / a) * a;
  });
  return { offsets, total };
}
