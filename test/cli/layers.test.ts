/**
 * The layer order, as a test: web/ and bench/ on top, then src/cli, src/session, src/eval, src/tgnet, src/nn,
 * src/autograd, src/kernels, src/common (the shape vocabulary and file helpers every room may use), with src/data beside (a leaf the upper rooms
 * use). No import may climb, and the package's source never depends on the benchmarks.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Every module specifier of a source text: static imports and re-exports, import(), require(). */
function moduleSpecifiers(text: string): string[] {
  const patterns = [
    /\b(?:import|export)\b[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"`]([^'"`]+)['"`]/g,
    /\brequire\s*\(\s*['"`]([^'"`]+)['"`]/g,
  ];
  return patterns.flatMap((p) => [...text.matchAll(p)].map((m) => m[1]));
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return /\.(ts|mts|js|mjs)$/.test(e.name) ? [path] : [];
  });
}

it('finds static, dynamic and re-exported specifiers', () => {
  const text = `import { a } from './a.js';\nimport type {\n  B,\n} from "../b.js";\nexport * from './c.js';\nimport './d.js';\nconst e = await import('../../bench/run.js');\nrequire("f");`;
  expect(moduleSpecifiers(text).sort()).toEqual(['../../bench/run.js', '../b.js', './a.js', './c.js', './d.js', 'f']);
});

it('no file under src/ imports from bench/', () => {
  const bench = join(ROOT, 'bench') + sep;
  const files = sourceFiles(join(ROOT, 'src'));
  const offenders: string[] = [];
  let relativeImports = 0;
  for (const file of files) {
    for (const spec of moduleSpecifiers(readFileSync(file, 'utf8'))) {
      if (!spec.startsWith('.')) {
        if (/^(tgnet\/)?bench(\/|$)/.test(spec)) offenders.push(`${relative(ROOT, file)}: ${spec}`);
        continue;
      }
      relativeImports++;
      if ((resolve(dirname(file), spec) + sep).startsWith(bench)) offenders.push(`${relative(ROOT, file)}: ${spec}`);
    }
  }
  // The scan saw the source: the CLI alone imports dozens of modules.
  expect(files.length).toBeGreaterThan(50);
  expect(relativeImports).toBeGreaterThan(200);
  expect(offenders).toEqual([]);
});

/** Rooms from the top; a file may import its own room and any room below it (data: see DATA_USERS). */
const ROOMS = ['web', 'bench', 'cli', 'session', 'eval', 'tgnet', 'nn', 'autograd', 'kernels', 'common'] as const;
/** src/data sits beside the stack: it imports no other room but common, and these may import it. */
const DATA_USERS = new Set(['web', 'bench', 'cli', 'session', 'eval', 'src']);

/** The room of a file: web, bench, src/<room>, or 'src' for the package's entry files (src/index.ts, src/browser.ts). */
function roomOf(file: string): string | null {
  const rel = relative(ROOT, file).split(sep);
  if (rel[0] === 'web' || rel[0] === 'bench') return rel[0];
  if (rel[0] !== 'src') return null;
  return rel.length === 2 ? 'src' : rel[1];
}

/** The level of a room (0 = top); the entry files sit just below cli: they may import every library room. */
function level(room: string): number {
  if (room === 'web' || room === 'bench') return 0;
  if (room === 'src') return ROOMS.indexOf('cli') + 0.5;
  return ROOMS.indexOf(room as (typeof ROOMS)[number]);
}

/** Whether a file of room `from` may import a file of room `to`. */
function mayImport(from: string, to: string): boolean {
  if (from === to) return true;
  if (to === 'common') return true;
  if (to === 'data') return DATA_USERS.has(from);
  if (from === 'data') return false;
  if (to === 'web') return false;
  if (to === 'bench') return from === 'bench';
  if (to === 'src') return level(from) < level(to);
  if (level(to) < 0) return false;
  return level(from) < level(to);
}

it('the rule: imports go down the stack, data is a leaf beside it', () => {
  expect(mayImport('web', 'cli')).toBe(true);
  expect(mayImport('cli', 'session')).toBe(true);
  expect(mayImport('session', 'cli')).toBe(false);
  expect(mayImport('eval', 'tgnet')).toBe(true);
  expect(mayImport('tgnet', 'eval')).toBe(false);
  expect(mayImport('kernels', 'autograd')).toBe(false);
  expect(mayImport('tgnet', 'data')).toBe(false);
  expect(mayImport('data', 'kernels')).toBe(false);
  expect(mayImport('eval', 'data')).toBe(true);
  expect(mayImport('cli', 'bench')).toBe(false);
  expect(mayImport('data', 'common')).toBe(true);
  expect(mayImport('tgnet', 'common')).toBe(true);
  expect(mayImport('common', 'kernels')).toBe(false);
});

it('no import climbs the layers (src, web/src, bench)', () => {
  const files = [...sourceFiles(join(ROOT, 'src')), ...sourceFiles(join(ROOT, 'web', 'src')), ...sourceFiles(join(ROOT, 'bench')).filter((f) => !f.includes(`${sep}.scratch${sep}`))];
  const climbs: string[] = [];
  const arrows = new Set<string>();
  for (const file of files) {
    const from = roomOf(file);
    if (!from) continue;
    // A new room must be placed in the order first.
    if (!['src', 'data', ...ROOMS].includes(from)) climbs.push(`${relative(ROOT, file)}: room '${from}' is not in the layer order`);
    for (const spec of moduleSpecifiers(readFileSync(file, 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      const to = roomOf(resolve(dirname(file), spec));
      if (!to || to === from) continue;
      arrows.add(`${from} -> ${to}`);
      if (!mayImport(from, to)) climbs.push(`${relative(ROOT, file)} (${from}) imports ${spec} (${to})`);
    }
  }
  // The scan saw the stack: the page imports the library, the CLI the evaluation, the model the kernels.
  for (const arrow of ['web -> eval', 'cli -> eval', 'eval -> tgnet', 'tgnet -> nn', 'autograd -> kernels']) expect([...arrows]).toContain(arrow);
  expect(climbs).toEqual([]);
});
