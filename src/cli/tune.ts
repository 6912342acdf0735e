/**
 * `tgnet tune [--width W] [--crop D H W] [--batch B] [--file PATH] [--force]`: tunes every conv3d shape and pass
 * of a TGNet training step on this adapter (kernels/conv3d/autotune.ts) and prints default against tuned times.
 * The shapes come from one recorded step of the model, so they are exactly the launches a step makes.
 */
import { partialLabelLoss } from '../autograd/ops/head.js';
import { rngNormal, rngUniform } from '../autograd/random.js';
import { tidy } from '../autograd/scope.js';
import { Tensor } from '../autograd/tensor.js';
import {
  defaultTuningFile, recordConv3dShapes, tuneConv3d, type Conv3dShapePass, type TuneResult,
} from '../kernels/conv3d/autotune.js';
import { isSoftwareAdapter } from '../kernels/runtime/gpu.js';
import { TGNet } from '../tgnet/model.js';
import { defineCommand, type CommandContext } from './command.js';
import { choiceValue, CommandLine, flag, gridSide, integerValue, option, pathValue, triple, type OptionValues } from './args.js';
import { DTYPES, requireDType, type DType } from '../kernels/runtime/precision.js';
import type { DHW } from '../common/shape.js';

const SOFTWARE_DEFAULT = { batch: 2, crop: [16, 32, 32] as DHW, width: 8 };
const HARDWARE_DEFAULT = { batch: 2, crop: [64, 192, 192] as DHW, width: 32 };

const TUNE_OPTIONS = {
  width: option('W', `TGNet base width (default ${SOFTWARE_DEFAULT.width} on a software adapter, ${HARDWARE_DEFAULT.width} on a GPU)`, integerValue(1), { default: null }),
  crop: option('D H W', `crop size, multiples of 16 (default ${SOFTWARE_DEFAULT.crop.join(' ')} on a software adapter, ${HARDWARE_DEFAULT.crop.join(' ')} on a GPU)`,
    triple(gridSide), { default: null }),
  batch: option('B', `crops per step (default ${SOFTWARE_DEFAULT.batch})`, integerValue(1), { default: null }),
  file: option('PATH', 'tuning cache (default $TGNET_TUNING_FILE or ~/.cache/tgnet/conv3d-tuning.json)', pathValue, { default: null }),
  precision: option('P', 'f32, or f16: tune the mixed-precision step\'s kernels (f16 activations; a separate cache entry per shape; default f32)',
    choiceValue(DTYPES), { default: 'f32' as DType }),
  force: flag('re-tune shapes the cache already has'),
  verbose: flag('print every candidate\'s time'),
};

export const TUNE_CLI = new CommandLine('tune', TUNE_OPTIONS);
export type TuneArgs = OptionValues<typeof TUNE_OPTIONS>;

export function parseTuneArgs(argv: readonly string[]): TuneArgs {
  return TUNE_CLI.parse(argv).values;
}

/** Records one training step of TGNet (forward and backward) and returns its distinct conv3d (shape, pass) pairs. */
function stepConvShapes(batch: number, crop: DHW, width: number, precision: DType): Conv3dShapePass[] {
  const [d, h, w] = crop;
  const voxels = batch * d * h * w;
  const model = TGNet.create({ variant: 'tgnet', width, seed: 0 });
  try {
    return tidy(() => {
      const x = Tensor.fromArray(rngNormal(voxels, 1), [batch, 1, d, h, w], { dtype: precision });
      const target = Tensor.fromArray(rngUniform(2 * voxels, 2).map((v) => (v > 0.7 ? 1 : 0)), [batch, 2, d, h, w]);
      const taskIds = Array.from({ length: batch }, (_, i) => i % 4);
      return recordConv3dShapes(() => partialLabelLoss(model.forward(x, taskIds), target).backward());
    });
  } finally {
    for (const p of model.parameters()) {
      p.grad?.dispose();
      p.dispose();
    }
  }
}

const shapeText = (s: Conv3dShapePass) => {
  const [n, ci, d, h, w] = s.shape.x;
  const [co, , k] = s.shape.w;
  return `${n}x${ci}->${co} ${d}x${h}x${w} k${k}${(s.shape.stride ?? 1) > 1 ? ` s${s.shape.stride}` : ''}`;
};

export const tuneCommand = defineCommand({ usage: TUNE_CLI.usage, parse: parseTuneArgs, run: runTune });

async function runTune(args: TuneArgs, context: CommandContext): Promise<void> {
  const gpu = await context.gpu();
  const software = isSoftwareAdapter(gpu);
  const base = software ? SOFTWARE_DEFAULT : HARDWARE_DEFAULT;
  const batch = args.batch ?? base.batch;
  const crop = args.crop ?? base.crop;
  const width = args.width ?? base.width;
  const file = args.file ?? await defaultTuningFile();
  requireDType(gpu, args.precision, '--precision');
  console.log(`tgnet tune on ${gpu.name}: TGNet step, batch ${batch}, crop ${crop.join('x')}, width ${width}, ${args.precision}; cache ${file}`);
  const shapes = stepConvShapes(batch, crop, width, args.precision);
  await gpu.sync();
  console.log(`${shapes.length} conv3d (shape, pass) pairs in a step`);
  const rows: Record<string, string>[] = [];
  let defaultTotal = 0;
  let tunedTotal = 0;
  for (const [i, s] of shapes.entries()) {
    const t0 = performance.now();
    const r: TuneResult = await tuneConv3d(gpu, s.shape, s.pass, {
      file, force: args.force, log: args.verbose ? (m) => console.log(m) : undefined, dtype: s.dtype,
    });
    const rejected = r.candidates.filter((c) => c.rejected);
    for (const c of rejected) console.log(`  rejected ${c.label}: ${c.rejected}`);
    defaultTotal += r.entry.defaultMs;
    tunedTotal += r.entry.ms;
    const row = {
      shape: shapeText(s), pass: s.pass, defaultMs: r.entry.defaultMs.toFixed(3), tunedMs: r.entry.ms.toFixed(3),
      speedup: `${(r.entry.defaultMs / r.entry.ms).toFixed(2)}x`, choice: r.entry.choice,
      note: r.cached ? 'cached' : `${r.candidates.length} tried${rejected.length ? `, ${rejected.length} rejected` : ''}, ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    };
    rows.push(row);
    console.log(`[${i + 1}/${shapes.length}] ${Object.values(row).join('  ')}`);
  }
  console.log('');
  console.log(formatTable(rows));
  console.log(`\nsum over the step's conv3d launches: default ${defaultTotal.toFixed(2)} ms, tuned ${tunedTotal.toFixed(2)} ms ` +
    `(${(defaultTotal / tunedTotal).toFixed(2)}x; ${gpu.features.has('timestamp-query') ? 'GPU timestamps' : 'wall time'}); written to ${file}`);
  console.log('The launchers use these choices once enableConv3dTuning(gpu) has loaded the cache (npm run bench -- --tuned).');
}

function formatTable(rows: Record<string, string>[]): string {
  if (rows.length === 0) return '(no conv3d launches)';
  const cols = Object.keys(rows[0]);
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => r[c].length)));
  const line = (v: string[]) => v.map((s, i) => (i < 2 || i >= 5 ? s.padEnd(widths[i]) : s.padStart(widths[i]))).join('  ').trimEnd();
  return [line(cols), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(cols.map((c) => r[c])))].join('\n');
}
