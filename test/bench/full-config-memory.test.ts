/**
 * The full-configuration memory section at a small configuration (the real one executed takes hours on a software
 * adapter): the allocation trace's pool peak is the executed step's, in f32 and in mixed precision, and the lines
 * say how each figure was taken.
 */
import { expect, it } from 'vitest';
import { benchFullConfigMemory } from '../../bench/full-config-memory.js';
import { stepPeakBytes } from '../../bench/step-cost.js';
import { supportsF16 } from '../../src/kernels/runtime/precision.js';
import { COLD_COMPILE_TIMEOUT_MS, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();
const config = { batch: 1, crop: [16, 16, 32] as [number, number, number], width: 2 };

it('the allocation trace gives the executed step\'s pool peak (f32 and f16)', { timeout: COLD_COMPILE_TIMEOUT_MS }, async () => {
  const precisions = supportsF16(gpu()) ? (['f32', 'f16'] as const) : (['f32'] as const);
  for (const precision of precisions) {
    const traced = await stepPeakBytes(gpu(), { ...config, precision }, 1, { trace: true });
    const executed = await stepPeakBytes(gpu(), { ...config, precision }, 1);
    expect(traced).toBe(executed);
  }
});

it('reports both peaks beside the extrapolation, and the executed step when asked', { timeout: COLD_COMPILE_TIMEOUT_MS }, async () => {
  const lines: string[] = [];
  const r = await benchFullConfigMemory(gpu(), true, { log: (l) => lines.push(l), config, execute: true });
  expect(r.poolPeakGiB).toBeGreaterThan(0);
  expect(r.executed!.poolPeakGiB).toBe(r.poolPeakGiB);
  expect(r.executed!.processPeakRssGiB).toBeGreaterThan(r.poolPeakGiB);
  expect(r.lines[0]).toMatch(/^peak-memory-full-config: tgnet_gib=\d+\.\d\d pytorch_fp32_gib=12\.8 method=allocation-trace on .*\(one step, width 2, batch 1, 16x16x32: every allocation of the step, kernels skipped; extrapolated \d+\.\d\d; PyTorch figure from an H100\)$/);
  if (r.poolPeakF16GiB !== null) {
    expect(r.poolPeakF16GiB).toBeLessThan(r.poolPeakGiB);
    expect(r.lines[1]).toMatch(/^peak-memory-full-config-f16: tgnet_gib=\d+\.\d\d f32_gib=\d+\.\d\d ratio=0\.\d\d method=allocation-trace/);
  } else {
    expect(r.lines[1]).toMatch(/not measured \(.* lacks shader-f16\)/);
  }
  expect(r.lines[2]).toMatch(/^peak-memory-full-config: tgnet_gib=\d+\.\d\d pytorch_fp32_gib=12\.8 method=measured on .*\(one step executed, width 2, batch 1, 16x16x32, .* min; process peak RSS \d+\.\d\d GiB; allocation trace \d+\.\d\d; extrapolated \d+\.\d\d; PyTorch figure from an H100\)$/);
  expect(lines.slice(-3)).toEqual(r.lines);
});
