/**
 * What dispatches cost while counting (Gpu.startCounting / stopCounting): dispatches, submissions, bytes read
 * and written, FLOPs and copies, in total and per kernel label. Kept apart from the runtime, which only tells it
 * each dispatch and copy while it counts (a boolean test per dispatch otherwise).
 */

/** What the dispatches of one kernel label cost while counting (see `Gpu.startCounting`). */
export interface KernelCost {
  label: string;
  dispatches: number;
  bytesRead: number;
  bytesWritten: number;
  flops: number;
}

/** What was recorded between `startCounting` and `stopCounting`: totals and one entry per kernel label. */
export interface DispatchCost {
  dispatches: number;
  submits: number;
  bytesRead: number;
  bytesWritten: number;
  flops: number;
  /** Buffer-to-buffer copies (`gpu.copy`) and the bytes they moved (each byte is read once and written once). */
  copies: number;
  copyBytes: number;
  /** Per kernel label, in first-dispatch order. */
  kernels: KernelCost[];
}

export class DispatchCounter {
  private readonly costs = new Map<string, KernelCost>();
  private copies = 0;
  private copyBytes = 0;

  constructor(private readonly submitsAtStart: number) {}

  /** One dispatch of `label` that read and wrote these bytes and did `flops`. */
  dispatch(label: string, read: number, written: number, flops: number): void {
    let cost = this.costs.get(label);
    if (!cost) {
      cost = { label, dispatches: 0, bytesRead: 0, bytesWritten: 0, flops: 0 };
      this.costs.set(label, cost);
    }
    cost.dispatches++;
    cost.bytesRead += read;
    cost.bytesWritten += written;
    cost.flops += flops;
  }

  copy(bytes: number): void {
    this.copies++;
    this.copyBytes += bytes;
  }

  /** The totals and per-label costs; `submits` is the runtime's submission count now. */
  finish(submits: number): DispatchCost {
    const kernels = [...this.costs.values()];
    const total = { dispatches: 0, bytesRead: 0, bytesWritten: 0, flops: 0 };
    for (const k of kernels) {
      total.dispatches += k.dispatches;
      total.bytesRead += k.bytesRead;
      total.bytesWritten += k.bytesWritten;
      total.flops += k.flops;
    }
    return { ...total, submits: submits - this.submitsAtStart, copies: this.copies, copyBytes: this.copyBytes, kernels };
  }
}
