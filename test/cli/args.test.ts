/** The shared argument layer (src/cli/args.ts): declarations -> parser (node:util parseArgs) and usage text. */
import { describe, expect, it } from 'vitest';
import {
  ArgumentError, choiceValue, CommandLine, flag, flagName, gridSide, integerValue, numberValue, option, pathValue, repeated, textValue, toggle, triple,
} from '../../src/cli/args.js';

const OPTIONS = {
  out: option('DIR', 'where the output goes', pathValue, { required: true }),
  steps: option('N', 'how many steps', integerValue(1), { default: 10 }),
  lr: option('LR', 'learning rate', numberValue()),
  crop: option('D H W', 'crop size, multiples of 16 (default 16\u00a032\u00a032)', triple(gridSide), { default: [16, 32, 32] as [number, number, number] }),
  spacing: option('Z Y X', 'spacing, or native', (words, at) => (words.length === 1 && words[0] === 'native' ? null
    : triple((text, name) => at.number(name, text, (n) => n > 0, 'a positive number'))(words, at)), { minWords: 1 }),
  model: repeated('FILE', 'a model; repeat for more', textValue),
  layout: option('L', 'wide or long', choiceValue(['wide', 'long'] as const), { default: 'wide' as 'wide' | 'long' }),
  cacheCases: option('N', 'cases kept in memory', integerValue(1), { default: 16 }),
  flips: toggle('average mirrorings'),
  quiet: flag('print nothing'),
};
const cli = new CommandLine('toy', OPTIONS, { notes: 'A note after the options.' });

/** The first line of the error `parse(argv)` throws (the usage follows it). */
function error(argv: string[]): string {
  try {
    cli.parse(argv);
  } catch (e) {
    expect(e).toBeInstanceOf(ArgumentError);
    const message = (e as Error).message;
    expect(message.endsWith(cli.usage)).toBe(true);
    return message.split('\n')[0];
  }
  throw new Error(`parse(${JSON.stringify(argv)}) did not throw`);
}

describe('CommandLine.parse', () => {
  it('gives declared defaults, and values under camelCase keys for kebab-case flags', () => {
    const { values, given, order } = cli.parse(['--out', 'o', '--cache-cases', '3']);
    expect(values).toEqual({ out: 'o', steps: 10, lr: undefined, crop: [16, 32, 32], spacing: undefined, model: [], layout: 'wide', cacheCases: 3, flips: null, quiet: false });
    expect([...given]).toEqual(['out', 'cacheCases']);
    expect(order).toEqual(['out', 'cacheCases']);
    expect(flagName('cacheCases')).toBe('--cache-cases');
  });

  it('reads multi-word flags, repeated flags, --flag=value, toggles and switches', () => {
    const { values, order } = cli.parse(['--out=o', '--crop', '32', '64', '48', '--model', 'a', '--model', 'b', '--flips', '--quiet', '--no-flips', '--spacing', 'native', '--steps=4']);
    expect(values).toMatchObject({ out: 'o', crop: [32, 64, 48], model: ['a', 'b'], flips: false, quiet: true, spacing: null, steps: 4 });
    expect(order).toEqual(['out', 'crop', 'model', 'model', 'flips', 'quiet', 'flips', 'spacing', 'steps']);
    expect(cli.parse(['--out', 'o', '--crop=16', '16', '32', '--spacing', '2', '1', '1']).values).toMatchObject({ crop: [16, 16, 32], spacing: [2, 1, 1] });
    // The last occurrence of a one-value flag counts.
    expect(cli.parse(['--out', 'a', '--out', 'b', '--steps', '2', '--steps', '5']).values).toMatchObject({ out: 'b', steps: 5 });
  });

  it('hands negative numbers to the value check instead of taking them for flags', () => {
    expect(cli.parse(['--out', 'o', '--lr', '0.5']).values.lr).toBe(0.5);
    expect(error(['--out', 'o', '--lr', '-1'])).toBe('tgnet toy: --lr is "-1"; expected a finite number >= 0');
    expect(error(['--out', 'o', '--steps', '-2'])).toBe('tgnet toy: --steps is "-2"; expected an integer >= 1');
    expect(error(['--out', 'o', '--crop', '16', '-16', '16'])).toBe('tgnet toy: --crop H is "-16"; expected a positive multiple of 16');
  });

  it('names the command, the flag, the value given and what was expected', () => {
    expect(error(['--out', 'o', '--steps', 'ten'])).toBe('tgnet toy: --steps is "ten"; expected an integer >= 1');
    expect(error(['--out', 'o', '--steps', '2.5'])).toBe('tgnet toy: --steps is "2.5"; expected an integer >= 1');
    expect(error(['--out', 'o', '--lr', ''])).toBe('tgnet toy: --lr is ""; expected a finite number >= 0');
    expect(error(['--out', 'o', '--crop', '16', '20', '16'])).toBe('tgnet toy: --crop H is "20"; expected a positive multiple of 16');
    expect(error(['--out', 'o', '--spacing', '1', 'x', '1'])).toBe('tgnet toy: --spacing Y is "x"; expected a positive number');
    expect(error(['--out', 'o', '--layout', 'tall'])).toBe('tgnet toy: --layout is "tall"; expected one of wide, long');
    expect(error(['--steps', '3'])).toBe('tgnet toy: --out DIR is required');
  });

  it('refuses missing values, naming what came instead', () => {
    expect(error(['--out'])).toBe('tgnet toy: --out needs a path, got null');
    expect(error(['--out', '--quiet'])).toBe('tgnet toy: --out needs a path, got "--quiet"');
    expect(error(['--out', 'o', '--crop', '16', '16'])).toBe('tgnet toy: --crop W is null; expected a positive multiple of 16');
    expect(error(['--out', 'o', '--crop', '16', '16', '--quiet'])).toBe('tgnet toy: --crop W is "--quiet"; expected a positive multiple of 16');
    expect(error(['--out', 'o', '--model'])).toBe('tgnet toy: --model needs a value, got null');
    expect(error(['--out', 'o', '--spacing', '--quiet'])).toBe('tgnet toy: --spacing Z is "--quiet"; expected a positive number');
  });

  it('refuses unknown flags, stray words and values given to a switch', () => {
    expect(error(['--out', 'o', '--frobnicate'])).toBe('tgnet toy: unknown argument "--frobnicate"');
    expect(error(['--out', 'o', '--frobnicate=3'])).toBe('tgnet toy: unknown argument "--frobnicate=3"');
    expect(error(['--out', 'o', '-x'])).toBe('tgnet toy: unknown argument "-x"');
    expect(error(['--out', 'o', '-16'])).toBe('tgnet toy: unknown argument "-16"');
    expect(error(['--out', 'o', '--steps', '3', 'extra'])).toBe('tgnet toy: unknown argument "extra"');
    expect(error(['--out', 'o', '--', '--steps'])).toBe('tgnet toy: unknown argument "--steps"');
    expect(error(['--out', 'o', '--quiet=yes'])).toBe('tgnet toy: --quiet takes no value, got "yes"');
    expect(error(['--out', 'o', '--no-quiet'])).toBe('tgnet toy: unknown argument "--no-quiet"');
    // --help is for the command to answer (printHelp), not a value.
    expect(error(['--out', 'o', '--help'])).toMatch(/^tgnet toy: --help asks for the usage/);
  });
});

describe('CommandLine usage and help', () => {
  it('is generated from the declarations: synopsis, aligned option lines, notes', () => {
    const lines = cli.usage.split('\n');
    expect(lines[0]).toBe('usage: tgnet toy --out DIR [--steps N] [--lr LR] [--crop D H W] [--spacing Z Y X] [--model FILE ...]');
    expect(lines[1]).toBe('                 [--layout L] [--cache-cases N] [--flips | --no-flips] [--quiet]');
    expect(lines).toContain('  --crop D H W          crop size, multiples of 16 (default 16 32 32)');
    expect(lines).toContain('  --flips | --no-flips  average mirrorings');
    expect(lines).toContain('  --cache-cases N       cases kept in memory');
    expect(lines[lines.length - 1]).toBe('A note after the options.');
    expect(lines.every((l) => l.length <= 112)).toBe(true);
    for (const key of Object.keys(OPTIONS)) expect(cli.usage).toContain(flagName(key));
  });

  it('wraps long help under its column', () => {
    const wordy = new CommandLine('wordy', { data: option('DIR', 'word '.repeat(60).trim(), pathValue) });
    const lines = wordy.usage.split('\n').slice(1);
    // 60 five-column words, 19 to a line of at most 112 columns after the 14-column label.
    expect(lines.length).toBe(4);
    expect(lines[0].startsWith('  --data DIR  word word')).toBe(true);
    expect(lines.slice(1).every((l) => l.startsWith(' '.repeat(14) + 'word'))).toBe(true);
    expect(lines.every((l) => l.length <= 112)).toBe(true);
  });

  it('prints the usage to stdout for --help or -h and says so', () => {
    const printed: string[] = [];
    const log = console.log;
    console.log = (s: string) => { printed.push(s); };
    try {
      expect(cli.printHelp(['--steps', '3', '--help'])).toBe(true);
      expect(cli.printHelp(['-h'])).toBe(true);
      expect(cli.printHelp(['--out', 'o'])).toBe(false);
    } finally {
      console.log = log;
    }
    expect(printed).toEqual([cli.usage, cli.usage]);
  });
});
