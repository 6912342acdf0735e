import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  loadDodnetList,
  loadMsdCollection,
  loadMsdDataset,
  loadOrCreateSplit,
  parseDodnetList,
  parseMsdDataset,
  splitCases,
  type DatasetCase,
} from '../../src/data/datasets.js';
import { readNiftiFile } from '../../src/data/nifti-file.js';
import { generatePhantom, phantomCaseSeed, phantomTaskLabel, tumourOfTask } from '../../src/data/phantom.js';
import { preprocessDataset } from '../../src/data/preprocess-cache.js';
import { TASKS, labelToTarget } from '../../src/data/tasks.js';
import { parseSynthArgs, synthCommand } from '../../src/cli/synth.js';

const SIZE: [number, number, number] = [12, 32, 32];
let dir = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tgnet-synth-'));
  await synthCommand(['--out', dir, '--cases', '2', '--size', ...SIZE.map(String), '--seed', '4', '--quiet']);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('synthesized datasets through the MSD loader', () => {
  it('writes seven MSD-layout folders with dataset.json', async () => {
    expect((await readdir(dir)).sort()).toEqual(TASKS.map((t) => t.datasetName).sort());
    const json = JSON.parse(await readFile(join(dir, 'Task03_Liver', 'dataset.json'), 'utf8'));
    expect(json.numTraining).toBe(2);
    expect(json.labels).toEqual({ '0': 'background', '1': 'liver', '2': 'cancer' });
    expect(json.training[0]).toEqual({ image: './imagesTr/liver_000.nii.gz', label: './labelsTr/liver_000.nii.gz' });
    expect((await readdir(join(dir, 'Task03_Liver', 'imagesTr'))).sort()).toEqual(['liver_000.nii.gz', 'liver_001.nii.gz']);
  });

  it('loads every task back, int16 images and uint8 labels equal to the generator output', async () => {
    const cases = await loadMsdCollection(dir, TASKS.map((t) => t.datasetName));
    expect(cases.length).toBe(14);
    expect(cases.map((c) => c.task)).toEqual([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]);
    for (const task of [1, 4]) {
      const c = cases.find((x) => x.task === task) as DatasetCase;
      const image = await readNiftiFile(c.image);
      const label = await readNiftiFile(c.label);
      expect(image.header?.datatypeName).toBe('int16');
      expect(label.header?.datatypeName).toBe('uint8');
      expect(image.shape).toEqual([32, 32, 12]);
      const tumour = tumourOfTask(task);
      const p = generatePhantom({ size: SIZE, seed: phantomCaseSeed(4, task, 0), requireTumours: tumour ? [tumour] : [] });
      expect(Array.from(image.data)).toEqual(Array.from(p.hu));
      expect(Array.from(label.data)).toEqual(Array.from(phantomTaskLabel(p, task)));
      image.spacing.forEach((s, i) => expect(s).toBeCloseTo(p.spacing[i], 5));
      expect(image.spacing[2]).toBeGreaterThan(image.spacing[0]);
    }
  });

  it('the same seed writes identical files', async () => {
    const again = await mkdtemp(join(tmpdir(), 'tgnet-synth2-'));
    try {
      await synthCommand(['--out', again, '--cases', '1', '--size', ...SIZE.map(String), '--seed', '4', '--tasks', 'spleen', '--quiet']);
      const a = await readFile(join(dir, 'Task09_Spleen', 'imagesTr', 'spleen_000.nii.gz'));
      const b = await readFile(join(again, 'Task09_Spleen', 'imagesTr', 'spleen_000.nii.gz'));
      expect(b.equals(a)).toBe(true);
      expect(await readdir(again)).toEqual(['Task09_Spleen']);
    } finally {
      await rm(again, { recursive: true, force: true });
    }
  });

  it('preprocesses into a cache, then loads from it; targets follow the task table', async () => {
    const cases = (await loadMsdDataset(join(dir, 'Task08_HepaticVessel'))).slice(0, 1);
    const cache = join(dir, '..', `${dir.split('/').pop()}-cache`);
    try {
      const progress: boolean[] = [];
      // The phantoms are 12x32x32 voxels of 11.25 x 11.25 x 30 mm (the 360 mm world): a 15 x 10 x 10 mm target keeps them small.
      const spacing = { targetSpacingZYX: [15, 10, 10] as [number, number, number] };
      const first = await preprocessDataset(cases, cache, { ...spacing, onProgress: (p) => progress.push(p.cached) });
      const second = await preprocessDataset(cases, cache, { ...spacing, onProgress: (p) => progress.push(p.cached) });
      expect(progress).toEqual([false, true]);
      expect(second[0].image).toEqual(first[0].image);
      expect(second[0].label).toEqual(first[0].label);
      expect(second[0].shape).toEqual(first[0].shape);
      // A finer target than the source: z gets more slices, values are windowed.
      expect(first[0].shape[2]).toBeGreaterThan(SIZE[0]);
      expect(Math.min(...first[0].image)).toBeGreaterThanOrEqual(-1);
      expect(Math.max(...first[0].image)).toBeLessThanOrEqual(1);
      expect(new Set(first[0].label)).toEqual(new Set([0, 1, 2]));
      const target = labelToTarget(first[0].label, first[0].task);
      expect(target.length).toBe(2 * first[0].label.length);
      // A different target spacing invalidates the cache entry.
      const third = await preprocessDataset(cases, cache, { targetSpacingZYX: [30, 20, 20], onProgress: (p) => progress.push(p.cached) });
      expect(progress[2]).toBe(false);
      expect(third[0].shape[0]).toBeLessThan(first[0].shape[0]);
    } finally {
      await rm(cache, { recursive: true, force: true });
    }
  });
});

describe('dataset layouts', () => {
  it('parses dataset.json with errors that name the file and field', () => {
    const cases = parseMsdDataset({ name: 'Pancreas', training: [{ image: './imagesTr/pancreas_001.nii.gz', label: './labelsTr/pancreas_001.nii.gz' }] }, '/data/somewhere');
    expect(cases).toEqual([{ id: 'somewhere/pancreas_001', task: 3, image: '/data/somewhere/imagesTr/pancreas_001.nii.gz', label: '/data/somewhere/labelsTr/pancreas_001.nii.gz' }]);
    expect(() => parseMsdDataset({ training: 'x' }, '/d/Task03_Liver')).toThrow(/\/d\/Task03_Liver\/dataset\.json: field training is string; expected an array/);
    expect(() => parseMsdDataset({ training: [{ image: 1 }] }, '/d/Task03_Liver')).toThrow(/field training\[0\] is \{"image":1\}/);
    expect(() => parseMsdDataset({ name: 'Brain', training: [] }, '/d/Task01_BrainTumour')).toThrow(/cannot tell the task from folder "Task01_BrainTumour" or field name \("Brain"\)/);
  });

  it('parses DoDNet list files, task from the folder name', () => {
    const text = [
      '0Liver/imagesTr/liver_0.nii.gz 0Liver/labelsTr/liver_0.nii.gz',
      '# comment',
      '',
      '1Kidney/origin/case_00000/imaging.nii.gz 1Kidney/origin/case_00000/segmentation.nii.gz',
      'data/Task10_Colon/imagesTr/colon_001.nii.gz\tdata/Task10_Colon/labelsTr/colon_001.nii.gz',
    ].join('\n');
    const cases = parseDodnetList(text, '/root', 'MOTS_train.txt');
    expect(cases.map((c) => [c.id, c.task])).toEqual([['0Liver/liver_0', 0], ['1Kidney/case_00000', 1], ['Task10_Colon/colon_001', 4]]);
    expect(cases[0].image).toBe('/root/0Liver/imagesTr/liver_0.nii.gz');
    expect(() => parseDodnetList('a.nii b.nii', '/r', 'list.txt')).toThrow(/list\.txt:1: no folder in "a\.nii" names a task/);
    expect(() => parseDodnetList('0Liver/a.nii', '/r', 'list.txt')).toThrow(/list\.txt:1: expected "image-path label-path", got 1 field/);
  });

  it('loadDodnetList resolves paths against the list folder', async () => {
    const list = join(dir, 'list.txt');
    await writeFile(list, 'Task03_Liver/imagesTr/liver_000.nii.gz Task03_Liver/labelsTr/liver_000.nii.gz\n');
    try {
      const cases = await loadDodnetList(list);
      expect(cases[0].task).toBe(0);
      expect((await readNiftiFile(cases[0].label)).shape).toEqual([32, 32, 12]);
    } finally {
      await rm(list);
    }
  });

  it('refuses garbled paths and repeated cases in dataset.json and list files, naming the entry', () => {
    const entry = (image: string, label = './labelsTr/liver_0.nii.gz') => ({ image, label });
    const msd = (...training: unknown[]) => () => parseMsdDataset({ training }, '/d/Task03_Liver');
    expect(msd(entry(''))).toThrow(/dataset\.json: field training\[0\]\.image "" is empty; expected a path to a \.nii or \.nii\.gz file/);
    expect(msd(entry('./imagesTr/liver_0.nii.gz', './labelsTr/liver\u00000.nii.gz'))).toThrow(/field training\[0\]\.label .* contains control characters/);
    expect(msd(entry('./imagesTr/liver_0.txt'))).toThrow(/field training\[0\]\.image "\.\/imagesTr\/liver_0\.txt" does not name a \.nii or \.nii\.gz file/);
    expect(msd(entry('./imagesTr/.nii.gz'))).toThrow(/does not name a \.nii or \.nii\.gz file/);
    expect(msd(entry('./imagesTr/liver_0.nii.gz'), entry('./imagesTr/liver_1.nii'), entry('./other/liver_0.nii.gz'))).toThrow(
      /dataset\.json: field training\[2\]: case id "Task03_Liver\/liver_0" repeats \/d\/Task03_Liver\/dataset\.json: field training\[0\]; expected each case once/,
    );
    expect(() => parseMsdDataset([{ image: 'a.nii', label: 'b.nii' }], '/d/Task03_Liver')).toThrow(/dataset\.json: expected a JSON object, got an array/);
    const list = ['0Liver/imagesTr/liver_0.nii.gz 0Liver/labelsTr/liver_0.nii.gz', '', '0Liver/imagesTr/liver_0.nii.gz 0Liver/labelsTr/liver_1.nii.gz'].join('\n');
    expect(() => parseDodnetList(list, '/r', 'list.txt')).toThrow(/list\.txt:3: case id "0Liver\/liver_0" repeats list\.txt:1; expected each case once/);
    expect(() => parseDodnetList('0Liver/imagesTr/liver_0.nii.gz 0Liver/labelsTr/liver_0.gz', '/r', 'list.txt')).toThrow(
      /list\.txt:1: label path "0Liver\/labelsTr\/liver_0\.gz" does not name a \.nii or \.nii\.gz file/,
    );
  });

  it('reads dataset.json, list and split files that start with a UTF-8 byte order mark', async () => {
    const root = join(dir, 'bom', 'Task03_Liver');
    await mkdir(root, { recursive: true });
    await writeFile(join(root, 'dataset.json'), `\ufeff${JSON.stringify({ training: [{ image: './imagesTr/liver_0.nii.gz', label: './labelsTr/liver_0.nii.gz' }] })}`);
    const cases = await loadMsdDataset(root);
    expect(cases.map((c) => c.id)).toEqual(['Task03_Liver/liver_0']);
    expect(parseDodnetList('\ufeff0Liver/imagesTr/liver_0.nii.gz 0Liver/labelsTr/liver_0.nii.gz', '/r', 'list.txt')[0].image).toBe('/r/0Liver/imagesTr/liver_0.nii.gz');
    const splitPath = join(root, 'split.json');
    await writeFile(splitPath, `\ufeff${JSON.stringify({ seed: 1, trainFraction: 1, train: ['Task03_Liver/liver_0'], val: [] })}`);
    expect((await loadOrCreateSplit(splitPath, cases, 0)).loaded).toBe(true);
  });

  it('80/20 split per task, fixed by the seed', () => {
    const cases: DatasetCase[] = [];
    for (const [task, n] of [[0, 10], [4, 5], [6, 2], [5, 1]]) {
      for (let i = 0; i < n; i++) cases.push({ id: `t${task}/c${i}`, task, image: '', label: '' });
    }
    const a = splitCases(cases, 1);
    expect(splitCases(cases, 1)).toEqual(a);
    expect(splitCases(cases, 2)).not.toEqual(a);
    const per = (ids: string[], task: number) => ids.filter((id) => id.startsWith(`t${task}/`)).length;
    expect([per(a.train, 0), per(a.val, 0)]).toEqual([8, 2]);
    expect([per(a.train, 4), per(a.val, 4)]).toEqual([4, 1]);
    expect([per(a.train, 6), per(a.val, 6)]).toEqual([1, 1]);
    expect([per(a.train, 5), per(a.val, 5)]).toEqual([1, 0]);
    expect(new Set([...a.train, ...a.val]).size).toBe(cases.length);
    expect(() => splitCases([cases[0], cases[0]], 1)).toThrow(/appears twice/);
  });

  it('writes the split file once and reads it back; refuses one that does not match the dataset', async () => {
    const cases = await loadMsdCollection(dir, TASKS.map((t) => t.datasetName));
    const path = join(dir, 'splits', 'split.json');
    const created = await loadOrCreateSplit(path, cases, 0);
    expect(created.loaded).toBe(false);
    expect(created.train.length + created.val.length).toBe(14);
    const read = await loadOrCreateSplit(path, cases, 999); // the stored split wins over a new seed
    expect(read.loaded).toBe(true);
    expect(read.split.train).toEqual(created.split.train);
    await expect(loadOrCreateSplit(path, cases.slice(1), 0)).rejects.toThrow(/split\.json: case ".*" is not in the dataset/);
    await writeFile(path, '{"train": 3}');
    await expect(loadOrCreateSplit(path, cases, 0)).rejects.toThrow(/split\.json: field train is 3; expected an array of case ids/);
  });

  it('refuses split files with a case in both train and val, a repeated case, wrong field types or no training case', async () => {
    const cases: DatasetCase[] = ['a', 'b', 'c'].map((id) => ({ id: `Task03_Liver/${id}`, task: 0, image: `/x/${id}.nii.gz`, label: `/y/${id}.nii.gz` }));
    const path = join(dir, 'splits', 'bad-split.json');
    await mkdir(join(dir, 'splits'), { recursive: true });
    const attempt = async (split: unknown) => {
      await writeFile(path, JSON.stringify(split));
      return loadOrCreateSplit(path, cases, 0);
    };
    const [a, b, c] = cases.map((x) => x.id);
    await expect(attempt({ train: [a, b], val: [c, a] })).rejects.toThrow(/bad-split\.json: field val\[1\] "Task03_Liver\/a" already appears in train\[0\]; expected each case in train or val once/);
    await expect(attempt({ train: [a, b, b], val: [c] })).rejects.toThrow(/field train\[2\] "Task03_Liver\/b" already appears in train\[1\]/);
    await expect(attempt({ seed: 'one', train: [a, b], val: [c] })).rejects.toThrow(/bad-split\.json: field seed is "one"; expected an integer/);
    await expect(attempt({ seed: 1, trainFraction: 80, train: [a, b], val: [c] })).rejects.toThrow(/field trainFraction is 80; expected a number in \(0, 1\]/);
    await expect(attempt({ train: [], val: [a, b, c] })).rejects.toThrow(/bad-split\.json: field train is empty while the dataset has 3 case\(s\)/);
    await expect(attempt({ train: [a, ''], val: [b, c] })).rejects.toThrow(/field train is \[.*\]; expected an array of case ids/);
    await expect(attempt([a, b, c])).rejects.toThrow(/bad-split\.json: expected a JSON object/);
    const good = await attempt({ train: [a, b], val: [c] });
    expect(good.train.map((x) => x.id)).toEqual([a, b]);
    expect(good.split.seed).toBeNaN();
  });
});

describe('tgnet synth arguments', () => {
  it('parses flags with defaults and rejects bad ones', () => {
    // No --size, --spacing or --like: the command uses 32 64 64 (and the spacing follows).
    expect(parseSynthArgs(['--out', 'x'])).toEqual({ out: 'x', cases: 4, seed: 0, tasks: [0, 1, 2, 3, 4, 5, 6], quiet: false });
    expect(parseSynthArgs(['--out', 'x', '--tasks', 'liver,6,Task06_Lung', '--size', '8', '16', '16']).tasks).toEqual([0, 6, 5]);
    expect(() => parseSynthArgs([])).toThrow(/--out DIR is required/);
    expect(() => parseSynthArgs(['--out', 'x', '--cases', '0'])).toThrow(/--cases is "0"; expected an integer >= 1/);
    expect(() => parseSynthArgs(['--out', 'x', '--tasks', 'brain'])).toThrow(/--tasks entry "brain" is not a task/);
    expect(() => parseSynthArgs(['--out', 'x', '--bogus'])).toThrow(/unknown argument "--bogus"/);
  });
});
