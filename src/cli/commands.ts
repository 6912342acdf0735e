/**
 * The `tgnet` command line behind main.ts: the subcommands, each in its own module, loaded on demand (so that
 * `tgnet --help` loads no GPU code). `runCli` returns the exit status instead of setting it, so tests run it in
 * the test process with the output captured.
 */
import { ArgumentError, asksForHelp } from './args.js';

interface Command {
  summary: string;
  run(argv: string[]): Promise<void>;
}

export const COMMANDS: Readonly<Record<string, Command>> = {
  demo: {
    summary: 'synthesise phantoms, train TGNet, evaluate held-out cases, write a run folder with a report',
    run: async (argv) => (await import('./demo.js')).demoCommand(argv),
  },
  info: {
    summary: 'print the WebGPU adapter, its limits and features (--json); --model-sizes: parameters of every variant',
    run: async (argv) => (await import('./info.js')).infoCommand(argv),
  },
  synth: {
    summary: 'write synthetic partially labelled CT phantoms in MSD layout (--out DIR --cases N --size D H W --seed S)',
    run: async (argv) => (await import('./synth.js')).synthCommand(argv),
  },
  train: {
    summary: 'train TGNet on MSD-layout datasets (default: embedded synthetic phantoms on a small model)',
    run: async (argv) => (await import('./train.js')).trainCommand(argv),
  },
  predict: {
    summary: 'segment a CT volume with a checkpoint (--model CKPT --input CT.nii.gz --task T --out MASK.nii.gz)',
    run: async (argv) => (await import('./predict.js')).predictCommand(argv),
  },
  evaluate: {
    summary: 'the paper\'s table, a row per model (--model A --model B --data DIR); or masks vs truth (--pred P --truth T --task T)',
    run: async (argv) => (await import('./evaluate.js')).evaluateCommand(argv),
  },
  tune: {
    summary: 'tune conv3d kernels for every conv of a TGNet step on this adapter; caches the choices (--width W --crop D H W --batch B --file PATH)',
    run: async (argv) => (await import('./tune.js')).tuneCommand(argv),
  },
  'import-dodnet': {
    summary: 'map a DoDNet checkpoint (its .pth, or safetensors with the authors\' names) to a TGNet dodnet checkpoint (--in F --out F)',
    run: async (argv) => (await import('./import-dodnet.js')).importDodnetCommand(argv),
  },
  export: {
    summary: 'write a checkpoint as a PyTorch .pth that the reference loads with torch.load (--model CKPT --out MODEL.pth), or back to safetensors',
    run: async (argv) => (await import('./export.js')).exportCommand(argv),
  },
};

/**
 * The benchmarks live in bench/, outside the package's source: src/ never imports bench/, so `tgnet bench`
 * only says where they are.
 */
export const BENCH_NOTE = `the benchmarks are not a tgnet command; in a checkout of the repository run
  npm run bench -- [--out FILE.json] [--scale S] [--quick] [--tuned] [--only dispatch,elementwise,reduce,matmul,conv3d,groupNorm,tgnetStep,stepCost,compile]
(it builds the package and runs bench/run.ts; after a build, node dist/bench/run.js takes the same options)`;

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'usage: tgnet <command> [options]', '', 'commands:', ...lines, '',
    'tgnet <command> --help lists the options of a command. Benchmarks: npm run bench (bench/run.ts).',
  ].join('\n');
}

/** Runs `tgnet <argv>`; the exit status: 0 done, 1 failed, 2 the command line is wrong. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || (name === 'help' && rest.length === 0)) {
    console.log(usage());
    return 0;
  }
  // `tgnet help train` is `tgnet train --help`.
  if (name === 'help') return runCli([rest[0], '--help']);
  if (name === 'bench') {
    if (asksForHelp(rest)) {
      console.log(BENCH_NOTE);
      return 0;
    }
    console.error(`tgnet bench: ${BENCH_NOTE}`);
    return 2;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    console.error(`tgnet: unknown command ${JSON.stringify(name)}; expected one of ${Object.keys(COMMANDS).join(', ')}\n\n${usage()}`);
    return 2;
  }
  try {
    await command.run(rest);
    return 0;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    // Messages of the commands already start with `tgnet <command>:`.
    console.error(message.startsWith('tgnet ') ? message : `tgnet ${name}: ${message}`);
    return e instanceof ArgumentError ? 2 : 1;
  }
}
