/**
 * DoDNet's own checkpoints: a network with the module names of jianpengz/DoDNet's unet3D (written in
 * scripts/make_dodnet_fixture.py, random weights, its state dict as safetensors with the authors' names) is imported
 * with tgnet import-dodnet's mapping and gives PyTorch's logits. The .pth files themselves: dodnet-pth.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { noGrad } from '../../src/autograd/tape.js';
import { tidy } from '../../src/autograd/scope.js';
import { Tensor } from '../../src/autograd/tensor.js';
import { convertDodnetCheckpoint, importDodnetCommand, parseImportDodnetArgs } from '../../src/cli/import-dodnet.js';
import { loadModelFromCheckpoint } from '../../src/eval/load-model.js';
import { readSafetensors, writeSafetensors, type SafeTensorInput } from '../../src/nn/safetensors.js';
import { dodnetParameterShapes, dodnetToTGNetName, importDodnetStateDict, type NamedTensor } from '../../src/tgnet/dodnet.js';
import { TGNet } from '../../src/tgnet/model.js';
import { expectClose, useGpu } from '../helpers/gpu.js';

useGpu();
const dir = mkdtempSync(join(tmpdir(), 'tgnet-dodnet-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const fixture = (name: string) => new Uint8Array(readFileSync(new URL(`../golden/${name}`, import.meta.url)));

function dodnetState(): Map<string, NamedTensor> {
  return new Map([...readSafetensors(fixture('dodnet_unet3d.safetensors'))].map(([k, t]) => [k, { shape: t.shape, data: t.data as Float32Array }]));
}

describe('DoDNet checkpoint import', () => {
  it('the dodnet layout computed without a model equals TGNet.create', () => {
    for (const [width, numTasks] of [[2, 7], [4, 5]]) {
      const model = TGNet.create({ variant: 'dodnet', width, numTasks });
      expect([...dodnetParameterShapes(width, numTasks)]).toEqual(model.namedParameters().map(([n, p]) => [n, [...p.shape]]));
      model.dispose();
    }
    const counts = [...dodnetParameterShapes(32, 7).values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
    expect(counts).toBe(17_329_528);
  });

  it('maps the authors\' names, with or without the module. prefix', () => {
    expect(dodnetToTGNetName('module.layer3.1.downsample.0.weight')).toBe('enc.3.1.down.norm.weight');
    expect(dodnetToTGNetName('layer1.0.downsample.2.weight')).toBe('enc.1.0.down.conv.weight');
    expect(dodnetToTGNetName('x4_resb.0.gn2.bias')).toBe('dec.1.gn2.bias');
    expect(dodnetToTGNetName('x1_resb.0.conv1.weight')).toBe('dec.3.conv1.weight');
    expect(dodnetToTGNetName('fusionConv.2.weight')).toBe('fusion.conv.weight');
    expect(dodnetToTGNetName('precls_conv.2.bias')).toBe('precls.conv.bias');
    expect(dodnetToTGNetName('GAP.0.weight')).toBe('gap_gn.weight');
    expect(dodnetToTGNetName('module.controller.bias')).toBe('controller.bias');
    expect(dodnetToTGNetName('fusionConv.2.bias')).toBeNull();
    expect(dodnetToTGNetName('x8_resb.1.gn1.weight')).toBeNull();
    expect(dodnetToTGNetName('layer0.0.downsample.1.weight')).toBeNull();
  });

  it('a converted DoDNet checkpoint gives PyTorch\'s logits', async () => {
    const converted = convertDodnetCheckpoint(fixture('dodnet_unet3d.safetensors'), 'dodnet_unet3d.safetensors');
    expect({ width: converted.width, numTasks: converted.numTasks }).toEqual({ width: 2, numTasks: 7 });
    const { model, config } = loadModelFromCheckpoint(converted.bytes, 'imported.safetensors');
    expect(config).toEqual({ variant: 'dodnet', width: 2, numTasks: 7, crop: [64, 192, 192] });
    expect(converted.parameters).toBe(model.parameterCount());
    const io = readSafetensors(fixture('dodnet_unet3d_io.safetensors'));
    const input = io.get('input')!;
    const taskIds = Array.from(io.get('task_ids')!.data as Float32Array);
    const expected = io.get('logits')!;
    const got = await noGrad(() => tidy(() => model.forward(Tensor.fromArray(input.data as Float32Array, input.shape), taskIds).toArray()));
    let maxErr = 0;
    const want = expected.data as Float32Array;
    for (let i = 0; i < want.length; i++) maxErr = Math.max(maxErr, Math.abs(got[i] - want[i]));
    console.log(`DoDNet import: max |logits - PyTorch| ${maxErr.toExponential(2)} over ${want.length} logits`);
    expectClose(got, want, 1e-4, 1e-3);
    model.dispose();
  });

  it('refuses keys it cannot place, a missing parameter and a shape that differs, naming them', () => {
    const state = dodnetState();
    const prefixed = new Map([...state].map(([k, v]) => [`module.${k}`, v]));
    expect([...importDodnetStateDict(prefixed).model.keys()]).toEqual([...dodnetParameterShapes(2, 7).keys()]);

    const withBias = new Map(state).set('fusionConv.2.bias', { shape: [16], data: new Float32Array(16) });
    expect(() => importDodnetStateDict(withBias, 'a.pth')).toThrow(/import-dodnet a\.pth: 1 tensor\(s\) have no place in TGNet's dodnet variant: 'fusionConv\.2\.bias'/);
    const extraBlock = new Map(state).set('layer0.1.gn1.weight', { shape: [2], data: new Float32Array(2) });
    expect(() => importDodnetStateDict(extraBlock)).toThrow(/have no place in a width-2 DoDNet \(no such block or shortcut\): 'layer0\.1\.gn1\.weight'/);
    const missing = new Map(state);
    missing.delete('x2_resb.0.downsample.2.weight');
    expect(() => importDodnetStateDict(missing)).toThrow(/missing 1 parameter\(s\) of a width-2 DoDNet: 'dec\.2\.down\.conv\.weight'/);
    const wrong = new Map(state).set('layer2.1.conv2.weight', { shape: [8, 8, 1, 1, 1], data: new Float32Array(64) });
    expect(() => importDodnetStateDict(wrong)).toThrow(/'layer2\.1\.conv2\.weight' \(TGNet 'enc\.2\.1\.conv2\.weight'\) has shape \[8, 8, 1, 1, 1\]; a width-2 DoDNet with 7 tasks has \[8, 8, 3, 3, 3\]/);
    const twice = new Map(state).set('module.conv1.weight', state.get('conv1.weight')!);
    expect(() => importDodnetStateDict(twice)).toThrow(/'conv1\.weight' and 'module\.conv1\.weight' both map to 'conv1\.weight'/);
  });

  it('tgnet import-dodnet writes a checkpoint file and explains bad arguments', async () => {
    const input = join(dir, 'dodnet.safetensors');
    writeFileSync(input, fixture('dodnet_unet3d.safetensors'));
    const out = join(dir, 'out', 'tgnet-dodnet.safetensors');
    const lines: string[] = [];
    const spy = vi.spyOn(console, 'log').mockImplementation((s: string) => { lines.push(s); });
    await importDodnetCommand(['--in', input, '--out', out, '--crop', '32', '64', '64']);
    spy.mockRestore();
    expect(lines).toEqual([`wrote ${out}: TGNet dodnet, width 2, 7 tasks, 72,058 parameters`]);
    const loaded = loadModelFromCheckpoint(new Uint8Array(readFileSync(out)), out);
    expect(loaded.config.crop).toEqual([32, 64, 64]);
    loaded.model.dispose();
    expect(() => parseImportDodnetArgs(['--in', input])).toThrow(/--out is required/);
    expect(() => parseImportDodnetArgs(['--in', input, '--out', out, '--crop', '16', '20', '16'])).toThrow(/--crop H is "20"; expected a positive multiple of 16/);
    const ints = new Map<string, SafeTensorInput>([['conv1.weight', { dtype: 'I64', shape: [1], data: new BigInt64Array(1) }]]);
    expect(() => convertDodnetCheckpoint(writeSafetensors(ints), 'ints.safetensors')).toThrow(/tensor 'conv1\.weight' has dtype I64; expected F32/);
    await expect(importDodnetCommand(['--in', join(dir, 'none.safetensors'), '--out', out])).rejects.toThrow(/cannot read --in .*none\.safetensors/);
  });
});
