/**
 * Seeded fuzz of the dataset description readers: MSD `dataset.json` (parsed, and from a file), DoDNet list files
 * and split files. JSON structure edits (wrong types, missing fields, huge numbers, nested garbage), line edits,
 * truncation and byte flips. Each case gives cases that pass every check below, or is refused with an Error naming
 * the file and the field (or line).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { loadDodnetList, loadMsdDataset, loadOrCreateSplit, parseDodnetList, parseMsdDataset, splitCases, type DatasetCase, type ResolvedSplit } from '../../src/data/datasets.js';
import { caseCount, caseSeed, expectClean, flipBytes, garbage, mutateJson, newOutcome, Rng, runCase, truncate, type Outcome } from './fuzz-util.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tgnet-fuzz-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const MSD = {
  name: 'Liver', description: 'fuzz', labels: { '0': 'background', '1': 'liver', '2': 'cancer' }, numTraining: 3, numTest: 1,
  training: [0, 1, 2].map((i) => ({ image: `./imagesTr/liver_${i}.nii.gz`, label: `./labelsTr/liver_${i}.nii.gz` })),
  test: ['./imagesTs/liver_9.nii.gz'],
};

const LIST = [
  '0Liver/imagesTr/liver_0.nii.gz 0Liver/labelsTr/liver_0.nii.gz',
  '# a comment',
  '',
  '1Kidney/origin/case_00000/imaging.nii.gz\t1Kidney/origin/case_00000/segmentation.nii.gz',
  'Task10_Colon/imagesTr/colon_001.nii.gz Task10_Colon/labelsTr/colon_001.nii.gz',
  '2HepaticVessel/imagesTr/hepaticvessel_001.nii 2HepaticVessel/labelsTr/hepaticvessel_001.nii',
].join('\n');

function checkCases(cases: DatasetCase[]): string | undefined {
  if (!Array.isArray(cases)) return 'not an array';
  const ids = new Set<string>();
  for (const c of cases) {
    if (typeof c.id !== 'string' || !/^[^/]+\/.+/.test(c.id)) return `id ${JSON.stringify(c.id)}`;
    if (ids.has(c.id)) return `id ${c.id} twice`;
    ids.add(c.id);
    if (!Number.isInteger(c.task) || c.task < 0 || c.task > 6) return `task ${c.task}`;
    for (const p of [c.image, c.label]) {
      // eslint-disable-next-line no-control-regex
      if (!isAbsolute(p) || !/\.nii(\.gz)?$/i.test(p) || /[\u0000-\u001f\ufeff]/.test(p)) return `path ${JSON.stringify(p)}`;
    }
  }
  return undefined;
}

/** Line-level edits of a list file: the ways hand-edited or half-copied lists go wrong. */
function mutateList(rng: Rng, text: string): { text: string; what: string } {
  const lines = text.split('\n');
  const i = rng.int(0, lines.length - 1);
  const edits: [string, () => void][] = [
    ['line repeated', () => lines.splice(i, 0, lines[i])],
    ['line removed', () => lines.splice(i, 1)],
    ['field dropped', () => { lines[i] = lines[i].split(/\s+/)[0]; }],
    ['field added', () => { lines[i] = `${lines[i]} extra.nii.gz`; }],
    ['columns swapped', () => { lines[i] = lines[i].split(/\s+/).reverse().join(' '); }],
    ['CRLF and trailing spaces', () => { lines[i] = `  ${lines[i]}  \r`; }],
    ['unknown task folder', () => { lines[i] = lines[i].replace(/^[^/]+/, rng.pick(['9Brain', 'Task99_Nothing', '', '..', 'liver'])); }],
    ['control character', () => { lines[i] = lines[i].replace('/', rng.pick(['/\u0000', '/\u0007', '\u001b/'])); }],
    ['suffix lost', () => { lines[i] = lines[i].replace(/\.nii(\.gz)?/, rng.pick(['', '.gz', '.txt', '.nii.gz.bak'])); }],
    ['garbage line', () => lines.splice(i, 0, String(JSON.stringify(garbage(rng))).slice(0, 300))],
    ['huge line', () => lines.splice(i, 0, `0Liver/${'a'.repeat(rng.int(1000, 100_000))}.nii 0Liver/b.nii`)],
    ['byte order mark', () => { lines[0] = `\ufeff${lines[0]}`; }],
  ];
  const [what, apply] = rng.pick(edits);
  apply();
  return { text: lines.join('\n'), what };
}

const MSD_FIELD = /field |JSON|cannot read/;
const LIST_FIELD = /:\d+: |cannot read/;
const SPLIT_FIELD = /field |case |cannot read split file|expected a JSON object/;

describe('dataset fuzz bases', () => {
  it('the unmutated inputs read', () => {
    expect(checkCases(parseMsdDataset(MSD, '/d/Task03_Liver'))).toBeUndefined();
    expect(parseDodnetList(LIST, '/root', 'list.txt').map((c) => c.id)).toEqual(['0Liver/liver_0', '1Kidney/case_00000', 'Task10_Colon/colon_001', '2HepaticVessel/hepaticvessel_001']);
  });
});

describe('dataset fuzz: MSD dataset.json, DoDNet lists and split files give valid cases or name the file and the field', () => {
  it('MSD dataset.json structure edits (parsed)', async () => {
    const outcome: Outcome = newOutcome();
    const count = caseCount(70);
    for (let i = 0; i < count; i++) {
      const seed = caseSeed(300, i);
      const rng = new Rng(seed);
      let json: unknown = MSD;
      for (let k = rng.int(1, 3); k > 0; k--) json = mutateJson(rng, json);
      const root = `/data/fuzz-${seed}/Task03_Liver`;
      const source = join(root, 'dataset.json');
      await runCase({ family: 'msd json', seed, what: 'JSON edits', source, inputBytes: 1 }, outcome, () => parseMsdDataset(json, root, source), checkCases, MSD_FIELD);
    }
    expectClean('MSD dataset.json (parsed)', outcome, count);
  });

  it('MSD dataset.json files: truncation, byte flips and edits on disk', async () => {
    const outcome: Outcome = newOutcome();
    const count = caseCount(50);
    const text = new TextEncoder().encode(JSON.stringify(MSD, null, 2));
    for (let i = 0; i < count; i++) {
      const seed = caseSeed(301, i);
      const rng = new Rng(seed);
      const kind = rng.pick(['truncate', 'flip', 'edit']);
      const bytes = kind === 'truncate' ? truncate(rng, text) : kind === 'flip' ? flipBytes(rng, text) : new TextEncoder().encode(JSON.stringify(mutateJson(rng, MSD)) ?? '');
      const root = join(dir, `msd-${seed}`, 'Task03_Liver');
      await mkdir(root, { recursive: true });
      await writeFile(join(root, 'dataset.json'), bytes);
      await runCase({ family: 'msd file', seed, what: kind, source: join(root, 'dataset.json'), inputBytes: bytes.length }, outcome, () => loadMsdDataset(root), checkCases, MSD_FIELD);
    }
    expectClean('MSD dataset.json (files)', outcome, count);
  });

  it('DoDNet list files: line edits, truncation and byte flips', async () => {
    const outcome: Outcome = newOutcome();
    const count = caseCount(100);
    for (let i = 0; i < count; i++) {
      const seed = caseSeed(302, i);
      const rng = new Rng(seed);
      let text = LIST;
      let what = '';
      const kind = rng.int(0, 9);
      if (kind < 6) {
        for (let k = rng.int(1, 2); k > 0; k--) {
          const m = mutateList(rng, text);
          text = m.text;
          what += `${m.what}; `;
        }
      } else if (kind < 8) {
        text = new TextDecoder().decode(truncate(rng, new TextEncoder().encode(LIST)));
        what = 'truncated';
      } else {
        text = new TextDecoder().decode(flipBytes(rng, new TextEncoder().encode(LIST)));
        what = 'byte flips';
      }
      const source = `MOTS_fuzz_${seed}.txt`;
      if (rng.chance(0.2)) {
        const path = join(dir, source);
        await writeFile(path, text);
        await runCase({ family: 'dodnet file', seed, what, source: path, inputBytes: text.length }, outcome, () => loadDodnetList(path), checkCases, LIST_FIELD);
      } else {
        await runCase({ family: 'dodnet list', seed, what, source, inputBytes: text.length }, outcome, () => parseDodnetList(text, '/root', source), checkCases, LIST_FIELD);
      }
    }
    expectClean('DoDNet lists', outcome, count);
  });

  it('split files: structure edits, truncation and byte flips', async () => {
    const outcome: Outcome = newOutcome();
    const count = caseCount(80);
    const cases: DatasetCase[] = [];
    for (const [task, folder] of [[0, 'Task03_Liver'], [1, 'KiTS19'], [4, 'Task10_Colon']] as const) {
      for (let i = 0; i < 4; i++) cases.push({ id: `${folder}/c${i}`, task, image: `/d/${folder}/c${i}.nii.gz`, label: `/d/${folder}/l${i}.nii.gz` });
    }
    const split = splitCases(cases, 7);
    const check = (r: ResolvedSplit): string | undefined => {
      const ids = [...r.train, ...r.val].map((c) => c.id);
      if (new Set(ids).size !== ids.length) return 'a case twice';
      if (ids.length !== cases.length) return `${ids.length} cases of ${cases.length}`;
      if (r.train.length === 0) return 'no training case';
      if (r.train.some((c) => c === undefined) || r.val.some((c) => c === undefined)) return 'unknown case';
      return undefined;
    };
    for (let i = 0; i < count; i++) {
      const seed = caseSeed(303, i);
      const rng = new Rng(seed);
      const text = new TextEncoder().encode(JSON.stringify(split, null, 2));
      const kind = rng.int(0, 9);
      let bytes: Uint8Array;
      let what: string;
      if (kind < 6) {
        let json: unknown = split;
        for (let k = rng.int(1, 2); k > 0; k--) json = mutateJson(rng, json);
        bytes = new TextEncoder().encode(JSON.stringify(json) ?? '');
        what = 'JSON edits';
      } else if (kind < 8) {
        bytes = truncate(rng, text);
        what = 'truncated';
      } else {
        bytes = flipBytes(rng, text);
        what = 'byte flips';
      }
      const path = join(dir, `split-${seed}.json`);
      await writeFile(path, bytes);
      await runCase({ family: 'split', seed, what, source: path, inputBytes: bytes.length }, outcome, () => loadOrCreateSplit(path, cases, 0), check, SPLIT_FIELD);
    }
    expectClean('split files', outcome, count);
  });
});
