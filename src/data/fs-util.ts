/** Node-only helpers shared by the data layer's file code. */
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { syncFolder } from '../io/node-files.js';

let tempCounter = 0;

/**
 * Writes `data` to a sibling temporary file, flushes it to the disk, renames it over `path` (atomic on one
 * filesystem) and flushes the folder (the rename is durable only then), so a crash or power loss leaves either
 * the old file or the new one, never half of one.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.tmp-${process.pid}-${Date.now()}-${tempCounter++}`;
  try {
    const file = await open(temp, 'w');
    try {
      await file.writeFile(data);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
    await syncFolder(dirname(path));
  } catch (err) {
    await rm(temp, { force: true });
    throw new Error(`${path}: write failed (${(err as Error).message})`);
  }
}

