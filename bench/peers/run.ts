/**
 * `npm run bench:peers`: our conv3d (forward, data gradient, weight gradient) beside tfjs-backend-webgpu's on the
 * same WebGPU adapter, at the bench's TGNet layer shapes (bench/conv3d.ts; spatial sizes scaled by --scale,
 * default 1/8 on a software adapter). tfjs is installed into bench/peers/.scratch (git-ignored) on first use,
 * never into the project's dependencies. Both sides are timed by GPU timestamps when the adapter has
 * 'timestamp-query' (the sum of each side's kernels), and by wall time to a finished queue.
 *
 * tfjs runs NDHWC with 'same' padding; for the bench's k=3 shapes that is PyTorch's padding 1 at stride 1, and
 * the same output size (so the same FLOPs) at stride 2 on even sizes.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  conv3dBackwardData, conv3dBackwardWeight, conv3dForward, conv3dOutputShape, type Conv3dShape,
} from '../../src/kernels/conv3d/index.js';
import { writeFileAtomic } from '../../src/common/node-files.js';
import { initGpu, isSoftwareAdapter, type Gpu } from '../../src/kernels/runtime/gpu.js';
import { fillUniform } from '../../src/kernels/runtime/fill.js';
import { CONV3D_BENCH_SHAPES } from '../conv3d.js';
import { table } from '../timing.js';

const TFJS_VERSION = '4.22.0';
const PACKAGES = [`@tensorflow/tfjs-core@${TFJS_VERSION}`, `@tensorflow/tfjs-backend-webgpu@${TFJS_VERSION}`];

/** The few tfjs calls used here (tfjs is loaded from the scratch folder at run time, so it has no types here). */
interface TfTensor {
  readonly shape: number[];
  data(): Promise<Float32Array>;
  dispose(): void;
}
type Pad = 'same' | 'valid';
interface Tf {
  version_core: string;
  setBackend(name: string): Promise<boolean>;
  ready(): Promise<void>;
  getBackend(): string;
  backend(): { device?: GPUDevice; commandEncoder?: unknown; submitQueue?: () => void; adapterInfo?: { vendor?: string; architecture?: string } };
  randomNormal(shape: number[], mean?: number, stdDev?: number, dtype?: 'float32', seed?: number): TfTensor;
  conv3d(x: TfTensor, filter: TfTensor, strides: number, pad: Pad): TfTensor;
  conv3dTranspose(dy: TfTensor, filter: TfTensor, outputShape: number[], strides: number, pad: Pad): TfTensor;
  engine(): { runKernel(name: string, inputs: Record<string, TfTensor>, attrs: Record<string, unknown>): TfTensor };
  time(f: () => void): Promise<{ kernelMs: number | { error: string }; wallMs: number }>;
}

interface PeerArgs {
  scale: number | null;
  iterations: number | null;
  out: string;
}

function parseArgs(argv: string[]): PeerArgs {
  const args: PeerArgs = { scale: null, iterations: null, out: 'bench/out/peers.json' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`bench:peers: ${a} needs a value`);
      return v;
    };
    if (a === '--scale') {
      const s = Number(value());
      if (!(s > 0 && s <= 1)) throw new Error(`bench:peers: --scale must be in (0, 1], got ${argv[i]}`);
      args.scale = s;
    } else if (a === '--iterations') {
      const n = Number(value());
      if (!(Number.isInteger(n) && n >= 1)) throw new Error(`bench:peers: --iterations must be a positive integer, got ${argv[i]}`);
      args.iterations = n;
    } else if (a === '--out') args.out = value();
    else if (a === '--help' || a === '-h') throw new Error('usage: npm run bench:peers -- [--scale S in (0, 1]] [--iterations N] [--out FILE.json]');
    else throw new Error(`bench:peers: unknown option '${a}' (expected --scale S, --iterations N, --out FILE)`);
  }
  return args;
}

/** Installs tfjs-core and tfjs-backend-webgpu into the scratch folder unless that version is already there. */
function ensureTfjs(scratch: string): void {
  const installed = (name: string) => {
    const p = join(scratch, 'node_modules', name, 'package.json');
    return existsSync(p) && (JSON.parse(readFileSync(p, 'utf8')) as { version: string }).version === TFJS_VERSION;
  };
  if (installed('@tensorflow/tfjs-core') && installed('@tensorflow/tfjs-backend-webgpu')) return;
  mkdirSync(scratch, { recursive: true });
  // Its own package.json, so npm never walks up to the project's.
  writeFileSync(join(scratch, 'package.json'), `${JSON.stringify({ name: 'tgnet-bench-peers-scratch', private: true }, null, 2)}\n`);
  console.log(`installing ${PACKAGES.join(' ')} into ${scratch}`);
  execFileSync('npm', ['install', '--prefix', scratch, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', ...PACKAGES], { stdio: 'inherit' });
}

/**
 * Dawn's navigator.gpu, made global before tfjs-backend-webgpu loads (it registers itself only when navigator.gpu
 * exists); initGpu then adopts the same instance. The instance must outlive every device: kept here.
 */
let dawnInstance: GPU | null = null;
async function installNavigatorGpu(): Promise<void> {
  const name = 'webgpu';
  const mod = (await import(name)) as { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  Object.assign(globalThis, mod.globals);
  dawnInstance = mod.create([]);
  const nav = (globalThis as { navigator?: object }).navigator;
  if (nav) Object.defineProperty(nav, 'gpu', { value: dawnInstance, configurable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu: dawnInstance, userAgent: `node ${process.version}` }, configurable: true });
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

interface PassTiming {
  /** Median sum of kernel timestamps, ms; null without timestamp queries. */
  gpuMs: number | null;
  /** Median wall time from recording to a finished queue, ms. */
  wallMs: number;
}

async function timeOurs(gpu: Gpu, record: () => void, iterations: number): Promise<PassTiming> {
  record();
  await gpu.sync();
  const gpuMs: number[] = [];
  const wallMs: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    const profiling = gpu.startProfiling();
    record();
    await gpu.sync();
    wallMs.push(performance.now() - t0);
    const timings = profiling ? await gpu.stopProfiling() : [];
    if (profiling) gpuMs.push(timings.reduce((s, t) => s + t.ms, 0));
  }
  return { gpuMs: gpuMs.length ? median(gpuMs) : null, wallMs: median(wallMs) };
}

async function timeTfjs(tf: Tf, run: () => TfTensor, iterations: number): Promise<PassTiming> {
  const backend = tf.backend();
  const finish = async (y: TfTensor) => {
    // Submit and wait for the queue, without reading the result back (a readback is not part of the op).
    if (backend.commandEncoder) backend.submitQueue?.();
    if (backend.device) await backend.device.queue.onSubmittedWorkDone();
    else await y.data();
  };
  const warm = run();
  await warm.data();
  warm.dispose();
  const gpuMs: number[] = [];
  const wallMs: number[] = [];
  for (let i = 0; i < iterations; i++) {
    let y: TfTensor | null = null;
    const t0 = performance.now();
    const info = await tf.time(() => { y = run(); });
    await finish(y as unknown as TfTensor);
    wallMs.push(performance.now() - t0);
    (y as unknown as TfTensor).dispose();
    if (typeof info.kernelMs === 'number') gpuMs.push(info.kernelMs);
  }
  return { gpuMs: gpuMs.length ? median(gpuMs) : null, wallMs: median(wallMs) };
}


export async function peersMain(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  const scratch = resolve('bench/peers/.scratch');
  ensureTfjs(scratch);
  await installNavigatorGpu();
  const gpu = await initGpu();
  const require = createRequire(join(scratch, 'package.json'));
  let tf: Tf;
  try {
    tf = require('@tensorflow/tfjs-core') as Tf;
    require('@tensorflow/tfjs-backend-webgpu');
    if (!(await tf.setBackend('webgpu'))) throw new Error('tf.setBackend(\'webgpu\') returned false (the backend failed to initialise)');
    await tf.ready();
  } catch (e) {
    gpu.destroy();
    throw new Error(`tfjs-backend-webgpu ${TFJS_VERSION} cannot run here: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    const software = isSoftwareAdapter(gpu);
    const scale = args.scale ?? (software ? 0.125 : 1);
    const iterations = args.iterations ?? (software ? 3 : 5);
    const timestamps = gpu.features.has('timestamp-query');
    console.log(`conv3d: tgnet beside tfjs-backend-webgpu ${tf.version_core} on ${gpu.name}${software ? ' (software adapter)' : ''}, ` +
      `spatial scale ${scale}, median of ${iterations}; ${timestamps ? 'GPU timestamps' : 'wall time'}\n`);
    const rows: Record<string, string | number>[] = [];
    for (const [N, Cin, Cout, D0, H0, W0, s] of CONV3D_BENCH_SHAPES) {
      const [D, H, W] = [D0, H0, W0].map((d) => Math.max(1, Math.round(d * scale)));
      const shape: Conv3dShape = { x: [N, Cin, D, H, W], w: [Cout, Cin, 3, 3, 3], stride: s, padding: 1 };
      const out = conv3dOutputShape(shape.x, shape.w, shape);
      const [, , Do, Ho, Wo] = out;
      const nx = N * Cin * D * H * W;
      const nw = Cout * Cin * 27;
      const ny = N * Cout * Do * Ho * Wo;
      const flops = 2 * ny * Cin * 27;
      const label = `${N}x${Cin}->${Cout} ${D}x${H}x${W}${s > 1 ? ` s${s}` : ''}`;
      console.log(`${label} ...`);
      const bufs = [nx, nw, ny, ny, nx, nw].map((n) => gpu.pool.acquire(n * 4, 'bench peers conv3d'));
      const [x, w, y, gy, gx, gw] = bufs;
      fillUniform(gpu, x, nx, 1, 1);
      fillUniform(gpu, w, nw, 2, 1 / Math.sqrt(Cin * 27));
      fillUniform(gpu, gy, ny, 3, 1);
      const ours = {
        forward: await timeOurs(gpu, () => conv3dForward(gpu, x, w, null, y, shape), iterations),
        data: await timeOurs(gpu, () => conv3dBackwardData(gpu, gy, w, gx, shape), iterations),
        weight: await timeOurs(gpu, () => conv3dBackwardWeight(gpu, x, gy, gw, shape), iterations),
      };
      for (const b of bufs) gpu.pool.release(b);
      await gpu.sync();
      const tx = tf.randomNormal([N, D, H, W, Cin], 0, 1, 'float32', 1);
      const tw = tf.randomNormal([3, 3, 3, Cin, Cout], 0, 1 / Math.sqrt(Cin * 27), 'float32', 2);
      const tdy = tf.randomNormal([N, Do, Ho, Wo, Cout], 0, 1, 'float32', 3);
      let peer: Record<'forward' | 'data' | 'weight', PassTiming>;
      try {
        peer = {
          forward: await timeTfjs(tf, () => tf.conv3d(tx, tw, s, 'same'), iterations),
          data: await timeTfjs(tf, () => tf.conv3dTranspose(tdy, tw, [N, D, H, W, Cin], s, 'same'), iterations),
          weight: await timeTfjs(tf, () => tf.engine().runKernel('Conv3DBackpropFilterV2', { x: tx, dy: tdy },
            { strides: [1, s, s, s, 1], pad: 'same', filterShape: [3, 3, 3, Cin, Cout] }), iterations),
        };
      } finally {
        for (const t of [tx, tw, tdy]) t.dispose();
      }
      for (const pass of ['forward', 'data', 'weight'] as const) {
        const o = ours[pass];
        const p = peer[pass];
        const oMs = o.gpuMs ?? o.wallMs;
        const pMs = p.gpuMs ?? p.wallMs;
        rows.push({
          shape: label, pass, tgnetMs: oMs, tfjsMs: pMs, ratio: pMs / oMs,
          tgnetWallMs: o.wallMs, tfjsWallMs: p.wallMs, wallRatio: p.wallMs / o.wallMs,
          tgnetGflops: flops / (oMs * 1e6), tfjsGflops: flops / (pMs * 1e6),
        });
      }
    }
    console.log('');
    console.log('ratio = tfjs ms / tgnet ms (above 1: tgnet is faster)');
    console.log(table(rows));
    const ratios = rows.map((r) => r.ratio as number);
    const result = {
      adapter: gpu.name, vendor: gpu.adapter.vendor, software, scale, iterations,
      timing: timestamps ? 'gpu-timestamps' : 'wall', tfjs: `@tensorflow/tfjs-backend-webgpu@${TFJS_VERSION}`,
      node: process.version, date: new Date().toISOString(),
      minRatio: Math.min(...ratios), maxRatio: Math.max(...ratios), rows,
    };
    console.log(`\n${JSON.stringify({ adapter: result.adapter, minRatio: result.minRatio, maxRatio: result.maxRatio })}`);
    const file = resolve(args.out);
    await writeFileAtomic(file, JSON.stringify(result, null, 2));
    console.log(`wrote ${file}`);
  } finally {
    gpu.destroy();
    void dawnInstance;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  peersMain(process.argv.slice(2)).catch((e: unknown) => {
    console.error(`bench:peers: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    process.exitCode = 1;
  });
}
