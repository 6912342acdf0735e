/**
 * Dataset layouts: MSD (`dataset.json` with imagesTr/labelsTr) and DoDNet list files, plus a
 * reproducible per-task train/validation split. Parsing is pure; the `load*` functions read files
 * (Node only).
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize } from 'node:path';
import { Random } from './random.js';
import { taskFromName, taskById, type TaskInfo } from './tasks.js';
import { writeFileAtomic } from '../common/node-files.js';

export interface DatasetCase {
  /** Unique across tasks: `<dataset folder>/<file stem>`, e.g. `Task03_Liver/liver_0`. */
  id: string;
  task: number;
  image: string;
  label: string;
}

function stem(path: string): string {
  return basename(path.replace(/[\\/]+$/, '')).replace(/\.(nii(\.gz)?|zip)$/i, '');
}

function resolveIn(root: string, path: string): string {
  return isAbsolute(path) ? path : normalize(join(root, path));
}

interface MsdEntry {
  image: string;
  label: string;
}

function isMsdEntry(x: unknown): x is MsdEntry {
  return typeof x === 'object' && x !== null && typeof (x as MsdEntry).image === 'string' && typeof (x as MsdEntry).label === 'string';
}

/** What a JSON value is, for messages: "missing", "null", "an array" or its type. */
function kindOf(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  return Array.isArray(value) ? 'an array' : typeof value;
}

/** Short JSON for a message; values nested too deeply for JSON.stringify are described instead. */
function preview(value: unknown, max: number): string {
  if (value === undefined) return 'missing';
  try {
    const text = JSON.stringify(value);
    return text.length > max ? `${text.slice(0, max)}...` : text;
  } catch {
    return `a deeply nested ${kindOf(value)}`;
  }
}

/** Editors on Windows may start a UTF-8 file with a byte order mark, which JSON.parse and paths must not see. */
const stripBom = (text: string): string => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);

const NIFTI_PATH = /\.nii(\.gz)?$/i;
/** A CT image may also be a DICOM series: a folder (written with a trailing slash, so a typo is not taken for one) or a zip. */
const DICOM_PATH = /(\.zip|[\\/])$/i;

/**
 * Why `path` cannot name a NIfTI file (or, for an image, a DICOM series), or undefined when it can: an empty name,
 * control characters (a NUL makes every file system call fail far from here) or a missing suffix all mean a garbled entry.
 */
function badNiftiPath(path: string, image = false): string | undefined {
  if (path.trim() === '') return 'is empty';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) return 'contains control characters';
  if (image && DICOM_PATH.test(path) && stem(path) !== '') return undefined;
  if (!NIFTI_PATH.test(path) || stem(path) === '') return `does not name a .nii or .nii.gz file${image ? ' (nor a DICOM series: a folder written with a trailing /, or a .zip)' : ''}`;
  return undefined;
}

/** Refuses a second case with the same id: it would be trained on twice and could land in both train and val. */
function checkUniqueIds(cases: readonly DatasetCase[], where: (i: number) => string): void {
  const first = new Map<string, number>();
  cases.forEach((c, i) => {
    const j = first.get(c.id);
    if (j !== undefined) throw new Error(`${where(i)}: case id ${JSON.stringify(c.id)} repeats ${where(j)}; expected each case once`);
    first.set(c.id, i);
  });
}

/**
 * Cases of one MSD-layout dataset from its parsed `dataset.json`. The task comes from `task`, else
 * the folder name (`Task03_Liver`, `0Liver`, `KiTS19`), else the json's "name" field.
 */
export function parseMsdDataset(json: unknown, root: string, source = join(root, 'dataset.json'), task?: number): DatasetCase[] {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new Error(`${source}: expected a JSON object, got ${json === null ? 'null' : Array.isArray(json) ? 'an array' : typeof json}`);
  }
  const obj = json as Record<string, unknown>;
  let info: TaskInfo | undefined = task !== undefined ? taskById(task) : taskFromName(basename(root));
  if (!info && typeof obj.name === 'string') info = taskFromName(obj.name);
  if (!info) {
    throw new Error(`${source}: cannot tell the task from folder ${JSON.stringify(basename(root))} or field name (${preview(obj.name, 80)}); expected e.g. Task03_Liver, KiTS19, 0Liver (or pass the task id)`);
  }
  const training = obj.training;
  if (!Array.isArray(training)) throw new Error(`${source}: field training is ${kindOf(training)}; expected an array of {image, label}`);
  const folder = basename(root);
  const cases = training.map((entry: unknown, i) => {
    if (!isMsdEntry(entry)) {
      throw new Error(`${source}: field training[${i}] is ${preview(entry, 200)}; expected {"image": string, "label": string}`);
    }
    for (const field of ['image', 'label'] as const) {
      const why = badNiftiPath(entry[field], field === 'image');
      if (why) throw new Error(`${source}: field training[${i}].${field} ${JSON.stringify(entry[field].slice(0, 200))} ${why}; expected a path to a .nii or .nii.gz file`);
    }
    return { id: `${folder}/${stem(entry.image)}`, task: info.id, image: resolveIn(root, entry.image), label: resolveIn(root, entry.label) };
  });
  checkUniqueIds(cases, (i) => `${source}: field training[${i}]`);
  return cases;
}

export async function loadMsdDataset(root: string, task?: number): Promise<DatasetCase[]> {
  const source = join(root, 'dataset.json');
  let text: string;
  try {
    text = await readFile(source, 'utf8');
  } catch (err) {
    throw new Error(`${source}: cannot read MSD dataset.json (${(err as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(stripBom(text));
  } catch (err) {
    throw new Error(`${source}: invalid JSON (${(err as Error).message})`);
  }
  return parseMsdDataset(json, root, source, task);
}

/**
 * Cases from a DoDNet-style list (`MOTS_train.txt`): one case per line, `image-path label-path`
 * separated by whitespace, relative to `root`; the task is the first path component naming one
 * (`0Liver/imagesTr/liver_0.nii.gz`, `Task03_Liver/...`). Blank lines and `#` comments are skipped.
 */
export function parseDodnetList(text: string, root: string, source = '<list>'): DatasetCase[] {
  const cases: DatasetCase[] = [];
  const lines: number[] = [];
  stripBom(text).split(/\r?\n/).forEach((raw, lineIndex) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const parts = line.split(/\s+/);
    if (parts.length !== 2) {
      throw new Error(`${source}:${lineIndex + 1}: expected "image-path label-path", got ${parts.length} field(s): ${preview(line, 200)}`);
    }
    const [image, label] = parts;
    for (const [field, path] of [['image', image], ['label', label]] as const) {
      const why = badNiftiPath(path, field === 'image');
      if (why) throw new Error(`${source}:${lineIndex + 1}: ${field} path ${JSON.stringify(path.slice(0, 200))} ${why}; expected "image-path label-path" of .nii or .nii.gz files`);
    }
    const components = image.split(/[\\/]/);
    let info: TaskInfo | undefined;
    let folder = '';
    for (const c of components) {
      info = taskFromName(c);
      if (info) {
        folder = c;
        break;
      }
    }
    if (!info) {
      throw new Error(`${source}:${lineIndex + 1}: no folder in ${preview(image, 200)} names a task; expected one such as 0Liver, 1Kidney or Task03_Liver`);
    }
    // KiTS19 keeps every case in its own folder with fixed file names (case_00000/imaging.nii.gz).
    const fileStem = stem(image);
    const caseName = fileStem === 'imaging' ? basename(dirname(image)) : fileStem;
    cases.push({ id: `${folder}/${caseName}`, task: info.id, image: resolveIn(root, image), label: resolveIn(root, label) });
    lines.push(lineIndex + 1);
  });
  checkUniqueIds(cases, (i) => `${source}:${lines[i]}`);
  return cases;
}

export async function loadDodnetList(listPath: string, root = dirname(listPath)): Promise<DatasetCase[]> {
  let text: string;
  try {
    text = await readFile(listPath, 'utf8');
  } catch (err) {
    throw new Error(`${listPath}: cannot read DoDNet list (${(err as Error).message})`);
  }
  return parseDodnetList(text, root, listPath);
}

/** All MSD-layout datasets (subfolders with a dataset.json) directly under `root`, sorted by task. */
export async function loadMsdCollection(root: string, folders: readonly string[]): Promise<DatasetCase[]> {
  const all: DatasetCase[] = [];
  for (const folder of folders) {
    const dir = join(root, folder);
    if (await exists(join(dir, 'dataset.json'))) all.push(...(await loadMsdDataset(dir)));
  }
  return all.sort((a, b) => a.task - b.task || a.id.localeCompare(b.id));
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Splits

export interface CaseSplit {
  seed: number;
  trainFraction: number;
  /** Case ids. */
  train: string[];
  val: string[];
}

/**
 * Per task: sort ids, shuffle with a seed derived from (seed, task), first round(n * fraction) train.
 * A task with two or more cases keeps at least one case on each side.
 */
export function splitCases(cases: readonly DatasetCase[], seed: number, trainFraction = 0.8): CaseSplit {
  if (!(trainFraction > 0 && trainFraction <= 1)) throw new Error(`splitCases: trainFraction is ${trainFraction}; expected a number in (0, 1]`);
  const seen = new Set<string>();
  for (const c of cases) {
    if (seen.has(c.id)) throw new Error(`splitCases: case id ${JSON.stringify(c.id)} appears twice; expected unique ids`);
    seen.add(c.id);
  }
  const byTask = new Map<number, string[]>();
  for (const c of cases) {
    const list = byTask.get(c.task) ?? [];
    list.push(c.id);
    byTask.set(c.task, list);
  }
  const train: string[] = [];
  const val: string[] = [];
  for (const task of [...byTask.keys()].sort((a, b) => a - b)) {
    const ids = (byTask.get(task) ?? []).sort();
    new Random(seed * 1009 + task).shuffle(ids);
    let nTrain = Math.round(ids.length * trainFraction);
    if (ids.length >= 2) nTrain = Math.min(ids.length - 1, Math.max(1, nTrain));
    train.push(...ids.slice(0, nTrain).sort());
    val.push(...ids.slice(nTrain).sort());
  }
  return { seed, trainFraction, train, val };
}

export interface ResolvedSplit {
  split: CaseSplit;
  train: DatasetCase[];
  val: DatasetCase[];
  /** True when the split was read from `path` rather than created. */
  loaded: boolean;
}

/**
 * Reads the split at `path` if present (and checks it names only known cases and covers them all),
 * else creates one with `splitCases` and writes it there, so every run trains on the same cases.
 */
export async function loadOrCreateSplit(path: string, cases: readonly DatasetCase[], seed: number, trainFraction = 0.8): Promise<ResolvedSplit> {
  const byId = new Map(cases.map((c) => [c.id, c]));
  let split: CaseSplit;
  let loaded = false;
  if (await exists(path)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(stripBom(await readFile(path, 'utf8')));
    } catch (err) {
      throw new Error(`${path}: cannot read split file (${(err as Error).message}); delete it to create a new split`);
    }
    split = validateSplit(parsed, path);
    for (const id of [...split.train, ...split.val]) {
      if (!byId.has(id)) throw new Error(`${path}: case ${preview(id, 200)} is not in the dataset; expected only known case ids (delete the file to re-split)`);
    }
    const inSplit = new Set([...split.train, ...split.val]);
    const missing = cases.filter((c) => !inSplit.has(c.id)).map((c) => c.id);
    if (missing.length > 0) {
      throw new Error(`${path}: fields train and val leave out ${missing.length} dataset case(s) (first: ${JSON.stringify(missing[0])}); expected every case in one of them (delete the file to re-split)`);
    }
    if (split.train.length === 0 && cases.length > 0) {
      throw new Error(`${path}: field train is empty while the dataset has ${cases.length} case(s); expected at least one training case (delete the file to re-split)`);
    }
    loaded = true;
  } else {
    split = splitCases(cases, seed, trainFraction);
    await writeFileAtomic(path, JSON.stringify(split, null, 2) + '\n');
  }
  const pick = (ids: string[]) => ids.map((id) => byId.get(id) as DatasetCase);
  return { split, train: pick(split.train), val: pick(split.val), loaded };
}

/** Checks a parsed split file's structure; `loadOrCreateSplit` then checks it against the dataset. */
export function validateSplit(x: unknown, path: string): CaseSplit {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new Error(`${path}: expected a JSON object {seed, trainFraction, train, val}`);
  const o = x as Record<string, unknown>;
  for (const field of ['train', 'val'] as const) {
    const v = o[field];
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string' && s !== '')) {
      throw new Error(`${path}: field ${field} is ${preview(v, 80)}; expected an array of case ids`);
    }
  }
  // Both are optional (a hand-written split may leave them out) but, when present, must be what splitCases writes.
  if (o.seed !== undefined && !Number.isSafeInteger(o.seed)) throw new Error(`${path}: field seed is ${preview(o.seed, 80)}; expected an integer`);
  const fraction = o.trainFraction;
  if (fraction !== undefined && !(typeof fraction === 'number' && fraction > 0 && fraction <= 1)) {
    throw new Error(`${path}: field trainFraction is ${preview(fraction, 80)}; expected a number in (0, 1]`);
  }
  const train = o.train as string[];
  const val = o.val as string[];
  const seen = new Map<string, string>();
  for (const [field, ids] of [['train', train], ['val', val]] as const) {
    ids.forEach((id, i) => {
      const before = seen.get(id);
      if (before !== undefined) {
        throw new Error(`${path}: field ${field}[${i}] ${JSON.stringify(id)} already appears in ${before}; expected each case in train or val once (delete the file to re-split)`);
      }
      seen.set(id, `${field}[${i}]`);
    });
  }
  return { seed: typeof o.seed === 'number' ? o.seed : NaN, trainFraction: typeof fraction === 'number' ? fraction : NaN, train, val };
}
