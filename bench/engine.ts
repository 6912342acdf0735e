/** Engine benchmarks: element-wise bandwidth, per-dispatch overhead, reductions, matmul. */
import { binary, unary } from '../src/kernels/elementwise.js';
import { matmul, pickMatmulTile } from '../src/kernels/matmul.js';
import { reduce } from '../src/kernels/reduce.js';
import type { Gpu } from '../src/kernels/runtime/gpu.js';
import { timeGpu } from './timing.js';

export interface EngineBenchOptions {
  /** Largest square matmul size (4096 on a real GPU, 2048 on a software one). */
  maxMatmul: number;
  /** Element count of the bandwidth tests. */
  elements: number;
  iterations: number;
}

function withBuffers<T>(gpu: Gpu, sizes: number[], fn: (bufs: GPUBuffer[]) => Promise<T>): Promise<T> {
  const bufs = sizes.map((n) => gpu.pool.acquire(n * 4, 'bench'));
  return fn(bufs).finally(() => { for (const b of bufs) gpu.pool.release(b); });
}

export async function benchMatmul(gpu: Gpu, o: EngineBenchOptions): Promise<Record<string, number | string>[]> {
  const rows: Record<string, number | string>[] = [];
  const tile = pickMatmulTile(gpu);
  for (let n = 256; n <= o.maxMatmul; n *= 2) {
    const row = await withBuffers(gpu, [n * n, n * n, n * n], async ([a, b, c]) => {
      unary(gpu, 'fill', null, a, n * n, 0.5);
      unary(gpu, 'fill', null, b, n * n, 0.25);
      const t = await timeGpu(gpu, () => matmul(gpu, a, b, c, { batch: 1, m: n, n, k: n }), { iterations: o.iterations, repeat: n <= 512 ? 4 : 1 });
      return { size: n, ms: t.medianMs, gflops: (2 * n * n * n) / (t.medianMs * 1e6) };
    });
    rows.push({ ...row, tile: tile.name });
  }
  return rows;
}

export async function benchElementwise(gpu: Gpu, o: EngineBenchOptions): Promise<Record<string, number | string>[]> {
  const n = o.elements;
  return withBuffers(gpu, [n, n, n], async ([a, b, c]) => {
    unary(gpu, 'fill', null, a, n, 1);
    unary(gpu, 'fill', null, b, n, 2);
    const rows: Record<string, number | string>[] = [];
    const copy = await timeGpu(gpu, () => gpu.copy(a, 0, c, 0, n * 4), { iterations: o.iterations, repeat: 4 });
    rows.push({ op: 'device copy', elements: n, ms: copy.medianMs, gbs: (2 * n * 4) / (copy.medianMs * 1e6) });
    const relu = await timeGpu(gpu, () => unary(gpu, 'relu', a, c, n), { iterations: o.iterations, repeat: 4 });
    rows.push({ op: 'relu', elements: n, ms: relu.medianMs, gbs: (2 * n * 4) / (relu.medianMs * 1e6) });
    const add = await timeGpu(gpu, () => binary(gpu, 'add', a, [n], b, [n], c), { iterations: o.iterations, repeat: 4 });
    rows.push({ op: 'add', elements: n, ms: add.medianMs, gbs: (3 * n * 4) / (add.medianMs * 1e6) });
    return rows;
  });
}

export async function benchDispatch(gpu: Gpu, o: EngineBenchOptions): Promise<Record<string, number | string>> {
  return withBuffers(gpu, [256, 256], async ([a, b]) => {
    const count = 1000;
    const t = await timeGpu(gpu, () => { for (let i = 0; i < count; i++) unary(gpu, 'addScalar', a, b, 64, 1); }, { iterations: o.iterations });
    return { dispatches: count, totalMs: t.medianMs, usPerDispatch: (t.medianMs * 1000) / count };
  });
}

export async function benchReduce(gpu: Gpu, o: EngineBenchOptions): Promise<Record<string, number | string>[]> {
  const n = o.elements;
  const rows: Record<string, number | string>[] = [];
  const cases: { name: string; shape: number[]; axes: number[]; outN: number }[] = [
    { name: 'sum all', shape: [n], axes: [0], outN: 1 },
    { name: 'sum last axis', shape: [n / 1024, 1024], axes: [1], outN: n / 1024 },
    { name: 'sum first axis', shape: [1024, n / 1024], axes: [0], outN: n / 1024 },
  ];
  for (const c of cases) {
    const row = await withBuffers(gpu, [n, Math.max(c.outN, 64)], async ([x, y]) => {
      unary(gpu, 'fill', null, x, n, 1);
      const t = await timeGpu(gpu, () => reduce(gpu, 'sum', x, c.shape, c.axes, y), { iterations: o.iterations, repeat: 2 });
      return { op: c.name, shape: `[${c.shape.join(',')}]`, ms: t.medianMs, gbs: (n * 4) / (t.medianMs * 1e6) };
    });
    rows.push(row);
  }
  return rows;
}
