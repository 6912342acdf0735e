/**
 * `npm run bench -- --only compile`: how long every pipeline takes to compile with an empty shader cache.
 *
 * The shaders are those a TGNet training step and a sliding-window inference create (the demo's, `tgnet train`'s
 * and the bench's configurations, found by a discovery run that compiles nothing) and, unless `--no-kernel-tests`,
 * those the kernel tests create (`vitest run test/kernels` with TGNET_PIPELINE_LOG; test/setup/pipeline-log.ts).
 * Each is then compiled cold on each adapter in a child process (compile-worker.ts) with a fresh shader cache:
 * lavapipe and SwiftShader when this machine has them, else the current adapter. A compile that runs past the
 * time limit or the memory cap is killed and reported as such. Budget (issue 17): 10 s a pipeline on lavapipe,
 * 20 s on SwiftShader, of CPU time (the wall time is printed beside it; on a busy machine it is longer).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { discoverModelPipelines } from '../src/eval/warm-up.js';
import { isSoftwareAdapter, type Gpu } from '../src/kernels/runtime/gpu.js';
import type { OptimizerKind } from '../src/nn/optim.js';
import { TGNet, type TGNetVariant } from '../src/tgnet/model.js';
import { MARK, type ShaderEntry } from './compile-worker.js';
import { ProgressReporter } from '../src/cli/progress.js';
import { table } from './timing.js';

/** The checkout: the first folder above this module with a package.json (dist/bench/ when built, bench/ under vitest). */
function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('compile bench: no package.json above bench/compile');
    dir = up;
  }
  return dir;
}
const repoRoot = findRepoRoot();

export const LAVAPIPE_ICD = '/usr/share/vulkan/icd.d/lvp_icd.json';
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
/** Seconds one cold compile may take (issue 17). */
export const COMPILE_BUDGET_S: Record<string, number> = { lavapipe: 10, swiftshader: 20 };

export interface CompileBenchOptions {
  /** Also the pipelines of `vitest run test/kernels` (minutes on a software adapter). */
  kernelTests: boolean;
  /** A compile past this many seconds is killed and reported. */
  limitSeconds: number;
  /** A compile whose process grows past this many GiB is killed and reported. */
  memoryGiB: number;
  /** Adapters by name ('lavapipe', 'swiftshader', 'current'); default: the software ones installed, else 'current'. */
  adapters?: string[];
  /** Where the collected shaders are written (JSON), for a later `--shaders`. */
  shadersOut?: string;
  /** Compile these shaders (a `shadersOut` file) instead of collecting them. */
  shadersIn?: string;
}

/** A model configuration whose step and inference are collected. */
interface ModelConfig {
  what: string;
  variant: TGNetVariant;
  width: number;
  crop: [number, number, number];
  optimizer: OptimizerKind;
  fused?: boolean;
}

/** The page and `tgnet demo` (software profile, and --compare's variants), `tgnet train`'s default, the bench's step. */
const MODEL_CONFIGS: ModelConfig[] = [
  { what: 'demo', variant: 'tgnet', width: 4, crop: [16, 32, 32], optimizer: 'adam' },
  { what: 'demo --compare', variant: 'dodnet', width: 4, crop: [16, 32, 32], optimizer: 'adam' },
  { what: 'demo --compare', variant: 'tgnet-a', width: 4, crop: [16, 32, 32], optimizer: 'adam' },
  { what: 'train', variant: 'tgnet', width: 4, crop: [16, 32, 32], optimizer: 'sgd' },
  { what: 'bench step', variant: 'tgnet', width: 8, crop: [16, 32, 32], optimizer: 'sgd' },
  { what: 'bench step unfused', variant: 'tgnet', width: 8, crop: [16, 32, 32], optimizer: 'sgd', fused: false },
  { what: 'demo (GPU profile)', variant: 'tgnet', width: 16, crop: [32, 64, 64], optimizer: 'adam' },
];

function addShaders(into: Map<string, ShaderEntry>, list: readonly { key: string; code: string }[], source: string): void {
  for (const { key, code } of list) {
    const have = into.get(key);
    if (!have) into.set(key, { key, code, sources: [source] });
    else if (!have.sources.includes(source)) have.sources.push(source);
  }
}

/** Adds the pipelines of a training step and a sliding-window tile of each model configuration (nothing compiled). */
export async function collectModelShaders(found: Map<string, ShaderEntry>): Promise<void> {
  for (const c of MODEL_CONFIGS) {
    const model = TGNet.create({ variant: c.variant, width: c.width, seed: 0, fused: c.fused });
    try {
      const requests = await discoverModelPipelines(model, { crop: c.crop, optimizer: c.optimizer, inference: true });
      addShaders(found, requests, `${c.what}: ${c.variant} w${c.width} ${c.crop.join('x')}`);
    } finally {
      model.dispose();
    }
  }
}

/** Adds the pipelines `vitest run test/kernels` creates, through test/setup/pipeline-log.ts. */
export function collectKernelTestShaders(found: Map<string, ShaderEntry>): void {
  const dir = mkdtempSync(join(tmpdir(), 'tgnet-pipelines-'));
  const log = join(dir, 'pipelines.jsonl');
  try {
    console.log('compile bench: running the kernel tests to record their pipelines (vitest run test/kernels) ...');
    const vitest = join(repoRoot, 'node_modules', 'vitest', 'vitest.mjs');
    const run = spawnSync(process.execPath, [vitest, 'run', 'test/kernels', '--reporter=dot'], {
      cwd: repoRoot, env: { ...process.env, TGNET_PIPELINE_LOG: log }, stdio: ['ignore', 'ignore', 'inherit'],
    });
    if (run.status !== 0) console.warn(`compile bench: the kernel tests exited with ${run.status}; using the pipelines they created`);
    if (!existsSync(log)) throw new Error(`compile bench: the kernel tests wrote no pipeline log (${log})`);
    const lines = readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { key: string; code: string });
    addShaders(found, lines, 'kernel tests');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface CompileRow {
  key: string;
  /** Wall time of the compile. */
  ms: number;
  /** CPU time the compiling process spent on it (the budget's measure: a busy machine stretches the wall time). */
  cpuMs: number;
  lines: number;
  sources: string[];
  /** 'killed: ...' when it ran past the limit or the memory cap; a WGSL or validation error otherwise. */
  failure?: string;
}

function adapterEnv(name: string, cacheDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, MESA_SHADER_CACHE_DIR: cacheDir };
  delete env.MESA_SHADER_CACHE_DISABLE;
  if (name === 'lavapipe') env.VK_ICD_FILENAMES = LAVAPIPE_ICD;
  if (name === 'swiftshader') env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  return env;
}

/** Resident memory of a process in bytes (Linux), 0 where unknown. */
function residentBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Compiles every shader cold on one adapter; restarts the worker after a kill. */
export async function compileCold(
  shaders: ShaderEntry[], adapter: string, options: Pick<CompileBenchOptions, 'limitSeconds' | 'memoryGiB'>,
): Promise<{ adapterName: string; rows: CompileRow[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'tgnet-compile-'));
  const list = join(dir, 'shaders.json');
  writeFileSync(list, JSON.stringify(shaders));
  const rows: CompileRow[] = [];
  let adapterName = adapter;
  const progress = new ProgressReporter({ total: shaders.length, label: `cold compiles on ${adapter}`, unit: 'pipeline' });
  const record = (row: CompileRow) => {
    rows.push(row);
    progress.update(rows.length, { extra: { slowest: `${(Math.max(...rows.map((r) => r.ms)) / 1000).toFixed(1)} s` } });
  };
  // The built worker (npm run build): a child process runs plain JavaScript.
  const worker = join(repoRoot, 'dist', 'bench', 'compile-worker.js');
  if (!existsSync(worker)) throw new Error(`compile bench: ${worker} is missing; run npm run build first`);
  try {
    let start = 0;
    while (start < shaders.length) {
      // A fresh, empty cache for every worker: each compile is cold.
      const cache = mkdtempSync(join(dir, 'cache-'));
      const child = spawn(process.execPath, [worker, list, String(start)], { env: adapterEnv(adapter, cache), stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      const outcome = await new Promise<{ next: number; failure?: string }>((resolveRun) => {
        let current = start;
        let began = performance.now();
        const finish = (r: { next: number; failure?: string }) => {
          clearInterval(watch);
          resolveRun(r);
        };
        const watch = setInterval(() => {
          const rss = residentBytes(child.pid ?? 0);
          const seconds = (performance.now() - began) / 1000;
          if (seconds > options.limitSeconds || rss > options.memoryGiB * 2 ** 30) {
            child.kill('SIGKILL');
            finish({ next: current + 1, failure: `killed after ${seconds.toFixed(0)} s at ${(rss / 2 ** 30).toFixed(1)} GiB` });
          }
        }, 250);
        createInterface({ input: child.stdout }).on('line', (line) => {
          // Dawn's warnings end without a newline, so a mark may follow one on the same line.
          const at = line.indexOf(MARK);
          if (at < 0) return;
          const msg = JSON.parse(line.slice(at + MARK.length)) as { adapter?: string; i?: number; ms?: number; cpuMs?: number; error?: string };
          if (msg.adapter) adapterName = msg.adapter;
          if (msg.i === undefined || msg.ms === undefined) return;
          const s = shaders[msg.i];
          record({ key: s.key, ms: msg.ms, cpuMs: msg.cpuMs ?? msg.ms, lines: s.code.split('\n').length, sources: s.sources, ...(msg.error ? { failure: msg.error } : {}) });
          current = msg.i + 1;
          began = performance.now();
        });
        child.on('close', (code) => {
          if (code === 0) finish({ next: shaders.length });
          else finish({ next: current + 1, failure: `worker exited with ${code}: ${stderr.split('\n').filter((l) => l && !/unusual|artificially reduced/.test(l)).slice(-2).join(' | ')}` });
        });
      });
      if (outcome.failure && outcome.next - 1 < shaders.length) {
        const s = shaders[outcome.next - 1];
        record({ key: s.key, ms: options.limitSeconds * 1000, cpuMs: options.limitSeconds * 1000, lines: s.code.split('\n').length, sources: s.sources, failure: outcome.failure });
      }
      start = outcome.next;
    }
  } finally {
    progress.finish();
    rmSync(dir, { recursive: true, force: true });
  }
  return { adapterName, rows };
}

function defaultAdapters(gpu: Gpu): string[] {
  if (!isSoftwareAdapter(gpu)) return ['current'];
  const list = [];
  if (existsSync(LAVAPIPE_ICD)) list.push('lavapipe');
  if (existsSync(SWIFTSHADER_ICD)) list.push('swiftshader');
  return list.length ? list : ['current'];
}

export async function benchCompile(gpu: Gpu, options: CompileBenchOptions): Promise<Record<string, unknown>> {
  let shaders: ShaderEntry[];
  if (options.shadersIn) {
    shaders = JSON.parse(readFileSync(options.shadersIn, 'utf8')) as ShaderEntry[];
  } else {
    const found = new Map<string, ShaderEntry>();
    await collectModelShaders(found);
    if (options.kernelTests) collectKernelTestShaders(found);
    shaders = [...found.values()];
  }
  if (options.shadersOut) writeFileSync(options.shadersOut, JSON.stringify(shaders));
  const result: Record<string, unknown> = { shaders: shaders.length, maxLines: Math.max(...shaders.map((s) => s.code.split('\n').length)) };
  for (const adapter of options.adapters ?? defaultAdapters(gpu)) {
    const t0 = performance.now();
    console.log(`compile bench: ${shaders.length} pipelines, cold, on ${adapter} ...`);
    const { adapterName, rows } = await compileCold(shaders, adapter, options);
    // Ranked and judged by CPU time: the wall time of a compile on a busy machine says more about the machine.
    const sorted = [...rows].sort((a, b) => b.cpuMs - a.cpuMs);
    const budget = COMPILE_BUDGET_S[adapter];
    const over = budget ? sorted.filter((r) => r.cpuMs > budget * 1000) : [];
    const failures = rows.filter((r) => r.failure);
    const sum = (key: 'ms' | 'cpuMs') => rows.reduce((s, r) => s + r[key], 0) / 1000;
    console.log(`${adapterName}: ${rows.length} pipelines in ${((performance.now() - t0) / 1000).toFixed(1)} s (compiles: ${sum('cpuMs').toFixed(1)} s CPU, ${sum('ms').toFixed(1)} s wall)`
      + `${budget ? `; budget ${budget} s a pipeline: ${over.length ? `${over.length} over` : 'all within'}` : ''}${failures.length ? `; ${failures.length} failed` : ''}`);
    console.log(table(sorted.slice(0, 10).map((r) => ({
      'CPU s': r.cpuMs / 1000, 'wall s': r.ms / 1000, 'WGSL lines': r.lines, pipeline: r.key, 'used by': r.sources.join('; ').slice(0, 60),
      ...(r.failure ? { failure: r.failure } : {}),
    }))));
    console.log('');
    result[adapter] = {
      adapter: adapterName, pipelines: rows.length, sumCpuSeconds: sum('cpuMs'), sumSeconds: sum('ms'),
      budgetSeconds: budget ?? null, overBudget: over.map((r) => r.key), failures: failures.map((r) => ({ key: r.key, failure: r.failure })),
      slowest: sorted.slice(0, 10).map((r) => ({ key: r.key, cpuSeconds: r.cpuMs / 1000, seconds: r.ms / 1000, lines: r.lines, sources: r.sources })),
    };
  }
  return result;
}
