/** Builds the kernel test page: test/kernels files with `vitest` and `node:fs` replaced by browser shims. */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  root: here('.'),
  base: './',
  resolve: {
    alias: [
      { find: /^vitest$/, replacement: here('./vitest-shim.ts') },
      { find: /^(node:)?fs$/, replacement: here('./fs-shim.ts') },
    ],
  },
  build: { outDir: here('../../../tmp/browser-tests/kernel-page'), emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 8192, assetsInlineLimit: 0 },
  logLevel: 'warn',
});
