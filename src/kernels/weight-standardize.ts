/**
 * Weight standardisation (DoDNet's WSConv3d, as bench/torch/tgnet_torch.py `standardize`): per output filter of w [Cout, ...]
 * (K = product of the other dims), what = (w - mean) / sqrt(var_unbiased + 1e-12), and its backward
 * dw = rstd * (g - mean(g) - what * sum(g * what) / (K - 1)).
 * One workgroup per filter; statistics are two-pass (mean, then the centred sum of squares). On software
 * adapters the workgroup is one 8-lane SIMD vector reading vec4s (lavapipe pays per invocation and per barrier,
 * and a 256-invocation workgroup on a filter of a few hundred weights mostly idles): 3-5x less CPU there.
 */
import type { Gpu } from './runtime/gpu.js';
import { cachedSignature, kernelSignature, readOnly, readWrite } from './runtime/kernel-signature.js';
import { checkBuffer, checkShape, linearWorkgroupSize, sizeOf } from './runtime/wgsl.js';
import { laneSums, reductionLanes, treeSum, workgroupMain } from './runtime/reduction.js';

/** The epsilon added to the unbiased variance (bench/torch/tgnet_torch.py `standardize`). */
export const WS_EPS = 1e-12;

function filters(shape: readonly number[], op: string): { cout: number; k: number } {
  checkShape(shape, op);
  if (shape.length < 2) throw new RangeError(`${op}: expected a weight shape [Cout, Cin, ...kernel], got [${shape.join(', ')}]`);
  const k = sizeOf(shape.slice(1));
  if (k < 2) {
    throw new RangeError(`${op}: each filter of [${shape.join(', ')}] has ${k} element(s); the unbiased variance needs at least 2`);
  }
  return { cout: shape[0], k };
}

export interface WeightStandardizeOptions {
  /**
   * One 8-invocation workgroup per filter, vec4 loads where K allows: 2-5x less CPU on lavapipe, but not the
   * default: its longer per-lane sums moved the whole-model golden test's smallest gradient (enc.4.0.conv1,
   * largest entry 2e-6, ill-conditioned) from 0.05% to 1.6% error against PyTorch, over the 1% tolerance.
   */
  narrow?: boolean;
}

type Elem = 'f32' | 'vec4f';

/** One workgroup per filter of k weights (kv elements of type T). */
const forwardSignature = (T: Elem) => cachedSignature(`weightStandardize:${T}`, () => kernelSignature('weightStandardize', {
  uniforms: { cout: 'u32', k: 'u32', eps: 'f32', kv: 'u32' },
  storage: { ws: readOnly(T), outs: readWrite(T), mean: readWrite('f32'), rstd: readWrite('f32') },
}));

const backwardSignature = (T: Elem) => cachedSignature(`weightStandardizeBackward:${T}`, () => kernelSignature('weightStandardizeBackward', {
  uniforms: { cout: 'u32', k: 'u32', kv: 'u32' },
  storage: { gs: readOnly(T), ws: readOnly(T), mean: readOnly('f32'), rstd: readOnly('f32'), dws: readWrite(T) },
}));

/**
 * Workgroup size, vector width and WGSL helpers of one launch. `lanes` < `wg` (software adapters, not narrow): the
 * sums are those of a `wg`-invocation workgroup, computed by `lanes` invocations (one SIMD vector) that each play
 * wg / lanes of the wide workgroup's invocations (see laneSums), so the result is bit for bit the wide kernel's
 * without its barriers across 32 vectors: lavapipe runs a wide workgroup's barriers as coroutine switches.
 */
function layout(gpu: Gpu, k: number, narrow: boolean): { wg: number; V: number; T: Elem; kv: number; hsum: (e: string) => string; lanes: number } {
  const wg = narrow ? Math.min(8, gpu.limits.maxComputeInvocationsPerWorkgroup) : linearWorkgroupSize(gpu);
  const V = narrow && k % 4 === 0 ? 4 : 1;
  const lanes = narrow ? wg : reductionLanes(gpu, wg);
  return {
    wg, V, T: V === 4 ? 'vec4f' : 'f32', kv: k / V,
    hsum: (e) => (V === 4 ? `dot(${e}, vec4f(1.0))` : e),
    lanes,
  };
}

/** what = standardised w; saves per-filter mean and rstd = 1/sqrt(var + 1e-12) (buffers of Cout f32). */
export function weightStandardize(
  gpu: Gpu, w: GPUBuffer, shape: readonly number[], what: GPUBuffer, mean: GPUBuffer, rstd: GPUBuffer,
  options: WeightStandardizeOptions = {},
): void {
  const op = 'weightStandardize';
  const { cout, k } = filters(shape, op);
  checkBuffer(w, cout * k, `${op} weight`);
  checkBuffer(what, cout * k, `${op} output`);
  checkBuffer(mean, cout, `${op} mean`);
  checkBuffer(rstd, cout, `${op} rstd`);
  if (cout === 0) return;
  const { wg, V, T, kv, hsum, lanes } = layout(gpu, k, options.narrow ?? false);
  const sig = forwardSignature(T);
  const pipeline = lanes < wg ? sig.pipeline(gpu, `ws-fwd:${wg}:${V}:in${lanes}`, () => `
var<workgroup> sh: array<f32, ${lanes}>;
${workgroupMain(lanes)}
  if (w >= p.cout) { return; }
  let base = w * p.kv;
  ${laneSums(wg, lanes, 'f32', 'i', '0u', 'p.kv', 'acc = acc + ws[base + i];')}
  ${treeSum(lanes)}
  let m = sh[0] / f32(p.k);
  workgroupBarrier();
  ${laneSums(wg, lanes, 'f32', 'i', '0u', 'p.kv', 'let d = ws[base + i] - m;\n      acc = acc + d * d;')}
  ${treeSum(lanes)}
  let r = 1.0 / sqrt(sh[0] / f32(p.k - 1u) + p.eps);
  for (var i = lid; i < p.kv; i = i + ${lanes}u) { outs[base + i] = (ws[base + i] - m) * r; }
  if (lid == 0u) {
    mean[w] = m;
    rstd[w] = r;
  }
}`) : sig.pipeline(gpu, `ws-fwd:${wg}:${V}`, () => `
var<workgroup> sh: array<f32, ${wg}>;
${workgroupMain(wg)}
  if (w >= p.cout) { return; }
  let base = w * p.kv;
  var acc = 0.0;
  for (var i = lid; i < p.kv; i = i + ${wg}u) { acc = acc + ${hsum('ws[base + i]')}; }
  sh[lid] = acc;
  ${treeSum(wg)}
  let m = sh[0] / f32(p.k);
  workgroupBarrier();
  acc = 0.0;
  for (var i = lid; i < p.kv; i = i + ${wg}u) {
    let d = ws[base + i] - ${T}(m);
    acc = acc + ${hsum('d * d')};
  }
  sh[lid] = acc;
  ${treeSum(wg)}
  let r = 1.0 / sqrt(sh[0] / f32(p.k - 1u) + p.eps);
  for (var i = lid; i < p.kv; i = i + ${wg}u) { outs[base + i] = (ws[base + i] - ${T}(m)) * r; }
  if (lid == 0u) {
    mean[w] = m;
    rstd[w] = r;
  }
}`);
  gpu.dispatch({
    pipeline, label: op, workgroups: cout,
    ...sig.bind({ cout, k, eps: WS_EPS, kv }, { ws: w, outs: what, mean, rstd }),
  });
}

/** dw from dwhat (the gradient of the standardised weight), the forward's w and its saved mean and rstd. */
export function weightStandardizeBackward(
  gpu: Gpu, dwhat: GPUBuffer, w: GPUBuffer, shape: readonly number[], mean: GPUBuffer, rstd: GPUBuffer, dw: GPUBuffer,
  options: WeightStandardizeOptions = {},
): void {
  const op = 'weightStandardizeBackward';
  const { cout, k } = filters(shape, op);
  checkBuffer(dwhat, cout * k, `${op} output gradient`);
  checkBuffer(w, cout * k, `${op} weight`);
  checkBuffer(mean, cout, `${op} mean`);
  checkBuffer(rstd, cout, `${op} rstd`);
  checkBuffer(dw, cout * k, `${op} weight gradient`);
  if (cout === 0) return;
  const { wg, V, T, kv, hsum, lanes } = layout(gpu, k, options.narrow ?? false);
  const sig = backwardSignature(T);
  const pipeline = lanes < wg ? sig.pipeline(gpu, `ws-bwd:${wg}:${V}:in${lanes}`, () => `
var<workgroup> sh: array<vec2f, ${lanes}>;
${workgroupMain(lanes)}
  if (w >= p.cout) { return; }
  let base = w * p.kv;
  let m = mean[w];
  let r = rstd[w];
  ${laneSums(wg, lanes, 'vec2f', 'i', '0u', 'p.kv', 'let g = gs[base + i];\n      acc = acc + vec2f(g, g * (ws[base + i] - m) * r);')}
  ${treeSum(lanes)}
  let gm = sh[0].x / f32(p.k);
  let gw = sh[0].y / f32(p.k - 1u);
  for (var i = lid; i < p.kv; i = i + ${lanes}u) {
    dws[base + i] = r * (gs[base + i] - gm - (ws[base + i] - m) * r * gw);
  }
}`) : sig.pipeline(gpu, `ws-bwd:${wg}:${V}`, () => `
var<workgroup> sh: array<vec2f, ${wg}>;
${workgroupMain(wg)}
  if (w >= p.cout) { return; }
  let base = w * p.kv;
  let m = mean[w];
  let r = rstd[w];
  var acc = vec2f(0.0);
  for (var i = lid; i < p.kv; i = i + ${wg}u) {
    let g = gs[base + i];
    acc = acc + vec2f(${hsum('g')}, ${hsum(`g * (ws[base + i] - ${T}(m))`)} * r);
  }
  sh[lid] = acc;
  ${treeSum(wg)}
  let gm = sh[0].x / f32(p.k);
  let gw = sh[0].y / f32(p.k - 1u);
  for (var i = lid; i < p.kv; i = i + ${wg}u) {
    dws[base + i] = r * (gs[base + i] - ${T}(gm) - (ws[base + i] - ${T}(m)) * r * gw);
  }
}`);
  gpu.dispatch({
    pipeline, label: op, workgroups: cout,
    ...sig.bind({ cout, k, kv }, { gs: dwhat, ws: w, mean, rstd, dws: dw }),
  });
}
