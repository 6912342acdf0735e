/**
 * Binding windows. A tensor larger than one storage binding (128 MiB on lavapipe, 2 GiB on an H100) is
 * processed in windows of a buffer; window offsets must be multiples of minStorageBufferOffsetAlignment.
 */
import type { Gpu } from './gpu.js';
import { bytesPerElement, type DType } from './precision.js';
import { maxBindingElements } from './wgsl.js';

/** A storage window covering elements [start, start + count) of `buffer` and the shift of `start` inside it. */
export interface AlignedWindow {
  binding: { buffer: GPUBuffer; offset: number; size: number };
  /** Element index of `start` inside the window. */
  base: number;
}

/** Elements (of `dtype`, f32 unless given) of slack a window needs for its alignment shift. */
export function windowSlack(gpu: Gpu, dtype: DType = 'f32'): number {
  return Math.ceil(gpu.limits.minStorageBufferOffsetAlignment / bytesPerElement(dtype));
}

/** Largest element count one window may cover (one binding minus the alignment slack). */
export function maxWindowElements(gpu: Gpu, dtype: DType = 'f32'): number {
  return maxBindingElements(gpu, dtype) - windowSlack(gpu, dtype);
}

/**
 * A binding window over elements [start, start + count) of `dtype` (f32 unless given) with an aligned offset
 * (see `AlignedWindow`). The size is rounded up to 4 bytes, as a binding must be (an f16 window may so cover
 * one element more, never read).
 */
export function alignedWindow(gpu: Gpu, buffer: GPUBuffer, start: number, count: number, dtype: DType = 'f32'): AlignedWindow {
  const align = gpu.limits.minStorageBufferOffsetAlignment;
  const eb = bytesPerElement(dtype);
  const offset = Math.floor((start * eb) / align) * align;
  const base = start - offset / eb;
  // A zero-sized binding is invalid; a 4-byte one that is never read is harmless.
  const size = Math.min(Math.ceil((Math.max(base + count, 1) * eb) / 4) * 4, buffer.size - offset);
  return { binding: { buffer, offset, size }, base };
}

/** Options shared by launchers that may process a tensor in slabs (binding windows). */
export interface SlabOptions {
  /** Largest storage binding window in bytes (default and cap: gpu.limits.maxStorageBufferBindingSize). */
  maxBindingBytes?: number;
}

/** Elements (of `dtype`) per binding window: the limit (or override) rounded down to the storage offset alignment. */
export function slabElements(gpu: Gpu, op: string, options: SlabOptions = {}, dtype: DType = 'f32'): number {
  const limit = gpu.limits.maxStorageBufferBindingSize;
  const want = options.maxBindingBytes ?? limit;
  if (!(want > 0)) throw new RangeError(`${op}: options.maxBindingBytes must be a positive number, got ${want}`);
  // A multiple of 16 bytes too, so vec4 kernels see whole vectors in every window.
  const align = Math.max(gpu.limits.minStorageBufferOffsetAlignment, 16);
  const bytes = Math.floor(Math.min(want, limit) / align) * align;
  if (bytes < align) {
    throw new RangeError(`${op}: options.maxBindingBytes of ${want} is below the storage offset alignment of ${align} bytes`);
  }
  return bytes / bytesPerElement(dtype);
}

/** Storage offset alignment in elements of `dtype` (f32 unless given). */
export function alignElements(gpu: Gpu, dtype: DType = 'f32'): number {
  return Math.max(1, gpu.limits.minStorageBufferOffsetAlignment / bytesPerElement(dtype));
}

/** Windows [start, start + count) of at most maxElems covering [0, n); maxElems is alignment-rounded. */
export function flatWindows(n: number, maxElems: number): [number, number][] {
  const out: [number, number][] = [];
  for (let start = 0; start < n; start += maxElems) out.push([start, Math.min(maxElems, n - start)]);
  return out;
}

/** Splits [0, n) elements of `dtype` into windows that each fit one storage binding (offsets aligned). */
export function forEachWindow(gpu: Gpu, n: number, fn: (start: number, count: number) => void, dtype: DType = 'f32'): void {
  const maxElems = maxBindingElements(gpu, dtype);
  for (let start = 0; start < n; start += maxElems) fn(start, Math.min(maxElems, n - start));
}


/** A tensor whose leading axis is the sample axis: `perSample` elements of `dtype` (f32 unless given) per sample. */
export interface SampleTensor {
  buffer: GPUBuffer;
  perSample: number;
  dtype?: DType;
}

/** One chunk of whole samples that fits every binding: windows (aligned) and per-buffer element bases. */
export interface SampleChunk {
  /** First sample and number of samples in this chunk. */
  n0: number;
  count: number;
  /** Binding windows, in the order of the tensors given. */
  windows: { buffer: GPUBuffer; offset: number; size: number }[];
  /** Element offset of sample n0 inside each window (the window starts at an aligned offset below it). */
  bases: number[];
}

/**
 * Splits the samples [0, n) into chunks whose windows of every tensor fit one storage binding. Windows start
 * at the largest aligned offset at or below the chunk's first element; the remainder is passed to the shader
 * as an element base. Throws when a single sample of some tensor does not fit a binding.
 */
export function forEachSampleChunk(gpu: Gpu, what: string, n: number, tensors: SampleTensor[], fn: (c: SampleChunk) => void): void {
  const maxB = gpu.limits.maxStorageBufferBindingSize;
  const align = gpu.limits.minStorageBufferOffsetAlignment;
  let k = n;
  const eb = (t: SampleTensor): number => bytesPerElement(t.dtype ?? 'f32');
  if (tensors.some((t) => n * t.perSample * eb(t) > maxB)) {
    for (const t of tensors) {
      const fit = Math.floor((maxB - align) / Math.max(4, t.perSample * eb(t)));
      if (fit < 1) {
        throw new RangeError(
          `${what}: one sample of ${t.perSample} ${t.dtype ?? 'f32'} elements (${t.perSample * eb(t)} bytes) does not fit this device's ` +
          `maxStorageBufferBindingSize of ${maxB} bytes`,
        );
      }
      k = Math.min(k, fit);
    }
  }
  for (let n0 = 0; n0 < n; n0 += k) {
    const count = Math.min(k, n - n0);
    const windows: SampleChunk['windows'] = [];
    const bases: number[] = [];
    for (const t of tensors) {
      const e = eb(t);
      const start = n0 * t.perSample * e;
      const offset = Math.floor(start / align) * align;
      const base = (start - offset) / e;
      windows.push({ buffer: t.buffer, offset, size: Math.max(4, Math.ceil((base + count * t.perSample) * e / 4) * 4) });
      bases.push(base);
    }
    fn({ n0, count, windows, bases });
  }
}
