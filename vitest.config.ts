import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One GPU device per worker; software Vulkan is CPU-heavy, so few workers run faster than many.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    // A hang guard, not a speed limit: with a cold shader cache on a busy 2-core machine, the first step of a
    // small TGNet compiles ~85 pipelines (measured 123 s under load, 1.6 s warm), so no test may assume speed.
    testTimeout: 600_000,
    hookTimeout: 600_000,
  },
});
