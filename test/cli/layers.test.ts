/** The package's source never depends on the benchmarks: no module under src/ imports anything under bench/. */
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
