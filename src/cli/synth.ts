/**
 * `tgnet synth --out DIR --cases N --size D H W --seed S [--tasks liver,kidney,...] [--quiet]`:
 * writes seven synthetic partially labelled datasets in MSD layout.
 */
import { synthesizeDatasets } from '../data/synth.js';
import { TASKS, taskFromName } from '../data/tasks.js';

export const SYNTH_USAGE = `usage: tgnet synth --out DIR [--cases N] [--size D H W] [--seed S] [--tasks liver,kidney,...] [--quiet]
  --out DIR      output folder; one MSD-layout dataset per task is written under it
  --cases N      cases per task (default 4)
  --size D H W   volume size in voxels, slices first (default 32 64 64)
  --seed S       seed; the same seed gives the same files (default 0)
  --tasks LIST   comma-separated task keys or ids (default all: ${TASKS.map((t) => t.key).join(',')})
  --quiet        no progress lines`;

interface SynthArgs {
  out: string;
  cases: number;
  size: [number, number, number];
  seed: number;
  tasks: number[];
  quiet: boolean;
}

function parseInteger(flag: string, text: string | undefined, min: number): number {
  const n = text === undefined ? NaN : Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`tgnet synth: ${flag} is ${JSON.stringify(text)}; expected an integer >= ${min}\n${SYNTH_USAGE}`);
  return n;
}

export function parseSynthArgs(argv: readonly string[]): SynthArgs {
  const args: Partial<SynthArgs> = {};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    switch (flag) {
      case '--out':
        args.out = argv[++i];
        if (!args.out) throw new Error(`tgnet synth: --out needs a folder\n${SYNTH_USAGE}`);
        break;
      case '--cases':
        args.cases = parseInteger('--cases', argv[++i], 1);
        break;
      case '--size':
        args.size = [parseInteger('--size D', argv[++i], 4), parseInteger('--size H', argv[++i], 4), parseInteger('--size W', argv[++i], 4)];
        break;
      case '--seed':
        args.seed = parseInteger('--seed', argv[++i], 0);
        break;
      case '--tasks':
        args.tasks = (argv[++i] ?? '').split(',').filter((t) => t !== '').map((t) => {
          const byId = /^\d+$/.test(t) ? TASKS[Number(t)] : undefined;
          const task = byId ?? taskFromName(t);
          if (!task) throw new Error(`tgnet synth: --tasks entry ${JSON.stringify(t)} is not a task; expected one of ${TASKS.map((x) => `${x.id}/${x.key}`).join(', ')}`);
          return task.id;
        });
        if (args.tasks.length === 0) throw new Error(`tgnet synth: --tasks is empty\n${SYNTH_USAGE}`);
        break;
      case '--quiet':
        args.quiet = true;
        break;
      case '--help':
      case '-h':
        throw new Error(SYNTH_USAGE);
      default:
        throw new Error(`tgnet synth: unknown argument ${JSON.stringify(flag)}\n${SYNTH_USAGE}`);
    }
  }
  if (!args.out) throw new Error(`tgnet synth: --out DIR is required\n${SYNTH_USAGE}`);
  return {
    out: args.out,
    cases: args.cases ?? 4,
    size: args.size ?? [32, 64, 64],
    seed: args.seed ?? 0,
    tasks: args.tasks ?? TASKS.map((t) => t.id),
    quiet: args.quiet ?? false,
  };
}

export async function synthCommand(argv: string[]): Promise<void> {
  const args = parseSynthArgs(argv);
  const t0 = performance.now();
  const datasets = await synthesizeDatasets({
    outDir: args.out,
    cases: args.cases,
    size: args.size,
    seed: args.seed,
    tasks: args.tasks,
    onProgress: args.quiet
      ? undefined
      : (p) => console.log(`${p.datasetName} case ${p.caseIndex + 1}/${p.casesPerTask} (${(p.seconds * 1000).toFixed(0)} ms)`),
  });
  if (!args.quiet) {
    const total = datasets.reduce((n, d) => n + d.cases.length, 0);
    console.log(`wrote ${total} cases in ${datasets.length} datasets under ${args.out} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
}
