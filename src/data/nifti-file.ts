/** Node-only file helpers around the in-memory NIfTI codec. */
import { readFile } from 'node:fs/promises';
import { readNifti, writeNifti, type NiftiVolume, type NiftiWritable, type ReadNiftiOptions, type WriteNiftiOptions } from './nifti.js';
import { writeFileAtomic } from '../common/node-files.js';

export async function readNiftiFile(path: string, options: ReadNiftiOptions = {}): Promise<NiftiVolume> {
  const bytes = await readFileNamed(path);
  return readNifti(bytes, path, options);
}

/**
 * Writes to `path` via a temporary file and a rename, so readers never see half a file.
 * A `.gz` suffix turns gzip on unless `options.gzip` says otherwise.
 */
export async function writeNiftiFile(path: string, volume: NiftiWritable, options: WriteNiftiOptions): Promise<void> {
  const gzip = options.gzip ?? path.endsWith('.gz');
  const bytes = writeNifti(volume, { ...options, gzip, name: options.name ?? path });
  await writeFileAtomic(path, bytes);
}

async function readFileNamed(path: string): Promise<Uint8Array> {
  try {
    const buf = await readFile(path);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (err) {
    throw new Error(`${path}: cannot read NIfTI file (${(err as Error).message})`);
  }
}
