import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, vi } from 'vitest';
import { benchMain } from '../../bench/run.js';

it('npm run bench writes its JSON (smoke run of the cheap sections)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tgnet-bench-'));
  const out = join(dir, 'r.json');
  try {
    vi.spyOn(console, 'log').mockImplementation(() => undefined);
    await benchMain(['--quick', '--only', 'dispatch,elementwise', '--out', out]);
    const r = JSON.parse(readFileSync(out, 'utf8')) as { adapter: string; dispatch: { usPerDispatch: number }; elementwise: { gbs: number }[] };
    expect(r.adapter.length).toBeGreaterThan(0);
    expect(r.dispatch.usPerDispatch).toBeGreaterThan(0);
    expect(r.elementwise.every((row) => row.gbs > 0)).toBe(true);
    await expect(benchMain(['--scale', '3'])).rejects.toThrow(/--scale must be in \(0, 1\]/);
  } finally {
    vi.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  }
});
