/**
 * Small seeded PRNG for reproducible phantoms, splits and augmentation.
 * mulberry32: 32-bit state, fast, good enough statistically for sampling crops and noise;
 * not for cryptography.
 */
export class Random {
  private state: number;

  constructor(seed: number) {
    if (!Number.isFinite(seed)) {
      throw new Error(`Random: seed must be a finite number, got ${seed}`);
    }
    // Mix the seed once so that nearby seeds (0, 1, 2, ...) give unrelated streams.
    this.state = hashSeed(Math.floor(seed));
  }

  /**
   * A generator that continues from `state` (a value `state` returned): the rest of its stream is exactly
   * what the saved generator would have drawn, which is how a resumed training run replays its crops.
   */
  static fromState(state: number): Random {
    if (!Number.isSafeInteger(state) || state < -0x80000000 || state > 0x7fffffff) {
      throw new Error(`Random.fromState: state is ${state}; expected a 32-bit integer saved from Random.currentState`);
    }
    const r = new Random(0);
    r.state = state;
    return r;
  }

  /** The whole generator state (mulberry32 has one 32-bit word): `Random.fromState(r.currentState)` continues r's stream. */
  get currentState(): number {
    return this.state;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform in [low, high). */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.next();
  }

  /** Integer uniform in [low, high] inclusive. */
  int(low: number, high: number): number {
    if (high < low) throw new Error(`Random.int: high ${high} is below low ${low}`);
    return low + Math.floor(this.next() * (high - low + 1));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** Standard normal via Box-Muller (one value per call; simplicity beats caching the pair here). */
  normal(mean = 0, std = 1): number {
    let u = this.next();
    while (u <= 1e-12) u = this.next();
    const v = this.next();
    return mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /**
   * Moves the generator past `count` normal() calls without computing them (the same draws, rejections
   * included), so a planner can hand the real draws to another thread and carry on with the stream.
   */
  skipNormals(count: number): void {
    if (!Number.isInteger(count) || count < 0) throw new Error(`Random.skipNormals: count is ${count}; expected a non-negative integer`);
    for (let i = 0; i < count; i++) {
      while (this.next() <= 1e-12);
      this.next();
    }
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Random.pick: cannot pick from an empty list');
    return items[Math.floor(this.next() * items.length)];
  }

  /** Fisher-Yates shuffle in place; returns the same array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }

  /** A fresh generator whose stream depends on this one's, for independent sub-streams. */
  fork(): Random {
    return new Random(Math.floor(this.next() * 4294967296));
  }
}

/** splitmix32-style finaliser. */
export function hashSeed(seed: number): number {
  let h = (seed | 0) ^ 0x9e3779b9;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}
