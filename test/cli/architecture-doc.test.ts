/**
 * docs/ARCHITECTURE.md against the code: every file it names exists, every room of its table is a room the layer
 * test knows, and each walkthrough's steps name files that say what the step says (the op is exported, the
 * variant is in both models, the command is registered).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const doc = readFileSync(join(ROOT, 'docs', 'ARCHITECTURE.md'), 'utf8');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

/** The backticked paths of a text (with a slash and an extension, or a folder ending in a slash). */
function namedPaths(text: string): string[] {
  return [...text.matchAll(/`([\w./-]+\/[\w.-]*)`/g)].map((m) => m[1]).filter((p) => /\.\w+$|\/$/.test(p) && !p.includes('<'));
}

/** The section of the doc under a heading. */
function section(title: string): string {
  const start = doc.indexOf(`## ${title}`);
  expect(start, `a section '${title}'`).toBeGreaterThanOrEqual(0);
  const next = doc.indexOf('\n## ', start + 3);
  return doc.slice(start, next < 0 ? undefined : next);
}

describe('docs/ARCHITECTURE.md', () => {
  it('names only files and folders that exist', () => {
    const paths = namedPaths(doc);
    expect(paths.length).toBeGreaterThan(25);
    expect(paths.filter((p) => !existsSync(join(ROOT, p)))).toEqual([]);
  });

  it('its table has every room of src/ and no other', () => {
    const rooms = [...doc.matchAll(/^\| `src\/(\w+)\/`/gm)].map((m) => m[1]).sort();
    const actual = readdirSync(join(ROOT, 'src'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
    expect(rooms).toEqual(actual);
  });

  it('a new op: kernel, twin, test, autograd rule, exported', () => {
    const text = section('Walkthrough: a new op');
    expect(namedPaths(text)).toEqual(expect.arrayContaining([
      'src/kernels/spatial-gate.ts', 'src/kernels/reference/spatial-gate.ts', 'test/kernels/spatial-gate.test.ts', 'src/autograd/ops/spatial-gate.ts',
    ]));
    expect(read('src/kernels/spatial-gate.ts')).toMatch(/kernelSignature\(/);
    expect(read('src/autograd/index.ts')).toMatch(/export \{ spatialGate \} from '\.\/ops\/spatial-gate\.js'/);
    expect(read('test/autograd/tgnet-ops.test.ts')).toMatch(/spatialGate/);
  });

  it('a new model variant: both models list every variant', () => {
    const text = section('Walkthrough: a new model variant');
    expect(namedPaths(text)).toEqual(expect.arrayContaining(['src/tgnet/model.ts', 'bench/torch/tgnet_torch.py', 'test/tgnet/golden.test.ts']));
    const variants = /TGNET_VARIANTS = \[([^\]]+)\]/.exec(read('src/tgnet/model.ts'))?.[1].match(/'[\w-]+'/g)?.map((v) => v.slice(1, -1)) ?? [];
    expect(variants.length).toBeGreaterThan(2);
    const twinVariants = /^VARIANTS = \(([^)]+)\)/m.exec(read('bench/torch/tgnet_torch.py'))?.[1].match(/"[\w-]+"/g)?.map((v) => v.slice(1, -1)) ?? [];
    expect(twinVariants).toEqual(variants);
  });

  it('a new command: a module per command, registered in COMMANDS', () => {
    const text = section('Walkthrough: a new command');
    expect(namedPaths(text)).toEqual(expect.arrayContaining(['src/cli/commands.ts', 'src/cli/command.ts', 'src/cli/export.ts']));
    const registry = read('src/cli/commands.ts');
    for (const m of registry.matchAll(/import\('\.\/([\w-]+)\.js'\)\)\.(\w+)Command/g)) {
      expect(existsSync(join(ROOT, 'src', 'cli', `${m[1]}.ts`)), `src/cli/${m[1]}.ts`).toBe(true);
      expect(read(`src/cli/${m[1]}.ts`)).toMatch(new RegExp(`export const ${m[2]}Command = defineCommand(<\\w+>)?\\(`));
    }
  });
});
