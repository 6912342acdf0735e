/**
 * `tgnet evaluate --model A --model B --data DIR`: the paper's table from two tiny checkpoints (tgnet and dodnet,
 * width 2, random weights, saved as the trainer saves them) on phantoms in MSD layout; and its refusals.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  defaultModelNames, evaluateCommand, parseEvaluateModelsArgs, type EvaluateModelsJson,
} from '../../src/cli/evaluate.js';
import { synthesizeDatasets } from '../../src/data/synth.js';
import { writeSafetensors } from '../../src/nn/safetensors.js';
import { encodeCheckpoint, type CheckpointTensor } from '../../src/tgnet/checkpoint.js';
import { TGNet, type TGNetVariant } from '../../src/tgnet/model.js';
import { useGpu } from '../helpers/gpu.js';

useGpu();
const dir = mkdtempSync(join(tmpdir(), 'tgnet-evaluate-models-'));
const data = join(dir, 'phantoms');
const ckpt = (name: string): string => join(dir, `${name}.safetensors`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

/** A freshly initialised width-2 model saved as a trainer checkpoint (SGD state zero, crop 16x32x32). */
async function saveCheckpoint(path: string, variant: TGNetVariant, seed: number): Promise<void> {
  const model = TGNet.create({ variant, width: 2, seed });
  const state = new Map<string, CheckpointTensor>();
  for (const [name, p] of model.namedParameters()) state.set(name, { shape: [...p.shape], data: await p.toArray() });
  model.dispose();
  // A fresh model's logits sit near 0 (organ about +0.019, tumour -0.035): move the head's final biases to the
  // middle of that spread so both channels have foreground and the metrics are not all empty-mask cases.
  const bias = state.get('controller.bias')!.data;
  bias[160] -= 0.019;
  bias[161] += 0.035;
  const momentum = new Map([...state].map(([name, t]) => [name, new Float32Array(t.data.length)]));
  writeFileSync(path, encodeCheckpoint({
    meta: { variant, width: 2, numTasks: 7, crop: [16, 32, 32], step: 0, totalSteps: 1, lr0: 0.01, momentum: 0.99, nesterov: true, weightDecay: 0, polyPower: 0.9, seed },
    model: state, momentum,
  }));
}

function captureOutput(): string[] {
  const lines: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((s: string) => { lines.push(...String(s).split('\n')); });
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(...String(chunk).split('\n').filter((l) => l !== ''));
    return true;
  });
  return lines;
}

const CELL = String.raw`(\d+\.\d\d|n/a)`;

beforeAll(async () => {
  // Liver (organ + tumour) and spleen (organ only), two 16x32x32 phantoms each.
  await synthesizeDatasets({ outDir: data, cases: 2, size: [16, 32, 32], seed: 5, tasks: [0, 6] });
  await saveCheckpoint(ckpt('tgnet'), 'tgnet', 3);
  await saveCheckpoint(ckpt('dodnet'), 'dodnet', 4);
  writeFileSync(join(dir, 'split.json'), JSON.stringify({ seed: 0, trainFraction: 0.5, train: ['Task03_Liver/liver_000', 'Task09_Spleen/spleen_000'], val: ['Task03_Liver/liver_001', 'Task09_Spleen/spleen_001'] }));
});

describe('tgnet evaluate --model ... --data DIR', () => {
  it('prints one row per model with the paper\'s columns, and writes Markdown, JSON and predictions', async () => {
    const lines = captureOutput();
    const json = join(dir, 'table.json');
    const md = join(dir, 'table.md');
    await evaluateCommand([
      '--model', ckpt('tgnet'), '--model', ckpt('dodnet'), '--data', data, '--split', join(dir, 'split.json'), '--spacing', 'native',
      '--json', json, '--markdown', md, '--predictions', join(dir, 'pred'),
    ]);
    const text = lines.join('\n');
    expect(lines[0]).toMatch(/^tgnet evaluate: 2 case\(s\) of 2 task\(s\): the val cases of .*split\.json under .*phantoms; native spacing/);
    expect(text).toMatch(/tgnet: tgnet width 2 \(7 tasks\) from .*tgnet\.safetensors; tile 16x32x32 \(checkpoint crop\)/);
    expect(text).toMatch(/dodnet: dodnet width 2 \(7 tasks\) from .*dodnet\.safetensors; tile 16x32x32 \(checkpoint crop\)/);

    // The table: liver over organ and tumour, spleen over organ, then the averages; a row per model.
    const header = lines.findIndex((l) => /^model\s+liver\s+spleen\s+average$/.test(l));
    expect(header).toBeGreaterThan(0);
    expect(lines[header + 1]).toMatch(/^\s+organ\s+tumour\s+organ$/);
    expect(lines[header + 2].trim().split(/\s+/)).toEqual(['Dice', 'HD95', 'Dice', 'HD95', 'Dice', 'HD95', 'Dice', 'HD95']);
    expect(lines[header + 3]).toMatch(/^-+$/);
    const rows = lines.slice(header + 4).filter((l) => /^(tgnet|dodnet)\s/.test(l));
    expect(rows.map((r) => r.split(/\s+/)[0])).toEqual(['tgnet', 'dodnet']);
    for (const row of rows) expect(row).toMatch(new RegExp(String.raw`^\w+(\s+${CELL}){8}$`));
    expect(text).toMatch(/Dice in %, HD95 in voxels/);
    expect(text).toContain('Empty masks: both masks empty: Dice 1, HD95 0; exactly one empty: Dice 0');

    // JSON: the protocol, the table, and per model its summary and cases; the table is the cases' means.
    const report = JSON.parse(readFileSync(json, 'utf8')) as EvaluateModelsJson;
    expect(report.protocol).toMatchObject({ cases: 2, spacingZYX: 'native', flips: false, diceUnit: '%', hd95Unit: 'voxels' });
    expect(report.protocol.emptyMaskConvention).toMatch(/exactly one empty/);
    expect(report.table.columns.map((c) => `${c.taskKey} ${c.channel}`)).toEqual(['liver organ', 'liver tumour', 'spleen organ']);
    expect(report.table.rows.map((r) => r.model)).toEqual(['tgnet', 'dodnet']);
    expect(report.models.map((m) => [m.name, m.variant, m.width, m.tile])).toEqual([['tgnet', 'tgnet', 2, [16, 32, 32]], ['dodnet', 'dodnet', 2, [16, 32, 32]]]);
    for (const [i, m] of report.models.entries()) {
      expect(m.cases.map((c) => c.case)).toEqual(['liver_001', 'spleen_001']);
      const [liver, spleen] = m.cases;
      const cells = report.table.rows[i].cells;
      expect(cells[0]!.dice).toBeCloseTo(100 * liver.organ!.dice, 6);
      expect(cells[1]!.dice).toBeCloseTo(100 * liver.tumour!.dice, 6);
      expect(cells[2]!.dice).toBeCloseTo(100 * spleen.organ!.dice, 6);
      expect(spleen.tumour).toBeUndefined();
      expect(liver.organ!.dice).toBeGreaterThan(0);
      expect(report.table.rows[i].averageDice).toBeCloseTo((cells[0]!.dice + cells[1]!.dice + cells[2]!.dice) / 3, 6);
      expect(m.summary.liver?.organ?.dice).toBeCloseTo(liver.organ!.dice, 9);
      expect(m.summary.hd95Unit).toBe('voxels');
      // The row printed is the row in the JSON.
      const printed = rows[i].split(/\s+/).slice(1);
      expect(printed[0]).toBe(cells[0]!.dice.toFixed(2));
    }
    // Different weights, different results.
    expect(report.models[0].cases[0].organ!.predVoxels).not.toBe(report.models[1].cases[0].organ!.predVoxels);

    // Markdown: a header naming task and metric, the alignment row, a row per model, units and convention.
    const markdown = readFileSync(md, 'utf8').split('\n');
    const tableLines = markdown.filter((l) => l.startsWith('|'));
    expect(tableLines[0]).toBe('| model | liver organ Dice | liver organ HD95 | liver tumour Dice | liver tumour HD95 | spleen organ Dice | spleen organ HD95 | average Dice | average HD95 |');
    expect(tableLines.slice(2).map((l) => l.split('|')[1].trim())).toEqual(['tgnet', 'dodnet']);
    for (const l of tableLines) expect(l.split('|').length).toBe(tableLines[0].split('|').length);
    expect(markdown.join('\n')).toMatch(/Empty masks: both masks empty/);

    // Predictions per model.
    for (const name of ['tgnet', 'dodnet']) for (const c of ['liver_001', 'spleen_001']) expect(existsSync(join(dir, 'pred', name, `${c}.nii.gz`))).toBe(true);
  });

  it('evaluates a val-only split quietly, and a DoDNet list relative to --data with --name and the long layout', async () => {
    const lines = captureOutput();
    const list = join(dir, 'test.txt');
    // A hand-written split may hold only val; ids come from the folder and the file stem.
    const valOnly = join(dir, 'val-only.json');
    writeFileSync(valOnly, JSON.stringify({ val: ['Task09_Spleen/spleen_000'] }));
    await evaluateCommand(['--model', ckpt('dodnet'), '--data', data, '--split', valOnly, '--spacing', 'native', '--quiet', '--json', join(dir, 'val-only-report.json')]);
    const valReport = JSON.parse(readFileSync(join(dir, 'val-only-report.json'), 'utf8')) as EvaluateModelsJson;
    expect(valReport.models[0].cases.map((c) => c.case)).toEqual(['spleen_000']);
    expect(valReport.table.columns.map((c) => `${c.taskKey} ${c.channel}`)).toEqual(['spleen organ']);
    expect(lines).toEqual([]);
    writeFileSync(list, '# one liver case\nTask03_Liver/imagesTr/liver_000.nii.gz Task03_Liver/labelsTr/liver_000.nii.gz\n');
    await evaluateCommand(['--model', ckpt('dodnet'), '--name', 'DoDNet', '--data', data, '--list', list, '--spacing', 'native', '--tile', '16', '32', '32', '--layout', 'long']);
    const text = lines.join('\n');
    expect(text).toMatch(/1 case\(s\) of 1 task\(s\): the cases of .*test\.txt/);
    expect(text).toMatch(/tile 16x32x32 \(--tile\)/);
    expect(text).toMatch(/^task channel\s+DoDNet$/m);
    expect(text).toMatch(new RegExp(String.raw`^liver organ\s+${CELL}\s+${CELL}$`, 'm'));
    expect(text).toMatch(new RegExp(String.raw`^average\s+${CELL}\s+${CELL}$`, 'm'));
  });

  it('refuses a missing --data, unknown split cases, a file that is no checkpoint, and --pred with --model', async () => {
    captureOutput();
    const both = ['--model', ckpt('tgnet'), '--model', ckpt('dodnet')];
    await expect(evaluateCommand(both)).rejects.toThrow(/--data PATH is required/);
    await expect(evaluateCommand([...both, '--data', join(dir, 'nope')])).rejects.toThrow(/--data .*nope cannot be read/);
    await expect(evaluateCommand([...both, '--data', dir])).rejects.toThrow(/--data .* holds no MSD dataset/);

    const split = join(dir, 'bad-split.json');
    writeFileSync(split, JSON.stringify({ train: ['Task03_Liver/liver_000'], val: ['Task03_Liver/liver_001', 'Task03_Liver/liver_999'] }));
    await expect(evaluateCommand([...both, '--data', data, '--split', split])).rejects.toThrow(/bad-split\.json: 1 val case\(s\) are not in --data .*phantoms \(first: "Task03_Liver\/liver_999"\); expected ids of its cases, such as "Task03_Liver\/liver_000"/);

    // Not safetensors at all; safetensors without model tensors. Both fail before any model is evaluated.
    const garbage = join(dir, 'notes.safetensors');
    writeFileSync(garbage, 'these are not weights');
    const lines = captureOutput();
    await expect(evaluateCommand(['--model', ckpt('tgnet'), '--model', garbage, '--data', data, '--spacing', 'native']))
      .rejects.toThrow(/safetensors .*notes\.safetensors: header length \d+ exceeds/);
    expect(lines.join('\n')).not.toMatch(/tgnet: tgnet width 2/);
    const empty = join(dir, 'empty.safetensors');
    writeFileSync(empty, writeSafetensors(new Map([['x', { shape: [1], data: new Float32Array(1) }]])));
    await expect(evaluateCommand(['--model', empty, '--data', data])).rejects.toThrow(/empty\.safetensors: no tensor named 'model\.\*'/);
    await expect(evaluateCommand(['--model', join(dir, 'missing.safetensors'), '--data', data])).rejects.toThrow(/--model .*missing\.safetensors cannot be read/);

    await expect(evaluateCommand(['--pred', 'p', '--truth', 't', '--task', 'liver', '--model', ckpt('tgnet')]))
      .rejects.toThrow(/--pred \(evaluate existing masks\) cannot be combined with --model \(run models on a dataset\)/);
    await expect(evaluateCommand(['--model', ckpt('tgnet'), '--data', data, '--task', 'liver'])).rejects.toThrow(/--task \(evaluate existing masks\) cannot be combined with --model/);
  });

  it('parses options, and names rows by the shortest path suffix that tells the files apart', () => {
    expect(parseEvaluateModelsArgs(['--model', 'a.safetensors', '--data', 'd'])).toMatchObject({
      names: ['a'], cases: { kind: 'all' }, spacingZYX: [1.5, 0.8, 0.8], flips: false, batch: 1, layout: 'wide', quiet: false,
    });
    expect(parseEvaluateModelsArgs(['--model', 'a', '--data', 'd', '--spacing', '2', '1', '1', '--flips', '--batch', '2', '--cases', 'all']))
      .toMatchObject({ spacingZYX: [2, 1, 1], flips: true, batch: 2 });
    expect(defaultModelNames(['runs/x/checkpoint.safetensors', 'runs/y/checkpoint.safetensors'])).toEqual(['x/checkpoint', 'y/checkpoint']);
    expect(defaultModelNames(['one/a.safetensors', 'two/b.safetensors'])).toEqual(['a', 'b']);
    expect(() => parseEvaluateModelsArgs(['--data', 'd'])).toThrow(/--model FILE is required/);
    expect(() => parseEvaluateModelsArgs(['--model', 'a', '--model', 'b', '--name', 'A', '--data', 'd'])).toThrow(/got 1 --name for 2 --model/);
    expect(() => parseEvaluateModelsArgs(['--model', 'a', '--model', './a', '--data', 'd'])).toThrow(/--model \.\/a is given twice/);
    expect(() => parseEvaluateModelsArgs(['--model', 'a', '--data', 'd', '--split', 's.json', '--cases', 'all'])).toThrow(/--cases all given after --split/);
    expect(() => parseEvaluateModelsArgs(['--model', 'a', '--data', 'd', '--cases', 'val'])).toThrow(/--cases is "val"; expected 'all'/);
    expect(() => parseEvaluateModelsArgs(['--model', 'a', '--data', 'd', '--spacing', '1.5', 'x', '0.8'])).toThrow(/--spacing Y is "x"; expected a positive number of mm \(or '--spacing native'\)/);
    expect(() => parseEvaluateModelsArgs(['--model', 'a', '--data', 'd', '--tile', '16', '24', '16'])).toThrow(/--tile H is "24"; expected a positive multiple of 16/);
    expect(() => parseEvaluateModelsArgs(['--model', 'a', '--data', 'd', '--layout', 'tall'])).toThrow(/--layout is "tall"; expected wide or long/);
  });
});
