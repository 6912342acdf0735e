/**
 * The argument layer every `tgnet` subcommand shares. A command declares its options once (flag, the words
 * after it, help text, default, how its words become a value, whether it is required or repeatable); the
 * parser and the usage text both come from that declaration. Tokenising is node:util `parseArgs` (strict:
 * unknown flags and stray words are errors). Every failure names the command, the flag, the value given and
 * what was expected, followed by the command's usage.
 */
import { isGridSide, TOTAL_STRIDE } from '../tgnet/model.js';
import { parseArgs } from 'node:util';

/** A command line that cannot be used as given (unknown flag, bad or missing value); main.ts exits 2 on it. */
export class ArgumentError extends Error {
  override name = 'ArgumentError';
}

/** The value checks: each failure names the command, the flag, the value given and what was expected. */
export interface ArgumentChecks {
  fail(message: string): never;
  /** An integer >= min. */
  integer(flag: string, text: string | undefined, min: number, expected?: string): number;
  /** A number passing `ok` (default: finite and >= 0). */
  number(flag: string, text: string | undefined, ok?: (n: number) => boolean, expected?: string): number;
  /** A path or name: present and not the next flag. */
  path(flag: string, text: string | undefined): string;
  /** One of `options`. */
  choice<T extends string>(flag: string, text: string | undefined, options: readonly T[], expected?: string): T;
}

export function argumentChecks(command: string, usage: string): ArgumentChecks {
  const fail = (message: string): never => {
    throw new ArgumentError(`tgnet ${command}: ${message}\n${usage}`);
  };
  const parse = (text: string | undefined): number => (text === undefined || text.trim() === '' ? NaN : Number(text));
  const shown = (text: string | undefined): string => JSON.stringify(text ?? null);
  return {
    fail,
    integer(flag, text, min, expected = `an integer >= ${min}`) {
      const n = parse(text);
      if (!Number.isSafeInteger(n) || n < min) fail(`${flag} is ${shown(text)}; expected ${expected}`);
      return n;
    },
    number(flag, text, ok = (n) => Number.isFinite(n) && n >= 0, expected = 'a finite number >= 0') {
      const n = parse(text);
      if (!ok(n)) fail(`${flag} is ${shown(text)}; expected ${expected}`);
      return n;
    },
    choice(flag, text, options, expected = `one of ${options.join(', ')}`) {
      if (!(options as readonly (string | undefined)[]).includes(text)) fail(`${flag} is ${shown(text)}; expected ${expected}`);
      return text as (typeof options)[number];
    },
    path(flag, text) {
      if (!text || text.startsWith('--')) fail(`${flag} needs a path, got ${shown(text)}`);
      return text as string;
    },
  };
}

/** What a value reader is handed besides the words: the flag, a name per word and the command's checks. */
export interface ValueContext extends ArgumentChecks {
  /** The flag, e.g. `--crop`. */
  readonly flag: string;
  /** A name per word for messages: the flag and the word (`--crop H`), or the flag alone for a one-word option. */
  readonly names: readonly string[];
}

/**
 * The words given after one occurrence of a flag -> its value. A word is undefined where the command line ran
 * out; where the next flag cut the words short, the first missing one is that flag (as `--out --seed` reads
 * "--out needs a path, got "--seed"").
 */
export type ReadValue<T> = (words: readonly (string | undefined)[], at: ValueContext) => T;

interface Occurrence {
  /** `--no-<name>` of a negatable switch. */
  negated: boolean;
  words: (string | undefined)[];
}

export interface OptionSpec<T> {
  /** Placeholder words after the flag ('DIR', 'D H W'): how many values it takes; none for a switch. */
  readonly words: readonly string[];
  /** Fewer words are accepted down to this many (`--spacing native` is one of `Z Y X`). */
  readonly minWords: number;
  readonly help: string;
  /** The value when the flag is absent. */
  readonly default: T;
  /** Absent is an error: true (`--out DIR is required`) or the whole message; null for an optional flag. */
  readonly required: true | string | null;
  /** May be given more than once; every occurrence counts (otherwise the last one does). */
  readonly repeatable: boolean;
  /** A switch that `--no-<flag>` turns off. */
  readonly negatable: boolean;
  /** The value from every occurrence, in order (at least one). */
  collect(occurrences: readonly Occurrence[], at: ValueContext): T;
}

const wordsOf = (words: string): string[] => words.split(' ').filter((w) => w !== '');

/** A switch: true when given. */
export function flag(help: string): OptionSpec<boolean> {
  return { words: [], minWords: 0, help, default: false, required: null, repeatable: false, negatable: false, collect: () => true };
}

/** `--x` / `--no-x`: the last one given wins; null when neither is. */
export function toggle(help: string): OptionSpec<boolean | null> {
  return { words: [], minWords: 0, help, default: null, required: null, repeatable: false, negatable: true, collect: (occ) => !occ[occ.length - 1].negated };
}

export interface OptionSettings<D> {
  default?: D;
  /** Accept down to this many of the words (default all). */
  minWords?: number;
}

/** A flag taking `words` (e.g. 'D H W'); the last occurrence counts. Required: `true` or the message when absent. */
export function option<T>(words: string, help: string, read: ReadValue<T>, settings: { required: true | string; minWords?: number }): OptionSpec<T>;
export function option<T, D = undefined>(words: string, help: string, read: ReadValue<T>, settings?: OptionSettings<D>): OptionSpec<T | D>;
export function option<T, D>(words: string, help: string, read: ReadValue<T>, settings: OptionSettings<D> & { required?: true | string } = {}): OptionSpec<T | D> {
  const list = wordsOf(words);
  return {
    words: list, minWords: settings.minWords ?? list.length, help, default: settings.default as D,
    required: settings.required ?? null, repeatable: false, negatable: false,
    collect: (occ, at) => read(occ[occ.length - 1].words, at),
  };
}

/** A flag that may be repeated (`--model A --model B`): a value per occurrence, in order; [] when absent. */
export function repeated<T>(words: string, help: string, read: ReadValue<T>, settings: { required?: true | string } = {}): OptionSpec<T[]> {
  const list = wordsOf(words);
  return {
    words: list, minWords: list.length, help, default: [], required: settings.required ?? null, repeatable: true, negatable: false,
    collect: (occ, at) => occ.map((o) => read(o.words, at)),
  };
}

// Readers for the common kinds.

export const pathValue: ReadValue<string> = ([text], at) => at.path(at.flag, text);

/** A word taken as it is, checked only for presence. */
export const textValue: ReadValue<string> = ([text], at) => {
  if (text === undefined || text.startsWith('--')) at.fail(`${at.flag} needs a value, got ${JSON.stringify(text ?? null)}`);
  return text as string;
};

export const integerValue = (min: number, expected?: string): ReadValue<number> => ([text], at) => at.integer(at.flag, text, min, expected);

export const numberValue = (ok?: (n: number) => boolean, expected?: string): ReadValue<number> => ([text], at) => at.number(at.flag, text, ok, expected);

export const choiceValue = <T extends string>(options: readonly T[], expected?: string): ReadValue<T> => ([text], at) => at.choice(at.flag, text, options, expected);

/** Three words read one by one, each named by its word in messages (`--crop H is "20"; ...`). */
export function triple<T>(read: (text: string | undefined, name: string, at: ValueContext) => T): ReadValue<[T, T, T]> {
  return (words, at) => [read(words[0], at.names[0], at), read(words[1], at.names[1], at), read(words[2], at.names[2], at)];
}

/** A side of a crop, tile or volume: the network halves the grid four times, so a positive multiple of 16. */
export const gridSide = (text: string | undefined, name: string, at: ValueContext): number =>
  at.number(name, text, isGridSide, `a positive multiple of ${TOTAL_STRIDE}`);

export type OptionSpecs = Record<string, OptionSpec<unknown>>;

export type OptionValues<O extends OptionSpecs> = { -readonly [K in keyof O]: O[K] extends OptionSpec<infer T> ? T : never };

export interface ParsedArguments<O extends OptionSpecs> {
  values: OptionValues<O>;
  /** The options present on the command line. */
  given: ReadonlySet<keyof O>;
  /** The options in the order given, an entry per occurrence. */
  order: readonly (keyof O)[];
}

/** `cacheCases` -> `--cache-cases`. */
export const flagName = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

const USAGE_WIDTH = 112;

/**
 * Words wrapped to `width` columns, continuation lines indented by `indent`; '\n' in the text forces a break and
 * a no-break space (U+00A0) keeps two words together (`64 192 192`), printed as a space.
 */
function wrap(text: string, first: string, indent: number, width = USAGE_WIDTH): string[] {
  const lines: string[] = [];
  let line = first;
  let fresh = true;
  for (const paragraph of text.split('\n')) {
    for (const word of paragraph.split(' ').filter((w) => w !== '')) {
      if (!fresh && line.length + 1 + word.length > width) {
        lines.push(line);
        line = ' '.repeat(indent);
        fresh = true;
      }
      line += (fresh ? '' : ' ') + word;
      fresh = false;
    }
    lines.push(line);
    line = ' '.repeat(indent);
    fresh = true;
  }
  return lines.map((l) => l.replace(/\u00a0/g, ' '));
}

function label(key: string, spec: OptionSpec<unknown>): string {
  const f = flagName(key);
  const named = spec.words.length ? `${f} ${spec.words.join(' ')}` : f;
  return spec.negatable ? `${named} | --no-${f.slice(2)}` : named;
}

/** The option lines of a usage text: the flag and its words, then the help, aligned and wrapped. */
export function formatOptions(options: OptionSpecs): string {
  const labels = Object.entries(options).map(([key, spec]) => [label(key, spec), spec.help] as const);
  const column = Math.min(24, Math.max(...labels.map(([l]) => l.length)) + 4);
  return labels.flatMap(([l, help]) => {
    const head = `  ${l}`;
    if (head.length + 1 >= column) return [head, ...wrap(help, ' '.repeat(column), column)];
    return wrap(help, head.padEnd(column), column);
  }).join('\n');
}

/** `usage: tgnet <command> --req X [--opt Y] ...`, wrapped under the command name. */
export function formatSynopsis(command: string, options: OptionSpecs, tail = ''): string {
  const items = Object.entries(options).map(([key, spec]) => {
    const item = label(key, spec);
    if (spec.required) return spec.repeatable ? `${item} [${item} ...]` : item;
    return spec.repeatable ? `[${item} ...]` : `[${item}]`;
  });
  const head = `usage: tgnet ${command} `;
  const lines: string[] = [];
  let line = head;
  for (const item of [...items, ...(tail ? [tail] : [])]) {
    if (line.length > head.length && line.length + 1 + item.length > USAGE_WIDTH) {
      lines.push(line.trimEnd());
      line = ' '.repeat(head.length);
    }
    line += (line.length > head.length ? ' ' : '') + item;
  }
  lines.push(line);
  return lines.join('\n');
}

/** True when the command line asks for the usage (`--help` or `-h` anywhere), which the command then prints. */
export const asksForHelp = (argv: readonly string[]): boolean => argv.includes('--help') || argv.includes('-h');

/**
 * A subcommand's declared options: parses its argv and writes its usage. The usage is generated from the
 * declarations (synopsis, option lines, then `notes`) unless `usage` is given whole.
 */
export class CommandLine<O extends OptionSpecs> {
  readonly usage: string;
  readonly checks: ArgumentChecks;
  private readonly byFlag = new Map<string, { key: string; negated: boolean }>();

  constructor(readonly command: string, readonly options: O, text: { notes?: string; usage?: string } = {}) {
    this.usage = text.usage ?? [formatSynopsis(command, options), formatOptions(options), ...(text.notes ? [text.notes] : [])].join('\n');
    this.checks = argumentChecks(command, this.usage);
    for (const [key, spec] of Object.entries(options)) {
      this.byFlag.set(flagName(key).slice(2), { key, negated: false });
      if (spec.negatable) this.byFlag.set(`no-${flagName(key).slice(2)}`, { key, negated: true });
    }
  }

  fail(message: string): never {
    return this.checks.fail(message);
  }

  /** Prints the usage to stdout when argv asks for it; true then, and the command has nothing else to do. */
  printHelp(argv: readonly string[]): boolean {
    if (!asksForHelp(argv)) return false;
    console.log(this.usage);
    return true;
  }

  parse(argv: readonly string[]): ParsedArguments<O> {
    const { args, wordsAt } = this.groupWords(argv);
    let tokens;
    try {
      ({ tokens } = parseArgs({ args, options: this.parseArgsOptions(), strict: true, allowPositionals: false, tokens: true }));
    } catch (e) {
      return this.explain(e, argv);
    }
    const occurrences = new Map<string, Occurrence[]>();
    const order: string[] = [];
    for (const token of tokens) {
      if (token.kind !== 'option') continue;
      if (token.name === 'help') this.fail(`${token.rawName} asks for the usage, which the command prints; it is not a value to parse`);
      const { key, negated } = this.byFlag.get(token.name)!;
      const list = occurrences.get(key) ?? [];
      list.push({ negated, words: wordsAt.get(token.index) ?? [] });
      occurrences.set(key, list);
      order.push(key);
    }
    const values: Record<string, unknown> = {};
    // Read in the order first given, so the first bad value on the line is the one reported.
    for (const key of new Set(order)) values[key] = this.options[key].collect(occurrences.get(key)!, this.context(key));
    for (const [key, spec] of Object.entries(this.options)) {
      if (occurrences.has(key)) continue;
      if (spec.required === true) this.fail(`${flagName(key)} ${spec.words.join(' ')} is required`);
      if (spec.required) this.fail(spec.required);
      values[key] = spec.default;
    }
    return { values: values as OptionValues<O>, given: new Set<keyof O>(order), order };
  }

  private context(key: string): ValueContext {
    const spec = this.options[key];
    const flag = flagName(key);
    return { ...this.checks, flag, names: spec.words.length > 1 ? spec.words.map((w) => `${flag} ${w}`) : [flag] };
  }

  private parseArgsOptions(): Record<string, { type: 'string' | 'boolean'; multiple: true; short?: string }> {
    const options: Record<string, { type: 'string' | 'boolean'; multiple: true; short?: string }> = { help: { type: 'boolean', multiple: true, short: 'h' } };
    for (const [name, { key, negated }] of this.byFlag) {
      options[name] = { type: this.options[key].words.length && !negated ? 'string' : 'boolean', multiple: true };
    }
    return options;
  }

  /**
   * parseArgs takes one value per flag and reads a value that starts with '-' as a flag, but `--crop D H W`
   * takes three and `--lr -1` must reach the number check. So a flag's words are gathered here first (every
   * following word up to its count that is not a `--flag`) and handed over as `--flag=` with the words kept
   * aside by position; parseArgs then checks what is left: unknown flags, stray words, values given to a switch.
   */
  private groupWords(argv: readonly string[]): { args: string[]; wordsAt: Map<number, (string | undefined)[]> } {
    const args: string[] = [];
    const wordsAt = new Map<number, (string | undefined)[]>();
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i];
      if (arg === '--') {
        args.push(...argv.slice(i));
        break;
      }
      const match = /^--([^=]+)(?:=([\s\S]*))?$/.exec(arg);
      const known = match ? this.byFlag.get(match[1]) : undefined;
      if (!match || !known) {
        args.push(arg);
        continue;
      }
      const spec = this.options[known.key];
      if (spec.words.length === 0 || known.negated) {
        if (match[2] !== undefined) this.fail(`--${match[1]} takes no value, got ${JSON.stringify(match[2])}`);
        args.push(arg);
        continue;
      }
      const words: (string | undefined)[] = match[2] !== undefined ? [match[2]] : [];
      while (words.length < spec.words.length && i + 1 < argv.length && !argv[i + 1].startsWith('--')) words.push(argv[++i]);
      if (words.length < spec.minWords) words.push(argv[i + 1]);
      wordsAt.set(args.length, words);
      args.push(`--${match[1]}=`);
    }
    return { args, wordsAt };
  }

  private explain(error: unknown, argv: readonly string[]): never {
    const code = (error as { code?: unknown }).code;
    const message = error instanceof Error ? error.message : String(error);
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      // parseArgs names the argument in quotes; a short-flag lookalike such as -16 it names by its first letter.
      const named = /'([^']*)'/.exec(message)?.[1] ?? '';
      const arg = argv.find((a) => a === named) ?? argv.find((a) => named !== '' && a.startsWith(named)) ?? named;
      this.fail(`unknown argument ${JSON.stringify(arg)}`);
    }
    this.fail(message);
  }
}
