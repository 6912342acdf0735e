/**
 * Trilinear x2 upsampling of [N, C, D, H, W] to [N, C, 2D, 2H, 2W], exactly as PyTorch
 * F.interpolate(x, scale_factor=2, mode='trilinear', align_corners=False): per dim the source coordinate
 * is max((o + 0.5) / 2 - 0.5, 0), i0 = floor, i1 = min(i0 + 1, L - 1), weights (1 - l, l).
 *
 * The backward is the adjoint as a gather: each input voxel sums the output gradients that read it, from
 * output indices 2i-1 .. 2i+2 per dim with the forward's own weights (no atomics).
 * Tensors larger than one storage binding are processed in slabs of whole (n, c, depth) planes.
 * Both tensors are f32 or f16 (`dtype`: the interpolation and the adjoint's sums run in f32, one rounding per store).
 */
import type { Gpu } from './runtime/gpu.js';
import { cachedSignature, kernelSignature, readOnly, readWrite } from './runtime/kernel-signature.js';
import { bytesPerElement, requireDType, type DType } from './runtime/precision.js';
import { checkBuffer, checkShape, linearMain, linearWorkgroupSize } from './runtime/wgsl.js';
import { alignedWindow, alignElements, slabElements, type SlabOptions } from './runtime/windows.js';

export interface UpsampleOptions extends SlabOptions {
  /** Element type of x and y (dy and dx); default 'f32'. */
  dtype?: DType;
}

/** The output shape [N, C, 2D, 2H, 2W]; throws when the shape is not 5-D. */
export function upsampleTrilinear2xShape(shape: readonly number[], op = 'upsampleTrilinear2x'): number[] {
  checkShape(shape, op);
  if (shape.length !== 5) throw new RangeError(`${op}: expected an [N, C, D, H, W] shape, got [${shape.join(', ')}]`);
  const [N, C, D, H, W] = shape;
  return [N, C, 2 * D, 2 * H, 2 * W];
}

function checkOutputFits(gpu: Gpu, shape: readonly number[], op: string, dtype: DType): number[] {
  const out = upsampleTrilinear2xShape(shape, op);
  const elems = out.reduce((a, b) => a * b, 1);
  const bytes = elems * bytesPerElement(dtype);
  if (bytes > gpu.limits.maxBufferSize || elems >= 2 ** 32) {
    throw new RangeError(
      `${op}: upsampling [${shape.join(', ')}] gives [${out.join(', ')}], which needs ${bytes} bytes, ` +
      `more than this device's maxBufferSize of ${gpu.limits.maxBufferSize} bytes`,
    );
  }
  return out;
}

interface PlaneWindow {
  /** First destination plane and the number of planes. */
  p0: number;
  planes: number;
  dstBase: number;
  dstCount: number;
  srcBase: number;
  srcCount: number;
}

/**
 * Groups destination planes (each `dstPlane` elements) into windows whose destination and source element
 * ranges both fit `maxElems`; `srcRange(p)` is the (monotone) range of source planes plane p reads.
 */
function planPlanes(
  nDst: number, dstPlane: number, nSrc: number, srcPlane: number, srcRange: (p: number) => [number, number],
  maxElems: number, align: number, op: string, shape: readonly number[], dtype: DType,
): PlaneWindow[] {
  if (nDst * dstPlane <= maxElems && nSrc * srcPlane <= maxElems) {
    return [{ p0: 0, planes: nDst, dstBase: 0, dstCount: nDst * dstPlane, srcBase: 0, srcCount: nSrc * srcPlane }];
  }
  const down = (e: number) => Math.floor(e / align) * align;
  const win = (p0: number, p1: number): PlaneWindow => {
    const dstBase = down(p0 * dstPlane);
    const srcBase = down(srcRange(p0)[0] * srcPlane);
    return {
      p0, planes: p1 - p0, dstBase, dstCount: p1 * dstPlane - dstBase, srcBase,
      srcCount: (srcRange(p1 - 1)[1] + 1) * srcPlane - srcBase,
    };
  };
  const fits = (w: PlaneWindow) => w.dstCount <= maxElems && w.srcCount <= maxElems;
  const out: PlaneWindow[] = [];
  let p = 0;
  while (p < nDst) {
    let w = win(p, p + 1);
    if (!fits(w)) {
      const eb = bytesPerElement(dtype);
      throw new RangeError(
        `${op}: one depth plane of [${shape.join(', ')}] needs windows of ${w.dstCount * eb} and ${w.srcCount * eb} bytes, ` +
        `more than the ${maxElems * eb}-byte storage binding`,
      );
    }
    let p1 = p + 1;
    while (p1 < nDst) {
      const next = win(p, p1 + 1);
      if (!fits(next)) break;
      w = next;
      p1++;
    }
    out.push(w);
    p = p1;
  }
  return out;
}

/**
 * Both directions: n destination elements from flat index dstStart, the destination window starting dstBase
 * elements and the source window srcBase elements into their tensors; D, H, W the input (low-resolution) dims.
 */
const uniforms = { n: 'u32', dstStart: 'u32', dstBase: 'u32', srcBase: 'u32', D: 'u32', H: 'u32', W: 'u32' } as const;
const forwardSignature = (dtype: DType) => cachedSignature(`upsampleTrilinear2x:${dtype}`, () => kernelSignature('upsampleTrilinear2x', {
  uniforms, storage: { xs: readOnly(dtype), ys: readWrite(dtype) },
}));
const backwardSignature = (dtype: DType) => cachedSignature(`upsampleTrilinear2xBackward:${dtype}`, () => kernelSignature('upsampleTrilinear2xBackward', {
  uniforms, storage: { dys: readOnly(dtype), dxs: readWrite(dtype) },
}));

/** A window of `count` elements from the aligned element `base` (planPlanes aligns the bases). */
function planeWindow(gpu: Gpu, buffer: GPUBuffer, base: number, count: number, dtype: DType) {
  return alignedWindow(gpu, buffer, base, count, dtype).binding;
}

const SRC_INDEX = /* wgsl */ `
// PyTorch's align_corners=False source index for scale 2: (i0, i1, lambda1).
fn srcIndex(o: u32, L: u32) -> vec3f {
  let s = max((f32(o) + 0.5) * 0.5 - 0.5, 0.0);
  let i0 = u32(s);
  return vec3f(f32(i0), f32(min(i0 + 1u, L - 1u)), s - f32(i0));
}`;

/** y [N, C, 2D, 2H, 2W] = trilinear x2 upsampling of x [N, C, D, H, W], both of options.dtype. */
export function upsampleTrilinear2x(
  gpu: Gpu, x: GPUBuffer, shape: readonly number[], y: GPUBuffer, options: UpsampleOptions = {},
): void {
  const op = 'upsampleTrilinear2x';
  const dtype = options.dtype ?? 'f32';
  requireDType(gpu, dtype, op);
  const out = checkOutputFits(gpu, shape, op, dtype);
  const [N, C, D, H, W] = shape;
  const nIn = N * C * D * H * W;
  checkBuffer(x, nIn, `${op} input`, dtype);
  checkBuffer(y, nIn * 8, `${op} output`, dtype);
  if (nIn === 0) return;
  const maxElems = slabElements(gpu, op, options, dtype);
  const wg = linearWorkgroupSize(gpu);
  const FORWARD = forwardSignature(dtype);
  const pipeline = FORWARD.pipeline(gpu, `upsample2x:${dtype}:${wg}`, () => `
${SRC_INDEX}
fn at(nc: u32, d: f32, h: f32, w: f32) -> f32 {
  return f32(xs[((nc * p.D + u32(d)) * p.H + u32(h)) * p.W + u32(w) - p.srcBase]);
}
${linearMain(wg)}
  if (gid >= p.n) { return; }
  let go = p.dstStart + gid;
  let OW = 2u * p.W;
  let OH = 2u * p.H;
  let OD = 2u * p.D;
  let ow = go % OW;
  var t = go / OW;
  let oh = t % OH;
  t = t / OH;
  let od = t % OD;
  let nc = t / OD;
  let sd = srcIndex(od, p.D);
  let sh = srcIndex(oh, p.H);
  let sw = srcIndex(ow, p.W);
  let d0 = 1.0 - sd.z;
  let h0 = 1.0 - sh.z;
  let w0 = 1.0 - sw.z;
  let v = d0 * (h0 * (w0 * at(nc, sd.x, sh.x, sw.x) + sw.z * at(nc, sd.x, sh.x, sw.y))
              + sh.z * (w0 * at(nc, sd.x, sh.y, sw.x) + sw.z * at(nc, sd.x, sh.y, sw.y)))
        + sd.z * (h0 * (w0 * at(nc, sd.y, sh.x, sw.x) + sw.z * at(nc, sd.y, sh.x, sw.y))
              + sh.z * (w0 * at(nc, sd.y, sh.y, sw.x) + sw.z * at(nc, sd.y, sh.y, sw.y)));
  ys[go - p.dstBase] = ${dtype}(v);
}`);
  const OD = out[2];
  const plane = H * W;
  const windows = planPlanes(N * C * OD, 4 * plane, N * C * D, plane, (q) => {
    const nc = Math.floor(q / OD);
    const od = q % OD;
    const i0 = Math.floor(Math.max((od + 0.5) / 2 - 0.5, 0));
    return [nc * D + i0, nc * D + Math.min(i0 + 1, D - 1)];
  }, maxElems, alignElements(gpu, dtype), op, shape, dtype);
  for (const w of windows) {
    const n = w.planes * 4 * plane;
    gpu.dispatch({
      pipeline, label: op, workgroups: Math.ceil(n / wg),
      ...FORWARD.bind({ n, dstStart: w.p0 * 4 * plane, dstBase: w.dstBase, srcBase: w.srcBase, D, H, W }, {
        xs: planeWindow(gpu, x, w.srcBase, w.srcCount, dtype), ys: planeWindow(gpu, y, w.dstBase, w.dstCount, dtype),
      }),
    });
  }
}

/**
 * dx [N, C, D, H, W] = adjoint of upsampleTrilinear2x applied to dy [N, C, 2D, 2H, 2W]; `shape` is x's shape.
 * dy and dx are of options.dtype (the sums in f32).
 */
export function upsampleTrilinear2xBackward(
  gpu: Gpu, dy: GPUBuffer, shape: readonly number[], dx: GPUBuffer, options: UpsampleOptions = {},
): void {
  const op = 'upsampleTrilinear2xBackward';
  const dtype = options.dtype ?? 'f32';
  requireDType(gpu, dtype, op);
  checkOutputFits(gpu, shape, op, dtype);
  const [N, C, D, H, W] = shape;
  const nIn = N * C * D * H * W;
  checkBuffer(dy, nIn * 8, `${op} output gradient`, dtype);
  checkBuffer(dx, nIn, `${op} input gradient`, dtype);
  if (nIn === 0) return;
  const maxElems = slabElements(gpu, op, options, dtype);
  const wg = linearWorkgroupSize(gpu);
  const BACKWARD = backwardSignature(dtype);
  const pipeline = BACKWARD.pipeline(gpu, `upsample2x-bwd:${dtype}:${wg}`, () => {
    // Input i of an axis of length L receives outputs 2i - 1 .. 2i + 2 with the forward's weights (align_corners
    // False, scale 2): 1/4, 3/4, 3/4, 1/4 inside; at i = 0 output 2i - 1 is missing and output 2i reads i alone
    // (weight 1), at i = L - 1 likewise output 2i + 2 and 2i + 1. Straight-line code (a missing output reads a clamped
    // neighbour times 0). The loop form with a branch per zero weight took SwiftShader, which spills every live value
    // at a branch, 12.8-13.7 ms of a width-4 step, now 2.4-2.8; lavapipe's width-8 step 3.5-4.7 -> 2.6-4.3 ms.
    const rows: string[] = [];
    for (let a = 0; a < 4; a++) {
      for (let b = 0; b < 4; b++) {
        const loads = Array.from({ length: 4 }, (_, c) => `ww${c} * f32(dys[row + ox${c}])`).join(' + ');
        rows.push(`{ let row = ((nc * OD + od${a}) * OH + oh${b}) * OW - p.srcBase; acc = fma(wd${a} * wh${b}, ${loads}, acc); }`);
      }
    }
    const axis = (name: string, i: string, L: string) => `
  let ${name}0 = select(0.0, 0.25, ${i} >= 1u); let ${name}1 = select(0.75, 1.0, ${i} == 0u);
  let ${name}2 = select(0.75, 1.0, ${i} + 1u == ${L}); let ${name}3 = select(0.0, 0.25, ${i} + 1u < ${L});`;
    const offsets = (name: string, i: string, L: string) =>
      Array.from({ length: 4 }, (_, a) => `let ${name}${a} = min(u32(max(2 * i32(${i}) + ${a - 1}, 0)), 2u * ${L} - 1u);`).join(' ');
    return `
${linearMain(wg)}
  if (gid >= p.n) { return; }
  let gi = p.dstStart + gid;
  let iw = gi % p.W;
  var t = gi / p.W;
  let ih = t % p.H;
  t = t / p.H;
  let id = t % p.D;
  let nc = t / p.D;
  let OW = 2u * p.W;
  let OH = 2u * p.H;
  let OD = 2u * p.D;${axis('wd', 'id', 'p.D')}${axis('wh', 'ih', 'p.H')}${axis('ww', 'iw', 'p.W')}
  ${offsets('od', 'id', 'p.D')}
  ${offsets('oh', 'ih', 'p.H')}
  ${offsets('ox', 'iw', 'p.W')}
  var acc = 0.0;
  ${rows.join('\n  ')}
  dxs[gi - p.dstBase] = ${dtype}(acc);
}`;
  });
  const plane = H * W;
  const OD = 2 * D;
  const windows = planPlanes(N * C * D, plane, N * C * OD, 4 * plane, (q) => {
    const nc = Math.floor(q / D);
    const id = q % D;
    return [nc * OD + Math.max(0, 2 * id - 1), nc * OD + Math.min(OD - 1, 2 * id + 2)];
  }, maxElems, alignElements(gpu, dtype), op, shape, dtype);
  for (const w of windows) {
    const n = w.planes * plane;
    gpu.dispatch({
      pipeline, label: op, workgroups: Math.ceil(n / wg),
      ...BACKWARD.bind({ n, dstStart: w.p0 * plane, dstBase: w.dstBase, srcBase: w.srcBase, D, H, W }, {
        dys: planeWindow(gpu, dy, w.srcBase, w.srcCount, dtype), dxs: planeWindow(gpu, dx, w.dstBase, w.dstCount, dtype),
      }),
    });
  }
}
