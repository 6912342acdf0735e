/**
 * The library's browser entry (src/browser.ts) and the page (web/) bundle without any Node built-in, and the
 * check itself catches one (a file-based data module as the control).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build, type Rollup } from 'vite';
import { describe, expect, it } from 'vitest';
import { forbidNodeBuiltins, type NodeImportRecord } from '../../web/forbid-node-builtins.js';

const repo = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));

/** Bundles `entry` for the browser in memory; returns the Node built-ins the bundle would import and its code. */
async function bundle(entry: string): Promise<{ found: NodeImportRecord[]; code: string; exports: string[] }> {
  const found: NodeImportRecord[] = [];
  const result = await build({
    configFile: false, logLevel: 'silent', root: repo('.'),
    plugins: [forbidNodeBuiltins(found)],
    build: { write: false, minify: false, lib: { entry, formats: ['es'], fileName: () => 'bundle.js' } },
  });
  const outputs = (Array.isArray(result) ? result : [result]) as Rollup.RollupOutput[];
  const chunks = outputs.flatMap((o) => o.output).filter((c): c is Rollup.OutputChunk => c.type === 'chunk');
  return { found, code: chunks.map((c) => c.code).join('\n'), exports: chunks.flatMap((c) => c.exports) };
}

const where = (found: NodeImportRecord[]) => found.map((f) => `${f.id} from ${f.importer}`).join('; ');

describe('browser bundles', () => {
  it('src/browser.ts bundles as one ES module with no Node built-in', async () => {
    const { found, code, exports } = await bundle(repo('src/browser.ts'));
    expect(found, `Node built-ins reachable from src/browser.ts: ${where(found)}`).toEqual([]);
    for (const name of ['initGpu', 'Tensor', 'TGNet', 'Trainer', 'segmentCt', 'encodeCheckpoint', 'loadModelFromCheckpoint', 'readNifti', 'writeNifti', 'generatePhantom', 'BatchSampler']) {
      expect(exports, `export ${name}`).toContain(name);
    }
    // Node-only paths load their modules by a computed name, so no literal node: import is left in the code.
    expect(code).not.toMatch(/(from\s*|import\s*\(\s*|require\s*\(\s*)["']node:/);
  });

  it('the page (web/src/main.ts) bundles with no Node built-in', async () => {
    const { found } = await bundle(repo('web/src/main.ts'));
    expect(found, `Node built-ins reachable from the page: ${where(found)}`).toEqual([]);
  });

  it('the check finds a node: import (control: the file-based NIfTI reader)', async () => {
    const dir = repo('tmp/browser-tests');
    mkdirSync(dir, { recursive: true });
    const entry = `${dir}/bundle-control.ts`;
    writeFileSync(entry, "export { readNiftiFile } from '../../src/data/nifti-file.js';\n");
    const { found } = await bundle(entry);
    expect(found.map((f) => f.id)).toContain('node:fs/promises');
    expect(found.find((f) => f.id === 'node:fs/promises')?.importer).toMatch(/src\/data\/nifti-file\.ts$/);
  });
});
