/**
 * `tgnet synth --out DIR --cases N [--size D H W | --spacing Z Y X | --like msd] --seed S [--tasks liver,...] [--quiet]`:
 * writes seven synthetic partially labelled datasets in MSD layout, all views of one 360 mm phantom world:
 * --size sets the grid and the spacing follows, --spacing sets the spacing and the grid follows, both set both
 * (a field of D x Z by H x Y by W x X mm around the body's centre), --like msd draws MSD-like CT grids.
 */
import { PHANTOM_FIELD_MM } from '../data/phantom.js';
import { caseGrid, synthesizeDatasets } from '../data/synth.js';
import { TASKS, taskFromName } from '../data/tasks.js';
import { defineCommand } from './command.js';
import { choiceValue, CommandLine, flag, integerValue, option, pathValue, textValue, triple, type OptionValues, type ReadValue } from './args.js';
import { type DHW, xyzFromDhw } from '../common/shape.js';

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
  size: option('D H W', `grid in voxels, slices first (default 32 64 64); the spacing follows (${PHANTOM_FIELD_MM} mm / size) unless --spacing is given too`,
    triple((text, name, at) => at.integer(name, text, 4))),
  spacing: option('Z Y X', `voxel size in mm, slices first; the grid follows (${PHANTOM_FIELD_MM} mm / spacing) unless --size is given too`,
    triple((text, name, at) => at.number(name, text, (n) => n > 0 && Number.isFinite(n), 'a positive number of mm'))),
  like: option('msd', 'MSD-like CT grids: 512 x 512 in-plane at 0.6-1.0 mm, the task\'s typical slice thickness, int16 (hundreds of MB per case)',
    choiceValue(['msd'] as const)),
  seed: option('S', 'seed; the same seed gives the same files (default 0)', integerValue(0), { default: 0 }),
  tasks: option('LIST', `comma-separated task keys or ids (default all: ${TASKS.map((t) => t.key).join(',')})`, taskList, { default: TASKS.map((t) => t.id) }),
  quiet: flag('no progress lines'),
};

export const SYNTH_CLI = new CommandLine('synth', SYNTH_OPTIONS);

export type SynthArgs = OptionValues<typeof SYNTH_OPTIONS>;

export function parseSynthArgs(argv: readonly string[]): SynthArgs {
  const values = SYNTH_CLI.parse(argv).values;
  if (values.like && (values.size || values.spacing)) SYNTH_CLI.fail(`--like ${values.like} draws its own grids; expected it without --size and --spacing`);
  return values;
}

export const synthCommand = defineCommand({ usage: SYNTH_CLI.usage, parse: parseSynthArgs, run: runSynth });

async function runSynth(args: SynthArgs): Promise<void> {
  const t0 = performance.now();
  const grid = {
    size: args.size ?? (args.spacing || args.like ? undefined : [32, 64, 64] as DHW),
    spacing: args.spacing ? xyzFromDhw(args.spacing) : undefined,
    like: args.like,
  };
  if (!args.quiet && !args.like) {
    const g = caseGrid({ ...grid, seed: args.seed }, args.tasks[0], 0);
    console.log(`grid ${g.size.join('x')} voxels (z y x) of ${[g.spacing[2], g.spacing[1], g.spacing[0]].map((v) => +v.toFixed(3)).join(' x ')} mm (z y x): a ${g.size.map((n, i) => Math.round(n * g.spacing[2 - i])).join(' x ')} mm field of the ${PHANTOM_FIELD_MM} mm phantom world`);
  }
  const datasets = await synthesizeDatasets({
    outDir: args.out,
    cases: args.cases,
    ...grid,
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
