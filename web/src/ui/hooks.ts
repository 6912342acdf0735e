/**
 * What the page exposes on `window.__tgnet` for its end-to-end test (test/browser/): readiness, the last
 * segmentation's timing and the training records. Read-only observations; the test drives the page through its
 * controls like a person would.
 */
import type { Gpu } from '../../../src/kernels/runtime/gpu.js';
import type { StepRecord } from '../core/training.js';

export interface PageHooks {
  /** 'starting', 'ready' (GPU and default model), or 'no-gpu'. */
  state: 'starting' | 'ready' | 'no-gpu';
  gpu: Gpu | null;
  /** The adapter line shown in the header. */
  adapter: string;
  segment: { runs: number; seconds: number; tiles: number; organVoxels: number; tumourVoxels: number } | null;
  /** compileSeconds: the kernels compiled before the first step of the last run started. */
  train: { records: StepRecord[]; done: boolean; running: boolean; dice: { step: number; organ: number; tumour: number }[]; compileSeconds?: number; workers?: number };
  deviceLost: string | null;
}

export const hooks: PageHooks = {
  state: 'starting', gpu: null, adapter: '', segment: null,
  train: { records: [], done: false, running: false, dice: [] },
  deviceLost: null,
};

(window as unknown as { __tgnet: PageHooks }).__tgnet = hooks;
