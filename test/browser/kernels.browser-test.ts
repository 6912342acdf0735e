/**
 * The kernel tests of the conv3d, group norm, upsample and partial-label loss families, run in Chromium on its
 * WebGPU (SwiftShader) by the kernel test page (test/browser/kernel-page: the same test files, with vitest's API
 * shimmed), one page per file so a lost device cannot spill into the next file.
 *
 * Left to the Node suite (listed, counted, never silently more): the cases that need Node's file system, each with
 * its reason in LEFT_TO_NODE. (The kernel-5 stride-3 gradients and the 128x128 GEMM tile were here until their
 * shaders stopped short-circuiting: SwiftShader compiled them for minutes, now in under a second.)
 */
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestResult } from './kernel-page/vitest-shim.js';
import { launchChromium } from './chromium.js';
import { serveStatic, type StaticServer } from './static-server.js';

const repo = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));

const LEFT_TO_NODE: { pattern: string; why: string }[] = [
  {
    pattern: 'writes the cache file',
    why: 'the conv3d tuning cache file is written with Node\'s fs in a temporary folder; a page keeps its choices in memory (the other autotune cases run here)',
  },
  {
    pattern: 'corrupt file',
    why: 'reads and writes tuning cache files with Node\'s fs',
  },
];
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const EXCLUDE = LEFT_TO_NODE.map((l) => escape(l.pattern)).join('|');

/** The same families the page's glob takes (harness.ts), found here so each file is one vitest test. */
function kernelTestFiles(): string[] {
  const dir = repo('test/kernels');
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const name of readdirSync(d).sort()) {
      const full = `${d}/${name}`;
      if (statSync(full).isDirectory()) {
        if (rel === '' && name === 'conv3d') walk(full, `${name}/`);
      } else if (/^(conv3d|group-norm|upsample|partial-label-loss).*\.test\.ts$/.test(name) || (rel.startsWith('conv3d/') && name.endsWith('.test.ts'))) {
        out.push(`test/kernels/${rel}${name}`);
      }
    }
  };
  walk(dir, '');
  return out;
}

const FILES = kernelTestFiles();
let browser: Browser;
let server: StaticServer;

beforeAll(async () => {
  server = await serveStatic(repo('tmp/browser-tests/kernel-page'));
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

interface PageState {
  files: string[];
  results: (TestResult & { file: string })[];
  done: boolean;
  error: string | null;
}

describe('kernel tests in Chromium (WebGPU on SwiftShader)', () => {
  it('finds the four kernel families', () => {
    for (const family of ['conv3d', 'group-norm', 'upsample', 'partial-label-loss']) {
      expect(FILES.some((f) => f.includes(family)), `a test file of ${family} in ${FILES.join(', ')}`).toBe(true);
    }
  });

  it.each(FILES)('%s passes in the browser', async (file) => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    try {
      const t0 = performance.now();
      await page.goto(`${server.url}?file=${encodeURIComponent(file)}&exclude=${encodeURIComponent(EXCLUDE)}`);
      await page.waitForFunction(() => (window as unknown as { __kernelTests?: PageState }).__kernelTests?.done === true, null, { timeout: 880_000, polling: 500 });
      const state = await page.evaluate(() => (window as unknown as { __kernelTests: PageState }).__kernelTests);
      expect(state.files, 'the page and this test take the same files').toContain(file);
      expect(state.error).toBeNull();
      expect(errors).toEqual([]);
      const ran = state.results.filter((r) => !r.skipped);
      const excluded = state.results.filter((r) => r.skipped);
      const failed = ran.filter((r) => !r.ok);
      console.log(`${file}: ${ran.length} passed in the browser${excluded.length ? `, ${excluded.length} left to Node (${excluded.map((r) => r.name).join('; ')})` : ''} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      expect(failed.map((r) => `${r.name}: ${r.error?.split('\n')[0]}`)).toEqual([]);
      expect(ran.length).toBeGreaterThanOrEqual(3);
      // The exclusions are the listed cases only: one per pattern and layout at most.
      expect(excluded.length).toBeLessThanOrEqual(2 * LEFT_TO_NODE.length);
    } finally {
      await page.close();
    }
  });
});
