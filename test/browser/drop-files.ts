/** Dropping files on the page, as a person dragging them from a file manager would (shared by the browser tests). */
import { readFileSync } from 'node:fs';
import type { Page } from 'playwright-core';

export interface DropFile {
  name: string;
  bytes: Uint8Array;
}

/** Files read from disk, named by their base names. */
export const filesAt = (paths: readonly string[]): DropFile[] =>
  paths.map((p) => ({ name: p.split('/').pop() ?? p, bytes: readFileSync(p) }));

/** Drops `files` on `target` (the Segment tab's drop zone by default): a dragover, then the drop. */
export async function dropFiles(page: Page, files: readonly DropFile[], target = '#drop-zone'): Promise<void> {
  const list = files.map((f) => ({ name: f.name, base64: Buffer.from(f.bytes).toString('base64') }));
  const dataTransfer = await page.evaluateHandle((items) => {
    const dt = new DataTransfer();
    for (const f of items) dt.items.add(new File([Uint8Array.from(atob(f.base64), (ch) => ch.charCodeAt(0))], f.name));
    return dt;
  }, list);
  await page.dispatchEvent(target, 'dragover', { dataTransfer });
  await page.dispatchEvent(target, 'drop', { dataTransfer });
}
