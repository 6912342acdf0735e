/**
 * Group norm (+ fused ReLU) bandwidth on TGNet's activation shapes (batch 2; GN(min(16, C)) groups).
 * GB/s counts the bytes the op must move at minimum: forward reads x and writes y (2 tensors), backward
 * reads dy and x and writes dx (3 tensors); the kernels move more (the statistics pass reads x once more,
 * the backward reads dy and x twice), so these are effective bandwidths.
 */
import { groupNormBackward, groupNormForward } from '../src/kernels/group-norm.js';
import type { Gpu } from '../src/kernels/runtime/gpu.js';
import { timeGpu } from './timing.js';

/** [C, D, H, W] of the TGNet stages at full size (crop 64x192x192, width 32). */
const SHAPES: [number, number, number, number][] = [[32, 64, 192, 192], [64, 32, 96, 96], [128, 16, 48, 48], [256, 8, 24, 24]];

export interface GroupNormBenchRow {
  shape: string;
  fwdMs: number;
  bwdMs: number;
  fwdGBs: number;
  bwdGBs: number;
}

function fillRandom(gpu: Gpu, buffer: GPUBuffer, n: number, seed: number): void {
  const block = new Float32Array(Math.min(n, 1 << 22));
  let a = seed >>> 0;
  for (let i = 0; i < block.length; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    block[i] = a / 2 ** 31 - 1;
  }
  for (let off = 0; off < n; off += block.length) {
    const len = Math.min(block.length, n - off);
    gpu.write(buffer, len === block.length ? block : block.subarray(0, len), off * 4);
  }
}

export async function benchGroupNorm(gpu: Gpu, { scale }: { scale: number }): Promise<GroupNormBenchRow[]> {
  const rows: GroupNormBenchRow[] = [];
  for (const [C, D0, H0, W0] of SHAPES) {
    const [D, H, W] = [D0, H0, W0].map((d) => Math.max(1, Math.round(d * scale)));
    const shape = [2, C, D, H, W];
    const G = Math.min(16, C);
    const n = 2 * C * D * H * W;
    const big = [n, n, n, n].map(() => gpu.pool.acquire(n * 4, 'bench group norm'));
    const small = [C, C, 2 * G, 2 * G, C, C].map((k) => gpu.pool.acquire(k * 4, 'bench group norm'));
    try {
      const [x, y, dy, dx] = big;
      const [w, b, mean, rstd, dw, db] = small;
      fillRandom(gpu, x, n, 1);
      fillRandom(gpu, dy, n, 2);
      gpu.write(w, new Float32Array(C).fill(1));
      gpu.write(b, new Float32Array(C).fill(0.1));
      const iterations = n > 1 << 24 ? 5 : 10;
      const fwd = await timeGpu(gpu, () => groupNormForward(gpu, x, shape, G, w, b, y, mean, rstd, { relu: true }), { iterations, warmup: 2 });
      const bwd = await timeGpu(gpu, () => groupNormBackward(gpu, dy, x, shape, G, w, b, mean, rstd, dx, dw, db, { relu: true }), { iterations, warmup: 2 });
      rows.push({
        shape: shape.join('x'),
        fwdMs: fwd.medianMs,
        bwdMs: bwd.medianMs,
        fwdGBs: (2 * n * 4) / (fwd.medianMs * 1e6),
        bwdGBs: (3 * n * 4) / (bwd.medianMs * 1e6),
      });
    } finally {
      for (const buf of [...big, ...small]) gpu.pool.release(buf);
    }
  }
  return rows;
}
