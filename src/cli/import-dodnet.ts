/**
 * `tgnet import-dodnet --in MODEL.pth --out MODEL.safetensors`: a checkpoint trained with the DoDNet authors'
 * code (their train.py's .pth as it is, plain or FP16 layout, zip or legacy container, read without Python by
 * src/nn/pth; or a safetensors file with DoDNet's names) becomes a TGNet `dodnet` checkpoint that `tgnet predict`
 * and `tgnet evaluate` load. No GPU needed. (predict and evaluate also take the .pth directly.)
 */
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../common/node-files.js';
import { isPth, readPthStateDict } from '../nn/pth/index.js';
import { readSafetensorsFile, writeSafetensors, type SafeTensorInput } from '../nn/safetensors.js';
import { importDodnetStateDict, type NamedTensor } from '../tgnet/dodnet.js';
import { CommandLine, gridSide, option, pathValue, triple } from './args.js';
import { defineCommand } from './command.js';
import type { DHW } from '../common/shape.js';

const IMPORT_DODNET_OPTIONS = {
  in: option('FILE', 'DoDNet checkpoint: the .pth its train.py saved (a state dict, or {\'model\', \'optimizer\', \'amp\'} with --FP16; zip or legacy container), or safetensors with DoDNet\'s names (conv1, layer0..4, fusionConv, x8_resb..x1_resb, precls_conv, GAP, controller; a module. prefix is allowed)',
    pathValue, { required: '--in is required' }),
  out: option('FILE', 'TGNet checkpoint to write (variant dodnet; model.* tensors and metadata)', pathValue, { required: '--out is required' }),
  crop: option('D H W', 'training crop recorded for sliding-window inference (default DoDNet\'s 64 192 192)', triple(gridSide),
    { default: [64, 192, 192] as DHW }),
};

export const IMPORT_DODNET_CLI = new CommandLine('import-dodnet', IMPORT_DODNET_OPTIONS);

export interface ImportDodnetArgs {
  input: string;
  out: string;
  crop: DHW;
}

export function parseImportDodnetArgs(argv: readonly string[]): ImportDodnetArgs {
  const { in: input, out, crop } = IMPORT_DODNET_CLI.parse(argv).values;
  return { input, out, crop };
}

/**
 * DoDNet checkpoint bytes (.pth, or safetensors with DoDNet's names) -> TGNet dodnet checkpoint bytes (model.*
 * tensors, variant/width/numTasks/crop).
 */
export function convertDodnetCheckpoint(bytes: Uint8Array, source: string, crop: DHW = [64, 192, 192]): {
  bytes: Uint8Array; width: number; numTasks: number; parameters: number;
} {
  let state: Map<string, NamedTensor>;
  if (isPth(bytes)) {
    state = readPthStateDict(bytes, { source }).tensors;
  } else {
    state = new Map<string, NamedTensor>();
    for (const [name, t] of readSafetensorsFile(bytes, { source }).tensors) {
      if (t.dtype === 'F32') state.set(name, { shape: t.shape, data: t.data as Float32Array });
      else if (t.dtype === 'F64') state.set(name, { shape: t.shape, data: Float32Array.from(t.data as Float64Array) });
      else throw new Error(`import-dodnet ${source}: tensor '${name}' has dtype ${t.dtype}; expected F32`);
    }
  }
  const imported = importDodnetStateDict(state, source);
  const tensors = new Map<string, SafeTensorInput>();
  let parameters = 0;
  for (const [name, t] of imported.model) {
    tensors.set(`model.${name}`, { dtype: 'F32', shape: t.shape, data: t.data });
    parameters += t.data.length;
  }
  const metadata = {
    variant: 'dodnet', width: String(imported.width), numTasks: String(imported.numTasks), crop: JSON.stringify(crop),
    importedFrom: `DoDNet (jianpengz/DoDNet unet3D): ${source}`,
  };
  return { bytes: writeSafetensors(tensors, metadata), width: imported.width, numTasks: imported.numTasks, parameters };
}

export const importDodnetCommand = defineCommand({ usage: IMPORT_DODNET_CLI.usage, parse: parseImportDodnetArgs, run: runImportDodnet });

async function runImportDodnet(args: ImportDodnetArgs): Promise<void> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(args.input);
  } catch (e) {
    throw new Error(`tgnet import-dodnet: cannot read --in ${args.input} (${(e as Error).message})`);
  }
  const result = convertDodnetCheckpoint(bytes, args.input, args.crop);
  await writeFileAtomic(args.out, result.bytes);
  console.log(`wrote ${args.out}: TGNet dodnet, width ${result.width}, ${result.numTasks} tasks, ${result.parameters.toLocaleString('en-US')} parameters`);
}
