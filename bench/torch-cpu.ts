/**
 * The TGNet training step on the CPU with Debian's PyTorch (bench/torch_cpu_step.py, on the repository's twin
 * bench/torch/tgnet_torch.py), run in the same bench so that our step time on a software adapter has a
 * same-machine yardstick.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface TorchCpuStep {
  /** Median ms per training step, when it ran. */
  stepMs?: number;
  /** Median CPU ms of the process per step (all its threads): steadier than wall time on a shared machine. */
  stepCpuMs?: number;
  forwardMs?: number;
  threads?: number;
  /** Why there is no figure (missing python or torch), or the torch version. */
  note: string;
}

const PYTHON = '/usr/bin/python3';

/** The script (beside the twin, bench/torch/), whether this file runs from bench/ (tsx) or dist/bench/ (compiled). */
function findScript(): string | null {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const root of [resolve(here, '..'), resolve(here, '../..')]) {
    const script = resolve(root, 'bench/torch_cpu_step.py');
    if (existsSync(script) && existsSync(resolve(root, 'bench/torch/tgnet_torch.py'))) return script;
  }
  return null;
}

/**
 * `threads`: PyTorch's intra-op threads; default its own choice (1 on some VMs, so the bench also runs it on every
 * core: our step uses all of them through the driver's threads).
 */
export function torchCpuStep(config: { batch: number; crop: [number, number, number]; width: number }, iterations = 5, threads?: number): TorchCpuStep {
  if (spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 }).status !== 0) {
    return { note: `skipped: ${PYTHON} -c "import torch" failed (install python3-torch)` };
  }
  const script = findScript();
  if (!script) return { note: 'skipped: bench/torch_cpu_step.py or bench/torch/tgnet_torch.py is missing from the checkout' };
  const args = [
    script, '--batch', String(config.batch), '--crop', ...config.crop.map(String),
    '--width', String(config.width), '--iters', String(iterations), ...(threads ? ['--threads', String(threads)] : []),
  ];
  const run = spawnSync(PYTHON, args, { encoding: 'utf8', timeout: 30 * 60_000 });
  const line = run.stdout.trim().split('\n').pop() ?? '';
  try {
    const r = JSON.parse(line) as { ok: boolean; reason?: string; stepMs?: number; stepCpuMs?: number; forwardMs?: number; threads?: number; torch?: string };
    if (!r.ok) return { note: `skipped: ${r.reason ?? 'unknown reason'}` };
    return { stepMs: r.stepMs, stepCpuMs: r.stepCpuMs, forwardMs: r.forwardMs, threads: r.threads, note: `torch ${r.torch ?? '?'} CPU` };
  } catch {
    return { note: `failed: exit ${run.status ?? 'signal'}; ${(run.stderr || line).trim().split('\n').pop() ?? ''}` };
  }
}
