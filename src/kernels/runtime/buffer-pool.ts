/**
 * Size-bucketed pool of storage buffers. Training allocates the same activation sizes every step, so
 * recycling by size class turns steady-state allocation into a free-list pop and keeps GPU memory flat.
 * Among the free buffers of a class the oldest is handed out first, so the choice depends on which buffers
 * are free, not on the order they came back in: a step that allocates as the one before gets the same
 * buffers, and its dispatches find their bind groups already made (bind-groups.ts).
 */

export interface PoolStats {
  /** Buffers handed out and not yet released. */
  liveBuffers: number;
  /** Bytes of those buffers (size-class bytes, i.e. what the GPU actually holds). */
  liveBytes: number;
  pooledBuffers: number;
  pooledBytes: number;
  /** Highest liveBytes + pooledBytes seen since creation or the last resetHighWater(). */
  highWaterBytes: number;
  /** Buffers created on the device (pool misses). */
  created: number;
}

const STORAGE_USAGE = 0x80 /* STORAGE */ | 0x04 /* COPY_SRC */ | 0x08; /* COPY_DST */

/**
 * Size classes: powers of two up to 1 MiB (small tensors are many and varied), then multiples of
 * 1/8 of the enclosing power of two, which wastes at most 12.5% on large activations.
 */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 4) * 4);
  if (b <= 1 << 20) return 2 ** Math.ceil(Math.log2(b));
  const pow = 2 ** Math.floor(Math.log2(b));
  const step = pow / 8;
  return Math.ceil(b / step) * step;
}

export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private readonly owned = new Map<GPUBuffer, number>();
  /** Creation order of each buffer (`stats.created` when it was made); a free list is kept sorted by it, oldest last (popped first). */
  private readonly serial = new WeakMap<GPUBuffer, number>();
  private readonly released = new WeakSet<GPUBuffer>();
  /** Bytes asked for by the current holder of each handed-out buffer (its size class may be larger). */
  private readonly requested = new WeakMap<GPUBuffer, number>();
  private stats: PoolStats = {
    liveBuffers: 0, liveBytes: 0, pooledBuffers: 0, pooledBytes: 0, highWaterBytes: 0, created: 0,
  };

  constructor(
    private readonly device: GPUDevice,
    private readonly maxBufferSize: number,
  ) {}

  /** A storage buffer of at least `bytes` bytes (contents undefined). `what` names the caller in errors. */
  acquire(bytes: number, what = 'buffer'): GPUBuffer {
    if (!Number.isFinite(bytes) || bytes < 0) {
      throw new RangeError(`${what}: buffer size must be a non-negative finite number, got ${bytes}`);
    }
    const size = sizeClass(bytes);
    if (bytes > this.maxBufferSize || size > this.maxBufferSize) {
      throw new RangeError(
        `${what}: needs a buffer of ${bytes} bytes, larger than this device's maxBufferSize of ${this.maxBufferSize} bytes`,
      );
    }
    const list = this.free.get(size);
    let buffer = list?.pop();
    if (buffer) {
      this.stats.pooledBuffers--;
      this.stats.pooledBytes -= size;
      this.released.delete(buffer);
    } else {
      buffer = this.device.createBuffer({ size, usage: STORAGE_USAGE, label: what });
      this.owned.set(buffer, size);
      this.serial.set(buffer, this.stats.created++);
    }
    this.requested.set(buffer, bytes);
    this.stats.liveBuffers++;
    this.stats.liveBytes += size;
    this.noteHighWater();
    return buffer;
  }

  /**
   * The bytes asked for when `buffer` was last acquired (a tensor's logical size; the buffer itself is
   * rounded up to a size class), or undefined for a buffer this pool did not hand out.
   */
  requestedBytes(buffer: GPUBuffer): number | undefined {
    return this.requested.get(buffer);
  }

  /** Returns a buffer to the pool. The caller must not touch it afterwards. */
  release(buffer: GPUBuffer): void {
    const size = this.owned.get(buffer);
    if (size === undefined) throw new Error('BufferPool.release: buffer was not acquired from this pool');
    if (this.released.has(buffer)) throw new Error('BufferPool.release: buffer released twice');
    this.released.add(buffer);
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    // Sorted newest first: binary search for the place of this buffer's serial.
    const mine = this.serial.get(buffer)!;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.serial.get(list[mid])! > mine) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, buffer);
    this.stats.liveBuffers--;
    this.stats.liveBytes -= size;
    this.stats.pooledBuffers++;
    this.stats.pooledBytes += size;
  }

  /** Destroys every pooled (free) buffer, giving the memory back to the device. */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list) {
        this.owned.delete(b);
        b.destroy();
      }
    }
    this.free.clear();
    this.stats.pooledBuffers = 0;
    this.stats.pooledBytes = 0;
  }

  getStats(): PoolStats {
    return { ...this.stats };
  }

  resetHighWater(): void {
    this.stats.highWaterBytes = this.stats.liveBytes + this.stats.pooledBytes;
  }

  destroyAll(): void {
    for (const b of this.owned.keys()) b.destroy();
    this.owned.clear();
    this.free.clear();
    this.stats = { ...this.stats, liveBuffers: 0, liveBytes: 0, pooledBuffers: 0, pooledBytes: 0 };
  }

  private noteHighWater(): void {
    const total = this.stats.liveBytes + this.stats.pooledBytes;
    if (total > this.stats.highWaterBytes) this.stats.highWaterBytes = total;
  }
}
