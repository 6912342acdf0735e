/** The soak in short (bench/soak.ts runs 1000 steps and 200 predictions): GPU buffers, bytes and tensors stay flat. */
import { describe, expect, it } from 'vitest';
import { runSoak } from '../bench/soak.js';
import { COLD_COMPILE_TIMEOUT_MS, useGpu } from './helpers/gpu.js';

useGpu();

describe('soak (short)', { timeout: COLD_COMPILE_TIMEOUT_MS }, () => {
  it('training steps with checkpoints, then predictions: live GPU buffers, bytes and tensors do not grow', async () => {
    const result = await runSoak({ steps: 12, predicts: 5, every: 4 });
    const train = result.samples.filter((s) => s.phase === 'train');
    const predict = result.samples.filter((s) => s.phase === 'predict');
    expect(train.map((s) => s.at)).toEqual([0, 4, 8, 12]);
    expect(predict.map((s) => s.at)).toEqual([0, 1, 2, 3, 4, 5]);
    for (const d of result.drift) expect({ liveBuffers: d.liveBuffers, liveBytes: d.liveBytes, tensors: d.tensors }).toEqual({ liveBuffers: 0, liveBytes: 0, tensors: 0 });
    // Training holds the weights and Adam's moments; once the trainer is disposed only the weights remain.
    expect(train[1].liveBytes).toBeGreaterThan(predict[1].liveBytes);
    expect(predict.every((s) => s.tensors === predict[0].tensors)).toBe(true);
  });
});
