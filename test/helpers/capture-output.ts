import { vi } from 'vitest';

/** console.log lines and the progress reporter's lines (process.stdout, not a TTY under vitest), in order. */
export function captureOutput(): string[] {
  const lines: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((s: string) => { lines.push(s); });
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(...String(chunk).split('\n').filter((l) => l !== ''));
    return true;
  });
  return lines;
}
