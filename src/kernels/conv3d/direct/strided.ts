/**
 * The direct data gradient for any stride (see common.ts): a gather over the taps that reach each input voxel.
 * A workgroup covers one phase (id mod s, ih mod s) of the input, so the taps along D and H that reach it are
 * uniform; along W an invocation owns VW (a multiple of s) voxels starting at a multiple of s, so which kw reach
 * which of them is known when the shader is generated. No zero taps are multiplied.
 */
import type { Gpu } from '../../runtime/gpu.js';
import { cachedSignature, kernelSignature, readOnly, readWrite } from '../../runtime/kernel-signature.js';
import { storageType, type DType } from '../../runtime/precision.js';
import { alignedWindow, windowSlack } from '../../runtime/windows.js';
import type { Conv3dGeometry } from '../geometry.js';
import { dtypeKey, loadF32, storeAs } from '../options.js';
import { whole } from '../slabs.js';
import { accumulators, batchGroups, broadcastBlocking, DIRECT_MAX_KERNEL, type DirectBlocking, directMain, laneBlocks } from './common.js';

/** `dtype`: the storage of gradOut and gradX; the weight is f32. */
const stridedSignature = (dtype: DType) => cachedSignature(`conv3d direct backward data:${dtype}`, () => kernelSignature('conv3d direct backward data', {
  uniforms: {
    total: 'u32', nVB: 'u32', nCB: 'u32', nGroups: 'u32', nWg: 'u32', nJh: 'u32', Cin: 'u32', Cout: 'u32',
    D: 'u32', H: 'u32', W: 'u32', Do: 'u32', Ho: 'u32', Wo: 'u32',
    gBase: 'u32', xBase: 'u32', gNS: 'u32', xNS: 'u32', pad: 'u32', wLast: 'u32',
  },
  storage: { gs: readOnly(storageType(dtype)), ws: readOnly('f32'), gxs: readWrite(storageType(dtype)) },
}));

/**
 * `sg` > 0 (the subgroup size): a row's CT x k weights, the same for all lanes, are loaded once per subgroup (each
 * lane different ones) and broadcast by constant lane index, as in the convolution kernel (see conv.ts).
 */
function stridedShader(g: Conv3dGeometry, b: DirectBlocking, wg: number, sg: number, dtype: DType): string {
  const { k, s, p: pad } = g;
  const { ct, vw } = b;
  const K3 = k ** 3;
  // Along W: voxel v (iw = iw0 + v, iw0 = s * q0) receives tap kw from ow = q0 + (v + pad - kw) / s.
  const pairs: { v: number; kw: number; o: number }[] = [];
  for (let v = 0; v < vw; v++) {
    for (let kw = 0; kw < k; kw++) {
      if ((v + pad - kw) % s === 0) pairs.push({ v, kw, o: Math.floor((v + pad - kw) / s) });
    }
  }
  const offs = [...new Set(pairs.map((q) => q.o))].sort((a, c) => a - c);
  const yName = (o: number) => `y${o < 0 ? 'm' + -o : o}`;
  const body: string[] = [];
  for (const o of offs) {
    const name = yName(o);
    body.push(`let ok_${name} = rowOk & (u32(q0 + ${o}) < p.Wo); let ${name} = select(0.0, ${loadF32(dtype, `gs[select(0u, u32(rowBase + ${o}), ok_${name})]`)}, ok_${name});`);
  }
  const values = ct * k;
  if (sg > 0) {
    for (let m = 0; m < Math.ceil(values / sg); m++) {
      body.push(`let we${m} = min(sgl + ${m * sg}u, ${values - 1}u); let wr${m} = ws[min(wBase + (we${m} / ${k}u) * ${K3}u + tapRow + we${m} % ${k}u, p.wLast)];`);
    }
  }
  for (let kw = 0; kw < k; kw++) {
    const uses = pairs.filter((q) => q.kw === kw);
    if (uses.length === 0) continue;
    for (let c = 0; c < ct; c++) {
      const e = c * k + kw;
      body.push(sg > 0
        ? `let w${c}_${kw} = subgroupBroadcast(wr${Math.floor(e / sg)}, ${e % sg}u);`
        : `let w${c}_${kw} = ws[min(wBase + ${c}u * ${K3}u + tapRow + ${kw}u, p.wLast)];`);
      for (const q of uses) body.push(`a${c}_${q.v} = fma(w${c}_${kw}, ${yName(q.o)}, a${c}_${q.v});`);
    }
  }
  const stores: string[] = [];
  for (let c = 0; c < ct; c++) {
    stores.push(`if (c0 + ${c}u < p.Cin) {`);
    for (let v = 0; v < vw; v++) stores.push(`  if (iw0 + ${v}u < p.W) { gxs[xRow + ${c}u * DHW + ${v}u] = ${storeAs(dtype, `a${c}_${v}`)}; }`);
    stores.push('}');
  }
  return /* wgsl */ `
const K = ${k}u;
const S = ${s}u;

${directMain(wg, sg > 0)}
  if (lin >= p.total) { return; }
  let vb = lin % p.nVB; var rest = lin / p.nVB; let cb = rest % p.nCB; rest = rest / p.nCB;
  let ah = rest % S; rest = rest / S; let ad = rest % S; let n = rest / S;
  let c0 = cb * ${ct}u;
  let gi = vb * ${wg}u + lid;
  let g = min(gi, p.nGroups - 1u);
  let owg = g % p.nWg; let t = g / p.nWg; let jh = t % p.nJh; let jd = t / p.nJh;
  let id = ad + S * jd; let ih = ah + S * jh; let iw0 = owg * ${vw}u;
  let valid = (gi < p.nGroups) & (id < p.D) & (ih < p.H);
  let q0 = i32(iw0 / S);
  let PAD = p.pad;
  // Taps along D and H that reach this phase: k = r + S * t, output index = j + q - t.
  let rd = (ad + PAD) % S; let qd = i32((ad + PAD - rd) / S);
  let rh = (ah + PAD) % S; let qh = i32((ah + PAD - rh) / S);
  let HWO = p.Ho * p.Wo; let DHWO = p.Do * HWO; let DHW = p.D * p.H * p.W;
  ${accumulators(ct, vw).join('\n  ')}
  for (var co = 0u; co < p.Cout; co++) {
    let cBase = i32(p.gBase + n * p.gNS + co * DHWO);
    let wBase = co * p.Cin * ${K3}u + c0 * ${K3}u;
    for (var kd = rd; kd < K; kd += S) {
      let od = i32(jd) + qd - i32((kd - rd) / S);
      for (var kh = rh; kh < K; kh += S) {
        let oh = i32(jh) + qh - i32((kh - rh) / S);
        let rowOk = valid & (u32(od) < p.Do) & (u32(oh) < p.Ho);
        let rowBase = cBase + od * i32(HWO) + oh * i32(p.Wo) + q0;
        let tapRow = (kd * K + kh) * K;
        ${body.join('\n        ')}
      }
    }
  }
  if (!valid) { return; }
  let xRow = p.xBase + n * p.xNS + c0 * DHW + (id * p.H + ih) * p.W + iw0;
  ${stores.join('\n  ')}
}`;
}

/** gradX of a conv3d of any stride by the strided gather; false (nothing recorded) when one sample does not fit a binding. */
export function directStridedBackwardData(
  gpu: Gpu, gradOut: GPUBuffer, w: GPUBuffer, gradX: GPUBuffer, g: Conv3dGeometry, budget: number,
  blocking?: DirectBlocking, dtype: DType = 'f32',
): boolean {
  if (g.k > DIRECT_MAX_KERNEL) return false;
  const xSample = g.Cin * g.D * g.H * g.W;
  const gSample = g.Cout * g.Do * g.Ho * g.Wo;
  const slack = windowSlack(gpu, dtype);
  const groups = batchGroups(g.N, gSample + slack, xSample + slack, budget);
  if (!groups) return false;
  // 8 channels a lane with the broadcast weights: the strided dgrad of TGNet's width-8 step on lavapipe 7-10 -> 4 ms.
  const base = blocking ?? broadcastBlocking(g.Cin, gpu.subgroupSize !== null);
  const b = { ct: base.ct, vw: Math.ceil(base.vw / g.s) * g.s };
  const nWg = Math.ceil(g.W / b.vw);
  const nJd = Math.ceil(g.D / g.s);
  const nJh = Math.ceil(g.H / g.s);
  const nGroups = nJd * nJh * nWg;
  const { wg, blocks: nVB } = laneBlocks(nGroups, 64);
  const sg = gpu.subgroupSize !== null && wg % gpu.subgroupSize === 0 ? gpu.subgroupSize : 0;
  const key = `conv3d:direct:dgradS:k${g.k}s${g.s}p${g.p}:${b.ct}x${b.vw}:${wg}${sg ? `:sg${sg}` : ''}${dtypeKey(dtype)}`;
  const sig = stridedSignature(dtype);
  const pipeline = sg
    ? gpu.pipeline(key, () => `enable subgroups;\n${sig.wgsl}\n${stridedShader(g, b, wg, sg, dtype)}`, sig.access)
    : sig.pipeline(gpu, key, () => stridedShader(g, b, wg, 0, dtype));
  const nCB = Math.ceil(g.Cin / b.ct);
  const wSize = g.Cout * g.Cin * g.k ** 3;
  const weights = whole(w, wSize);
  for (const [n0, nc] of groups) {
    const gw = alignedWindow(gpu, gradOut, n0 * gSample, nc * gSample, dtype);
    const xw = alignedWindow(gpu, gradX, n0 * xSample, nc * xSample, dtype);
    const total = nVB * nCB * g.s * g.s * nc;
    const uniforms = {
      total, nVB, nCB, nGroups, nWg, nJh, Cin: g.Cin, Cout: g.Cout, D: g.D, H: g.H, W: g.W, Do: g.Do, Ho: g.Ho, Wo: g.Wo,
      gBase: gw.base, xBase: xw.base, gNS: gSample, xNS: xSample, pad: g.p, wLast: wSize - 1,
    };
    const flops = 2 * nc * g.Cout * g.Cin * g.k ** 3 * g.Do * g.Ho * g.Wo;
    gpu.dispatch({
      pipeline, label: 'conv3d:dgrad', workgroups: total, flops,
      ...sig.bind(uniforms, { gs: gw.binding, ws: weights, gxs: xw.binding }),
    });
  }
  return true;
}
