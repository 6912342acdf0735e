/**
 * `tgnet export --model CKPT --out MODEL.pth`: a tgnet checkpoint as a PyTorch zip checkpoint that the repository's
 * PyTorch twin (bench/torch/tgnet_torch.py, whose state-dict names are TGNet's) loads with one call,
 * `net.load_state_dict(torch.load('MODEL.pth'))` (weights_only=True works too). The architecture rides along in a
 * record torch does not read (`extra/tgnet.json`), so `tgnet predict --model MODEL.pth` rebuilds the same model.
 * `--format safetensors` goes the other way (any checkpoint tgnet reads, DoDNet's .pth included, to a tgnet
 * safetensors checkpoint). No GPU needed.
 */
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../common/node-files.js';
import { CHECKPOINT_MODEL_PREFIX, configFromMetadata, configFromStateDict, PTH_CONFIG_RECORD, readCheckpointTensors } from '../eval/load-model.js';
import { writePth, type PthTensorInput } from '../nn/pth/index.js';
import { writeSafetensors, type SafeTensorInput } from '../nn/safetensors.js';
import { TGNET_VARIANTS } from '../tgnet/model.js';
import { choiceValue, CommandLine, option, pathValue } from './args.js';
import { defineCommand } from './command.js';

const FORMATS = ['pth', 'safetensors'] as const;
type ExportFormat = (typeof FORMATS)[number];

const EXPORT_OPTIONS = {
  model: option('FILE', 'checkpoint to export: tgnet safetensors (model.* tensors), a tgnet .pth, or a DoDNet .pth', pathValue, { required: '--model is required' }),
  out: option('FILE', 'file to write (written to a temporary file, then renamed)', pathValue, { required: '--out is required' }),
  format: option('F', 'pth (PyTorch zip checkpoint: an OrderedDict state dict with the reference\'s names, float32) or safetensors (tgnet checkpoint); default: from --out\'s extension',
    choiceValue(FORMATS)),
  variant: option('V', 'variant, when the checkpoint cannot tell (serial and parallel have the same tensor names)', choiceValue(TGNET_VARIANTS)),
};

export const EXPORT_CLI = new CommandLine('export', EXPORT_OPTIONS);

export interface ExportArgs {
  model: string;
  out: string;
  format: ExportFormat;
  variant?: (typeof TGNET_VARIANTS)[number];
}

export function parseExportArgs(argv: readonly string[]): ExportArgs {
  const { model, out, format, variant } = EXPORT_CLI.parse(argv).values;
  const inferred: ExportFormat | undefined = /\.(pth|pt)$/i.test(out) ? 'pth' : /\.safetensors$/i.test(out) ? 'safetensors' : undefined;
  const chosen = format ?? inferred;
  if (!chosen) EXPORT_CLI.fail(`--out ${out} has neither a .pth/.pt nor a .safetensors extension; pass --format pth or --format safetensors`);
  return { model, out, format: chosen as ExportFormat, ...(variant ? { variant } : {}) };
}

/** Checkpoint bytes -> the same model in `format`, with its configuration; no GPU. */
export function exportCheckpoint(bytes: Uint8Array, source: string, format: ExportFormat, variant?: ExportArgs['variant']): {
  bytes: Uint8Array; config: Record<string, string>; tensors: number; parameters: number;
} {
  const { state, metadata } = readCheckpointTensors(bytes, source);
  const given = configFromMetadata(metadata, source);
  const config = { ...configFromStateDict(state, source, variant ?? given.variant), ...given, ...(variant ? { variant } : {}) };
  const strings: Record<string, string> = { variant: config.variant, width: String(config.width), numTasks: String(config.numTasks) };
  if (config.crop) strings.crop = JSON.stringify(config.crop);
  if (config.taskGuidedBlocks && config.taskGuidedBlocks !== 'first') strings.taskGuidedBlocks = config.taskGuidedBlocks;
  let parameters = 0;
  const floats = new Map<string, PthTensorInput>();
  for (const [name, t] of state) {
    if (!(t.data instanceof Float32Array)) throw new Error(`tgnet export ${source}: tensor '${name}' has dtype ${t.dtype}; expected F32 weights`);
    floats.set(name, { shape: t.shape, data: t.data });
    parameters += t.data.length;
  }
  if (format === 'pth') {
    return { bytes: writePth(floats, { extra: new Map([[PTH_CONFIG_RECORD, JSON.stringify(strings)]]) }), config: strings, tensors: floats.size, parameters };
  }
  const tensors = new Map<string, SafeTensorInput>([...floats].map(([k, t]) => [`${CHECKPOINT_MODEL_PREFIX}${k}`, { dtype: 'F32', shape: t.shape, data: t.data }]));
  return { bytes: writeSafetensors(tensors, { ...strings, exportedFrom: source }), config: strings, tensors: floats.size, parameters };
}

export const exportCommand = defineCommand({ usage: EXPORT_CLI.usage, parse: parseExportArgs, run: runExport });

async function runExport(args: ExportArgs): Promise<void> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(args.model);
  } catch (e) {
    throw new Error(`tgnet export: cannot read --model ${args.model} (${(e as Error).message})`);
  }
  const result = exportCheckpoint(bytes, args.model, args.format, args.variant);
  await writeFileAtomic(args.out, result.bytes);
  const c = result.config;
  const load = args.format === 'pth' ? `; PyTorch: net.load_state_dict(torch.load('${args.out}'))` : '';
  console.log(`wrote ${args.out}: ${args.format}, TGNet ${c.variant} width ${c.width}, ${c.numTasks} tasks${c.crop ? `, crop ${c.crop}` : ''}, ${result.tensors} tensors, ${result.parameters.toLocaleString('en-US')} parameters${load}`);
}
