import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gpuSummary, parseTorchStep } from '../../bench/gpu-summary.js';

const TORCH = [
  'fp32 {"train_step_ms_median": 569.2, "forward_ms_median": 124.4, "peak_mem_GiB": 12.81}',
  'tf32 {"train_step_ms_median": 222.0, "forward_ms_median": 60.5, "peak_mem_GiB": 12.79}',
  'fp16 {"train_step_ms_median": 180.5, "forward_ms_median": 40.1, "peak_mem_GiB": 7.02}',
  '{"fp32": {}, "params": 17000000}',
].join('\n');

describe('gpu-summary: the RESULTS.md lines from a GPU session folder', () => {
  it('parses the PyTorch twin\'s bench lines by mode', () => {
    const modes = parseTorchStep(TORCH);
    expect(Object.keys(modes)).toEqual(['fp32', 'tf32', 'fp16']);
    expect(modes.tf32.train_step_ms_median).toBe(222);
  });

  it('writes both lines from the session files, the tuned step when it ran, n/a for what is missing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpu-summary-'));
    writeFileSync(join(dir, 'card.txt'), 'NVIDIA H200, 570.86, 143771 MiB, 1980 MHz\n');
    writeFileSync(join(dir, 'torch-step.txt'), TORCH);
    writeFileSync(join(dir, 'bench.json'), JSON.stringify({
      adapter: 'nvidia', tgnetStep: [{ stepMs: 700.04, forwardMs: 150, precision: 'f32' }, { stepMs: 400, forwardMs: 90, precision: 'f16', poolPeakGiB: 4.4 }],
      stepCost: [{ fullConfigPeakGiB: 7.5, fullConfigPeakMethod: 'measured on NVIDIA H200' }],
    }));
    expect(gpuSummary(dir)).toEqual([
      'train-step-vs-pytorch: card=NVIDIA_H200 tgnet_ms=700.0 pytorch_fp32_ms=569.2 pytorch_tf32_ms=222.0 forward_ms=150.0 pytorch_forward_ms=124.4',
      'peak-memory-full-config: tgnet_gib=7.50 pytorch_fp32_gib=12.81 method=measured on NVIDIA H200',
      'train-step-f16-vs-pytorch-amp: card=NVIDIA_H200 tgnet_f16_ms=400.0 tgnet_f32_ms=700.0 pytorch_amp_fp16_ms=180.5 pytorch_amp_bf16_ms=n/a tgnet_f16_gib=4.40 pytorch_amp_fp16_gib=7.02',
    ]);
    writeFileSync(join(dir, 'bench-tuned.json'), JSON.stringify({ tgnetStep: [{ stepMs: 610, forwardMs: 140 }] }));
    expect(gpuSummary(dir)[0]).toMatch(/tgnet_ms=610\.0 .* forward_ms=140\.0 .* tuned=yes$/);
    const empty = mkdtempSync(join(tmpdir(), 'gpu-summary-'));
    expect(gpuSummary(empty)).toEqual([
      'train-step-vs-pytorch: card=unknown tgnet_ms=n/a pytorch_fp32_ms=n/a pytorch_tf32_ms=n/a forward_ms=n/a pytorch_forward_ms=n/a',
      'peak-memory-full-config: tgnet_gib=n/a pytorch_fp32_gib=n/a method=n/a',
      'train-step-f16-vs-pytorch-amp: card=unknown tgnet_f16_ms=n/a tgnet_f32_ms=n/a pytorch_amp_fp16_ms=n/a pytorch_amp_bf16_ms=n/a tgnet_f16_gib=n/a pytorch_amp_fp16_gib=n/a',
    ]);
  });
});
