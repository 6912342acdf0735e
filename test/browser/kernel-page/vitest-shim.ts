/**
 * The part of vitest's API the kernel test files use (describe, it, hooks, expect and its matchers), for running
 * those same files in a browser page. Registration builds a suite tree; `runRegistered` runs it in order with the
 * hooks around each test, as vitest does for one file. A matcher it lacks fails the test that used it, naming it.
 */
type Fn = () => unknown;

interface TestNode {
  kind: 'test';
  name: string;
  fn: Fn;
  skip: boolean;
}

interface SuiteNode {
  kind: 'suite';
  name: string;
  children: (TestNode | SuiteNode)[];
  beforeAll: Fn[];
  afterAll: Fn[];
  beforeEach: Fn[];
  afterEach: Fn[];
}

const newSuite = (name: string): SuiteNode => ({ kind: 'suite', name, children: [], beforeAll: [], afterAll: [], beforeEach: [], afterEach: [] });

let root = newSuite('');
let current = root;

export interface TestResult {
  name: string;
  ok: boolean;
  skipped: boolean;
  error?: string;
  ms: number;
}

function format(template: string, args: readonly unknown[]): string {
  let i = 0;
  let out = template.replace(/%[sdijfo%]/g, (m) => {
    if (m === '%%') return '%';
    const v = args[i++];
    return m === '%j' || m === '%o' ? JSON.stringify(v) : String(v);
  });
  const first = args[0];
  if (first && typeof first === 'object' && !Array.isArray(first)) {
    out = out.replace(/\$([A-Za-z_]\w*)/g, (m, key: string) => (key in first ? String((first as Record<string, unknown>)[key]) : m));
  }
  return out;
}

function rowArgs(row: unknown): unknown[] {
  return Array.isArray(row) ? row : [row];
}

type DescribeFn = ((name: string, fn: Fn) => void) & {
  each: (table: readonly unknown[]) => (name: string, fn: (...args: never[]) => unknown) => void;
  skip: (name: string, fn: Fn) => void;
};

export const describe: DescribeFn = Object.assign(
  (name: string, fn: Fn) => {
    const suite = newSuite(name);
    current.children.push(suite);
    const parent = current;
    current = suite;
    try {
      const r = fn();
      if (r instanceof Promise) throw new Error(`describe('${name}') got an async function; vitest collects suites synchronously`);
    } finally {
      current = parent;
    }
  },
  {
    each: (table: readonly unknown[]) => (name: string, fn: (...args: never[]) => unknown) => {
      for (const row of table) describe(format(name, rowArgs(row)), () => (fn as (...a: unknown[]) => unknown)(...rowArgs(row)));
    },
    skip: (name: string, fn: Fn) => {
      describe(name, () => {
        const start = current.children.length;
        fn();
        for (const c of current.children.slice(start)) if (c.kind === 'test') c.skip = true;
      });
    },
  },
);

type ItFn = ((name: string, fn: Fn, timeout?: number) => void) & {
  each: (table: readonly unknown[]) => (name: string, fn: (...args: never[]) => unknown, timeout?: number) => void;
  skip: (name: string, fn: Fn) => void;
};

export const it: ItFn = Object.assign(
  (name: string, fn: Fn) => {
    current.children.push({ kind: 'test', name, fn, skip: false });
  },
  {
    each: (table: readonly unknown[]) => (name: string, fn: (...args: never[]) => unknown) => {
      for (const row of table) it(format(name, rowArgs(row)), () => (fn as (...a: unknown[]) => unknown)(...rowArgs(row)));
    },
    skip: (name: string, fn: Fn) => {
      current.children.push({ kind: 'test', name, fn, skip: true });
    },
  },
);
export const test = it;

export const beforeAll = (fn: Fn) => void current.beforeAll.push(fn);
export const afterAll = (fn: Fn) => void current.afterAll.push(fn);
export const beforeEach = (fn: Fn) => void current.beforeEach.push(fn);
export const afterEach = (fn: Fn) => void current.afterEach.push(fn);

// ------------------------------------------------------------------------------------------------
// expect

class AssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AssertionError';
  }
}

function show(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'function') return `[Function ${v.name}]`;
  if (ArrayBuffer.isView(v)) {
    const a = Array.from(v as unknown as ArrayLike<number>);
    return `${v.constructor.name}(${a.length}) [${a.slice(0, 8).join(', ')}${a.length > 8 ? ', …' : ''}]`;
  }
  try {
    const s = JSON.stringify(v);
    return s.length > 200 ? `${s.slice(0, 200)}…` : s;
  } catch {
    return String(v);
  }
}

function deepEqual(a: unknown, b: unknown, strict: boolean): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (strict && Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (ArrayBuffer.isView(a) || ArrayBuffer.isView(b)) {
    if (!ArrayBuffer.isView(a) || !ArrayBuffer.isView(b) || a.constructor !== b.constructor) return false;
    const x = a as unknown as ArrayLike<unknown>;
    const y = b as unknown as ArrayLike<unknown>;
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) return false;
    return true;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (a instanceof Map && b instanceof Map) {
    if (a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || !deepEqual(v, b.get(k), strict)) return false;
    return true;
  }
  if (a instanceof Set && b instanceof Set) return a.size === b.size && [...a].every((v) => b.has(v));
  const ka = Object.keys(a).filter((k) => strict || (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => strict || (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], strict));
}

function thrownMatches(error: unknown, expected: unknown): boolean {
  if (expected === undefined) return true;
  const message = error instanceof Error ? error.message : String(error);
  if (typeof expected === 'string') return message.includes(expected);
  if (expected instanceof RegExp) return expected.test(message);
  if (typeof expected === 'function') return error instanceof (expected as new (...a: never[]) => unknown);
  if (expected instanceof Error) return message === expected.message;
  if (typeof expected === 'object' && expected !== null && 'message' in expected) return message === (expected as { message: unknown }).message;
  return false;
}

type Check = (actual: unknown, ...args: never[]) => [boolean, string];

const MATCHERS: Record<string, Check> = {
  toBe: (a, e: unknown) => [Object.is(a, e), `expected ${show(a)} to be ${show(e)}`],
  toEqual: (a, e: unknown) => [deepEqual(a, e, false), `expected ${show(a)} to equal ${show(e)}`],
  toStrictEqual: (a, e: unknown) => [deepEqual(a, e, true), `expected ${show(a)} to strictly equal ${show(e)}`],
  toBeCloseTo: (a, e: number, digits: number = 2) => [
    typeof a === 'number' && (Math.abs(a - e) < 10 ** -digits / 2 || a === e), `expected ${show(a)} to be close to ${e} (${digits} digits)`,
  ],
  toBeGreaterThan: (a, e: number) => [(a as number) > e, `expected ${show(a)} to be greater than ${e}`],
  toBeGreaterThanOrEqual: (a, e: number) => [(a as number) >= e, `expected ${show(a)} to be >= ${e}`],
  toBeLessThan: (a, e: number) => [(a as number) < e, `expected ${show(a)} to be less than ${e}`],
  toBeLessThanOrEqual: (a, e: number) => [(a as number) <= e, `expected ${show(a)} to be <= ${e}`],
  toBeTruthy: (a) => [Boolean(a), `expected ${show(a)} to be truthy`],
  toBeFalsy: (a) => [!a, `expected ${show(a)} to be falsy`],
  toBeNull: (a) => [a === null, `expected ${show(a)} to be null`],
  toBeUndefined: (a) => [a === undefined, `expected ${show(a)} to be undefined`],
  toBeDefined: (a) => [a !== undefined, `expected ${show(a)} to be defined`],
  toBeNaN: (a) => [Number.isNaN(a), `expected ${show(a)} to be NaN`],
  toBeInstanceOf: (a, e: new (...x: never[]) => unknown) => [a instanceof e, `expected ${show(a)} to be an instance of ${e.name}`],
  toContain: (a, e: unknown) => [
    typeof a === 'string' ? a.includes(String(e)) : Array.from(a as ArrayLike<unknown>).includes(e), `expected ${show(a)} to contain ${show(e)}`,
  ],
  toHaveLength: (a, n: number) => [(a as { length: number })?.length === n, `expected ${show(a)} to have length ${n}`],
  toMatch: (a, e: string | RegExp) => [typeof e === 'string' ? String(a).includes(e) : e.test(String(a)), `expected ${show(a)} to match ${String(e)}`],
  toThrow: (a, e?: unknown) => {
    if (typeof a !== 'function') return [false, `expected a function, got ${show(a)}`];
    try {
      (a as () => unknown)();
    } catch (error) {
      return [thrownMatches(error, e), `expected the error ${show(error instanceof Error ? error.message : error)} to match ${show(e instanceof RegExp ? String(e) : e)}`];
    }
    return [false, `expected the function to throw${e === undefined ? '' : ` ${show(e instanceof RegExp ? String(e) : e)}`}`];
  },
};
MATCHERS.toThrowError = MATCHERS.toThrow;

type Matchers = Record<string, (...args: unknown[]) => unknown> & { not: Matchers; resolves: Matchers; rejects: Matchers };

function matchers(actual: unknown, message: string | undefined, negate: boolean, mode: 'sync' | 'resolves' | 'rejects'): Matchers {
  return new Proxy({} as Matchers, {
    get(_, key: string) {
      if (key === 'not') return matchers(actual, message, !negate, mode);
      if (key === 'resolves') return matchers(actual, message, negate, 'resolves');
      if (key === 'rejects') return matchers(actual, message, negate, 'rejects');
      if (key === 'then') return undefined;
      const check = MATCHERS[key];
      if (!check) {
        return () => {
          throw new AssertionError(`expect(...).${key} is not implemented by the browser harness (test/browser/kernel-page/vitest-shim.ts)`);
        };
      }
      const apply = (value: unknown, args: unknown[]) => {
        const [pass, text] = (check as (a: unknown, ...r: unknown[]) => [boolean, string])(value, ...args);
        if (pass === negate) throw new AssertionError(`${message ? `${message}: ` : ''}${negate ? 'not: ' : ''}${text}`);
      };
      return (...args: unknown[]) => {
        if (mode === 'sync') return apply(actual, args);
        return (actual as Promise<unknown>).then(
          (value) => {
            if (mode === 'rejects') throw new AssertionError(`expected the promise to reject, it resolved to ${show(value)}`);
            apply(value, args);
          },
          (error) => {
            if (mode === 'resolves') throw new AssertionError(`expected the promise to resolve, it rejected with ${show(error instanceof Error ? error.message : error)}`);
            // rejects.toThrow(x) checks the rejection reason as the thrown error.
            apply(key.startsWith('toThrow') ? () => { throw error; } : error, args);
          },
        );
      };
    },
  });
}

type Expect = ((actual: unknown, message?: string) => Matchers) & { fail: (message: string) => never };

export const expect: Expect = Object.assign((actual: unknown, message?: string) => matchers(actual, message, false, 'sync'), {
  fail: (message: string): never => {
    throw new AssertionError(message);
  },
});

// ------------------------------------------------------------------------------------------------
// running

/** Starts collecting a new file's tests. */
export function resetRegistry(): void {
  root = newSuite('');
  current = root;
}

async function runFns(fns: Fn[]): Promise<void> {
  for (const f of fns) await f();
}

/**
 * Runs the collected tests in order (hooks as vitest runs them); reports each as it ends. Tests whose full name
 * matches `exclude` are reported as skipped without running.
 */
export async function runRegistered(exclude: RegExp | null, onResult: (r: TestResult) => void): Promise<void> {
  const run = async (suite: SuiteNode, path: string[], eachBefore: Fn[][], eachAfter: Fn[][]): Promise<void> => {
    const names = suite.name ? [...path, suite.name] : path;
    const before = [...eachBefore, suite.beforeEach];
    const after = [suite.afterEach, ...eachAfter];
    let setupError: unknown = null;
    try {
      await runFns(suite.beforeAll);
    } catch (e) {
      setupError = e;
    }
    for (const child of suite.children) {
      if (child.kind === 'suite') {
        await run(child, names, before, after);
        continue;
      }
      const name = [...names, child.name].join(' > ');
      if (child.skip || exclude?.test(name)) {
        onResult({ name, ok: true, skipped: true, ms: 0 });
        continue;
      }
      const t0 = performance.now();
      let error: unknown = setupError;
      if (!error) {
        try {
          for (const fns of before) await runFns(fns);
          await child.fn();
        } catch (e) {
          error = e;
        }
        try {
          for (const fns of after) await runFns(fns);
        } catch (e) {
          error ??= e;
        }
      }
      onResult({
        name, ok: !error, skipped: false, ms: performance.now() - t0,
        ...(error ? { error: error instanceof Error ? `${error.message}\n${error.stack ?? ''}` : String(error) } : {}),
      });
    }
    try {
      await runFns(suite.afterAll);
    } catch (e) {
      onResult({ name: `${names.join(' > ') || '(file)'} > afterAll`, ok: false, skipped: false, ms: 0, error: String(e) });
    }
  };
  await run(root, [], [], []);
}
