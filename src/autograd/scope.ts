/**
 * Memory scopes. GPU memory is not garbage-collected, so every tensor created inside `tidy(fn)` is
 * disposed when fn returns, except the tensors fn returns and those passed to `keep`.
 */

/** What a scope needs of a tensor: to dispose it and to know whether it still lives. */
export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

const stack: Set<Disposable>[] = [];

/** Registers a new tensor with the innermost scope (no-op outside scopes). */
export function track(t: Disposable): void {
  stack[stack.length - 1]?.add(t);
}

/** Removes a tensor from every open scope so that it outlives them (parameters, gradients, results). */
export function keep<T extends Disposable>(t: T): T {
  for (const s of stack) s.delete(t);
  return t;
}

/** Collects Disposables in a returned value: a tensor, or arrays / plain objects / Maps of them. */
function collect(value: unknown, out: Set<Disposable>): void {
  if (value === null || typeof value !== 'object') return;
  if (isDisposable(value)) {
    out.add(value);
  } else if (Array.isArray(value)) {
    for (const v of value) collect(v, out);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, out);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out);
  }
}

function isDisposable(v: object): v is Disposable {
  return typeof (v as Disposable).dispose === 'function' && 'isDisposed' in v;
}

/**
 * Runs fn and disposes every tensor it created that it does not return. Returned tensors move to the
 * enclosing scope. Works with async functions too (the scope stays open until the promise settles), but
 * scopes must not interleave: await a tidy before starting another one beside it.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Disposable>();
  stack.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    close(scope, undefined);
    throw e;
  }
  if (result instanceof Promise) {
    return result.then(
      (v) => { close(scope, v); return v; },
      (e) => { close(scope, undefined); throw e; },
    ) as T;
  }
  close(scope, result);
  return result;
}

/** Scopes dropped by `abandonOpenScopes`: their tidy may still finish later, and must then touch nothing else. */
const abandoned = new WeakSet<Set<Disposable>>();

function close(scope: Set<Disposable>, result: unknown): void {
  const kept = new Set<Disposable>();
  collect(result, kept);
  const doomed = [...scope].filter((t) => !kept.has(t) && !t.isDisposed);
  if (abandoned.has(scope)) {
    // Its caller gave up on it (a timed-out test): free what it made, hand nothing to scopes opened since.
    for (const t of doomed) t.dispose();
    return;
  }
  const index = stack.lastIndexOf(scope);
  if (index !== stack.length - 1) {
    // Out of order: take only this scope out, so the scopes opened after it (another flow's) still close
    // normally, instead of popping theirs and breaking every tidy that follows.
    if (index >= 0) stack.splice(index, 1);
    for (const t of doomed) t.dispose();
    throw new Error('tidy: scopes were interleaved (an async tidy overlapped another scope)');
  }
  stack.pop();
  for (const t of doomed) t.dispose();
  const parent = stack[stack.length - 1];
  if (parent) for (const t of kept) if (!t.isDisposed) parent.add(t);
}

/**
 * Drops every open scope and returns how many there were. For test harnesses after a test that timed out while
 * an async tidy was pending: without this its scope would stay open and collect (then dispose) the tensors of the
 * tests that follow. An abandoned tidy that finishes later frees its own tensors and nothing else.
 */
export function abandonOpenScopes(): number {
  const n = stack.length;
  for (const s of stack) abandoned.add(s);
  stack.length = 0;
  return n;
}

/** Depth of open scopes (for tests). */
export function scopeDepth(): number {
  return stack.length;
}
