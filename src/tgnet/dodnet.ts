/**
 * DoDNet's own checkpoints (jianpengz/DoDNet, `unet3D` with `NoBottleneck` blocks, weight_std=True) mapped onto
 * TGNet's `dodnet` variant, which is the same network under the reference's state-dict names.
 *
 * DoDNet names: `conv1`; `layer0`..`layer4` of blocks `.N` with `gn1`, `conv1`, `gn2`, `conv2` and a projection
 * shortcut `downsample.0` (GroupNorm) / `downsample.2` (conv; `.1` is the ReLU); `fusionConv.0` / `.2`;
 * decoder blocks `x8_resb`, `x4_resb`, `x2_resb`, `x1_resb` (one block, `.0`); `precls_conv.0` / `.2`; `GAP.0`
 * (the GroupNorm before the pooling); `controller`. A model saved from (Distributed)DataParallel prefixes every
 * name with `module.`. The mapping is pure (no GPU): names and shapes are checked against the dodnet layout.
 */
import { HEAD_PARAMS } from '../kernels/dynamic-head.js';

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

const BLOCK_PARTS: [RegExp, string][] = [
  [/^(gn1|gn2)\.(weight|bias)$/, '$1.$2'],
  [/^(conv1|conv2)\.weight$/, '$1.weight'],
  [/^downsample\.0\.(weight|bias)$/, 'down.norm.$1'],
  [/^downsample\.2\.weight$/, 'down.conv.weight'],
];
const DECODER_BLOCKS: Record<string, number> = { x8_resb: 0, x4_resb: 1, x2_resb: 2, x1_resb: 3 };

function mapBlockPart(rest: string): string | null {
  for (const [re, to] of BLOCK_PARTS) if (re.test(rest)) return rest.replace(re, to);
  return null;
}

/** TGNet's state-dict name for a DoDNet one (`module.` prefix allowed), or null when it has no place. */
export function dodnetToTGNetName(name: string): string | null {
  const n = name.startsWith('module.') ? name.slice('module.'.length) : name;
  if (n === 'conv1.weight') return n;
  let m = /^layer([0-4])\.(\d+)\.(.+)$/.exec(n);
  if (m) {
    const part = mapBlockPart(m[3]);
    return part && `enc.${m[1]}.${Number(m[2])}.${part}`;
  }
  m = /^(x8_resb|x4_resb|x2_resb|x1_resb)\.0\.(.+)$/.exec(n);
  if (m) {
    const part = mapBlockPart(m[2]);
    return part && `dec.${DECODER_BLOCKS[m[1]]}.${part}`;
  }
  m = /^fusionConv\.0\.(weight|bias)$/.exec(n);
  if (m) return `fusion.norm.${m[1]}`;
  if (n === 'fusionConv.2.weight') return 'fusion.conv.weight';
  m = /^precls_conv\.0\.(weight|bias)$/.exec(n);
  if (m) return `precls.norm.${m[1]}`;
  m = /^precls_conv\.2\.(weight|bias)$/.exec(n);
  if (m) return `precls.conv.${m[1]}`;
  m = /^GAP\.0\.(weight|bias)$/.exec(n);
  if (m) return `gap_gn.${m[1]}`;
  m = /^controller\.(weight|bias)$/.exec(n);
  if (m) return `controller.${m[1]}`;
  return null;
}

/**
 * Whether a state dict uses DoDNet's names rather than TGNet's: one of the authors' module names that TGNet does
 * not use (`layer0`..`layer4`, `fusionConv`, the `x*_resb` decoder, `precls_conv`, `GAP`).
 */
export function looksLikeDodnet(names: readonly string[]): boolean {
  return names.some((n) => /^(module\.)?(layer[0-4]|fusionConv|x[8421]_resb|precls_conv|GAP)\./.test(n));
}

/**
 * Parameter names and shapes of TGNet's `dodnet` variant in state-dict order, computed without building the
 * model (test/tgnet/dodnet.test.ts checks them against TGNet.create).
 */
export function dodnetParameterShapes(width: number, numTasks: number): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const norm = (prefix: string, c: number) => { out.set(`${prefix}.weight`, [c]); out.set(`${prefix}.bias`, [c]); };
  const block = (prefix: string, cin: number, cout: number, projected: boolean) => {
    norm(`${prefix}.gn1`, cin);
    out.set(`${prefix}.conv1.weight`, [cout, cin, 3, 3, 3]);
    norm(`${prefix}.gn2`, cout);
    out.set(`${prefix}.conv2.weight`, [cout, cout, 3, 3, 3]);
    if (projected) {
      norm(`${prefix}.down.norm`, cin);
      out.set(`${prefix}.down.conv.weight`, [cout, cin, 1, 1, 1]);
    }
  };
  const w = width;
  out.set('conv1.weight', [w, 1, 3, 3, 3]);
  const stages: [number, number, number, number][] = [[w, w, 1, 1], [w, 2 * w, 2, 2], [2 * w, 4 * w, 2, 2], [4 * w, 8 * w, 2, 2], [8 * w, 8 * w, 2, 2]];
  stages.forEach(([cin, cout, stride, blocks], s) => {
    for (let b = 0; b < blocks; b++) {
      const bin = b === 0 ? cin : cout;
      block(`enc.${s}.${b}`, bin, cout, b === 0 && (stride !== 1 || cin !== cout));
    }
  });
  norm('fusion.norm', 8 * w);
  out.set('fusion.conv.weight', [8 * w, 8 * w, 1, 1, 1]);
  norm('gap_gn', 8 * w);
  out.set('controller.weight', [HEAD_PARAMS, 8 * w + numTasks, 1, 1, 1]);
  out.set('controller.bias', [HEAD_PARAMS]);
  const decoder: [number, number][] = [[8 * w, 4 * w], [4 * w, 2 * w], [2 * w, w], [w, w]];
  decoder.forEach(([cin, cout], i) => block(`dec.${i}`, cin, cout, cin !== cout));
  norm('precls.norm', w);
  out.set('precls.conv.weight', [8, w, 1, 1, 1]);
  out.set('precls.conv.bias', [8]);
  return out;
}

const shapeText = (s: readonly number[]): string => `[${s.join(', ')}]`;

export interface ImportedDodnet {
  width: number;
  numTasks: number;
  /** TGNet `dodnet` state dict, in the model's order. */
  model: Map<string, NamedTensor>;
}

/**
 * Maps a DoDNet state dict (names as saved by the authors' code, optionally `module.`-prefixed) onto TGNet's
 * `dodnet` variant. Width and task count come from `conv1.weight` and `controller.weight`. Throws, naming the
 * keys, when a key has no place, two keys land on one name, a parameter is missing or a shape differs.
 */
export function importDodnetStateDict(state: ReadonlyMap<string, NamedTensor>, source = '(DoDNet state dict)'): ImportedDodnet {
  const where = `import-dodnet ${source}`;
  const mapped = new Map<string, { from: string; t: NamedTensor }>();
  const unplaced: string[] = [];
  for (const [name, t] of state) {
    const ours = dodnetToTGNetName(name);
    if (!ours) {
      unplaced.push(name);
      continue;
    }
    const prev = mapped.get(ours);
    if (prev) throw new Error(`${where}: '${prev.from}' and '${name}' both map to '${ours}'; expected one tensor per parameter`);
    mapped.set(ours, { from: name, t });
  }
  if (unplaced.length) {
    const list = unplaced.slice(0, 8).map((k) => `'${k}'`).join(', ') + (unplaced.length > 8 ? `, ... (${unplaced.length} in all)` : '');
    throw new Error(`${where}: ${unplaced.length} tensor(s) have no place in TGNet's dodnet variant: ${list}; expected DoDNet's unet3D names `
      + '(conv1, layer0-4.N.{gn1,conv1,gn2,conv2,downsample.0,downsample.2}, fusionConv.0/.2, x8/x4/x2/x1_resb.0.*, precls_conv.0/.2, GAP.0, controller), optionally prefixed by module.');
  }
  const stem = mapped.get('conv1.weight');
  const controller = mapped.get('controller.weight');
  if (!stem || !controller) {
    throw new Error(`${where}: no '${stem ? 'controller.weight' : 'conv1.weight'}' tensor; expected a DoDNet state dict (the stem conv and the controller fix the width and the task count)`);
  }
  const width = stem.t.shape[0];
  const numTasks = (controller.t.shape[1] ?? 0) - 8 * width;
  if (!(width >= 1) || !(numTasks >= 1)) {
    throw new Error(`${where}: 'conv1.weight' ${shapeText(stem.t.shape)} and 'controller.weight' ${shapeText(controller.t.shape)} give width ${width} and ${numTasks} tasks; expected [w, 1, 3, 3, 3] and [162, 8w + tasks, 1, 1, 1]`);
  }
  const expected = dodnetParameterShapes(width, numTasks);
  const missing = [...expected.keys()].filter((k) => !mapped.has(k));
  if (missing.length) {
    throw new Error(`${where}: missing ${missing.length} parameter(s) of a width-${width} DoDNet: ${missing.slice(0, 8).map((k) => `'${k}'`).join(', ')}${missing.length > 8 ? ', ...' : ''}`);
  }
  const extra = [...mapped].filter(([k]) => !expected.has(k)).map(([, v]) => `'${v.from}'`);
  if (extra.length) {
    throw new Error(`${where}: ${extra.length} tensor(s) have no place in a width-${width} DoDNet (no such block or shortcut): ${extra.slice(0, 8).join(', ')}`);
  }
  const model = new Map<string, NamedTensor>();
  for (const [name, shape] of expected) {
    const { from, t } = mapped.get(name)!;
    if (shapeText(t.shape) !== shapeText(shape)) {
      throw new Error(`${where}: '${from}' (TGNet '${name}') has shape ${shapeText(t.shape)}; a width-${width} DoDNet with ${numTasks} tasks has ${shapeText(shape)}`);
    }
    const size = shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== size) throw new Error(`${where}: '${from}' holds ${t.data.length} values for shape ${shapeText(shape)} (${size} expected)`);
    model.set(name, { shape: [...shape], data: t.data });
  }
  return { width, numTasks, model };
}
