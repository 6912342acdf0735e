/** `npm run build:lib`: the browser entry (src/browser.ts) as one ES module, dist/browser/tgnet.js. */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import { forbidNodeBuiltins } from './forbid-node-builtins.js';

const repo = (p: string) => fileURLToPath(new URL(`../${p}`, import.meta.url));

export default defineConfig({
  root: repo('.'),
  plugins: [forbidNodeBuiltins()],
  build: {
    lib: { entry: repo('src/browser.ts'), formats: ['es'], fileName: () => 'tgnet.js' },
    outDir: repo('dist/browser'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    // fflate and fast-png go into the bundle: one file a page can import with no bundler of its own.
    rollupOptions: { external: [] },
  },
  logLevel: 'warn',
});
