/**
 * Per-dispatch GPU time (Gpu.startProfiling / stopProfiling): each dispatch gets its own compute pass with a
 * pair of timestamp writes; at each submission the pairs are resolved into a buffer and read back later, so
 * profiling adds no waits to the stream. Kept apart from the runtime, which asks it for passes and tells it of
 * submissions while it profiles.
 */

export interface KernelTiming {
  label: string;
  ms: number;
}

/** Timestamp pairs per submission (the query set's size / 2); a fuller submission is flushed first. */
const MAX_TIMESTAMP_PAIRS = 2048;
const QUERY_RESOLVE = 0x200;
const COPY_SRC = 0x4;
const COPY_DST = 0x8;
const MAP_READ = 0x1;

/** The resolved timestamps of one submission, to be read back once it has run. */
export interface PendingTimings {
  buffer: GPUBuffer;
  read: GPUBuffer;
  labels: string[];
}

export class TimestampProfiler {
  private querySet: GPUQuerySet | null = null;
  private labels: string[] = [];
  private readonly reads: Promise<KernelTiming[]>[] = [];

  constructor(private readonly device: GPUDevice) {}

  /** A pass for one dispatch of `label` with its timestamp writes; null when this submission is full (flush, then ask again). */
  beginPass(encoder: GPUCommandEncoder, label: string): GPUComputePassEncoder | null {
    if (this.labels.length >= MAX_TIMESTAMP_PAIRS) return null;
    this.querySet ??= this.device.createQuerySet({ type: 'timestamp', count: MAX_TIMESTAMP_PAIRS * 2 });
    const i = this.labels.length;
    this.labels.push(label);
    return encoder.beginComputePass({
      timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
    });
  }

  /** Records the resolve of this submission's timestamps at the end of `encoder`; null when it has none. */
  resolve(encoder: GPUCommandEncoder): PendingTimings | null {
    if (!this.querySet || this.labels.length === 0) return null;
    const n = this.labels.length * 2;
    const buffer = this.device.createBuffer({ size: n * 8, usage: QUERY_RESOLVE | COPY_SRC });
    const read = this.device.createBuffer({ size: n * 8, usage: MAP_READ | COPY_DST });
    encoder.resolveQuerySet(this.querySet, 0, n, buffer, 0);
    encoder.copyBufferToBuffer(buffer, 0, read, 0, n * 8);
    const pending = { buffer, read, labels: this.labels };
    this.labels = [];
    return pending;
  }

  /** After the submission: reads its timings back when they are ready (`settle` waits for a Dawn promise). */
  submitted(pending: PendingTimings, settle: <T>(work: Promise<T>) => Promise<T>): void {
    this.reads.push((async () => {
      await settle(pending.read.mapAsync(1 /* GPUMapMode.READ */));
      const t = new BigUint64Array(pending.read.getMappedRange().slice(0));
      pending.read.destroy();
      pending.buffer.destroy();
      return pending.labels.map((label, i) => ({ label, ms: Number(t[2 * i + 1] - t[2 * i]) / 1e6 }));
    })());
  }

  /** The timings of every dispatch profiled so far, in order. */
  async timings(): Promise<KernelTiming[]> {
    return (await Promise.all(this.reads.splice(0))).flat();
  }

  destroy(): void {
    this.querySet?.destroy();
    this.querySet = null;
  }
}
