/** GPU timing for benchmarks: tinybench drives the repetitions; each sample ends with a queue sync. */
import { Bench } from 'tinybench';
import type { Gpu } from '../src/kernels/runtime/gpu.js';

export interface Timing {
  /** Median wall time of one sample, in ms. */
  medianMs: number;
  minMs: number;
  samples: number;
}

/**
 * Times `record` (which records GPU work) plus a sync. `repeat` records it that many times per sample so
 * short kernels are not dominated by the submit/sync round trip.
 */
export async function timeGpu(gpu: Gpu, record: () => void, options: { iterations?: number; warmup?: number; repeat?: number } = {}): Promise<Timing> {
  const { iterations = 5, warmup = 1, repeat = 1 } = options;
  const bench = new Bench({ time: 0, iterations, warmupIterations: warmup, warmup: warmup > 0 });
  bench.add('gpu', async () => {
    for (let i = 0; i < repeat; i++) record();
    await gpu.sync();
  });
  await bench.run();
  const r = bench.tasks[0].result;
  if (!r || r.error) throw new Error(`benchmark failed: ${String(r?.error ?? 'no result')}`);
  return { medianMs: (r.latency.p50 ?? r.latency.mean) / repeat, minMs: r.latency.min / repeat, samples: r.latency.samples.length };
}

/** Formats rows as an aligned text table. */
export function table(rows: Record<string, string | number>[]): string {
  if (!rows.length) return '(no rows)';
  const cols = Object.keys(rows[0]);
  const cell = (v: string | number) => (typeof v === 'number' ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3)) : v);
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(cell(r[c] ?? '')).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padStart(widths[i])).join('  ');
  return [line(cols), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(cols.map((c) => String(cell(r[c] ?? '')))))].join('\n');
}
