/**
 * The web page (`npm run web`, `npm run build:web`). The page imports the library's TypeScript sources directly
 * (../src), so the dev server may read the repository root. Building fails when any Node built-in module is
 * reachable from the page: the library's browser-safe layers must stay free of node: imports.
 */
import { defineConfig } from 'vite';
import { forbidNodeBuiltins } from './forbid-node-builtins.js';

export default defineConfig({
  root: import.meta.dirname,
  base: './',
  plugins: [forbidNodeBuiltins()],
  server: { host: '127.0.0.1', fs: { allow: ['..'] } },
  preview: { host: '127.0.0.1' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 4096,
    // Slow-plugin warnings measure the machine's load, not the build.
    rolldownOptions: { checks: { bundlerTimings: false } },
  },
});
