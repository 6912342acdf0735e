/** `tgnet info`: the adapter, its limits and features; with `--model-sizes`, the parameter count of every variant. */
import { getGpu, hasGpu, initGpu } from '../kernels/runtime/gpu.js';
import { TGNet, TGNET_VARIANTS, type TaskGuidedBlocks, type TGNetVariant } from '../tgnet/model.js';
import { NUM_TASKS } from '../tgnet/tasks.js';

export const INFO_USAGE = `usage: tgnet info [--json] [--model-sizes [--width W]]
  --json           print as JSON
  --model-sizes    instead of the adapter: the parameters of every variant (and of tgnet with all nine encoder
                   blocks task-guided, --tg-res-blocks all in the reference) at width 32, the paper's, and
                   their increase over dodnet (the paper: TGNet +1.45%)
  --width W        the width for --model-sizes (default 32)`;

export interface ModelSize {
  variant: TGNetVariant;
  taskGuidedBlocks: TaskGuidedBlocks;
  parameters: number;
  /** Parameter tensors (state-dict entries). */
  tensors: number;
  /** (parameters / dodnet's - 1) in %. */
  overDodnetPercent: number;
}

export interface InfoArgs {
  json: boolean;
  modelSizes: boolean;
  width: number;
}

function fail(message: string): never {
  throw new Error(`tgnet info: ${message}\n${INFO_USAGE}`);
}

export function parseInfoArgs(argv: readonly string[]): InfoArgs {
  const args: InfoArgs = { json: false, modelSizes: false, width: 32 };
  let widthGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    switch (flag) {
      case '--json': args.json = true; break;
      case '--model-sizes': args.modelSizes = true; break;
      case '--width': {
        const text = argv[++i];
        const n = text === undefined || text.trim() === '' ? NaN : Number(text);
        if (!Number.isInteger(n) || n < 1) fail(`--width is ${JSON.stringify(text ?? null)}; expected a positive integer`);
        args.width = n;
        widthGiven = true;
        break;
      }
      case '--help':
      case '-h':
        throw new Error(INFO_USAGE);
      default:
        fail(`unknown argument ${JSON.stringify(flag)}`);
    }
  }
  if (widthGiven && !args.modelSizes) fail('--width sets the width of --model-sizes; expected --model-sizes with it');
  return args;
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

async function printModelSizes(args: InfoArgs): Promise<void> {
  // Parameters live on the GPU: reuse one already opened (tests, embedding), else open one for this command.
  const ownsGpu = !hasGpu();
  const gpu = ownsGpu ? await initGpu() : getGpu();
  try {
    const sizes = modelSizes(args.width);
    console.log(args.json ? JSON.stringify({ width: args.width, numTasks: NUM_TASKS, models: sizes }, null, 2) : formatModelSizes(sizes, args.width));
  } finally {
    if (ownsGpu) gpu.destroy();
  }
}

export async function infoCommand(argv: string[]): Promise<void> {
  const args = parseInfoArgs(argv);
  if (args.modelSizes) return printModelSizes(args);
  const gpu = await initGpu();
  try {
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
  } finally {
    gpu.destroy();
  }
}
