/**
 * A preprocess worker thread (Node worker_threads; started by preprocessCollection): makes one case's cache entry
 * at a time and answers with its summary (the foreground index travels as typed arrays; the volumes stay here and
 * are dropped).
 */
import { parentPort } from 'node:worker_threads';
import { summarizeCase, type PreprocessJob, type PreprocessReply } from './case-cache.js';

if (!parentPort) throw new Error('preprocess-worker.js runs as a worker thread (new Worker), not as a program');
const port = parentPort;

port.on('message', (job: PreprocessJob) => {
  summarizeCase(job.case, job.cacheDir, job.options).then(
    (summary) => port.postMessage({ job: job.job, summary } satisfies PreprocessReply),
    (e: unknown) => port.postMessage({ job: job.job, error: e instanceof Error ? e.message : String(e) } satisfies PreprocessReply),
  );
});
