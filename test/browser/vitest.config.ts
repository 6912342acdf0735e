/**
 * `npm run test:browser`: the tests that drive Debian's Chromium (WebGPU on SwiftShader) against the built page and
 * the kernel test page, plus the bundle check. Files are `*.browser-test.ts` so the main suite (`npm test`, which
 * takes `test/**\/*.test.ts`) leaves them out.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: ['test/browser/**/*.browser-test.ts'],
    // Two files at once: each drives its own Chromium, whose GPU process compiles SwiftShader pipelines on one
    // thread, so the page test and the kernel page share a 2-core machine with little loss (4.3 min -> ~2.5 min).
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    // Hang guards, not speed limits: SwiftShader compiles every pipeline on first use, slowly on a busy machine.
    testTimeout: 900_000,
    hookTimeout: 900_000,
  },
});
