/**
 * Node-only: DICOM series from a folder, a .zip or one of its files, and one entry point for every CT input
 * the CLI takes (`readCtInput`: NIfTI file, DICOM folder, DICOM zip, a DICOM file standing for its series).
 */
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describeDicomSeries, isDicomPart10, isZip, listDicomSeries, readDicomSeries, unzipDicomFiles, type DicomFileBytes, type DicomSeriesInfo, type DicomVolume, type ReadDicomOptions } from './dicom.js';
import type { NiftiVolume } from './nifti.js';
import { readNiftiFile } from './nifti-file.js';

/** A folder deeper than this is not a series export but a whole archive: say so instead of reading it all. */
const MAX_DEPTH = 6;
const MAX_FILES = 20000;
async function readBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    const buf = await readFile(path);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (e) {
    throw new Error(`${path}: cannot read ${what} (${(e as Error).message})`);
  }
}

async function listFolder(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, depth: number): Promise<void> => {
    if (depth > MAX_DEPTH) throw new Error(`${root}: folders nest deeper than ${MAX_DEPTH} levels (at ${dir}); expected the folder of one study or series`);
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p, depth + 1);
      else if (e.isFile()) {
        out.push(p);
        if (out.length > MAX_FILES) throw new Error(`${root}: more than ${MAX_FILES} files; expected the folder of one study or series`);
      }
    }
  };
  await walk(root, 0);
  return out;
}

/** Every file a DICOM input names: a folder's (recursively), a zip's, or the folder of a single DICOM file. */
export async function readDicomInputFiles(path: string): Promise<{ files: DicomFileBytes[]; series?: string }> {
  const info = await stat(path).catch((e: Error) => { throw new Error(`${path}: cannot read the input (${e.message})`); });
  if (info.isDirectory()) {
    const paths = await listFolder(path);
    return { files: await Promise.all(paths.map(async (p) => ({ name: p, bytes: await readBytes(p, 'the DICOM file') }))) };
  }
  const bytes = await readBytes(path, 'the input');
  if (/\.zip$/i.test(path) || isZip(bytes)) return { files: unzipDicomFiles(bytes, path) };
  // One slice stands for its series: the rest are its folder's files with the same SeriesInstanceUID.
  const [own] = listDicomSeries([{ name: path, bytes }]);
  if (!own) throw new Error(`${path}: a DICOM file without pixel data; expected a CT slice, a series folder or a zip`);
  const { files } = await readDicomInputFiles(dirname(path));
  return { files, series: own.uid };
}

/** True when `path` is a folder, a zip or a DICOM Part 10 file (anything else is read as NIfTI). */
export async function isDicomInput(path: string): Promise<boolean> {
  const info = await stat(path).catch(() => null);
  if (!info) return false;
  if (info.isDirectory() || /\.zip$/i.test(path)) return true;
  if (/\.nii(\.gz)?$/i.test(path)) return false;
  const head = new Uint8Array(132);
  const fh = await open(path, 'r');
  try {
    await fh.read(head, 0, 132, 0);
  } finally {
    await fh.close();
  }
  return isDicomPart10(head);
}

/** Reads the series a folder, zip or DICOM file holds (`options.series` picks one of several). */
export async function readDicomInput(path: string, options: Omit<ReadDicomOptions, 'name'> = {}): Promise<DicomVolume> {
  const { files, series } = await readDicomInputFiles(path);
  return readDicomSeries(files, { ...options, series: options.series ?? series, name: path });
}

/** The series of a folder, zip or DICOM file, one line each (what `--series` chooses from). */
export async function listDicomInput(path: string): Promise<{ series: DicomSeriesInfo[]; lines: string[] }> {
  const { files } = await readDicomInputFiles(path);
  const series = listDicomSeries(files);
  return { series, lines: series.map((s, i) => describeDicomSeries(s, i)) };
}

export interface CtInput {
  volume: NiftiVolume;
  /** Set when the input was DICOM. */
  dicom?: DicomVolume;
}

export interface ReadCtInputOptions {
  /** SeriesInstanceUID for a DICOM folder or zip of several series. */
  series?: string;
  allowTilt?: boolean;
}

/** A CT from a NIfTI file or DICOM (folder, zip, one of its files); `series` only applies to DICOM. */
export async function readCtInput(path: string, options: ReadCtInputOptions = {}): Promise<CtInput> {
  if (await isDicomInput(path)) {
    const dicom = await readDicomInput(path, options);
    return { volume: dicom, dicom };
  }
  if (options.series !== undefined) throw new Error(`${path}: --series ${options.series} given for a NIfTI file; expected a DICOM folder, zip or file with it`);
  return { volume: await readNiftiFile(path) };
}
