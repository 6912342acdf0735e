/**
 * A crop worker thread (Node worker_threads; started by CropWorkerPool): cuts and augments the crops the main
 * thread planned (planCrop) from cases held in shared memory, with its organ/tumour target, and sends each back
 * with its buffers transferred.
 * It draws no random numbers of its own, so a batch is the same whichever worker builds which crop.
 */
import { parentPort } from 'node:worker_threads';
import { renderCrop } from './sampler.js';
import { labelToTarget } from './tasks.js';
import type { CropJob, CropReply } from './crop-workers.js';

if (!parentPort) throw new Error('crop-worker.js runs as a worker thread (new Worker), not as a program');
const port = parentPort;

port.on('message', (job: CropJob) => {
  let reply: CropReply;
  const transfer: ArrayBuffer[] = [];
  try {
    const crop = renderCrop(job.case, job.cropSize, job.plan, { imagePadValue: job.imagePadValue });
    // The organ/tumour target too: converting it is as much work as the crop's copy, and it need not be the main thread's.
    const target = labelToTarget(crop.label, job.case.task);
    reply = { job: job.job, image: crop.image, label: crop.label, target };
    transfer.push(crop.image.buffer as ArrayBuffer, crop.label.buffer as ArrayBuffer, target.buffer as ArrayBuffer);
  } catch (e) {
    reply = { job: job.job, error: (e as Error).message };
  }
  port.postMessage(reply, transfer);
});
