/**
 * A crop worker thread (Node worker_threads; started by CropWorkerPool): cuts and augments the crops the main
 * thread planned (planCrop) from cases held in shared memory, with its organ/tumour target, and sends each back
 * with its buffers transferred.
 * It draws no random numbers of its own, so a batch is the same whichever worker builds which crop.
 */
import { parentPort } from 'node:worker_threads';
import { renderCrop, type Crop } from './sampler.js';
import { SyncFileReader, renderCropFromFiles, type PositionedReader } from './crop-reader.js';
import { labelToTarget } from './tasks.js';
import type { CropJob, CropReply } from './crop-workers.js';

if (!parentPort) throw new Error('crop-worker.js runs as a worker thread (new Worker), not as a program');
const port = parentPort;

/** Open cache files, kept between jobs (a case's files are read again by its later crops); blocking reads, see SyncFileReader. */
const reader = new SyncFileReader();

port.on('message', (message: CropJob | { close: true }) => {
  if ('close' in message) {
    // The pool is about to terminate this thread: close the cache files rather than leave them to the collector.
    void reader.close().finally(() => port.postMessage({ closed: true }));
  } else {
    void build(message);
  }
});

async function build(job: CropJob): Promise<void> {
  let reply: CropReply;
  const transfer: ArrayBuffer[] = [];
  try {
    let crop: Crop;
    let task: number;
    let bytesRead = 0;
    if (job.files) {
      // Counted per job: jobs interleave at their reads, so the shared reader's running total would mix them.
      const counted: PositionedReader = { read: (path, into, at) => { bytesRead += into.byteLength; return reader.read(path, into, at); }, size: (path) => reader.size(path) };
      crop = await renderCropFromFiles(job.files, job.cropSize, job.plan, counted, { imagePadValue: job.imagePadValue, read: job.read });
      task = job.files.task;
    } else if (job.case) {
      crop = renderCrop(job.case, job.cropSize, job.plan, { imagePadValue: job.imagePadValue });
      task = job.case.task;
    } else {
      throw new Error(`crop job ${job.job}: neither case nor files given; expected one of them`);
    }
    // The organ/tumour target too: converting it is as much work as the crop's copy, and it need not be the main thread's.
    const target = labelToTarget(crop.label, task);
    reply = { job: job.job, image: crop.image, label: crop.label, target, bytesRead };
    transfer.push(crop.image.buffer as ArrayBuffer, crop.label.buffer as ArrayBuffer, target.buffer as ArrayBuffer);
  } catch (e) {
    reply = { job: job.job, error: (e as Error).message };
  }
  port.postMessage(reply, transfer);
}
