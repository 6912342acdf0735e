/**
 * `npm run test:browser`: the tests that drive Debian's Chromium (WebGPU on SwiftShader) against the built page and
 * the kernel test page, plus the bundle check. Files are `*.browser-test.ts` so the main suite (`npm test`, which
 * takes `test/**\/*.test.ts`) leaves them out. One worker: the Node side holds a GPU device too.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: ['test/browser/**/*.browser-test.ts'],
    pool: 'forks',
    poolOptions: { forks: { maxForks: 1, minForks: 1 } },
    fileParallelism: false,
    // Hang guards, not speed limits: SwiftShader compiles every pipeline on first use, slowly on a busy machine.
    testTimeout: 900_000,
    hookTimeout: 900_000,
  },
});
