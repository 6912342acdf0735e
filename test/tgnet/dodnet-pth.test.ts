/**
 * DoDNet's .pth files straight into tgnet, and tgnet's checkpoints out to PyTorch.
 *
 * Always: a DoDNet-named .pth (the width-2 fixture's weights with DataParallel's `module.` prefix, written by
 * writePth) through `loadModelFromCheckpoint`, `tgnet import-dodnet` and `tgnet predict`, and a tgnet checkpoint
 * through `tgnet export --format pth` and back.
 * With Debian's PyTorch (/usr/bin/python3 with torch; skipped without it, as CI installs none): the authors'
 * network at width 32 (every tensor name and shape), saved by torch.save in the four layouts DoDNet's train.py
 * writes (plain / FP16 with SGD and amp state, x zip / legacy container), loaded and run by tgnet against PyTorch's
 * float32 and float64 logits; and the exported .pth loaded by torch.load(weights_only=True) into the PyTorch twin
 * (bench/torch/tgnet_torch.py) with the golden logits.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { noGrad } from '../../src/autograd/tape.js';
import { tidy } from '../../src/autograd/scope.js';
import { Tensor } from '../../src/autograd/tensor.js';
import { defaultModelNames, evaluateCommand, type EvaluateModelsJson } from '../../src/cli/evaluate.js';
import { exportCheckpoint, exportCommand, parseExportArgs } from '../../src/cli/export.js';
import { importDodnetCommand } from '../../src/cli/import-dodnet.js';
import { predictCommand } from '../../src/cli/predict.js';
import { synthesizeDatasets } from '../../src/data/synth.js';
import { loadModelFromCheckpoint } from '../../src/eval/load-model.js';
import { readPthStateDict, writePth } from '../../src/nn/pth/index.js';
import { readSafetensors } from '../../src/nn/safetensors.js';
import { dodnetParameterShapes } from '../../src/tgnet/dodnet.js';
import type { TGNet } from '../../src/tgnet/model.js';
import { COLD_COMPILE_TIMEOUT_MS, expectClose, useGpu } from '../helpers/gpu.js';

/** A whole phantom body in a few voxels that claim CT-like sizes, so resampling to 1.5 x 0.8 x 0.8 mm stays cheap. */
const SMALL_BODY = { spacing: [0.8, 0.8, 2.5] as [number, number, number], fitToGrid: true };

useGpu();
const dir = mkdtempSync(join(tmpdir(), 'tgnet-dodnet-pth-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const golden = (name: string) => new Uint8Array(readFileSync(new URL(`../golden/${name}`, import.meta.url)));
const root = fileURLToPath(new URL('../..', import.meta.url));
const PYTHON = '/usr/bin/python3';
const hasTorch = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
const twinDir = join(root, 'bench/torch');

async function logits(model: TGNet, input: { shape: number[]; data: Float32Array }, taskIds: number[]): Promise<Float32Array> {
  return noGrad(() => tidy(() => model.forward(Tensor.fromArray(input.data, input.shape), taskIds).toArray()));
}

/** max |got - want| / max |want|: the agreement figure the closing note reports per layout. */
function relError(got: Float32Array, want: Float32Array): number {
  let err = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return err / scale;
}

function dodnetPth(): Uint8Array {
  const tensors = new Map([...readSafetensors(golden('dodnet_unet3d.safetensors'))].map(([k, t]) => [`module.${k}`, { shape: t.shape, data: t.data as Float32Array }]));
  return writePth(tensors);
}

describe('DoDNet .pth in tgnet', () => {
  it('predict\'s loader takes a DoDNet .pth as the dodnet variant at DoDNet\'s crop, with PyTorch\'s logits', async () => {
    const { model, config } = loadModelFromCheckpoint(dodnetPth(), 'MOTS.pth');
    expect(config).toEqual({ variant: 'dodnet', width: 2, numTasks: 7, crop: [64, 192, 192] });
    const io = readSafetensors(golden('dodnet_unet3d_io.safetensors'));
    const got = await logits(model, io.get('input')! as { shape: number[]; data: Float32Array }, Array.from(io.get('task_ids')!.data as Float32Array));
    expectClose(got, io.get('logits')!.data as Float32Array, 1e-4, 1e-3);
    model.dispose();
  }, COLD_COMPILE_TIMEOUT_MS);

  it('tgnet import-dodnet --in MODEL.pth, then predict and evaluate --model MODEL.pth give the imported checkpoint\'s masks and scores', async () => {
    const pth = join(dir, 'MOTS_DynConv_e0.pth');
    writeFileSync(pth, dodnetPth());
    const imported = join(dir, 'imported.safetensors');
    const lines: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((s: string) => { lines.push(s); });
    await importDodnetCommand(['--in', pth, '--out', imported]);
    expect(lines).toEqual([`wrote ${imported}: TGNet dodnet, width 2, 7 tasks, 72,058 parameters`]);
    const [liver] = await synthesizeDatasets({ outDir: join(dir, 'data'), cases: 1, size: [8, 24, 24], seed: 2, tasks: [0], ...SMALL_BODY });
    const image = join(liver.root, liver.cases[0].image);
    const masks = [];
    for (const model of [pth, imported]) {
      const out = join(dir, `${model.endsWith('.pth') ? 'pth' : 'st'}.nii.gz`);
      await predictCommand(['--model', model, '--input', image, '--task', 'liver', '--out', out, '--crop', '16', '16', '16', '--quiet']);
      masks.push(readFileSync(out));
    }
    expect(masks[0].equals(masks[1])).toBe(true);
    const json = join(dir, 'eval.json');
    await evaluateCommand(['--model', pth, '--model', imported, '--data', join(dir, 'data'), '--spacing', 'native', '--tile', '16', '16', '16', '--quiet', '--json', json]);
    vi.restoreAllMocks();
    const report = JSON.parse(readFileSync(json, 'utf8')) as EvaluateModelsJson;
    expect(report.models.map((m) => m.name)).toEqual(['MOTS_DynConv_e0', 'imported']);
    expect(report.models[0].cases).toEqual(report.models[1].cases);
    expect(defaultModelNames(['a/x.pth', 'b/x.pt'])).toEqual(['a/x', 'b/x']);
  }, COLD_COMPILE_TIMEOUT_MS);

  it('tgnet export writes a .pth that reads back as the same model and configuration', async () => {
    const ckpt = join(dir, 'tgnet.safetensors');
    writeFileSync(ckpt, golden('tgnet_tgnet.safetensors'));
    const out = join(dir, 'tgnet.pth');
    const lines: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((s: string) => { lines.push(s); });
    await exportCommand(['--model', ckpt, '--out', out]);
    vi.restoreAllMocks();
    expect(lines[0]).toMatch(/^wrote .*tgnet\.pth: pth, TGNet tgnet width 2, 7 tasks, \d+ tensors, [\d,]+ parameters; PyTorch: net\.load_state_dict\(torch\.load\(/);
    const { model, config } = loadModelFromCheckpoint(new Uint8Array(readFileSync(out)), out);
    expect(config).toEqual({ variant: 'tgnet', width: 2, numTasks: 7 });
    const g = readSafetensors(golden('tgnet_tgnet.safetensors'));
    const taskIds = Array.from(g.get('task_ids')!.data as BigInt64Array, Number);
    const got = await logits(model, g.get('input')! as { shape: number[]; data: Float32Array }, taskIds);
    expectClose(got, g.get('logits')!.data as Float32Array, 1e-4, 1e-3);
    model.dispose();
    // and back to safetensors, keeping the configuration
    const back = exportCheckpoint(new Uint8Array(readFileSync(out)), out, 'safetensors');
    expect(back.config).toEqual({ variant: 'tgnet', width: '2', numTasks: '7' });
    expect(parseExportArgs(['--model', 'a', '--out', 'b.pt'])).toEqual({ model: 'a', out: 'b.pt', format: 'pth' });
    expect(() => parseExportArgs(['--model', 'a', '--out', 'b.bin'])).toThrow(/--out b\.bin has neither a \.pth\/\.pt nor a \.safetensors extension; pass --format pth or --format safetensors/);
  }, COLD_COMPILE_TIMEOUT_MS);
});

describe.skipIf(!hasTorch)('with Debian\'s PyTorch: torch.save files in, torch.load out', () => {
  const torchDir = join(dir, 'torch');
  beforeAll(() => {
    // 70-140 MB per file at width 32: written here rather than committed
    const r = spawnSync(PYTHON, [join(root, 'scripts/make_pth_fixtures.py'), 'dodnet', '--width', '32', '--out', torchDir], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`make_pth_fixtures.py dodnet failed: ${r.stderr}`);
    console.log(r.stdout.trim());
  }, 300_000);

  for (const layout of ['plain_zip', 'plain_legacy', 'fp16_zip', 'fp16_legacy']) {
    it(`the authors' network at width 32, ${layout}: every name and shape, PyTorch's logits`, async () => {
      const name = `dodnet_${layout}.pth`;
      const bytes = new Uint8Array(readFileSync(join(torchDir, name)));
      const state = readPthStateDict(bytes, { source: name });
      expect(state.format).toBe(layout.endsWith('zip') ? 'zip' : 'legacy');
      expect(state.path).toBe(layout.startsWith('fp16') ? "['model']" : '');
      const { model, config } = loadModelFromCheckpoint(bytes, name);
      expect(config).toEqual({ variant: 'dodnet', width: 32, numTasks: 7, crop: [64, 192, 192] });
      expect(model.namedParameters().map(([n, p]) => [n, [...p.shape]])).toEqual([...dodnetParameterShapes(32, 7)]);
      expect(model.parameterCount()).toBe(17_329_528);
      const io = readSafetensors(new Uint8Array(readFileSync(join(torchDir, 'dodnet_io.safetensors'))));
      const got = await logits(model, io.get('input')! as { shape: number[]; data: Float32Array }, Array.from(io.get('task_ids')!.data as Float32Array));
      model.dispose();
      const kind = layout.split('_')[0];
      const f32 = io.get(`${kind}.logits`)!.data as Float32Array;
      const f64 = io.get(`${kind}.logits64`)!.data as Float32Array;
      console.log(`${name}: max |tgnet - torch f32| / max|logit| ${relError(got, f32).toExponential(2)}; vs torch f64 ${relError(got, f64).toExponential(2)} (torch f32 vs f64 ${relError(f32, f64).toExponential(2)})`);
      expect(relError(got, f64)).toBeLessThan(1e-4);
    }, COLD_COMPILE_TIMEOUT_MS);
  }

  it('torch.load(weights_only=True) reads tgnet export\'s .pth into the PyTorch twin, with the golden logits', () => {
    const out = join(dir, 'ref.pth');
    writeFileSync(out, exportCheckpoint(golden('tgnet_tgnet.safetensors'), 'tgnet_tgnet.safetensors', 'pth').bytes);
    const g = readSafetensors(golden('tgnet_tgnet.safetensors'));
    const input = g.get('input')!;
    writeFileSync(join(dir, 'input.bin'), input.data as Float32Array);
    const taskIds = Array.from(g.get('task_ids')!.data as BigInt64Array, Number);
    const script = [
      'import sys, numpy, torch',
      `sys.path.insert(0, ${JSON.stringify(twinDir)})`,
      'import tgnet_torch',
      'net = tgnet_torch.TGNet("tgnet", width=2)',
      `print(net.load_state_dict(torch.load(${JSON.stringify(out)}, weights_only=True)))`,
      `x = torch.from_numpy(numpy.fromfile(${JSON.stringify(join(dir, 'input.bin'))}, dtype=numpy.float32)).reshape(${input.shape.join(', ')})`,
      `y = net(x, torch.tensor(${JSON.stringify(taskIds)}))`,
      `y.detach().numpy().astype(numpy.float32).tofile(${JSON.stringify(join(dir, 'ref-logits.bin'))})`,
    ].join('\n');
    const r = spawnSync(PYTHON, ['-c', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('<All keys matched successfully>');
    const got = new Float32Array(new Uint8Array(readFileSync(join(dir, 'ref-logits.bin'))).buffer);
    const want = g.get('logits')!.data as Float32Array;
    console.log(`tgnet export -> torch.load -> tgnet_torch.py: max |logits - golden| / max|logit| ${relError(got, want).toExponential(2)}`);
    // PyTorch's CPU convolutions sum in an order that depends on its thread count and the machine's load (measured
    // 1.7e-6 on a busy 2-core machine); a wrong name or layout would be off by O(1).
    expect(relError(got, want)).toBeLessThan(1e-5);
  });
});
