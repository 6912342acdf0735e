/**
 * A Vite/Rolldown plugin that fails a browser build when a Node built-in (`node:fs`, `fs`, `path`, ...) is
 * imported, statically or by a dynamic import with a literal name, from anything in the bundle. Node-only code
 * reached from browser-safe modules must load such modules lazily by a computed name (as the GPU runtime loads
 * Dawn), so bundlers leave it out and a browser never runs it.
 */
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import type { Plugin } from 'vite';

const EMPTY = '\0tgnet:browser-empty:';

/**
 * True when the importer's package maps `id` to false in its package.json "browser" field (dicom-parser does so
 * for zlib, which it needs only in Node for deflated files): the package itself says browsers go without it.
 */
function browserFieldDrops(id: string, importer: string | undefined): boolean {
  if (!importer) return false;
  const at = importer.lastIndexOf('/node_modules/');
  if (at < 0) return false;
  const rest = importer.slice(at + '/node_modules/'.length).split('/');
  const pkgDir = join(importer.slice(0, at), 'node_modules', ...(rest[0].startsWith('@') ? rest.slice(0, 2) : rest.slice(0, 1)));
  try {
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { browser?: unknown };
    return typeof pkg.browser === 'object' && pkg.browser !== null && (pkg.browser as Record<string, unknown>)[id] === false && dirname(importer).startsWith(pkgDir);
  } catch {
    return false;
  }
}

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

export function isNodeBuiltin(id: string): boolean {
  return id.startsWith('node:') || BUILTINS.has(id) || BUILTINS.has(id.split('/')[0]);
}

export interface NodeImportRecord {
  id: string;
  importer: string | undefined;
}

/** `found`, when given, collects every offending import instead of failing on the first (for the bundle test). */
export function forbidNodeBuiltins(found?: NodeImportRecord[]): Plugin {
  return {
    name: 'tgnet:forbid-node-builtins',
    enforce: 'pre',
    resolveId(id, importer) {
      if (!isNodeBuiltin(id)) return null;
      if (browserFieldDrops(id, importer)) return `${EMPTY}${id}`;
      if (found) {
        found.push({ id, importer });
        // Left external so the build goes on and every offender is listed.
        return { id, external: true };
      }
      this.error(`${importer ?? '(entry)'} imports the Node built-in '${id}', which a browser cannot load; move it behind a lazy import with a computed name or into a Node-only module`);
    },
    load(id) {
      return id.startsWith(EMPTY) ? 'export default {};' : null;
    },
  };
}
