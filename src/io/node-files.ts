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
