/**
 * conv3d forward / data gradient / weight gradient on TGNet's 3x3x3 layer shapes (batch 2, crop 64x192x192
 * at width 32; spatial sizes multiplied by `scale`). TFLOP/s counts 2*N*Cout*Do*Ho*Wo*Cin*k^3 per pass,
 * the same for all three passes (the stride-2 data gradient's skipped zero taps are not counted as work).
 */
import {
  conv3dBackwardData, conv3dBackwardWeight, conv3dForward, conv3dOutputShape, type Conv3dShape,
} from '../src/kernels/conv3d/index.js';
import type { Gpu } from '../src/kernels/runtime/gpu.js';
import { fillUniform } from '../src/kernels/runtime/fill.js';
import { timeGpu } from './timing.js';

/** [N, Cin, Cout, D, H, W, stride] at full size, as bench/torch/tgnet_torch.py's conv_bench. */
export const CONV3D_BENCH_SHAPES: [number, number, number, number, number, number, number][] = [
  [2, 32, 32, 64, 192, 192, 1],
  [2, 64, 64, 32, 96, 96, 1],
  [2, 128, 128, 16, 48, 48, 1],
  [2, 256, 256, 8, 24, 24, 1],
  [2, 32, 64, 64, 192, 192, 2],
];

export interface Conv3dBenchRow {
  shape: string;
  fwdMs: number;
  dgradMs: number;
  wgradMs: number;
  fwdTflops: number;
  dgradTflops: number;
  wgradTflops: number;
}


export async function benchConv3d(
  gpu: Gpu, { scale, iterations }: { scale: number; iterations?: number },
): Promise<Conv3dBenchRow[]> {
  const rows: Conv3dBenchRow[] = [];
  for (const [N, Cin, Cout, D0, H0, W0, s] of CONV3D_BENCH_SHAPES) {
    const [D, H, W] = [D0, H0, W0].map((d) => Math.max(1, Math.round(d * scale)));
    const shape: Conv3dShape = { x: [N, Cin, D, H, W], w: [Cout, Cin, 3, 3, 3], stride: s, padding: 1 };
    const out = conv3dOutputShape(shape.x, shape.w, shape);
    const nx = N * Cin * D * H * W;
    const ny = out.reduce((a, b) => a * b, 1);
    const nw = Cout * Cin * 27;
    const flops = 2 * ny * Cin * 27;
    const bufs = [nx, nw, ny, ny, nx, nw].map((n) => gpu.pool.acquire(n * 4, 'bench conv3d'));
    try {
      const [x, w, y, gy, gx, gw] = bufs;
      fillUniform(gpu, x, nx, 1, 1);
      fillUniform(gpu, w, nw, 2, 1 / Math.sqrt(Cin * 27));
      fillUniform(gpu, gy, ny, 3, 1);
      const it = iterations ?? (flops > 1e11 ? 3 : 5);
      const opts = { iterations: it, warmup: 1 };
      const fwd = await timeGpu(gpu, () => conv3dForward(gpu, x, w, null, y, shape), opts);
      const dgrad = await timeGpu(gpu, () => conv3dBackwardData(gpu, gy, w, gx, shape), opts);
      const wgrad = await timeGpu(gpu, () => conv3dBackwardWeight(gpu, x, gy, gw, shape), opts);
      const tf = (ms: number) => flops / (ms * 1e9);
      rows.push({
        shape: `${N}x${Cin}->${Cout} ${D}x${H}x${W}${s > 1 ? ` s${s}` : ''}`,
        fwdMs: fwd.medianMs, dgradMs: dgrad.medianMs, wgradMs: wgrad.medianMs,
        fwdTflops: tf(fwd.medianMs), dgradTflops: tf(dgrad.medianMs), wgradTflops: tf(wgrad.medianMs),
      });
    } finally {
      for (const b of bufs) gpu.pool.release(b);
    }
  }
  return rows;
}
