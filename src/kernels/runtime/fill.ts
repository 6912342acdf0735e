/** Deterministic test data for benchmarks and the autotuner, written to a GPU buffer. */
import type { Gpu } from './gpu.js';

/** Writes n values uniform in [-amplitude, amplitude) from a linear congruential sequence seeded by `seed`. */
export function fillUniform(gpu: Gpu, buffer: GPUBuffer, n: number, seed: number, amplitude: number): void {
  // Written in blocks so a big buffer does not need a host array of its size.
  const block = new Float32Array(Math.min(n, 1 << 22));
  let a = seed >>> 0;
  for (let off = 0; off < n; off += block.length) {
    const len = Math.min(block.length, n - off);
    for (let i = 0; i < len; i++) {
      a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
      block[i] = amplitude * (a / 2 ** 31 - 1);
    }
    gpu.write(buffer, len === block.length ? block : block.subarray(0, len), off * 4);
  }
}
