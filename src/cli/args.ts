/**
 * The value checks every `tgnet` subcommand's argument parser shares: each failure names the command, the flag,
 * the value given and what was expected, followed by the command's usage.
 */
export interface ArgumentChecks {
  fail(message: string): never;
  /** An integer >= min. */
  integer(flag: string, text: string | undefined, min: number): number;
  /** A finite number >= 0. */
  number(flag: string, text: string | undefined): number;
  /** A path or name: present and not the next flag. */
  path(flag: string, text: string | undefined): string;
  /** One of `options`. */
  choice<T extends string>(flag: string, text: string | undefined, options: readonly T[]): T;
}

export function argumentChecks(command: string, usage: string): ArgumentChecks {
  const fail = (message: string): never => {
    throw new Error(`tgnet ${command}: ${message}\n${usage}`);
  };
  const parse = (text: string | undefined): number => (text === undefined || text.trim() === '' ? NaN : Number(text));
  return {
    fail,
    integer(flag, text, min) {
      const n = parse(text);
      if (!Number.isSafeInteger(n) || n < min) fail(`${flag} is ${JSON.stringify(text ?? null)}; expected an integer >= ${min}`);
      return n;
    },
    number(flag, text) {
      const n = parse(text);
      if (!Number.isFinite(n) || n < 0) fail(`${flag} is ${JSON.stringify(text ?? null)}; expected a finite number >= 0`);
      return n;
    },
    choice(flag, text, options) {
      if (!(options as readonly (string | undefined)[]).includes(text)) fail(`${flag} is ${JSON.stringify(text ?? null)}; expected one of ${options.join(', ')}`);
      return text as (typeof options)[number];
    },
    path(flag, text) {
      if (!text || text.startsWith('--')) fail(`${flag} needs a path, got ${JSON.stringify(text ?? null)}`);
      return text as string;
    },
  };
}
