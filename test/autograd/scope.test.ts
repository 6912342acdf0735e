/** tidy scopes when async tidies overlap or are abandoned (a test that timed out), without GPU tensors. */
import { describe, expect, it } from 'vitest';
import { abandonOpenScopes, scopeDepth, tidy, track, type Disposable } from '../../src/autograd/scope.js';

class Fake implements Disposable {
  isDisposed = false;
  constructor() {
    track(this);
  }
  dispose(): void {
    this.isDisposed = true;
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => { resolve = r; });
  return { promise, resolve };
}

describe('tidy scopes', () => {
  it('an async tidy that finishes out of order fails alone; the scope opened after it still closes normally', async () => {
    const gateA = deferred();
    const gateB = deferred();
    let madeByA: Fake | null = null;
    const a = tidy(async () => {
      madeByA = new Fake();
      await gateA.promise;
    });
    let madeByB: Fake | null = null;
    const b = tidy(async () => {
      madeByB = new Fake();
      await gateB.promise;
      return new Fake();
    });
    expect(scopeDepth()).toBe(2);
    gateA.resolve();
    await expect(a).rejects.toThrow('tidy: scopes were interleaved (an async tidy overlapped another scope)');
    expect(madeByA!.isDisposed).toBe(true);
    expect(scopeDepth()).toBe(1);
    gateB.resolve();
    const kept = await b;
    expect(madeByB!.isDisposed).toBe(true);
    expect(kept.isDisposed).toBe(false);
    expect(scopeDepth()).toBe(0);
    // And the next tidy works as ever.
    expect(tidy(() => new Fake()).isDisposed).toBe(false);
  });

  it('abandoned scopes (a timed-out test) leave later tensors alone and free their own when they finish', async () => {
    const gate = deferred();
    let stuckTensor: Fake | null = null;
    const stuck = tidy(async () => {
      stuckTensor = new Fake();
      await gate.promise;
    });
    expect(abandonOpenScopes()).toBe(1);
    expect(scopeDepth()).toBe(0);
    // The next test: a tensor outside any scope, and a tidy of its own.
    const outside = new Fake();
    const inner = tidy(() => {
      new Fake();
      return new Fake();
    });
    gate.resolve();
    await stuck;
    expect(stuckTensor!.isDisposed).toBe(true);
    expect(outside.isDisposed).toBe(false);
    expect(inner.isDisposed).toBe(false);
    expect(scopeDepth()).toBe(0);
    expect(abandonOpenScopes()).toBe(0);
  });
});
