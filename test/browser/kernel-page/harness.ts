/**
 * Runs kernel test files from test/kernels in this page, on the browser's WebGPU, with the vitest API shimmed
 * (vitest-shim.ts). Which files: the conv3d, group norm, upsample and partial-label loss families (the kernels a
 * TGNet training step leans on), found by name so a file split or a conv3d folder is picked up. Results go to
 * `window.__kernelTests` for the Node side (test/browser/kernels.browser-test.ts) and to the page.
 */
/// <reference types="vite/client" />
import { resetRegistry, runRegistered, type TestResult } from './vitest-shim.js';

const files = import.meta.glob([
  '../../kernels/conv3d*.test.ts', '../../kernels/conv3d/**/*.test.ts',
  '../../kernels/group-norm*.test.ts', '../../kernels/upsample*.test.ts', '../../kernels/partial-label-loss*.test.ts',
]);

interface FileResult extends TestResult {
  file: string;
}

const repoPath = (p: string) => p.replace(/^(\.\.\/)+/, 'test/');
// ?file=test/kernels/x.test.ts runs that file alone (the Node side loads one page per file).
const only = new URLSearchParams(location.search).getAll('file');
const selected = Object.entries(files).filter(([p]) => only.length === 0 || only.includes(repoPath(p)));
// ?exclude=REGEX leaves out the tests whose full name matches (reported as excluded, never run).
const excludeParam = new URLSearchParams(location.search).get('exclude');
const exclude = excludeParam ? new RegExp(excludeParam) : null;

const state = {
  files: Object.keys(files).map(repoPath),
  results: [] as FileResult[],
  current: '',
  done: false,
  error: null as string | null,
};
(window as unknown as { __kernelTests: typeof state }).__kernelTests = state;
const log = document.getElementById('log')!;

async function main(): Promise<void> {
  for (const [path, load] of selected) {
    const file = repoPath(path);
    state.current = file;
    resetRegistry();
    try {
      await load();
    } catch (e) {
      state.results.push({ file, name: '(loading the file)', ok: false, skipped: false, ms: 0, error: String(e) });
      continue;
    }
    await runRegistered(exclude, (r) => {
      state.results.push({ file, ...r });
      log.textContent += `${r.ok ? (r.skipped ? 'excl' : 'ok  ') : 'FAIL'} ${file} > ${r.name} (${Math.round(r.ms)} ms)${r.error ? `\n     ${r.error}` : ''}\n`;
    });
  }
}

main().catch((e) => {
  state.error = String(e);
}).finally(() => {
  state.done = true;
});
