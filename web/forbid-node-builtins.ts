/**
 * A Vite/Rolldown plugin that fails a browser build when a Node built-in (`node:fs`, `fs`, `path`, ...) is
 * imported, statically or by a dynamic import with a literal name, from anything in the bundle. Node-only code
 * reached from browser-safe modules must load such modules lazily by a computed name (as the GPU runtime loads
 * Dawn), so bundlers leave it out and a browser never runs it.
 */
import { builtinModules } from 'node:module';
import type { Plugin } from 'vite';

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
      if (found) {
        found.push({ id, importer });
        // Left external so the build goes on and every offender is listed.
        return { id, external: true };
      }
      this.error(`${importer ?? '(entry)'} imports the Node built-in '${id}', which a browser cannot load; move it behind a lazy import with a computed name or into a Node-only module`);
    },
  };
}
