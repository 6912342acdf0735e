import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One GPU device per worker, one worker: lavapipe compiles each shader on its first dispatch, inside calls
    // that block the worker's thread (a small TGNet's first step: ~35 s with a cold shader cache on two idle
    // cores). Two workers compiling at once on two cores doubled that past vitest's fixed 60 s worker RPC
    // timeout, which fails the run although every test passes.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 1, minForks: 1 } },
    // A hang guard, not a speed limit: with a cold shader cache on a busy 2-core machine, the first step of a
    // small TGNet compiles ~85 pipelines (measured 123 s under load, 1.6 s warm), so no test may assume speed.
    testTimeout: 600_000,
    // Progress reports acknowledged late because a shader compile held the thread are not failures (see the file).
    setupFiles: ['test/setup/slow-acknowledgements.ts', 'test/setup/pipeline-log.ts'],
    hookTimeout: 600_000,
  },
});
