import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';
import { infoCommand } from '../../src/cli/info.js';
import { synthCommand } from '../../src/cli/synth.js';
import { loadMsdDataset } from '../../src/data/datasets.js';

afterEach(() => vi.restoreAllMocks());

it('tgnet info --json prints the adapter, its limits and features', async () => {
  const lines: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((s: string) => { lines.push(s); });
  await infoCommand(['--json']);
  const report = JSON.parse(lines.join('\n')) as { name: string; limits: Record<string, number>; features: string[] };
  expect(report.name.length).toBeGreaterThan(0);
  expect(report.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
  expect(report.limits.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
  expect(Array.isArray(report.features)).toBe(true);
});

it('tgnet synth writes a dataset that the MSD loader reads back', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tgnet-synth-'));
  try {
    vi.spyOn(console, 'log').mockImplementation(() => undefined);
    await synthCommand(['--out', dir, '--cases', '2', '--size', '8', '16', '16', '--seed', '3', '--tasks', 'liver,spleen', '--quiet']);
    const liver = await loadMsdDataset(join(dir, 'Task03_Liver'));
    expect(liver.length).toBe(2);
    for (const c of liver) expect(existsSync(c.image) && existsSync(c.label)).toBe(true);
    expect(JSON.parse(readFileSync(join(dir, 'Task03_Liver', 'dataset.json'), 'utf8')).training.length).toBe(2);
    await expect(synthCommand(['--out', dir, '--cases', 'x'])).rejects.toThrow(/--cases/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
