/**
 * Bad inputs at the command line, each refused with a clear error before any work is done: a 2-D volume, a label
 * whose shape or affine differs from its image, an unknown task, a checkpoint of another variant or width, an
 * output path that is a folder or cannot be created.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePredictArgs, predictCommand } from '../../src/cli/predict.js';
import { trainCommand } from '../../src/cli/train.js';
import { checkCaseGeometry } from '../../src/data/case-store.js';
import { loadMsdCollection, type DatasetCase } from '../../src/data/datasets.js';
import { readNiftiFile, writeNiftiFile } from '../../src/data/nifti-file.js';
import { synthesizeDatasets } from '../../src/data/synth.js';
import { TGNet } from '../../src/tgnet/model.js';
import { Trainer } from '../../src/tgnet/train.js';
import { COLD_COMPILE_TIMEOUT_MS, useGpu } from '../helpers/gpu.js';

/** A whole phantom body in a few voxels that claim CT-like sizes, so resampling to 1.5 x 0.8 x 0.8 mm stays cheap. */
const SMALL_BODY = { spacing: [0.8, 0.8, 2.5] as [number, number, number], fitToGrid: true };

useGpu();
const dir = mkdtempSync(join(tmpdir(), 'tgnet-bad-inputs-'));
const good = join(dir, 'good');
let cases: DatasetCase[] = [];
const ckpt = join(dir, 'model', 'checkpoint.safetensors');
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

beforeAll(async () => {
  await synthesizeDatasets({ outDir: good, cases: 2, size: [16, 32, 32], seed: 4, tasks: [0], ...SMALL_BODY });
  cases = await loadMsdCollection(good, ['Task03_Liver']);
  // A width-2 tgnet checkpoint (untrained: only its kind matters here).
  const model = TGNet.create({ variant: 'tgnet', width: 2, seed: 1 });
  const trainer = new Trainer({ model, batches: { next: () => { throw new Error('unused'); } }, totalSteps: 1, crop: [16, 16, 16] });
  await trainer.save(ckpt);
  trainer.dispose();
  model.dispose();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A copy of the good collection with the first case's label or image replaced. */
async function variant(name: string, change: (c: DatasetCase, copy: (p: string) => string) => Promise<void>): Promise<string> {
  const root = join(dir, name);
  cpSync(good, root, { recursive: true });
  await change(cases[0], (p) => p.replace(good, root));
  return root;
}

describe('tgnet train refuses bad data before preprocessing', () => {
  it('a 2-D image, a label of another shape, a label of another affine', async () => {
    const flat = await variant('flat', async (c, copy) => {
      const v = await readNiftiFile(c.image);
      const [x, y] = v.shape;
      await writeNiftiFile(copy(c.image), { ...v, header: undefined, shape: [x, y, 1], data: v.data.slice(0, x * y) }, { datatype: 'float32' });
      const l = await readNiftiFile(c.label);
      await writeNiftiFile(copy(c.label), { ...l, header: undefined, shape: [x, y, 1], data: l.data.slice(0, x * y) }, { datatype: 'uint8' });
    });
    const shifted = await variant('shifted', async (c, copy) => {
      const l = await readNiftiFile(c.label);
      const affine = [...l.affine];
      affine[3] += 5;
      await writeNiftiFile(copy(c.label), { ...l, header: undefined, affine }, { datatype: 'uint8' });
    });
    const cropped = await variant('cropped', async (c, copy) => {
      const l = await readNiftiFile(c.label);
      const [x, y, z] = l.shape;
      await writeNiftiFile(copy(c.label), { ...l, header: undefined, shape: [x, y, z - 1], data: l.data.slice(0, x * y * (z - 1)) }, { datatype: 'uint8' });
    });
    const id = cases[0].id;
    for (const [data, message] of [
      [flat, new RegExp(`case ${esc(id)}: .*${esc(cases[0].image.replace(good, flat))} has shape \\[\\d+, \\d+, 1\\], a 2-D image; expected a 3-D CT volume`)],
      [shifted, new RegExp(`case ${esc(id)}: label .* has affine \\[.*\\] but image .* has \\[.*\\] \\(they differ by up to 5 mm\\); expected the label on the image's grid`)],
      [cropped, new RegExp(`case ${esc(id)}: label .* has shape \\[32, 32, 15\\] but image .* has \\[32, 32, 16\\]; expected the label on the image's grid`)],
    ] as const) {
      const cache = join(dir, `cache-${data.split('/').pop()}`);
      await expect(trainCommand(['--data', data, '--out', join(dir, `run-${data.split('/').pop()}`), '--cache', cache, '--width', '2', '--crop', '16', '16', '16']))
        .rejects.toThrow(message);
      // Refused before any preprocessing.
      expect(existsSync(cache)).toBe(false);
    }
    await expect(checkCaseGeometry(cases)).resolves.toBeUndefined();
  });

  it('an --out that is a file or lies under a file', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    await expect(trainCommand(['--data', good, '--out', file])).rejects.toThrow(`--out ${file} is a file; expected a folder for the run`);
    await expect(trainCommand(['--data', good, '--out', join(file, 'run')])).rejects.toThrow(`--out ${join(file, 'run')}: ${file} is a file, so the run folder cannot be created there`);
  });
});

describe('tgnet predict refuses bad inputs before any work', { timeout: COLD_COMPILE_TIMEOUT_MS }, () => {
  const base = (out: string): string[] => ['--model', ckpt, '--input', cases[0].image, '--task', 'liver', '--out', out, '--quiet', '--native-spacing'];

  it('an unknown task, an --out that is a folder or under a file', async () => {
    expect(() => parsePredictArgs(['--model', ckpt, '--input', cases[0].image, '--task', 'brain', '--out', 'x.nii.gz'])).toThrow(/--task is "brain"; expected one of 0\/liver/);
    const folder = join(dir, 'out-folder.nii.gz');
    mkdirSync(folder);
    await expect(predictCommand(base(folder))).rejects.toThrow(`tgnet predict: --out ${folder} is a folder; expected a file name`);
    const file = join(dir, 'plain-file');
    writeFileSync(file, 'x');
    await expect(predictCommand(base(join(file, 'mask.nii.gz')))).rejects.toThrow(`${file} is a file, so ${join(file, 'mask.nii.gz')} cannot be written`);
  });

  it('a 2-D input volume', async () => {
    const v = await readNiftiFile(cases[0].image);
    const flat = join(dir, 'flat.nii.gz');
    await writeNiftiFile(flat, { ...v, header: undefined, shape: [v.shape[0], v.shape[1], 1], data: v.data.slice(0, v.shape[0] * v.shape[1]) }, { datatype: 'float32' });
    const out = join(dir, 'flat-mask.nii.gz');
    await expect(predictCommand([...base(out).slice(0, 2), '--input', flat, ...base(out).slice(4)])).rejects.toThrow(new RegExp(`${esc(flat)} has shape \\[32, 32, 1\\], a 2-D image; expected a 3-D CT volume`));
    expect(existsSync(out)).toBe(false);
  });

  it('a checkpoint of another width or variant than asked for', async () => {
    const out = join(dir, 'mask.nii.gz');
    await expect(predictCommand([...base(out), '--width', '4'])).rejects.toThrow(new RegExp(`${esc(ckpt)}: the weights do not fit TGNet \\{"variant":"tgnet","width":4`));
    await expect(predictCommand([...base(out), '--variant', 'dodnet'])).rejects.toThrow(new RegExp(`${esc(ckpt)}: .*dodnet`));
    expect(existsSync(out)).toBe(false);
    // And the checkpoint as it is works.
    await predictCommand(base(out));
    expect((await readNiftiFile(out)).shape).toEqual([32, 32, 16]);
  });
});
