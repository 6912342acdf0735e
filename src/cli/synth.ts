/**
 * `tgnet synth --out DIR --cases N --size D H W --seed S [--tasks liver,kidney,...] [--quiet]`:
 * writes seven synthetic partially labelled datasets in MSD layout.
 */
import { synthesizeDatasets } from '../data/synth.js';
import { TASKS, taskFromName } from '../data/tasks.js';
import { CommandLine, flag, integerValue, option, pathValue, textValue, triple, type OptionValues, type ReadValue } from './args.js';

/** Comma-separated task keys, dataset names or ids -> task ids. */
const taskList: ReadValue<number[]> = (words, at) => {
  const entries = textValue(words, at).split(',').filter((t) => t !== '');
  if (entries.length === 0) at.fail('--tasks is empty; expected comma-separated task keys or ids');
  return entries.map((t) => {
    const task = (/^\d+$/.test(t) ? TASKS[Number(t)] : undefined) ?? taskFromName(t);
    if (!task) return at.fail(`--tasks entry ${JSON.stringify(t)} is not a task; expected one of ${TASKS.map((x) => `${x.id}/${x.key}`).join(', ')}`);
    return task.id;
  });
};

const SYNTH_OPTIONS = {
  out: option('DIR', 'output folder; one MSD-layout dataset per task is written under it', pathValue, { required: true }),
  cases: option('N', 'cases per task (default 4)', integerValue(1), { default: 4 }),
  size: option('D H W', 'volume size in voxels, slices first (default 32 64 64)', triple((text, name, at) => at.integer(name, text, 4)),
    { default: [32, 64, 64] as [number, number, number] }),
  seed: option('S', 'seed; the same seed gives the same files (default 0)', integerValue(0), { default: 0 }),
  tasks: option('LIST', `comma-separated task keys or ids (default all: ${TASKS.map((t) => t.key).join(',')})`, taskList, { default: TASKS.map((t) => t.id) }),
  quiet: flag('no progress lines'),
};

export const SYNTH_CLI = new CommandLine('synth', SYNTH_OPTIONS);
export const SYNTH_USAGE = SYNTH_CLI.usage;

export type SynthArgs = OptionValues<typeof SYNTH_OPTIONS>;

export function parseSynthArgs(argv: readonly string[]): SynthArgs {
  return SYNTH_CLI.parse(argv).values;
}

export async function synthCommand(argv: string[]): Promise<void> {
  if (SYNTH_CLI.printHelp(argv)) return;
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
