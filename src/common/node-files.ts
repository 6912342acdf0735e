/**
 * File helpers every room may use (the bottom of the stack: this room imports nothing of the others). Node's
 * built-ins are loaded by a computed name, so that a browser bundle of a module that imports this one (and only
 * calls its byte-level functions) carries no node: import.
 */

/** A Node built-in module, loaded by a computed name that bundlers leave alone. */
export function nodeModule<T>(name: string): Promise<T> {
  return import(/* @vite-ignore */ name) as Promise<T>;
}

/**
 * fsyncs a folder, so that a rename in it survives a power loss. A no-op where folders cannot be opened
 * (Windows: EISDIR/EPERM/EINVAL/EACCES there mean "not supported", not a failed write).
 */
export async function syncFolder(dir: string): Promise<void> {
  const { open } = await nodeModule<typeof import('node:fs/promises')>('node:fs/promises');
  let handle: Awaited<ReturnType<typeof open>> | null = null;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!['EISDIR', 'EPERM', 'EINVAL', 'EACCES'].includes(code ?? '')) throw e;
  } finally {
    await handle?.close();
  }
}

let tempCounter = 0;

/**
 * Writes `data` to a sibling temporary file, flushes it to the disk, renames it over `path` (atomic on one
 * filesystem) and flushes the folder (the rename is durable only then), so a crash or power loss leaves either
 * the old file or the new one, never half of one.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const { mkdir, open, rename, rm } = await nodeModule<typeof import('node:fs/promises')>('node:fs/promises');
  const { dirname } = await nodeModule<typeof import('node:path')>('node:path');
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
