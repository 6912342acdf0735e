/**
 * The measured full-configuration memory section at a small configuration (the real one takes tens of minutes on
 * a software adapter): the measured pool peak is a real step's, the line says method=measured and carries the
 * extrapolation beside it.
 */
import { expect, it } from 'vitest';
import { benchFullConfigMemory } from '../../bench/full-config-memory.js';
import { stepPeakBytes } from '../../bench/step-cost.js';
import { useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

it('measures one step\'s pool peak and the process peak RSS, with the extrapolation beside them', async () => {
  const config = { batch: 1, crop: [16, 16, 32] as [number, number, number], width: 2 };
  const lines: string[] = [];
  const r = await benchFullConfigMemory(gpu(), true, (l) => lines.push(l), config);
  const again = await stepPeakBytes(gpu(), config, 1);
  expect(r.poolPeakGiB * 1024 ** 3).toBe(again);
  expect(r.poolPeakGiB).toBeGreaterThan(0);
  expect(r.processPeakRssGiB).toBeGreaterThan(r.poolPeakGiB);
  expect(r.extrapolatedGiB).toBeGreaterThan(0);
  expect(r.line).toMatch(/^peak-memory-full-config: tgnet_gib=\d+\.\d\d pytorch_fp32_gib=12\.8 method=measured on .*\(one step, width 2, batch 1, 16x16x32, .* min; process peak RSS \d+\.\d\d GiB; extrapolated \d+\.\d\d; PyTorch figure from an H100\)$/);
  expect(lines[lines.length - 1]).toBe(r.line);
});
