/** Seeded random numbers for initialisation and tests (mulberry32: tiny, fast, reproducible). */

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n uniform values in [lo, hi). */
export function rngUniform(n: number, seed: number, lo = 0, hi = 1): Float32Array {
  const r = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** n standard normal values (Box-Muller). */
export function rngNormal(n: number, seed: number, mean = 0, std = 1): Float32Array {
  const r = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(r(), 1e-12);
    const v = r();
    const m = Math.sqrt(-2 * Math.log(u));
    out[i] = mean + std * m * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = mean + std * m * Math.sin(2 * Math.PI * v);
  }
  return out;
}
