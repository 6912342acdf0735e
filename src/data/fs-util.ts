/** Node-only helpers shared by the data layer's file code. */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

let tempCounter = 0;

/** Writes `data` to a sibling temporary file, then renames it over `path` (atomic on one filesystem). */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.tmp-${process.pid}-${Date.now()}-${tempCounter++}`;
  try {
    await writeFile(temp, data);
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw new Error(`${path}: write failed (${(err as Error).message})`);
  }
}
