/**
 * `node dist/bench/verify.js`: correctness on the machine at hand, without vitest (a GPU machine gets only
 * the production node_modules). Runs the hardware code paths (big tiles, shape specialisation, prefetch)
 * that a software adapter's defaults skip, on shapes larger than the unit tests', against the float64 CPU
 * twins, and prints one JSON line per check. Exit status 1 when any check fails.
 */
import { pathToFileURL } from 'node:url';
import {
  conv3dBackwardData, conv3dBackwardWeight, conv3dForward, conv3dOutputShape, type Conv3dOptions, type Conv3dShape,
} from '../src/kernels/conv3d/index.js';
import { groupNormBackward, groupNormForward } from '../src/kernels/group-norm.js';
import { matmul } from '../src/kernels/matmul.js';
import { conv3dBackwardDataRef, conv3dBackwardWeightRef, conv3dRef, normReluInputRef } from '../src/kernels/reference/conv3d.js';
import { groupNormBackwardRef, groupNormRef } from '../src/kernels/reference/group-norm.js';
import { matmulRef } from '../src/kernels/reference/matmul.js';
import { initGpu, type Gpu } from '../src/kernels/runtime/gpu.js';
import { sizeOf } from '../src/kernels/runtime/wgsl.js';
import { rngUniform } from '../src/autograd/random.js';

interface Check {
  name: string;
  ok: boolean;
  /** Worst |got - want| / (atol + rtol |want|). */
  worst: number;
  ms: number;
}

function worstError(got: Float32Array, want: ArrayLike<number>, atol: number, rtol: number): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) / (atol + rtol * Math.abs(want[i]));
    if (!(e <= worst)) worst = e;
  }
  return worst;
}

async function run(gpu: Gpu, name: string, body: () => Promise<number>): Promise<Check> {
  const t0 = performance.now();
  let worst: number;
  try {
    worst = await body();
  } catch (e) {
    console.error(`${name}: ${e instanceof Error ? e.message : String(e)}`);
    worst = Infinity;
  }
  const check = { name, ok: worst <= 1, worst, ms: performance.now() - t0 };
  console.log(JSON.stringify(check));
  return check;
}

export async function verifyMain(): Promise<Check[]> {
  const gpu = await initGpu();
  const up = (d: Float32Array) => { const b = gpu.pool.acquire(d.byteLength); gpu.write(b, d); return b; };
  const out = (n: number) => gpu.pool.acquire(n * 4);
  const down = async (b: GPUBuffer, n: number) => new Float32Array(await gpu.read(b, n * 4));
  const checks: Check[] = [];
  try {
    console.log(JSON.stringify({ adapter: gpu.name }));
    for (const [m, n, k] of [[257, 129, 65], [1024, 1024, 1024]]) {
      checks.push(await run(gpu, `matmul ${m}x${n}x${k}`, async () => {
        const a = rngUniform(m * k, 1, -1, 1);
        const b = rngUniform(k * n, 2, -1, 1);
        const c = out(m * n);
        matmul(gpu, up(a), up(b), c, { m, n, k });
        return worstError(await down(c, m * n), matmulRef(a, b, { m, n, k }), 1e-3, 1e-3);
      }));
    }
    const convShapes: [string, Conv3dShape][] = [
      ['32->32 k3 s1 2x12x20x20', { x: [2, 32, 12, 20, 20], w: [32, 32, 3, 3, 3], stride: 1, padding: 1 }],
      ['16->48 k3 s2 1x13x18x21', { x: [1, 16, 13, 18, 21], w: [48, 16, 3, 3, 3], stride: 2, padding: 1 }],
      ['1->32 k3 s1 1x16x24x24', { x: [1, 1, 16, 24, 24], w: [32, 1, 3, 3, 3], stride: 1, padding: 1 }],
      ['64->130 k1 s1 2x6x7x9', { x: [2, 64, 6, 7, 9], w: [130, 64, 1, 1, 1], stride: 1, padding: 0 }],
    ];
    for (const [label, shape] of convShapes) {
      // The implicit GEMMs (hardware adapters' path) specialised and generic, and the software adapters' direct kernels.
      const variants: [string, Conv3dOptions][] = [
        ['specialised+prefetch', { direct: false, specialize: true, prefetch: true }],
        ['generic', { direct: false, specialize: false, prefetch: false }],
        ['direct', { direct: true }],
      ];
      for (const [tag, opts] of variants) {
        const x = rngUniform(sizeOf(shape.x), 3, -1, 1);
        const w = rngUniform(sizeOf(shape.w), 4, -0.2, 0.2);
        const yShape = conv3dOutputShape(shape.x, shape.w, shape);
        const gy = rngUniform(sizeOf(yShape), 5, -1, 1);
        checks.push(await run(gpu, `conv3d fwd ${label} ${tag}`, async () => {
          const y = out(sizeOf(yShape));
          conv3dForward(gpu, up(x), up(w), null, y, shape, opts);
          return worstError(await down(y, sizeOf(yShape)), conv3dRef(x, w, null, shape).data, 1e-3, 1e-3);
        }));
        checks.push(await run(gpu, `conv3d dgrad ${label} ${tag}`, async () => {
          const gx = out(x.length);
          conv3dBackwardData(gpu, up(gy), up(w), gx, shape, opts);
          return worstError(await down(gx, x.length), conv3dBackwardDataRef(gy, w, shape), 1e-3, 1e-3);
        }));
        checks.push(await run(gpu, `conv3d wgrad ${label} ${tag}`, async () => {
          const gw = out(w.length);
          conv3dBackwardWeight(gpu, up(x), up(gy), gw, shape, opts);
          return worstError(await down(gw, w.length), conv3dBackwardWeightRef(x, gy, shape), 1e-2, 1e-3);
        }));
        if (tag !== 'specialised+prefetch') continue;
        // The fused paths on the hardware code path: relu(GN(x)) loaded by forward and weight gradient, and a
        // gated residual added by the forward's store.
        const [N, C] = shape.x;
        const Cout = shape.w[0];
        const coef = new Float32Array(4 * N * C);
        const r = rngUniform(3 * N * C, 10, -1, 1);
        for (let i = 0; i < N * C; i++) coef.set([0.3 * r[3 * i], 0.5 + r[3 * i + 1], 0.4 * r[3 * i + 2], 0], 4 * i);
        const input = normReluInputRef(x, coef, shape.x);
        const res = rngUniform(sizeOf(yShape), 11, -1, 1);
        const gate = rngUniform(N * Cout, 12, 0, 1);
        checks.push(await run(gpu, `conv3d fwd ${label} ${tag} + GN-ReLU prologue + gated residual`, async () => {
          const y = out(sizeOf(yShape));
          conv3dForward(gpu, up(x), up(w), null, y, shape, { ...opts, inputNormRelu: up(coef), residual: { buffer: up(res), gate: up(gate) } });
          const want = conv3dRef(input, w, null, shape).data;
          const vox = sizeOf(yShape) / (N * Cout);
          for (let i = 0; i < want.length; i++) want[i] += res[i] * gate[Math.floor(i / vox)];
          return worstError(await down(y, sizeOf(yShape)), want, 1e-3, 1e-3);
        }));
        checks.push(await run(gpu, `conv3d wgrad ${label} ${tag} + GN-ReLU prologue`, async () => {
          const gw = out(w.length);
          conv3dBackwardWeight(gpu, up(x), up(gy), gw, shape, { ...opts, inputNormRelu: up(coef) });
          return worstError(await down(gw, w.length), conv3dBackwardWeightRef(input, gy, shape), 1e-2, 1e-3);
        }));
      }
    }
    checks.push(await run(gpu, 'groupNorm+relu fwd/bwd 2x32x16x24x24 G16', async () => {
      const shape = [2, 32, 16, 24, 24];
      const n = sizeOf(shape);
      const x = rngUniform(n, 6, -2, 3);
      const wt = rngUniform(32, 7, 0.5, 1.5);
      const bs = rngUniform(32, 8, -0.5, 0.5);
      const dy = rngUniform(n, 9, -1, 1);
      const [xb, wb, bb] = [up(x), up(wt), up(bs)];
      const y = out(n);
      const mean = out(64);
      const rstd = out(64);
      groupNormForward(gpu, xb, shape, 16, wb, bb, y, mean, rstd, { relu: true });
      const dx = out(n);
      const dw = out(32);
      const db = out(32);
      groupNormBackward(gpu, up(dy), xb, shape, 16, wb, bb, mean, rstd, dx, dw, db, { relu: true });
      const ref = groupNormRef(x, shape, 16, wt, bs, 1e-5, true);
      const bref = groupNormBackwardRef(dy, x, shape, 16, wt, bs, 1e-5, true);
      return Math.max(
        worstError(await down(y, n), ref.y, 1e-4, 1e-3),
        worstError(await down(dx, n), bref.dx, 1e-4, 1e-3),
        worstError(await down(dw, 32), bref.dweight, 1e-2, 1e-3),
        worstError(await down(db, 32), bref.dbias, 1e-2, 1e-3),
      );
    }));
  } finally {
    gpu.destroy();
  }
  const failed = checks.filter((c) => !c.ok);
  console.log(JSON.stringify({ checks: checks.length, failed: failed.map((c) => c.name) }));
  return checks;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  verifyMain().then((checks) => {
    if (checks.some((c) => !c.ok)) process.exitCode = 1;
  }).catch((e: unknown) => {
    console.error(`verify: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    process.exitCode = 1;
  });
}
