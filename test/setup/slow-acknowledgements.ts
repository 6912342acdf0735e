/**
 * A vitest setup file: a late acknowledgement of a progress report is not a failure.
 *
 * lavapipe compiles each shader inside the synchronous WebGPU call that first needs it, so a test's first
 * TGNet step can hold the worker's thread for a minute or more on a busy machine with a cold shader cache.
 * The worker's progress reports (`onTaskUpdate`) are sent to vitest's main process at once, but their
 * acknowledgement can only be read once the thread is free again, and vitest's fixed 60 s RPC timer fires
 * first: the run then fails with "[vitest-worker]: Timeout calling onTaskUpdate" although every report arrived
 * and every test passed. Only that timeout is absorbed here; every other RPC error still fails the run.
 */
interface WorkerRpc {
  onTaskUpdate?: (...args: unknown[]) => Promise<unknown>;
}

const state = (globalThis as { __vitest_worker__?: { rpc?: WorkerRpc } }).__vitest_worker__;
const rpc = state?.rpc;
if (!state || !rpc || typeof rpc.onTaskUpdate !== 'function') {
  throw new Error('test/setup/slow-acknowledgements.ts: vitest\'s worker state has no rpc.onTaskUpdate; this vitest version needs the setup file revisited');
}
const TIMEOUT = '[vitest-worker]: Timeout calling "onTaskUpdate"';
state.rpc = new Proxy(rpc, {
  get(target, property, receiver) {
    const value: unknown = Reflect.get(target, property, receiver);
    if (property !== 'onTaskUpdate' || typeof value !== 'function') return value;
    return (...args: unknown[]) => (value as (...a: unknown[]) => Promise<unknown>).apply(target, args).catch((error: unknown) => {
      if (error instanceof Error && error.message.startsWith(TIMEOUT)) return undefined;
      throw error;
    });
  },
});
