/**
 * Web Workers for the page's training data (crop-worker.ts): they make the phantom collection in parallel, then
 * cut each batch's crops while the GPU trains on the one before. The main thread makes every random draw (which
 * case, where, which flips: planCrop), exactly as BatchSampler does for the same seed, so the batches are
 * BatchSampler's whatever the number of workers (the browser test compares the page's losses with Node's).
 */
import type { DHW, XYZ } from '../../../src/common/shape.js';
import { Random } from '../../../src/data/random.js';
import { BatchBuilder, CasePicker, checkSamplerPosition, foregroundIndex, planCrop, type Batch, type BatchSamplerOptions, type SamplerPosition, type TrainingCase } from '../../../src/data/sampler.js';
import type { SessionSampler } from '../../../src/session/training-session.js';
import type { CropWorkerReply, CropWorkerRequest } from './crop-worker.js';

type Settled = Extract<CropWorkerReply, { kind: 'phantom' | 'crop' }>;

/** Workers the page may use: all cores but the one running the tab, at least one, at most four. */
export function defaultWorkerCount(): number {
  const cores = typeof navigator !== 'undefined' ? navigator.hardwareConcurrency || 2 : 2;
  return Math.max(1, Math.min(4, cores - 1));
}

export class CropWorkers {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (r: Settled) => void; reject: (e: Error) => void }>();
  private nextJob = 0;
  private turn = 0;
  private closed = false;

  constructor(readonly count = defaultWorkerCount()) {
    if (!Number.isInteger(count) || count < 1) throw new Error(`CropWorkers: count is ${count}; expected a positive integer`);
    if (typeof Worker === 'undefined') throw new Error('CropWorkers: this environment has no Web Workers; expected a browser (Node trains with BatchSampler)');
    for (let i = 0; i < count; i++) {
      const worker = new Worker(new URL('./crop-worker.ts', import.meta.url), { type: 'module', name: `tgnet crop worker ${i}` });
      worker.onmessage = (e: MessageEvent<CropWorkerReply>) => this.settle(e.data);
      worker.onerror = (e) => this.failAll(new Error(`crop worker ${i} failed: ${e.message}`));
      this.workers.push(worker);
    }
  }

  /** The phantom cases, made by the workers in parallel; `onCase` after each (for a progress bar). */
  async makePhantoms(specs: readonly { task: number; index: number }[], seed: number, volume: DHW, spacing: XYZ, onCase?: (done: number) => void): Promise<TrainingCase[]> {
    let done = 0;
    return Promise.all(specs.map(async (s) => {
      const reply = await this.send({ kind: 'phantom', job: -1, task: s.task, index: s.index, seed, volume, spacing });
      onCase?.(++done);
      return (reply as Extract<CropWorkerReply, { kind: 'phantom' }>).case;
    }));
  }

  /** A crop stream over `cases` with BatchSampler's draws; each worker gets its own copy of the cases. */
  sampler(cases: readonly TrainingCase[], options: BatchSamplerOptions, queue = 2): SessionSampler {
    for (const w of this.workers) w.postMessage({ kind: 'cases', cases: [...cases] } satisfies CropWorkerRequest);
    return new WorkerBatchSampler(this, cases, options, queue);
  }

  /** Builds one planned crop in the next worker. */
  crop(caseIndex: number, cropSize: DHW, plan: ReturnType<typeof planCrop>): Promise<Extract<CropWorkerReply, { kind: 'crop' }>> {
    return this.send({ kind: 'crop', job: -1, caseIndex, cropSize, plan }) as Promise<Extract<CropWorkerReply, { kind: 'crop' }>>;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new Error('CropWorkers: closed while a job was in hand'));
    for (const w of this.workers) w.terminate();
  }

  private send(request: CropWorkerRequest & { job: number }): Promise<Settled> {
    if (this.closed) return Promise.reject(new Error('CropWorkers: the workers are closed'));
    const job = this.nextJob++;
    request.job = job;
    const worker = this.workers[this.turn++ % this.workers.length];
    return new Promise((resolve, reject) => {
      this.pending.set(job, { resolve, reject });
      worker.postMessage(request);
    });
  }

  private settle(reply: CropWorkerReply): void {
    const p = this.pending.get(reply.job);
    if (!p) return;
    this.pending.delete(reply.job);
    if (reply.kind === 'error') p.reject(new Error(`crop worker: ${reply.error}`));
    else p.resolve(reply);
  }

  private failAll(error: Error): void {
    for (const [job, p] of this.pending) {
      this.pending.delete(job);
      p.reject(error);
    }
  }
}

/** A batch being built, and where the random stream stood before it was planned. */
interface InFlight {
  before: number;
  batch: Promise<Batch>;
}

/** BatchSampler's batches, their crops cut by the workers, `queue` batches ahead. */
class WorkerBatchSampler implements SessionSampler {
  private rng: Random;
  private readonly picker: CasePicker<TrainingCase & { index: number; foreground: ReadonlyMap<number, Int32Array> }>;
  private readonly ahead: InFlight[] = [];
  private batches = 0;

  constructor(private readonly workers: CropWorkers, cases: readonly TrainingCase[], private readonly options: BatchSamplerOptions, private readonly queue: number) {
    // The crops are placed from the shape and the foreground index alone; the voxels are the workers'.
    this.picker = new CasePicker(cases.map((c, index) => ({ ...c, index, foreground: c.foreground ?? foregroundIndex(c.label) })), options, 'WorkerBatchSampler');
    this.rng = new Random(options.seed);
  }

  next(): Promise<Batch> {
    while (this.ahead.length < this.queue) this.ahead.push(this.plan());
    const { batch } = this.ahead.shift() as InFlight;
    this.batches++;
    this.ahead.push(this.plan());
    return batch;
  }

  /** Where the stream stands after the batches handed out (the planned ones ahead are drawn again on restore). */
  position(): SamplerPosition {
    return { batches: this.batches, state: this.ahead[0]?.before ?? this.rng.currentState };
  }

  restorePosition(position: SamplerPosition): void {
    checkSamplerPosition(position, 'WorkerBatchSampler.restorePosition');
    if (this.ahead.length) throw new Error('WorkerBatchSampler.restorePosition: batches were already drawn; restore a new sampler before its first next()');
    this.rng = Random.fromState(position.state);
    this.batches = position.batches;
  }

  async close(): Promise<void> {
    this.ahead.length = 0;
  }

  private plan(): InFlight {
    const before = this.rng.currentState;
    const { batchSize, cropSize } = this.options;
    const picks = Array.from({ length: batchSize }, () => {
      const c = this.picker.pick(this.rng);
      return { c, plan: planCrop(c, cropSize, this.rng, this.options) };
    });
    const batch = (async () => {
      const crops = await Promise.all(picks.map(({ c, plan }) => this.workers.crop(c.index, cropSize, plan)));
      const builder = new BatchBuilder(batchSize, cropSize);
      crops.forEach((crop, i) => builder.add(picks[i].c, { ...picks[i].plan, image: crop.image, label: crop.label }, crop.target));
      return builder.finish();
    })();
    // A batch nobody takes (closed early) must not report an unhandled rejection.
    batch.catch(() => undefined);
    return { before, batch };
  }
}
