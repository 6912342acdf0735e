/**
 * `npm run bench`: times the engine and the TGNet kernels, prints tables and writes JSON.
 * On a software adapter the sizes shrink (matmul to 2048, 3-D layers by --scale, default 1/8) so a run
 * takes minutes, not hours; on a real GPU everything runs at full size.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeFileAtomic } from '../src/common/node-files.js';
import { initGpu, isSoftwareAdapter } from '../src/kernels/runtime/gpu.js';
import { defaultTuningFile, enableConv3dTuning } from '../src/kernels/conv3d/autotune.js';
import { benchDispatch, benchElementwise, benchMatmul, benchReduce } from './engine.js';
import { benchConv3d } from './conv3d.js';
import { benchGroupNorm } from './group-norm.js';
import { table } from './timing.js';
import { benchStepCost } from './step-cost.js';
import { benchCompile, type CompileBenchOptions } from './compile.js';
import { FULL_STEP, SOFTWARE_STEP, SOFTWARE_STEPS, benchTGNetStep } from './tgnet-step.js';
import { benchLoader, type LoaderBenchOptions } from './loader.js';
import { benchFullConfigMemory } from './full-config-memory.js';
import { supportsF16 } from '../src/kernels/runtime/precision.js';

interface BenchArgs {
  out: string;
  scale: number | null;
  quick: boolean;
  only: string[] | null;
  /** Launchers use the conv3d tuning cache (tgnet tune). */
  tuned: boolean;
  /** The compile benchmark's settings (it runs only when named in --only). */
  compile: CompileBenchOptions;
  /** The loader benchmark's settings (it runs only when named in --only). */
  loader: LoaderBenchOptions;
  /** fullMemory also executes the paper's step (hours on a software adapter). */
  executeFullStep: boolean;
}

const USAGE = `usage: npm run bench -- [--out FILE.json] [--scale S in (0, 1]] [--quick] [--tuned]
                       [--only dispatch,elementwise,reduce,matmul,conv3d,groupNorm,tgnetStep,stepCost,compile,loader,fullMemory]
  compile (only when named): every pipeline of a TGNet step, inference and the kernel tests, compiled cold
    --adapters lavapipe,swiftshader|current   default: the software adapters installed, else the current one
    --no-kernel-tests                         only the model's pipelines (the kernel tests take minutes)
    --compile-limit S                         kill a compile after S seconds (default 120)
    --shaders-out FILE / --shaders FILE       write the collected shaders / compile these instead
  fullMemory (only when named): the pool peak of one step of the paper's configuration (width 32, batch 2,
    64x192x192), f32 and mixed precision, from the step's allocation trace (seconds), beside the small-crop extrapolation
    --execute-full-step       also execute the f32 step: pool peak, process peak RSS, time (software adapter: hours)
  loader (only when named): crops/s of batch-2 64x192x192 DoDNet-augmented crops from an MSD-like phantom collection
    --loader-dir DIR          collection, cache and case list (default bench/out/loader; made once, then reused)
    --loader-cases N          cases per task, 7 tasks (default 2)
    --loader-workers 1,2,4    crop worker counts (default 1, 2 and the cores)
    --loader-batches N        batches timed per setting (default 20)
    --no-torch                skip the PyTorch DataLoader yardstick (bench/torch/dodnet_loader.py)`;

/** Thrown for --help: the usage goes to stdout and the exit code is 0. */
class HelpRequested extends Error {}

function parseArgs(argv: string[]): BenchArgs {
  const args: BenchArgs = {
    out: 'bench/out/latest.json', scale: null, quick: false, only: null, tuned: false,
    compile: { kernelTests: true, limitSeconds: 120, memoryGiB: 8 },
    loader: { dir: 'bench/out/loader' }, executeFullStep: false,
  };
  const count = (name: string, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`bench: ${name} must be a positive integer, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`bench: ${a} needs a value`);
      return v;
    };
    if (a === '--out') args.out = value();
    else if (a === '--scale') {
      const s = Number(value());
      if (!(s > 0 && s <= 1)) throw new Error(`bench: --scale must be in (0, 1], got ${argv[i]}`);
      args.scale = s;
    } else if (a === '--quick') args.quick = true;
    else if (a === '--only') args.only = value().split(',');
    else if (a === '--tuned') args.tuned = true;
    else if (a === '--no-kernel-tests') args.compile.kernelTests = false;
    else if (a === '--adapters') args.compile.adapters = value().split(',');
    else if (a === '--compile-limit') {
      const s = Number(value());
      if (!(s > 0)) throw new Error(`bench: --compile-limit must be a positive number of seconds, got ${argv[i]}`);
      args.compile.limitSeconds = s;
    } else if (a === '--shaders-out') args.compile.shadersOut = resolve(value());
    else if (a === '--shaders') args.compile.shadersIn = resolve(value());
    else if (a === '--loader-dir') args.loader.dir = value();
    else if (a === '--loader-cases') args.loader.casesPerTask = count(a, value());
    else if (a === '--loader-workers') args.loader.workers = value().split(',').map((v) => count(a, v));
    else if (a === '--loader-batches') args.loader.batches = count(a, value());
    else if (a === '--no-torch') args.loader.torchBatches = false;
    else if (a === '--execute-full-step') args.executeFullStep = true;
    else if (a === '--help' || a === '-h') throw new HelpRequested(USAGE);
    else throw new Error(`bench: unknown option '${a}'\n${USAGE}`);
  }
  return args;
}

export async function benchMain(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  const gpu = await initGpu();
  try {
    const tunedShapes = args.tuned ? await enableConv3dTuning(gpu) : null;
    if (tunedShapes !== null) console.log(`conv3d tuning cache ${await defaultTuningFile()}: ${tunedShapes} tuned (shape, pass) pairs for this adapter`);
    const software = isSoftwareAdapter(gpu);
    const scale = args.scale ?? (software ? 0.125 : 1);
    const engine = {
      maxMatmul: software ? (args.quick ? 512 : 2048) : 4096,
      elements: software ? 1 << 22 : 1 << 26,
      iterations: args.quick ? 2 : 5,
    };
    // The compile benchmark takes minutes and spawns its own processes: only when asked for.
    const want = (name: string) => (!args.only && !['compile', 'loader', 'fullMemory'].includes(name)) || (args.only?.includes(name) ?? false);
    const results: Record<string, unknown> = {
      adapter: gpu.name, vendor: gpu.adapter.vendor, software, scale, date: new Date().toISOString(),
      node: process.version, ...(tunedShapes !== null ? { conv3dTuned: tunedShapes } : {}),
    };
    console.log(`tgnet bench on ${gpu.name}${software ? ' (software adapter: reduced sizes)' : ''}\n`);
    const section = async (name: string, title: string, run: () => Promise<Record<string, unknown>[] | Record<string, unknown>>) => {
      if (!want(name)) return;
      const t0 = performance.now();
      const rows = await run();
      results[name] = rows;
      const list = Array.isArray(rows) ? rows : [rows];
      console.log(`${title}  (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      console.log(table(list as Record<string, string | number>[]));
      console.log('');
    };
    await section('dispatch', 'per-dispatch overhead', () => benchDispatch(gpu, engine));
    await section('elementwise', 'element-wise bandwidth (GB/s)', () => benchElementwise(gpu, engine));
    await section('reduce', 'reduction bandwidth (GB/s)', () => benchReduce(gpu, engine));
    await section('matmul', 'f32 matmul (GFLOP/s)', () => benchMatmul(gpu, engine));
    await section('conv3d', `conv3d on TGNet layer shapes, spatial scale ${scale} (TFLOP/s)`, async () =>
      (await benchConv3d(gpu, { scale })) as unknown as Record<string, unknown>[]);
    await section('groupNorm', `group norm on TGNet shapes, spatial scale ${scale} (GB/s)`, async () =>
      (await benchGroupNorm(gpu, { scale })) as unknown as Record<string, unknown>[]);
    // A software adapter runs on this machine's CPU: compare with PyTorch's CPU step, measured in the same run.
    // Mixed precision beside f32 wherever the adapter has shader-f16 (on a GPU: beside PyTorch's AMP, gpu-session.sh).
    const stepBase = software ? SOFTWARE_STEPS : [FULL_STEP];
    const stepConfigs = supportsF16(gpu) ? [...stepBase, { ...stepBase[0], precision: 'f16' as const }] : stepBase;
    await section('tgnetStep', 'TGNet training step (fp32; PyTorch on an H100: step 569 ms, forward 124 ms at batch 2, 64x192x192, width 32)',
      async () => {
        const rows: Record<string, unknown>[] = [];
        for (const c of stepConfigs) rows.push(...await benchTGNetStep(gpu, c, { iterations: args.quick ? 1 : software ? 7 : 3, torchCpu: software }));
        return rows;
      });
    // Counted, not timed: prints its own per-kernel table and the full configuration's peak-memory line.
    if (want('stepCost')) {
      const t0 = performance.now();
      console.log('step cost (dispatch traffic and FLOPs against the op-graph minimum; full-configuration peak memory)');
      results.stepCost = await benchStepCost(gpu, software ? SOFTWARE_STEP : FULL_STEP, FULL_STEP, software);
      console.log(`(${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
    }
    if (want('compile')) {
      const t0 = performance.now();
      console.log('cold compile of every pipeline (a TGNet step, inference and the kernel tests), slowest ten per adapter');
      results.compile = await benchCompile(gpu, args.compile);
      console.log(`(${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
    }
    if (want('fullMemory')) {
      const t0 = performance.now();
      console.log('the paper\'s configuration, one step: pool peak (f32 and mixed precision) from its allocation trace');
      results.fullMemory = await benchFullConfigMemory(gpu, software, { execute: args.executeFullStep });
      console.log(`(${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
    }
    // No GPU in it: the data layer's crops on the CPU cores, and PyTorch's DataLoader beside them.
    if (want('loader')) {
      const t0 = performance.now();
      console.log('training-crop loader (positioned reads from the preprocessing cache, crop workers) against a PyTorch DataLoader doing what DoDNet\'s dataset does');
      results.loader = await benchLoader(args.loader);
      console.log(`(${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
    }
    const out = resolve(args.out);
    await writeFileAtomic(out, JSON.stringify(results, null, 2));
    console.log(`wrote ${out}`);
  } finally {
    gpu.destroy();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  benchMain(process.argv.slice(2)).catch((e: unknown) => {
    if (e instanceof HelpRequested) {
      console.log(e.message);
      return;
    }
    // A user's mistake reads as a sentence; a stack only with TGNET_DEBUG.
    console.error(`bench: ${e instanceof Error ? (process.env.TGNET_DEBUG ? e.stack : e.message) : String(e)}`);
    process.exitCode = 1;
  });
}
