/**
 * The direct weight gradient (see common.ts): one invocation owns one (ci, kd, kh) and CT output channels x k
 * taps along W and walks a chunk of output rows; each chunk writes one partial weight gradient.
 */
import type { Gpu } from '../../runtime/gpu.js';
import { cachedSignature, kernelSignature, readOnly, readWrite } from '../../runtime/kernel-signature.js';
import { storageType, type DType } from '../../runtime/precision.js';
import { alignedWindow, windowSlack } from '../../runtime/windows.js';
import type { Conv3dGeometry } from '../geometry.js';
import { NORM_RELU_WGSL, dtypeKey, loadF32 } from '../options.js';
import { whole } from '../slabs.js';
import { accumulators, batchGroups, broadcastBlocking, DIRECT_MAX_KERNEL, type DirectBlocking, directMain } from './common.js';

/** `dtype`: the storage of x and gradOut; the coefficients and the partial weight gradients are f32. */
const weightSignature = (normRelu: boolean, dtype: DType) => cachedSignature(`conv3d direct backward weight:${normRelu}:${dtype}`, () => kernelSignature('conv3d direct backward weight', {
  uniforms: {
    total: 'u32', nLB: 'u32', nCB: 'u32', lanes: 'u32', Cin: 'u32', Cout: 'u32',
    D: 'u32', H: 'u32', W: 'u32', Do: 'u32', Ho: 'u32', Wo: 'u32', rows: 'u32', chunk: 'u32',
    xBase: 'u32', gBase: 'u32', xNS: 'u32', gNS: 'u32', pad: 'u32', slot0: 'u32', gLast: 'u32', cfBase: 'u32',
  },
  storage: {
    xs: readOnly(storageType(dtype)), gs: readOnly(storageType(dtype)), ...(normRelu ? { cfs: readOnly('vec4f') } : {}), parts: readWrite('f32'),
  },
}));

/** Invocations per weight-gradient workgroup at most: nine SIMD vectors, the (kd, kh) lanes of 8 input channels at k = 3. */
const WGRAD_MAX_LANES = 72;

/**
 * Target workgroups per weight-gradient dispatch (a few per CPU thread, for load balance). 16 rather than 48 since
 * the subgroup broadcast: the row chunks' partial gradients and their sum cost more than the balance gained
 * (width-4 step on lavapipe: weight gradient 20-27 -> 16 ms, the partials' sums 10 -> 6-8 ms).
 */
const WGRAD_TARGET_WORKGROUPS = 16;

/**
 * `sg` > 0 (the subgroup size): the CT x VW gradOut values of a step, the same for all lanes, are loaded once per
 * subgroup, each lane a different one, and broadcast by constant lane index: on lavapipe a load costs per lane
 * whether or not the lanes share its address, so this is ceil(CT * VW / sg) loads per lane and step instead of
 * CT * VW. Same FMAs in the same order either way.
 */
function weightShader(g: Conv3dGeometry, b: DirectBlocking, normRelu: boolean, wg: number, sg: number, dtype: DType): string {
  const { k, s } = g;
  const { ct, vw } = b;
  const L = (vw - 1) * s + k;
  const K3 = k ** 3;
  const body: string[] = [];
  for (let i = 0; i < L; i++) {
    const value = loadF32(dtype, `xs[select(0u, u32(rowBase + ${i}), ok${i})]`);
    body.push(`let ok${i} = rowOk & (u32(iw0 + ${i}) < p.W); let x${i} = select(0.0, ${normRelu ? `normRelu(${value}, cf)` : value}, ok${i});`);
  }
  const pairs = ct * vw;
  if (sg > 0) {
    for (let m = 0; m < Math.ceil(pairs / sg); m++) {
      body.push(`let gp${m} = min(sgl + ${m * sg}u, ${pairs - 1}u); let gc${m} = gp${m} / ${vw}u; let gv${m} = gp${m} % ${vw}u;`);
      body.push(`let gr${m} = select(0.0, ${loadF32(dtype, `gs[min(gRow + gc${m} * DHWO + gv${m}, p.gLast)]`)}, (ow0 + gv${m} < p.Wo) & (c0 + gc${m} < p.Cout));`);
    }
  }
  for (let v = 0; v < vw; v++) {
    if (sg === 0) body.push(`let vOk${v} = ow0 + ${v}u < p.Wo;`);
    for (let c = 0; c < ct; c++) {
      const pair = c * vw + v;
      body.push(sg > 0
        ? `let g${c}_${v} = subgroupBroadcast(gr${Math.floor(pair / sg)}, ${pair % sg}u);`
        : `let g${c}_${v} = select(0.0, ${loadF32(dtype, `gs[min(gRow + ${c}u * DHWO + ${v}u, p.gLast)]`)}, vOk${v} & (c0 + ${c}u < p.Cout));`);
      for (let kw = 0; kw < k; kw++) body.push(`a${c}_${kw} = fma(g${c}_${v}, x${v * s + kw}, a${c}_${kw});`);
    }
  }
  const stores: string[] = [];
  for (let c = 0; c < ct; c++) {
    stores.push(`if (c0 + ${c}u < p.Cout) {`);
    for (let kw = 0; kw < k; kw++) stores.push(`  parts[out + ${c}u * WROW + ${kw}u] = a${c}_${kw};`);
    stores.push('}');
  }
  return /* wgsl */ `
${normRelu ? NORM_RELU_WGSL : ''}
${directMain(wg, sg > 0)}
  if (lin >= p.total) { return; }
  let lb = lin % p.nLB; let rest = lin / p.nLB; let cb = rest % p.nCB; let sp = rest / p.nCB;
  let c0 = cb * ${ct}u;
  let li = lb * ${wg}u + lid;
  let valid = li < p.lanes;
  let lane = min(li, p.lanes - 1u);
  let kh = lane % ${k}u; let t = lane / ${k}u; let kd = t % ${k}u; let ci = t / ${k}u;
  let PAD = i32(p.pad);
  let HW = p.H * p.W; let DHW = p.D * HW; let HWO = p.Ho * p.Wo; let DHWO = p.Do * HWO;
  let WROW = p.Cin * ${K3}u;
  ${accumulators(ct, k).join('\n  ')}
  let r1 = min(sp * p.chunk + p.chunk, p.rows);
  for (var r = sp * p.chunk; r < r1; r++) {
    let n = r / (p.Do * p.Ho); let rr = r % (p.Do * p.Ho); let od = rr / p.Ho; let oh = rr % p.Ho;
    let id = i32(od * ${s}u + kd) - PAD; let ih = i32(oh * ${s}u + kh) - PAD;
    let rowOk = valid & (u32(id) < p.D) & (u32(ih) < p.H);
    let xRow = i32(p.xBase + n * p.xNS + ci * DHW) + id * i32(HW) + ih * i32(p.W);
    let gRow0 = p.gBase + n * p.gNS + c0 * DHWO + od * HWO + oh * p.Wo;
    ${normRelu ? 'let cf = cfs[p.cfBase + n * p.Cin + ci];' : ''}
    for (var ow0 = 0u; ow0 < p.Wo; ow0 += ${vw}u) {
      let iw0 = i32(ow0 * ${s}u) - PAD;
      let rowBase = xRow + iw0;
      let gRow = gRow0 + ow0;
      ${body.join('\n      ')}
    }
  }
  if (!valid) { return; }
  let out = (p.slot0 + sp) * p.Cout * WROW + c0 * WROW + ci * ${K3}u + (kd * ${k}u + kh) * ${k}u;
  ${stores.join('\n  ')}
}`;
}

/** Partial-slot layout of a direct weight gradient: `slots` partial gradients, summed afterwards when more than one. */
export interface DirectWgradPlan {
  slots: number;
  run: (partial: GPUBuffer) => void;
}

/**
 * Plans gradW by the direct kernel: `run(partial)` records the dispatches writing `slots` partial weight
 * gradients ([slots, Cout, Cin, k^3], f32) to `partial`. Null when one sample does not fit a binding or the
 * partial buffer would not. `budget` counts elements of `options.dtype` (x and gradOut, f32 unless given);
 * `options.partialBudget` (default `budget`) the f32 elements of the partial buffer's binding.
 */
export function planDirectWeightGrad(
  gpu: Gpu, x: GPUBuffer, gradOut: GPUBuffer, g: Conv3dGeometry, budget: number,
  options: { blocking?: DirectBlocking; chunks?: number; coef?: GPUBuffer | null; dtype?: DType; partialBudget?: number } = {},
): DirectWgradPlan | null {
  if (g.k > DIRECT_MAX_KERNEL) return null;
  const dtype = options.dtype ?? 'f32';
  const xSample = g.Cin * g.D * g.H * g.W;
  const gSample = g.Cout * g.Do * g.Ho * g.Wo;
  const slack = windowSlack(gpu, dtype);
  const groups = batchGroups(g.N, xSample + slack, gSample + slack, budget);
  if (!groups) return null;
  const b = options.blocking ?? broadcastBlocking(g.Cout, gpu.subgroupSize !== null);
  const lanes = g.Cin * g.k * g.k;
  // Whole SIMD vectors rather than a power of two: Cin = 4 has 36 lanes, which a 64-invocation workgroup ran 44% idle.
  const wg = Math.min(WGRAD_MAX_LANES, Math.ceil(lanes / 8) * 8);
  const nLB = Math.ceil(lanes / wg);
  const nCB = Math.ceil(g.Cout / b.ct);
  const rowsPerGroup = groups[0][1] * g.Do * g.Ho;
  let chunks = options.chunks ?? Math.max(1, Math.ceil(WGRAD_TARGET_WORKGROUPS / (nLB * nCB)));
  if (!Number.isInteger(chunks) || chunks < 1) throw new RangeError(`conv3d backward weight: chunks must be a positive integer, got ${chunks}`);
  chunks = Math.min(chunks, rowsPerGroup);
  const chunk = Math.ceil(rowsPerGroup / chunks);
  chunks = Math.ceil(rowsPerGroup / chunk);
  const wSize = g.Cout * g.Cin * g.k ** 3;
  const slots = groups.length * chunks;
  if (slots * wSize > (options.partialBudget ?? budget)) return null;
  const coef = options.coef ?? null;
  const sig = weightSignature(coef !== null, dtype);
  const sg = gpu.subgroupSize !== null && wg % gpu.subgroupSize === 0 ? gpu.subgroupSize : 0;
  const key = `conv3d:direct:wgrad:k${g.k}s${g.s}:${b.ct}x${b.vw}:${wg}${coef ? ':n' : ''}${sg ? `:sg${sg}` : ''}${dtypeKey(dtype)}`;
  const pipeline = sg
    ? gpu.pipeline(key, () => `enable subgroups;\n${sig.wgsl}\n${weightShader(g, b, coef !== null, wg, sg, dtype)}`, sig.access)
    : sig.pipeline(gpu, key, () => weightShader(g, b, coef !== null, wg, 0, dtype));
  return {
    slots,
    run: (partial) => {
      const parts = whole(partial, slots * wSize);
      groups.forEach(([n0, nc], gi) => {
        const xw = alignedWindow(gpu, x, n0 * xSample, nc * xSample, dtype);
        const gw = alignedWindow(gpu, gradOut, n0 * gSample, nc * gSample, dtype);
        const total = nLB * nCB * chunks;
        const uniforms = {
          total, nLB, nCB, lanes, Cin: g.Cin, Cout: g.Cout, D: g.D, H: g.H, W: g.W, Do: g.Do, Ho: g.Ho, Wo: g.Wo,
          rows: nc * g.Do * g.Ho, chunk, xBase: xw.base, gBase: gw.base, xNS: xSample, gNS: gSample, pad: g.p,
          slot0: gi * chunks, gLast: gw.base + nc * gSample - 1, cfBase: n0 * g.Cin,
        };
        const buffers = { xs: xw.binding, gs: gw.binding, parts, ...(coef ? { cfs: whole(coef, 4 * g.N * g.Cin) } : {}) };
        const flops = 2 * nc * g.Cout * g.Cin * g.k ** 3 * g.Do * g.Ho * g.Wo;
        gpu.dispatch({
          pipeline, label: 'conv3d:wgrad', workgroups: total, flops,
          ...sig.bind(uniforms, buffers),
        });
      });
    },
  };
}
