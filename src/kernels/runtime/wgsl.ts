/** Small WGSL-emitting helpers shared by the kernel generators. */
import { isSoftwareAdapter, type Gpu } from './gpu.js';
import { bytesPerElement, type DType } from './precision.js';

/**
 * The entry point of a 1-D kernel: `gid` is the global linear invocation index, correct also when the
 * launcher's linear workgroup count was folded into y/z (see `Gpu.grid`).
 */
export function linearMain(workgroupSize: number): string {
  return /* wgsl */ `
@compute @workgroup_size(${workgroupSize})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let gid = (wid.x + nwg.x * (wid.y + nwg.y * wid.z)) * ${workgroupSize}u + lid;`;
}

/**
 * As linearMain, but each invocation handles `per` indices, gid = first + k * workgroupSize (k < per). The body
 * that follows (up to its closing brace) becomes a function of `gid` alone, so it may not use `lid`, and a
 * `return` ends one index. With per = 1 this is linearMain. Launch ceil(count / (workgroupSize * per)) groups.
 */
export function blockedMain(workgroupSize: number, per: number): string {
  if (per === 1) return linearMain(workgroupSize);
  return /* wgsl */ `
@compute @workgroup_size(${workgroupSize})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let first = (wid.x + nwg.x * (wid.y + nwg.y * wid.z)) * ${workgroupSize * per}u + lid;
  for (var k = 0u; k < ${per}u; k = k + 1u) { element(first + k * ${workgroupSize}u); }
}

fn element(gid: u32) {`;
}

/**
 * Indices per invocation of simple 1-D kernels (see blockedMain): 4 on software adapters, which run
 * invocations as SIMD lanes of a CPU thread and pay per invocation (an add ran 2-4x faster with 4 vec4s per
 * invocation on lavapipe), 1 on GPUs.
 */
export function invocationBlock(gpu: Gpu): number {
  return isSoftwareAdapter(gpu) ? 4 : 1;
}

/** Workgroup size for simple 1-D kernels: 256 fits every adapter we target (SwiftShader's maximum). */
export function linearWorkgroupSize(gpu: Gpu): number {
  return Math.min(256, gpu.limits.maxComputeInvocationsPerWorkgroup);
}

/** Number of `dtype` elements (f32 unless given) that fit one storage binding, rounded down to the offset alignment. */
export function maxBindingElements(gpu: Gpu, dtype: DType = 'f32'): number {
  const align = gpu.limits.minStorageBufferOffsetAlignment;
  return Math.floor(gpu.limits.maxStorageBufferBindingSize / align) * align / bytesPerElement(dtype);
}

/** Formats a JS number as a WGSL f32 literal (always with a decimal point or exponent). */
export function f32Literal(v: number): string {
  if (Number.isNaN(v)) throw new RangeError('f32Literal: NaN has no WGSL literal');
  if (!Number.isFinite(v)) return v > 0 ? 'bitcast<f32>(0x7f800000u)' : 'bitcast<f32>(0xff800000u)';
  const s = String(v);
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

/** Row-major strides of a shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Params packer: u32 and f32 fields in declaration order, padded to 16 bytes as a WGSL uniform struct. */
export function packParams(fields: ({ u: number } | { f: number })[]): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil(fields.length / 4) * 16));
  const u = new Uint32Array(buf);
  const f = new Float32Array(buf);
  fields.forEach((fld, i) => {
    if ('u' in fld) u[i] = fld.u >>> 0;
    else f[i] = fld.f;
  });
  return buf;
}

/** Asserts a shape is a list of non-negative integers; `what` names the op and the argument. */
export function checkShape(shape: readonly number[], what: string): void {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new TypeError(`${what}: shape must be non-negative integers, got [${String(shape)}]`);
  }
}

/** Asserts a buffer holds at least `elements` values of `dtype` (f32 unless given). */
export function checkBuffer(buffer: GPUBuffer, elements: number, what: string, dtype: DType = 'f32'): void {
  const bytes = elements * bytesPerElement(dtype);
  if (buffer.size < bytes) {
    throw new RangeError(`${what}: buffer of ${buffer.size} bytes is too small for ${elements} ${dtype} elements (${bytes} bytes)`);
  }
}
