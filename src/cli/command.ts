/**
 * The one shape of a `tgnet` command: its declared options (a CommandLine, or a usage text and a parser when a
 * command has two forms) and `run(values, context)`. defineCommand turns that into the function commands.ts
 * registers: it prints the usage for --help, parses (errors name the flag and end with the usage), lends the GPU
 * to the run when the run asks for one, and gives it back however the run ends.
 */
import { getGpu, hasGpu, initGpu, type Gpu } from '../kernels/runtime/gpu.js';
import { asksForHelp, type CommandLine, type OptionSpecs, type OptionValues, type ParsedArguments } from './args.js';

export interface CommandContext {
  /**
   * The GPU for this run: one already opened in this process (tests, an embedding program) is lent, else one is
   * opened on the first call and destroyed when the run ends.
   */
  gpu(): Promise<Gpu>;
}

interface CommandWith<V> {
  run(values: V, context: CommandContext): Promise<void>;
}

/** A command with one form: its options are declared once, in `cli`. */
export interface DeclaredCommand<O extends OptionSpecs, V> extends CommandWith<V> {
  cli: CommandLine<O>;
  /** Checks across options (conflicts) or a reshaping of the values; default: the values as parsed. */
  check?(parsed: ParsedArguments<O>): V;
}

/** A command whose command line has more than one form: its usage and its own parser. */
export interface ParsedCommand<V> extends CommandWith<V> {
  usage: string;
  parse(argv: readonly string[]): V;
}

/** `tgnet <command> <argv>`: resolves when done, rejects with the error to report. */
export type CommandRunner = (argv: readonly string[]) => Promise<void>;

export function defineCommand<O extends OptionSpecs, V = OptionValues<O>>(command: DeclaredCommand<O, V>): CommandRunner;
export function defineCommand<V>(command: ParsedCommand<V>): CommandRunner;
export function defineCommand<O extends OptionSpecs, V>(command: DeclaredCommand<O, V> | ParsedCommand<V>): CommandRunner {
  const usage = 'cli' in command ? command.cli.usage : command.usage;
  const parse = 'cli' in command
    ? (argv: readonly string[]): V => {
      const parsed = command.cli.parse(argv);
      return command.check ? command.check(parsed) : (parsed.values as V);
    }
    : command.parse;
  return async (argv) => {
    if (asksForHelp(argv)) {
      console.log(usage);
      return;
    }
    const values = parse(argv);
    let owned: Gpu | null = null;
    const context: CommandContext = {
      async gpu() {
        if (hasGpu()) return getGpu();
        owned = await initGpu();
        return owned;
      },
    };
    try {
      await command.run(values, context);
    } finally {
      (owned as Gpu | null)?.destroy();
    }
  };
}
