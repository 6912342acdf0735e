/**
 * Tensor: a shape, a reference-counted GPU buffer and, when it was made by a recorded op, the graph node
 * that made it. Storage is shared by reshapes, so a buffer goes back to the pool when its last view dies.
 */
import { getGpu, type Gpu } from '../kernels/runtime/gpu.js';
import { unary } from '../kernels/elementwise.js';
import { sizeOf } from '../kernels/runtime/wgsl.js';
import { bytesPerElement, checkDType, fromHalfBits, requireDType, toHalfBits, type DType } from '../kernels/runtime/precision.js';
import { keep, track } from './scope.js';
import { backward as runBackward, recordOp, type GraphNode } from './tape.js';

export type { DType } from '../kernels/runtime/precision.js';

/** A GPU buffer with a reference count: tensors (views) and graph nodes (saved tensors) hold references. */
export class Storage {
  private refs = 1;
  constructor(readonly gpu: Gpu, readonly buffer: GPUBuffer, readonly bytes: number) {}
  retain(): void {
    if (this.refs <= 0) throw new Error('Storage.retain: storage already freed');
    this.refs++;
  }
  releaseRef(): void {
    if (--this.refs === 0) this.gpu.pool.release(this.buffer);
  }
  get refCount(): number {
    return this.refs;
  }
}

export interface TensorOptions {
  requiresGrad?: boolean;
  /** Element type of the storage: 'f32' (default) or 'f16' (needs the adapter's 'shader-f16'). */
  dtype?: DType;
}

function checkShape(shape: readonly number[], what: string): void {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new TypeError(`${what}: shape must be an array of non-negative integers, got [${String(shape)}]`);
  }
}

let liveTensors = 0;

export class Tensor {
  readonly shape: readonly number[];
  readonly size: number;
  /** Element type of the storage; host data goes in and comes out as f32 numbers either way. */
  readonly dtype: DType;
  requiresGrad: boolean;
  /** Accumulated gradient of a leaf after `backward()` (PyTorch semantics: summed over calls). */
  grad: Tensor | null = null;
  /** The recorded op that produced this tensor (null for leaves and for results made without grad). */
  node: GraphNode | null = null;
  private storageRef: Storage | null;

  /** Internal: wraps a storage. Use the static constructors or ops instead. */
  constructor(storage: Storage, shape: readonly number[], requiresGrad = false, dtype: DType = 'f32') {
    checkShape(shape, 'Tensor');
    checkDType(dtype, 'Tensor');
    this.shape = Object.freeze([...shape]);
    this.size = sizeOf(shape);
    this.dtype = dtype;
    if (storage.bytes < this.size * bytesPerElement(dtype)) {
      throw new RangeError(`Tensor: storage of ${storage.bytes} bytes is too small for ${dtype} shape [${shape.join(', ')}]`);
    }
    this.storageRef = storage;
    this.requiresGrad = requiresGrad;
    liveTensors++;
    track(this);
  }

  /** An uninitialised tensor from the buffer pool. */
  static empty(shape: readonly number[], gpu: Gpu = getGpu(), dtype: DType = 'f32'): Tensor {
    checkShape(shape, 'Tensor.empty');
    if (dtype !== 'f32') requireDType(gpu, dtype, 'Tensor.empty');
    // Bindings are whole 4-byte words, so an odd-length f16 tensor owns the half word after its last element.
    const bytes = Math.max(4, Math.ceil((sizeOf(shape) * bytesPerElement(dtype)) / 4) * 4);
    const buffer = gpu.pool.acquire(bytes, `tensor [${shape.join(', ')}]`);
    return new Tensor(new Storage(gpu, buffer, bytes), shape, false, dtype);
  }

  /** Uploads host data. `data.length` must equal the product of `shape`. */
  static fromArray(data: ArrayLike<number>, shape: readonly number[], options: TensorOptions = {}): Tensor {
    checkShape(shape, 'Tensor.fromArray');
    const dtype = options.dtype ?? 'f32';
    checkDType(dtype, 'Tensor.fromArray');
    if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
      throw new TypeError('Tensor.fromArray: 64-bit integer data is not supported; convert to Float32Array (tensors are f32)');
    }
    if (!ArrayBuffer.isView(data) && !Array.isArray(data)) {
      throw new TypeError(`Tensor.fromArray: data must be an array or typed array of numbers, got ${typeof data}`);
    }
    const n = sizeOf(shape);
    if (data.length !== n) {
      throw new RangeError(`Tensor.fromArray: ${data.length} values do not fill shape [${shape.join(', ')}] (${n} elements)`);
    }
    const t = Tensor.empty(shape, getGpu(), dtype);
    if (n > 0) t.gpu.write(t.buffer, dtype === 'f16' ? halfWords(data) : data instanceof Float32Array ? data : Float32Array.from(data));
    t.requiresGrad = options.requiresGrad ?? false;
    return t;
  }

  static full(shape: readonly number[], value: number, options: TensorOptions = {}): Tensor {
    const dtype = options.dtype ?? 'f32';
    checkDType(dtype, 'Tensor.full');
    const t = Tensor.empty(shape, getGpu(), dtype);
    unary(t.gpu, 'fill', null, t.buffer, t.size, value, dtype);
    t.requiresGrad = options.requiresGrad ?? false;
    return t;
  }

  static zeros(shape: readonly number[], options: TensorOptions = {}): Tensor {
    return Tensor.full(shape, 0, options);
  }

  static ones(shape: readonly number[], options: TensorOptions = {}): Tensor {
    return Tensor.full(shape, 1, options);
  }

  get storage(): Storage {
    if (!this.storageRef) throw new Error(`Tensor [${this.shape.join(', ')}] was used after dispose()`);
    return this.storageRef;
  }

  get buffer(): GPUBuffer {
    return this.storage.buffer;
  }

  get gpu(): Gpu {
    return this.storage.gpu;
  }

  get rank(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this.storageRef === null;
  }

  /** Reads the values back to the host (as f32 numbers whatever the dtype). */
  async toArray(): Promise<Float32Array> {
    if (this.size === 0) return new Float32Array(0);
    if (this.dtype === 'f16') {
      const words = await this.gpu.read(this.buffer, Math.ceil(this.size / 2) * 4);
      return fromHalfBits(new Uint16Array(words, 0, this.size));
    }
    return new Float32Array(await this.gpu.read(this.buffer, this.size * 4));
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new RangeError(`Tensor.item: tensor has shape [${this.shape.join(', ')}], expected one element`);
    return (await this.toArray())[0];
  }

  /** A view with another shape over the same storage (no copy). Differentiable. */
  reshape(shape: readonly number[]): Tensor {
    return reshapeOp(this, shape);
  }

  /** Internal: a new tensor sharing this storage (no graph edge). */
  shareAs(shape: readonly number[]): Tensor {
    const n = sizeOf(shape);
    if (n !== this.size) {
      throw new RangeError(`reshape: cannot view [${this.shape.join(', ')}] (${this.size} elements) as [${shape.join(', ')}] (${n} elements)`);
    }
    this.storage.retain();
    return new Tensor(this.storage, shape, false, this.dtype);
  }

  /** Reverse-mode gradient of this tensor (a scalar unless `gradOutput` is given) into every leaf. */
  backward(gradOutput?: Tensor): void {
    runBackward(this, gradOutput);
  }

  /** Makes this tensor outlive the enclosing tidy scopes. */
  keep(): this {
    return keep(this);
  }

  /** Frees this view's reference to the GPU buffer (and its gradient). Idempotent. */
  dispose(): void {
    if (!this.storageRef) return;
    this.storageRef.releaseRef();
    this.storageRef = null;
    liveTensors--;
    this.node?.outputDisposed();
    this.node = null;
    this.grad?.dispose();
    this.grad = null;
  }

  toString(): string {
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

/** `data` rounded to f16 bits, padded to whole 4-byte words (writes and bindings are in words). */
function halfWords(data: ArrayLike<number>): Uint16Array {
  const bits = toHalfBits(data);
  if (bits.length % 2 === 0) return bits;
  const padded = new Uint16Array(bits.length + 1);
  padded.set(bits);
  return padded;
}

/** Number of tensors alive (created and not disposed), for leak tests. */
export function liveTensorCount(): number {
  return liveTensors;
}

/** Differentiable reshape: the gradient is the upstream gradient viewed with the input's shape. */
function reshapeOp(t: Tensor, shape: readonly number[]): Tensor {
  const out = t.shareAs(shape);
  return recordOp('reshape', [t], out, [], (g) => [g.shareAs(t.shape)]);
}
