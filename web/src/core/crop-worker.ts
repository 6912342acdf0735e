/**
 * The page's crop worker (a Web Worker, started by CropWorkers): makes phantom cases and cuts the training crops
 * the main thread planned, with their organ/tumour targets, so neither the phantoms nor the crops hold up the tab
 * while the GPU trains. It draws no random numbers for the crops: a batch is the same whichever worker builds it.
 */
import type { DHW, XYZ } from '../../../src/common/shape.js';
import { renderCrop, type CropPlan, type TrainingCase } from '../../../src/data/sampler.js';
import { labelToTarget } from '../../../src/data/tasks.js';
import { phantomCase, trainingCase } from './phantoms.js';

/** What the main thread asks of a worker. */
export type CropWorkerRequest =
  | { kind: 'phantom'; job: number; task: number; index: number; seed: number; volume: DHW; spacing: XYZ }
  | { kind: 'cases'; cases: TrainingCase[] }
  | { kind: 'crop'; job: number; caseIndex: number; cropSize: DHW; plan: CropPlan };

/** A worker's answer to a job: a phantom case, a crop with its target, or why not. */
export type CropWorkerReply =
  | { kind: 'phantom'; job: number; case: TrainingCase }
  | { kind: 'crop'; job: number; image: Float32Array; label: Uint8Array; target: Float32Array }
  | { kind: 'error'; job: number; error: string };

let cases: TrainingCase[] = [];

const post = (reply: CropWorkerReply, transfer: ArrayBuffer[] = []) => (self as unknown as Worker).postMessage(reply, transfer);

self.onmessage = (event: MessageEvent<CropWorkerRequest>) => {
  const m = event.data;
  if (m.kind === 'cases') {
    cases = m.cases;
    return;
  }
  try {
    if (m.kind === 'phantom') {
      const c = trainingCase(phantomCase(m.task, m.index, m.seed, m.volume, m.spacing), m.spacing);
      post({ kind: 'phantom', job: m.job, case: c }, [c.image.buffer as ArrayBuffer, c.label.buffer as ArrayBuffer]);
    } else {
      const c = cases[m.caseIndex];
      if (!c) throw new Error(`crop job ${m.job}: case ${m.caseIndex} of ${cases.length}; expected the cases to be sent first`);
      const crop = renderCrop(c, m.cropSize, m.plan);
      const target = labelToTarget(crop.label, c.task);
      post({ kind: 'crop', job: m.job, image: crop.image, label: crop.label, target }, [crop.image.buffer as ArrayBuffer, crop.label.buffer as ArrayBuffer, target.buffer as ArrayBuffer]);
    }
  } catch (e) {
    post({ kind: 'error', job: m.job, error: (e as Error).message });
  }
};
