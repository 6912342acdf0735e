/** `tgnet info`: the adapter, its limits and features; with `--model-sizes`, the parameter count of every variant. */
import { TGNet, TGNET_VARIANTS, type TaskGuidedBlocks, type TGNetVariant } from '../tgnet/model.js';
import { NUM_TASKS } from '../tgnet/tasks.js';
import { defineCommand, type CommandContext } from './command.js';
import { CommandLine, flag, integerValue, option, type OptionValues } from './args.js';

const INFO_OPTIONS = {
  json: flag('print as JSON'),
  modelSizes: flag('instead of the adapter: the parameters of every variant (and of tgnet with all nine encoder blocks task-guided, --tg-res-blocks all in the reference) at width 32, the paper\'s, and their increase over dodnet (the paper: TGNet +1.45%)'),
  width: option('W', 'the width for --model-sizes (default 32)', integerValue(1, 'a positive integer'), { default: 32 }),
};

export const INFO_CLI = new CommandLine('info', INFO_OPTIONS);

export interface ModelSize {
  variant: TGNetVariant;
  taskGuidedBlocks: TaskGuidedBlocks;
  parameters: number;
  /** Parameter tensors (state-dict entries). */
  tensors: number;
  /** (parameters / dodnet's - 1) in %. */
  overDodnetPercent: number;
}

export type InfoArgs = OptionValues<typeof INFO_OPTIONS>;

export function parseInfoArgs(argv: readonly string[]): InfoArgs {
  const { values, given } = INFO_CLI.parse(argv);
  if (given.has('width') && !values.modelSizes) INFO_CLI.fail('--width sets the width of --model-sizes; expected --model-sizes with it');
  return values;
}

/**
 * Builds each variant at `width` (on the current GPU: the parameters are GPU tensors) and counts its parameters;
 * tgnet twice, with the first or all encoder blocks task-guided.
 */
export function modelSizes(width: number, numTasks = NUM_TASKS): ModelSize[] {
  const layouts: { variant: TGNetVariant; taskGuidedBlocks: TaskGuidedBlocks }[] = [
    ...TGNET_VARIANTS.map((variant) => ({ variant, taskGuidedBlocks: 'first' as const })),
    { variant: 'tgnet', taskGuidedBlocks: 'all' },
  ];
  const counted = layouts.map((layout) => {
    const model = TGNet.create({ ...layout, width, numTasks });
    try {
      return { ...layout, parameters: model.parameterCount(), tensors: model.parameters().length };
    } finally {
      model.dispose();
    }
  });
  const dodnet = counted.find((c) => c.variant === 'dodnet')!.parameters;
  return counted.map((c) => ({ ...c, overDodnetPercent: 100 * (c.parameters / dodnet - 1) }));
}

/** The sizes as an aligned table. */
export function formatModelSizes(sizes: readonly ModelSize[], width: number, numTasks = NUM_TASKS): string {
  const name = (s: ModelSize) => (s.taskGuidedBlocks === 'all' ? `${s.variant} (all blocks task-guided)` : s.variant);
  const rows = [
    ['variant', 'parameters', 'tensors', 'vs dodnet'],
    ...sizes.map((s) => [name(s), s.parameters.toLocaleString('en-US'), String(s.tensors), s.variant === 'dodnet' ? '-' : `+${s.overDodnetPercent.toFixed(3)}%`]),
  ];
  const widths = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  const lines = rows.map((r) => r.map((c, j) => (j === 0 ? c.padEnd(widths[j]) : c.padStart(widths[j]))).join('  '));
  return [`TGNet parameters at width ${width} (${numTasks} tasks)`, ...lines].join('\n');
}

function printModelSizes(args: InfoArgs): void {
  const sizes = modelSizes(args.width);
  console.log(args.json ? JSON.stringify({ width: args.width, numTasks: NUM_TASKS, models: sizes }, null, 2) : formatModelSizes(sizes, args.width));
}

export const infoCommand = defineCommand({ usage: INFO_CLI.usage, parse: parseInfoArgs, run: runInfo });

async function runInfo(args: InfoArgs, context: CommandContext): Promise<void> {
  // Parameters live on the GPU too.
  const gpu = await context.gpu();
  if (args.modelSizes) return printModelSizes(args);
  const report = {
    adapter: gpu.adapter,
    name: gpu.name,
    limits: gpu.limits,
    features: [...gpu.features].sort(),
  };
  if (args.json) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  console.log(`adapter      ${gpu.name}`);
  if (gpu.adapter.vendor) console.log(`vendor       ${gpu.adapter.vendor}${gpu.adapter.architecture ? ` (${gpu.adapter.architecture})` : ''}`);
  console.log('limits');
  for (const [k, v] of Object.entries(gpu.limits)) console.log(`  ${k.padEnd(36)} ${v.toLocaleString('en-US')}`);
  console.log(`features     ${report.features.join(', ')}`);
}
