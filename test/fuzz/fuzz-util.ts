/**
 * Shared pieces of the seeded fuzz suites: a small PRNG, byte and JSON mutators, and the oracle every case must
 * satisfy: the reader either returns a result that passes the format's own checks, or throws an Error whose
 * message names the source and the field; it never throws a non-Error, and never allocates far more than the
 * input could hold. Every case has its own seed, printed on failure with its family, so
 * `FUZZ_SEED=<seed> FUZZ_CASES=1 npx vitest run test/fuzz -t "<family>"` replays exactly that case.
 * `FUZZ_CASES=<n>` runs n cases in every family, for a longer local run.
 */
import { expect } from 'vitest';

/** mulberry32 with a seed mix, as in src/data/random.ts, kept separate so the fuzz never depends on src. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    let h = (seed ^ 0x9e3779b9) >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    this.state = (h ^ (h >>> 16)) | 0;
  }

  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [low, high]. */
  int(low: number, high: number): number {
    return low + Math.floor(this.next() * (high - low + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** Cases per family: the given default in CI, FUZZ_CASES to override. */
export function caseCount(fallback: number): number {
  const env = process.env.FUZZ_CASES;
  return env ? Math.max(1, Number.parseInt(env, 10)) : fallback;
}

/** The seed of case `index` of a family; FUZZ_SEED pins case 0 to a reported seed. */
export function caseSeed(family: number, index: number): number {
  const pinned = process.env.FUZZ_SEED;
  if (pinned && index === 0) return Number.parseInt(pinned, 10);
  return (family * 1_000_003 + index * 7919) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Byte mutators

export function truncate(rng: Rng, bytes: Uint8Array): Uint8Array {
  return bytes.slice(0, rng.int(0, bytes.length - 1));
}

/** 1..8 random byte flips; `hot` (a byte range) receives most of them, where the structure lives. */
export function flipBytes(rng: Rng, bytes: Uint8Array, hot?: [number, number]): Uint8Array {
  const out = bytes.slice();
  const n = rng.int(1, 8);
  for (let k = 0; k < n; k++) {
    const inHot = hot && rng.chance(0.7);
    const i = inHot ? rng.int(hot[0], Math.min(hot[1], out.length) - 1) : rng.int(0, out.length - 1);
    out[i] = rng.chance(0.5) ? out[i] ^ (1 << rng.int(0, 7)) : rng.int(0, 255);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// JSON mutators

/** Values a careless or hostile writer might put anywhere. */
export function garbage(rng: Rng, depth = 0): unknown {
  const nest = (): unknown => {
    // Deep nesting: a parser or walker that recurses must not blow the stack.
    let v: unknown = rng.pick([0, 'x', null]);
    for (let i = rng.int(1, 2000); i > 0; i--) v = rng.chance(0.5) ? [v] : { a: v };
    return v;
  };
  const choices: (() => unknown)[] = [
    () => null, () => true, () => 0, () => -1, () => 1e308, () => -1e308, () => 2 ** 53 + 2, () => 1.5, () => -0,
    () => '', () => 'x', () => '\u0000', () => 'toString', () => '__proto__', () => 'constructor', () => ' '.repeat(rng.int(1, 5)),
    () => 'a'.repeat(rng.int(100, 5000)), () => [], () => ({}), () => [1, 'a', null],
    () => (depth < 2 ? { nested: garbage(rng, depth + 1), more: [garbage(rng, depth + 1)] } : {}),
    nest,
  ];
  return rng.pick(choices)();
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Every path (array of keys/indices) inside a JSON value, the root included. */
function paths(value: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(prefix);
  if (Array.isArray(value)) value.forEach((v, i) => paths(v, [...prefix, i], out));
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) paths(v, [...prefix, k], out);
  return out;
}

/**
 * One structural edit of a JSON value: replace a node with garbage, delete it, duplicate an array element,
 * or retype a leaf (number <-> string).
 */
export function mutateJson(rng: Rng, value: unknown): unknown {
  const root = structuredClone(value) as Json;
  const all = paths(root);
  const path = rng.pick(all);
  if (path.length === 0) return rng.chance(0.5) ? garbage(rng) : root;
  const parent = path.slice(0, -1).reduce<Json>((node, key) => (node as Record<string | number, Json>)[key], root) as Record<string | number, Json> | Json[];
  const key = path[path.length - 1];
  const current = (parent as Record<string | number, Json>)[key];
  const op = rng.int(0, 3);
  if (op === 0) {
    (parent as Record<string | number, unknown>)[key] = garbage(rng);
  } else if (op === 1) {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete (parent as Record<string, Json>)[key as string];
  } else if (op === 2 && Array.isArray(parent)) {
    parent.splice(key as number, 0, structuredClone(current));
  } else {
    (parent as Record<string | number, unknown>)[key] =
      typeof current === 'number' ? String(current) : typeof current === 'string' ? (Number(current) || current.length) : garbage(rng);
  }
  return root;
}

// ---------------------------------------------------------------------------------------------
// The oracle

export interface FuzzCase {
  family: string;
  seed: number;
  /** What the mutation did, for the failure report. */
  what: string;
  /** The source name the reader was given; its errors must contain it. */
  source: string;
  /** Size of the input, to bound what the reader may allocate. */
  inputBytes: number;
}

export interface Outcome {
  read: number;
  refused: number;
  /** Slowest case, ms (reported, not asserted: wall-clock speed must not decide a test). */
  slowestMs: number;
  failures: string[];
}

export function newOutcome(): Outcome {
  return { read: 0, refused: 0, slowestMs: 0, failures: [] };
}

const ALLOCATION_SLACK = 64 << 20;

/**
 * Runs one case: `read` returns the parsed result (then `check` returns a complaint or undefined) or throws; a
 * thrown value must be an Error naming `c.source`, matching `field`, and not matching `unhelpful` (signs that the
 * reader computed with a value it never checked).
 */
export async function runCase<T>(
  c: FuzzCase, outcome: Outcome, read: () => T | Promise<T>, check: (result: T) => string | undefined, field: RegExp,
  unhelpful = /\bundefined\b|\[object Object\]/,
): Promise<void> {
  const buffersBefore = process.memoryUsage().arrayBuffers;
  const t0 = performance.now();
  let problem: string | undefined;
  try {
    const result = await read();
    problem = check(result);
    if (!problem) outcome.read++;
  } catch (err) {
    if (!(err instanceof Error)) problem = `threw a non-Error: ${String(err)}`;
    else if (!err.message.includes(c.source)) problem = `error does not name the source ${JSON.stringify(c.source)}: ${err.message}`;
    else if (!field.test(err.message)) problem = `error does not name a field (${field}): ${err.message}`;
    else if (unhelpful.test(err.message)) problem = `error leaks an internal value (${unhelpful}): ${err.message}`;
    else outcome.refused++;
  }
  outcome.slowestMs = Math.max(outcome.slowestMs, performance.now() - t0);
  // A reader that trusts a size field allocates before it fails; the extra is still counted here.
  const grown = process.memoryUsage().arrayBuffers - buffersBefore;
  if (!problem && grown > ALLOCATION_SLACK + 64 * c.inputBytes) problem = `allocated ${grown} bytes for a ${c.inputBytes}-byte input`;
  if (problem) outcome.failures.push(`${c.family} seed ${c.seed} (${c.what}): ${problem.slice(0, 400)}`);
}

/** Fails with every failing case (seed, mutation, complaint) listed; prints the counts for the report. */
export function expectClean(label: string, outcome: Outcome, cases: number): void {
  console.log(`fuzz ${label}: ${cases} cases, ${outcome.read} read, ${outcome.refused} refused, slowest ${outcome.slowestMs.toFixed(1)} ms`);
  expect(outcome.failures).toEqual([]);
  expect(outcome.read + outcome.refused).toBe(cases);
}
