/** The run folder's log: appended and synced as it goes; on resume, records past the checkpoint are dropped. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RunFolder } from '../../src/cli/run-folder.js';

const dir = mkdtempSync(join(tmpdir(), 'tgnet-run-folder-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const lines = (path: string) => readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number });

describe('RunFolder', () => {
  it('keeps the log up to the resumed step, drops later records and a torn last line, then appends', async () => {
    const run = join(dir, 'a');
    const first = await RunFolder.open(run);
    for (let step = 1; step <= 5; step++) await first.appendLog({ step, loss: 1 / step });
    await first.appendLog({ step: 4, val: { mean: 0.5, organ: 0.6, tumour: 0.4, perTask: { liver: { organ: 0.6, tumour: 0.4 } } } });
    await first.close();
    writeFileSync(join(run, 'log.jsonl'), `${readFileSync(join(run, 'log.jsonl'), 'utf8')}{"step": 6, "lo`);

    const resumed = await RunFolder.open(run, { resumeFromStep: 3 });
    expect(resumed.logRecords.map((r) => r.step)).toEqual([1, 2, 3]);
    expect(lines(join(run, 'log.jsonl')).map((r) => r.step)).toEqual([1, 2, 3]);
    await resumed.appendLog({ step: 4, loss: 0.2 });
    await resumed.writeCurves('t');
    await resumed.close();
    expect(lines(join(run, 'log.jsonl')).map((r) => r.step)).toEqual([1, 2, 3, 4]);
    expect(readFileSync(join(run, 'curves.svg'), 'utf8')).toContain('Training loss');
  });

  it('refuses a damaged log that is not just a torn last line', async () => {
    const run = join(dir, 'b');
    const folder = await RunFolder.open(run);
    await folder.close();
    writeFileSync(join(run, 'log.jsonl'), '{"step": 1}\nnot json\n{"step": 2}\n');
    await expect(RunFolder.open(run, { resumeFromStep: 2 })).rejects.toThrow(/log\.jsonl: line 2 is not JSON; expected one JSON object per line/);
  });

  it('starts a fresh log when not resuming', async () => {
    const run = join(dir, 'c');
    const a = await RunFolder.open(run);
    await a.appendLog({ step: 1, loss: 1 });
    await a.close();
    const b = await RunFolder.open(run);
    await b.close();
    expect(readFileSync(join(run, 'log.jsonl'), 'utf8')).toBe('');
  });
});
