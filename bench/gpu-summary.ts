/**
 * `node dist/bench/gpu-summary.js OUT_DIR`: the machine-readable lines bench/RESULTS.md keeps, from what
 * bench/gpu-session.sh left in OUT_DIR (card.txt, bench.json or bench-tuned.json, torch-step.txt), so the
 * PyTorch figures are the ones measured on the same card in the same session:
 *   train-step-vs-pytorch: card=... tgnet_ms=... pytorch_fp32_ms=... pytorch_tf32_ms=... forward_ms=... pytorch_forward_ms=...
 *   peak-memory-full-config: tgnet_gib=... pytorch_fp32_gib=... method=...
 *   train-step-f16-vs-pytorch-amp: card=... tgnet_f16_ms=... tgnet_f32_ms=... pytorch_amp_fp16_ms=... pytorch_amp_bf16_ms=... tgnet_f16_gib=... pytorch_amp_fp16_gib=...
 * A figure that is missing (a stage timed out) is written as n/a, never invented.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

interface TorchMode { train_step_ms_median: number; forward_ms_median: number; peak_mem_GiB: number }

/** bench/torch/tgnet_torch.py's CUDA bench prints one `<mode> {json}` line per mode (fp32, tf32, bf16, fp16). */
export function parseTorchStep(text: string): Record<string, TorchMode> {
  const modes: Record<string, TorchMode> = {};
  for (const line of text.split('\n')) {
    const m = /^(fp32|tf32|bf16|fp16) (\{.*\})\s*$/.exec(line.trim());
    if (m) modes[m[1]] = JSON.parse(m[2]) as TorchMode;
  }
  return modes;
}

const num = (v: unknown, digits: number): string => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : 'n/a');

/** The first row of a bench section (an array of rows) or null. */
function firstRow(bench: Record<string, unknown> | null, section: string): Record<string, unknown> | null {
  const rows = bench?.[section];
  return Array.isArray(rows) && rows.length > 0 ? rows[0] as Record<string, unknown> : null;
}

/** The step line from a bench's tgnetStep row beside PyTorch's modes. */
function stepLine(card: string, bench: Record<string, unknown> | null, torch: Record<string, TorchMode>): string {
  const step = firstRow(bench, 'tgnetStep');
  const name = card || String(bench?.adapter ?? 'unknown');
  return `train-step-vs-pytorch: card=${name.replace(/\s+/g, '_')} tgnet_ms=${num(step?.stepMs, 1)} pytorch_fp32_ms=${num(torch.fp32?.train_step_ms_median, 1)} ` +
    `pytorch_tf32_ms=${num(torch.tf32?.train_step_ms_median, 1)} forward_ms=${num(step?.forwardMs, 1)} pytorch_forward_ms=${num(torch.fp32?.forward_ms_median, 1)}`;
}

/** The peak line from a bench's stepCost row beside PyTorch fp32's peak. */
function peakLine(bench: Record<string, unknown> | null, torch: Record<string, TorchMode>): string {
  const cost = firstRow(bench, 'stepCost');
  return `peak-memory-full-config: tgnet_gib=${num(cost?.fullConfigPeakGiB, 2)} pytorch_fp32_gib=${num(torch.fp32?.peak_mem_GiB, 2)} ` +
    `method=${String(cost?.fullConfigPeakMethod ?? 'n/a')}`;
}

/** Mixed precision: our f16 step row beside our f32 one and PyTorch's AMP (fp16 with GradScaler, and bf16). */
function ampLine(card: string, bench: Record<string, unknown> | null, torch: Record<string, TorchMode>): string {
  const rows = Array.isArray(bench?.tgnetStep) ? bench.tgnetStep as Record<string, unknown>[] : [];
  const f16 = rows.find((r) => r.precision === 'f16');
  const f32 = rows.find((r) => r.precision !== 'f16');
  const name = card || String(bench?.adapter ?? 'unknown');
  return `train-step-f16-vs-pytorch-amp: card=${name.replace(/\s+/g, '_')} tgnet_f16_ms=${num(f16?.stepMs, 1)} tgnet_f32_ms=${num(f32?.stepMs, 1)} `
    + `pytorch_amp_fp16_ms=${num(torch.fp16?.train_step_ms_median, 1)} pytorch_amp_bf16_ms=${num(torch.bf16?.train_step_ms_median, 1)} `
    + `tgnet_f16_gib=${num(f16?.poolPeakGiB, 2)} pytorch_amp_fp16_gib=${num(torch.fp16?.peak_mem_GiB, 2)}`;
}

function readJson(path: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

export function gpuSummary(dir: string): string[] {
  const text = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : '');
  // The first CSV field of nvidia-smi's line is the card's name.
  const card = text('card.txt').split('\n')[0].split(',')[0].trim();
  const untuned = readJson(join(dir, 'bench.json'));
  const tuned = readJson(join(dir, 'bench-tuned.json'));
  const torch = parseTorchStep(text('torch-step.txt'));
  // The tuned step replaces the untuned one when it ran; the peak comes from the untuned bench (stepCost).
  const step = firstRow(tuned, 'tgnetStep') ? `${stepLine(card, tuned, torch)} tuned=yes` : stepLine(card, untuned, torch);
  return [step, peakLine(untuned, torch), ampLine(card, firstRow(tuned, 'tgnetStep') ? tuned : untuned, torch)];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: node dist/bench/gpu-summary.js OUT_DIR (the folder bench/gpu-session.sh wrote)');
    process.exitCode = 2;
  } else {
    for (const line of gpuSummary(dir)) console.log(line);
  }
}
