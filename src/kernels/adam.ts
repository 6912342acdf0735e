/**
 * Fused Adam / AdamW update with torch.optim.Adam / torch.optim.AdamW semantics (amsgrad and maximize off):
 *   Adam (L2):        g = grad + weightDecay * p
 *   AdamW (decoupled): g = grad;  p = p * (1 - lr * weightDecay)
 *   m = m + (1 - beta1) * (g - m)            (PyTorch: exp_avg.lerp_(g, 1 - beta1); m = 0 before step 1)
 *   v = beta2 * v + (1 - beta2) * g * g      (exp_avg_sq; v = 0 before step 1)
 *   p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * where t is the 1-based step count of this update.
 *
 * Same layout as the fused SGD (src/kernels/sgd.ts): parameters, gradients and both moments live in flat f32
 * buffers packed by `packedLayout`, so one step is ONE dispatch per storage-binding window; `adamStepList` is
 * the per-tensor fallback. Padding elements are updated harmlessly as long as the gradient padding is zero.
 *
 * The bias corrections depend on t only, so they are computed on the host in float64 and passed as uniforms
 * (as are lr and every other hyper-parameter): a schedule or a new step recompiles nothing.
 */
import { forEachWindow } from './runtime/windows.js';
import type { Binding, Gpu } from './runtime/gpu.js';
import { kernelSignature, readOnly, readWrite } from './runtime/kernel-signature.js';
import { checkBuffer, linearMain, linearWorkgroupSize } from './runtime/wgsl.js';
import { tensorWindow } from './sgd.js';

export interface AdamOptions {
  /** Learning rate of this step. */
  lr: number;
  /** Decay rates of the first and second moment; default [0.9, 0.999] (PyTorch's). Each in [0, 1). */
  betas?: readonly [number, number];
  /** Added to the bias-corrected sqrt of the second moment; default 1e-8. */
  eps?: number;
  /** Weight decay; default 0. Added to the gradient (Adam) or applied to the weights (AdamW, `decoupled`). */
  weightDecay?: number;
  /** AdamW's decoupled weight decay instead of Adam's L2 penalty; default false. */
  decoupled?: boolean;
  /** 1-based count of this update (1 on the first step: the moment buffers' old contents are then ignored). */
  step: number;
  /** Factor applied to the gradient first; default 1 (mixed precision: 1 / the loss scale, unscaling in the update). */
  gradScale?: number;
}

/** Flat packed storage: element `i < count` of the four buffers belong together. */
export interface AdamBuffers {
  params: GPUBuffer;
  grads: GPUBuffer;
  /** First moment (PyTorch's exp_avg). */
  expAvg: GPUBuffer;
  /** Second moment (PyTorch's exp_avg_sq). */
  expAvgSq: GPUBuffer;
  /** Number of f32 elements to update (from element 0). */
  count: number;
}

/** One parameter in its own buffers (or windows of shared buffers). `size` is its number of f32 elements. */
export interface AdamTensor {
  param: Binding;
  grad: Binding;
  expAvg: Binding;
  expAvgSq: Binding;
  size: number;
}

interface ResolvedAdam {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  decoupled: boolean;
  step: number;
  gradScale: number;
}

function resolved(o: AdamOptions, where: string): ResolvedAdam {
  const betas = o.betas ?? [0.9, 0.999];
  if (!Array.isArray(betas) || betas.length !== 2) throw new TypeError(`${where}: betas must be [beta1, beta2], got ${JSON.stringify(betas)}`);
  const r = {
    lr: o.lr, beta1: betas[0], beta2: betas[1], eps: o.eps ?? 1e-8, weightDecay: o.weightDecay ?? 0,
    decoupled: o.decoupled ?? false, step: o.step, gradScale: o.gradScale ?? 1,
  };
  if (!Number.isFinite(r.gradScale) || r.gradScale <= 0) throw new RangeError(`${where}: gradScale must be a finite positive number, got ${r.gradScale}`);
  for (const k of ['lr', 'eps', 'weightDecay'] as const) {
    if (!Number.isFinite(r[k]) || r[k] < 0) throw new RangeError(`${where}: ${k} must be a finite non-negative number, got ${r[k]}`);
  }
  for (const [i, b] of [r.beta1, r.beta2].entries()) {
    if (!Number.isFinite(b) || b < 0 || b >= 1) throw new RangeError(`${where}: betas[${i}] must be in [0, 1), got ${b}`);
  }
  if (typeof r.decoupled !== 'boolean') throw new TypeError(`${where}: decoupled must be a boolean, got ${String(r.decoupled)}`);
  if (!Number.isSafeInteger(r.step) || r.step < 1) throw new RangeError(`${where}: step must be a positive integer (1 on the first update), got ${r.step}`);
  return r;
}

/**
 * decay = 1 - lr * wd (AdamW), omb1 / omb2 = 1 - beta1 / 1 - beta2, stepSize = lr / (1 - beta1^t),
 * bc2Sqrt = sqrt(1 - beta2^t); first = 1 on step 1 (the moments' old contents are ignored).
 */
const ADAM = kernelSignature('adam', {
  uniforms: {
    n: 'u32', wd: 'f32', decay: 'f32', omb1: 'f32', b2: 'f32', omb2: 'f32', stepSize: 'f32', bc2Sqrt: 'f32', eps: 'f32',
    decoupled: 'u32', first: 'u32', gscale: 'f32',
  },
  storage: { ps: readWrite('f32'), gs: readOnly('f32'), ms: readWrite('f32'), vs: readWrite('f32') },
});

function adamPipeline(gpu: Gpu): { pipeline: GPUComputePipeline; wg: number } {
  const wg = linearWorkgroupSize(gpu);
  const pipeline = ADAM.pipeline(gpu, `adam:${wg}`, () => `
${linearMain(wg)}
  if (gid >= p.n) { return; }
  var w = ps[gid];
  var g = gs[gid] * p.gscale;
  if (p.decoupled != 0u) { w = w * p.decay; } else { g = g + p.wd * w; }
  var m = 0.0;
  var v = 0.0;
  if (p.first == 0u) { m = ms[gid]; v = vs[gid]; }
  m = m + p.omb1 * (g - m);
  v = p.b2 * v + p.omb2 * g * g;
  ms[gid] = m;
  vs[gid] = v;
  ps[gid] = w - p.stepSize * (m / (sqrt(v) / p.bc2Sqrt + p.eps));
}`);
  return { pipeline, wg };
}

/** Uniforms; the step-dependent and 1 - x factors are formed in float64 first, as PyTorch forms them in Python. */
function packed(count: number, o: ResolvedAdam): ArrayBuffer {
  return ADAM.params({
    n: count, wd: o.weightDecay, decay: 1 - o.lr * o.weightDecay, omb1: 1 - o.beta1, b2: o.beta2, omb2: 1 - o.beta2,
    stepSize: o.lr / (1 - o.beta1 ** o.step), bc2Sqrt: Math.sqrt(1 - o.beta2 ** o.step), eps: o.eps,
    decoupled: o.decoupled ? 1 : 0, first: o.step === 1 ? 1 : 0, gscale: o.gradScale,
  });
}

/** One Adam/AdamW step over flat packed buffers: one dispatch per storage-binding window (one for any real model). */
export function adamStep(gpu: Gpu, buffers: AdamBuffers, options: AdamOptions): void {
  const o = resolved(options, 'adamStep');
  const { params, grads, expAvg, expAvgSq, count } = buffers;
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`adamStep: count must be a non-negative integer, got ${count}`);
  const all = { params, grads, expAvg, expAvgSq };
  for (const [name, b] of Object.entries(all)) checkBuffer(b, count, `adamStep ${name}`);
  if (new Set(Object.values(all)).size !== 4) throw new RangeError('adamStep: params, grads, expAvg and expAvgSq must be four different buffers');
  const { pipeline, wg } = adamPipeline(gpu);
  forEachWindow(gpu, count, (start, n) => {
    const win = (b: GPUBuffer) => ({ buffer: b, offset: start * 4, size: n * 4 });
    gpu.dispatch({
      pipeline, label: 'adam', workgroups: Math.ceil(n / wg), params: packed(n, o),
      bindings: ADAM.bindings({ ps: win(params), gs: win(grads), ms: win(expAvg), vs: win(expAvgSq) }),
    });
  });
}

/** One Adam/AdamW step over parameters held in separate buffers or windows: one dispatch each, one command batch. */
export function adamStepList(gpu: Gpu, tensors: readonly AdamTensor[], options: AdamOptions): void {
  const o = resolved(options, 'adamStepList');
  const { pipeline, wg } = adamPipeline(gpu);
  tensors.forEach((t, i) => {
    if (!Number.isInteger(t.size) || t.size < 0) throw new RangeError(`adamStepList: tensor ${i} size must be a non-negative integer, got ${t.size}`);
    if (t.size === 0) return;
    const bind = (b: Binding, what: string) => tensorWindow(b, t.size, `adamStepList: tensor ${i} ${what}`);
    gpu.dispatch({
      pipeline, label: 'adam', workgroups: Math.ceil(t.size / wg), params: packed(t.size, o),
      bindings: ADAM.bindings({
        ps: bind(t.param, 'param'), gs: bind(t.grad, 'grad'), ms: bind(t.expAvg, 'expAvg'), vs: bind(t.expAvgSq, 'expAvgSq'),
      }),
    });
  });
}
