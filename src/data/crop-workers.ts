/**
 * Training crops built off the main thread (Node): a pool of worker threads (crop-worker.ts) that cut and augment
 * crops the main thread has already planned. The cases live in SharedArrayBuffers (CaseStore with `shared`), so a
 * job carries only views of them, a plan and a few numbers; the crop comes back as transferred buffers.
 */
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { CaseFiles, CropReadMode } from './crop-reader.js';
import type { CropPlan, TrainingCase } from './sampler.js';
import type { DHW } from '../common/shape.js';

/**
 * One crop to build: the crop size, the plan, and either the case (views of shared memory) or its cache files
 * (the worker reads the crop's rows itself: see crop-reader.ts).
 */
export interface CropJob {
  job: number;
  case?: TrainingCase;
  files?: CaseFiles & { task: number };
  read?: CropReadMode;
  cropSize: DHW;
  plan: CropPlan;
  imagePadValue?: number;
}

/** A built crop (with the bytes the worker read for it from files), or why it could not be built. */
export type CropReply = { job: number; image: Float32Array; label: Uint8Array; target: Float32Array; bytesRead: number; error?: undefined } | { job: number; error: string };

/** A crop built by a worker: the image, the label and the two-channel target (labelToTarget for the case's task). */
export interface BuiltCrop {
  image: Float32Array;
  label: Uint8Array;
  target: Float32Array;
}

/**
 * The built worker script: next to this module when it runs compiled (dist/src/data/), else the checkout's build
 * (running from the TypeScript sources, e.g. under vitest); null when neither exists.
 */
export function defaultCropWorkerScript(): URL | null {
  const candidates = [new URL('./crop-worker.js', import.meta.url), new URL('../../dist/src/data/crop-worker.js', import.meta.url)];
  return candidates.find((u) => existsSync(u)) ?? null;
}

interface Pending {
  resolve: (crop: BuiltCrop) => void;
  reject: (e: Error) => void;
}

/** `count` worker threads building crops; jobs go to the worker with the fewest in hand. */
export class CropWorkerPool {
  private readonly workers: Worker[] = [];
  private readonly load: number[] = [];
  /** Why a worker stopped, per worker (null while it runs). */
  private readonly dead: (Error | null)[] = [];
  private readonly pending = new Map<number, Pending & { worker: number }>();
  private nextJob = 0;
  private readBytes = 0;
  private closed = false;

  constructor(readonly count: number, script: URL | string | null = defaultCropWorkerScript()) {
    if (!Number.isInteger(count) || count < 1) throw new Error(`CropWorkerPool: count is ${count}; expected a positive integer`);
    if (script === null) {
      throw new Error('CropWorkerPool: the crop worker script (dist/src/data/crop-worker.js) is missing; run npm run build, or build batches in the main thread (--workers 0)');
    }
    if (!existsSync(script)) throw new Error(`CropWorkerPool: worker script ${String(script)} does not exist; expected a built crop-worker.js`);
    for (let i = 0; i < count; i++) {
      const worker = new Worker(script);
      worker.on('message', (reply: CropReply | { closed: true }) => this.settle(reply));
      worker.on('error', (e) => this.fail(i, new Error(`crop worker ${i} failed: ${e.message}`)));
      worker.on('exit', (code) => { if (!this.closed) this.fail(i, new Error(`crop worker ${i} exited with code ${code}`)); });
      // An idle pool must not keep the process alive; a worker with jobs in hand does (see render).
      worker.unref();
      this.workers.push(worker);
      this.load.push(0);
      this.dead.push(null);
    }
  }

  /** Builds one crop in a worker. The case's arrays should be views of SharedArrayBuffers (else they are copied). */
  render(c: TrainingCase, cropSize: DHW, plan: CropPlan, imagePadValue?: number): Promise<BuiltCrop> {
    // Only what renderCrop reads: the foreground index stays in this thread.
    return this.send({ job: -1, case: { id: c.id, task: c.task, shape: c.shape, image: c.image, label: c.label }, cropSize, plan, imagePadValue });
  }

  /** Builds one crop in a worker that reads the crop's rows (`read`: see CropReadMode) from the case's cache files. */
  renderFromFiles(files: CaseFiles & { task: number }, cropSize: DHW, plan: CropPlan, options: { imagePadValue?: number; read?: CropReadMode } = {}): Promise<BuiltCrop> {
    return this.send({ job: -1, files, cropSize, plan, imagePadValue: options.imagePadValue, read: options.read });
  }

  /** Bytes the workers read from cache files for the crops built so far. */
  get bytesRead(): number {
    return this.readBytes;
  }

  private send(message: CropJob): Promise<BuiltCrop> {
    if (this.closed) return Promise.reject(new Error('CropWorkerPool.render: the pool is closed'));
    let index = -1;
    for (let i = 0; i < this.workers.length; i++) {
      if (!this.dead[i] && (index < 0 || this.load[i] < this.load[index])) index = i;
    }
    if (index < 0) return Promise.reject(this.dead[0] ?? new Error('CropWorkerPool: no worker left'));
    const job = this.nextJob++;
    message.job = job;
    return new Promise((resolve, reject) => {
      this.pending.set(job, { resolve, reject, worker: index });
      if (this.load[index]++ === 0) this.workers[index].ref();
      this.workers[index].postMessage(message);
    });
  }

  /** Stops every worker; crops still being built are rejected. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [job, p] of this.pending) {
      this.pending.delete(job);
      p.reject(new Error('CropWorkerPool: closed while the crop was being built'));
    }
    // Each live worker closes its open cache files first (terminating would leave them to the garbage collector).
    await Promise.all(this.workers.map((w, i) => (this.dead[i] ? Promise.resolve() : new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        w.off('message', onMessage);
        resolve();
      };
      const onMessage = (reply: unknown) => { if ((reply as { closed?: boolean }).closed) done(); };
      const timer = setTimeout(done, 2000);
      w.on('message', onMessage);
      w.ref();
      w.postMessage({ close: true });
    }))));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private settle(reply: CropReply | { closed: true }): void {
    if ('closed' in reply) return;
    const p = this.pending.get(reply.job);
    if (!p) return;
    this.pending.delete(reply.job);
    if (--this.load[p.worker] === 0) this.workers[p.worker].unref();
    if (reply.error !== undefined) p.reject(new Error(reply.error));
    else {
      this.readBytes += reply.bytesRead;
      p.resolve({ image: reply.image, label: reply.label, target: reply.target });
    }
  }

  /** A worker died: its jobs fail with the reason. */
  private fail(worker: number, error: Error): void {
    this.dead[worker] ??= error;
    for (const [job, p] of this.pending) {
      if (p.worker !== worker) continue;
      this.pending.delete(job);
      p.reject(error);
    }
    this.load[worker] = 0;
    this.workers[worker].unref();
  }
}
