#!/usr/bin/env node
/** The `tgnet` command line. Each subcommand lives in its own module, loaded on demand. */

const COMMANDS: Record<string, { summary: string; run: (argv: string[]) => Promise<void> }> = {
  demo: {
    summary: 'synthesise phantoms, train TGNet, evaluate held-out cases, write a run folder with a report (--help)',
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
    summary: 'train TGNet on MSD-layout datasets (default: embedded synthetic phantoms on a small model; --help)',
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
  'import-dodnet': {
    summary: 'map a DoDNet checkpoint (safetensors with the authors\' names) to a TGNet dodnet checkpoint (--in F --out F)',
    run: async (argv) => (await import('./import-dodnet.js')).importDodnetCommand(argv),
  },
  bench: {
    summary: 'run the benchmarks (--out FILE.json, --scale S, --quick)',
    run: async (argv) => (await import('../../bench/run.js')).benchMain(argv),
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`);
  return `usage: tgnet <command> [options]\n\ncommands:\n${lines.join('\n')}`;
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`tgnet: unknown command '${name}'\n\n${usage()}`);
    process.exitCode = 2;
    return;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    // Each command answers --help by throwing its usage text; asked for, it is output, not an error.
    try {
      await cmd.run(['--help']);
    } catch (e) {
      const text = e instanceof Error ? e.message : String(e);
      if (!text.startsWith('usage:')) throw e;
      console.log(text);
    }
    return;
  }
  await cmd.run(rest);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  console.error(`tgnet: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
