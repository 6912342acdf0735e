/**
 * The .pth reader on files written by torch.save itself (Debian's PyTorch 1.13, scripts/make_pth_fixtures.py
 * small, committed in test/golden/pth/): both containers, DoDNet's two checkpoint layouts with a real SGD state and
 * amp's loss scale, every dtype and view kind, and the writer read back by the reader.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  findStateDict, isPth, PickleDict, PthFormatError, PthTensor, readPth, readPthStateDict, writePth,
} from '../../src/nn/pth/index.js';
import { readZipDirectory, readZipRecord, writeZip } from '../../src/nn/pth/zip.js';
import { readSafetensors } from '../../src/nn/safetensors.js';

/** Every occurrence of `from` in `bytes` replaced by `to`. */
function replaceBytes(bytes: Uint8Array, from: Uint8Array, to: Uint8Array): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < bytes.length;) {
    if (from.every((b, k) => bytes[i + k] === b)) { out.push(...to); i += from.length; } else out.push(bytes[i++]);
  }
  return Uint8Array.from(out);
}

const fixture = (name: string) => new Uint8Array(readFileSync(new URL(`../golden/pth/${name}`, import.meta.url)));
const expected = readSafetensors(fixture('expected.safetensors'));

function expectedFor(prefix: string): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [k, t] of expected) if (k.startsWith(`${prefix}/`)) out.set(k.slice(prefix.length + 1), { shape: t.shape, data: t.data as Float32Array });
  return out;
}

describe('.pth reader on torch.save files', () => {
  for (const layout of ['plain', 'fp16'] as const) {
    for (const container of ['zip', 'legacy'] as const) {
      it(`reads DoDNet's ${layout} layout in the ${container} container`, () => {
        const name = `tiny_${layout}_${container}.pth`;
        const bytes = fixture(name);
        expect(isPth(bytes)).toBe(true);
        const got = readPthStateDict(bytes, { source: name });
        expect(got.format).toBe(container);
        expect(got.path).toBe(layout === 'plain' ? '' : "['model']");
        const want = expectedFor(`tiny_${layout}`);
        // the module. prefix is removed; names keep the file's order
        expect([...got.tensors.keys()]).toEqual([...want.keys()].map((k) => k.slice('module.'.length)));
        for (const [k, w] of want) {
          const t = got.tensors.get(k.slice('module.'.length))!;
          expect(t.shape).toEqual(w.shape);
          expect(t.data).toEqual(w.data);
        }
      });
    }
  }

  it('parses the whole FP16 checkpoint: SGD state with momentum buffers and floats, amp\'s loss scale', () => {
    for (const container of ['zip', 'legacy']) {
      const ckpt = readPth(fixture(`tiny_fp16_${container}.pth`), { source: container });
      const root = ckpt.root as PickleDict;
      expect([...root.entries.keys()]).toEqual(['model', 'optimizer', 'amp']);
      const opt = root.entries.get('optimizer') as PickleDict;
      const group = (opt.entries.get('param_groups') as PickleDict[])[0];
      expect(group.entries.get('lr')).toBe(0.01);
      expect(group.entries.get('momentum')).toBe(0.99);
      expect(group.entries.get('nesterov')).toBe(true);
      expect(group.entries.get('weight_decay')).toBe(0.0005);
      expect(group.entries.get('params')).toEqual([0, 1, 2, 3, 4]);
      const state = opt.entries.get('state') as PickleDict;
      expect([...state.entries.keys()]).toEqual([0, 1, 2, 3, 4]);
      const momentum = (state.entries.get(0) as PickleDict).entries.get('momentum_buffer') as PthTensor;
      expect(momentum).toBeInstanceOf(PthTensor);
      expect(momentum.shape).toEqual([3, 1, 3, 3, 3]);
      expect(momentum.toFloat32().some((v) => v !== 0)).toBe(true);
      const amp = root.entries.get('amp') as PickleDict;
      expect(amp.ordered).toBe(true);
      expect((amp.entries.get('loss_scaler0') as PickleDict).entries.get('loss_scale')).toBe(65536);
      // model (5) + momentum buffers (5)
      expect(ckpt.tensors.length).toBe(10);
      // state_dict()'s OrderedDict carries _metadata, set by BUILD and kept as data
      const model = root.entries.get('model') as PickleDict;
      expect((model.state as PickleDict).entries.has('_metadata')).toBe(true);
    }
  });

  for (const container of ['zip', 'legacy'] as const) {
    it(`converts every dtype and honours strides, offsets and shared storages (${container})`, () => {
      const name = `dtypes_${container}.pth`;
      const got = readPthStateDict(fixture(name), { source: name });
      expect(got.path).toBe("['state_dict']");
      const want = expectedFor('dtypes');
      expect([...got.tensors.keys()]).toEqual([...want.keys()]);
      for (const [k, w] of want) {
        expect({ k, shape: got.tensors.get(k)!.shape }).toEqual({ k, shape: w.shape });
        expect({ k, data: got.tensors.get(k)!.data }).toEqual({ k, data: w.data });
      }
      const ckpt = readPth(fixture(name), { source: name });
      const sd = findStateDict(ckpt).tensors;
      expect(sd.get('transposed')!.stride).toEqual([1, 6]);
      expect(sd.get('offset')!.storageOffset).toBe(8);
      expect(sd.get('shared_a')!.storage).toBe(sd.get('shared_b')!.storage);
      expect(sd.get('bf16')!.dtype).toBe('bfloat16');
      expect((ckpt.root as PickleDict).entries.get('epoch')).toBe(3);
    });
  }

  it('reads checkpoints saved from the GPU by PyTorch 1.4-1.12 (torch.cuda storage classes, cuda:0 locations)', () => {
    // torch >= 1.13 tags every storage torch.FloatStorage with its location; older versions named the CUDA class
    const enc = (s: string) => new TextEncoder().encode(s);
    const toCuda = (pkl: Uint8Array) => replaceBytes(replaceBytes(pkl, enc('ctorch\nFloatStorage\n'), enc('ctorch.cuda\nFloatStorage\n')),
      Uint8Array.from([0x58, 3, 0, 0, 0, ...enc('cpu')]), Uint8Array.from([0x58, 6, 0, 0, 0, ...enc('cuda:0')]));
    const zip = fixture('tiny_fp16_zip.pth');
    const records = [...readZipDirectory(zip, 'zip').values()].map((r) => {
      const data = readZipRecord(zip, r, 'zip');
      return { name: r.name, data: r.name.endsWith('/data.pkl') ? toCuda(data) : data };
    });
    const legacy = toCuda(fixture('tiny_fp16_legacy.pth'));
    const want = expectedFor('tiny_fp16');
    for (const [name, bytes] of [['cuda_zip.pth', writeZip(records)], ['cuda_legacy.pth', legacy]] as const) {
      expect(new TextDecoder('latin1').decode(bytes)).toContain('torch.cuda\nFloatStorage');
      const got = readPthStateDict(bytes, { source: name });
      expect([...got.tensors.values()].map((t) => t.data)).toEqual([...want.values()].map((t) => t.data));
    }
  });

  it('refuses overlapping views and stride-0 expanded tensors torch wrote, naming them', () => {
    expect(() => readPthStateDict(fixture('overlap_zip.pth'), { source: 'overlap_zip.pth' }))
      .toThrow(/overlap_zip\.pth: state dict entries 'a' and 'b' both read element 2 of storage '0' \(float32, 6 elements\) \(overlapping views\)/);
    expect(() => readPth(fixture('expanded_zip.pth'), { source: 'expanded_zip.pth' }))
      .toThrow(/expanded_zip\.pth .*_rebuild_tensor_v2: size \[3, 4\] with stride \[1, 0\] maps several elements onto one/);
  });

  it('finds no state dict where there is none, and says what it found', () => {
    const ckpt = readPth(fixture('tiny_fp16_zip.pth'), { source: 'x.pth' });
    const model = (ckpt.root as PickleDict).entries.get('model') as PickleDict;
    model.entries.clear();
    expect(() => findStateDict(ckpt)).toThrow(/x\.pth: no state dict .*the top-level keys are "model", "optimizer", "amp"/);
    expect(() => readPth(new Uint8Array([1, 2, 3]), { source: 'y.pth' })).toThrow(PthFormatError);
    expect(() => readPth(new Uint8Array([1, 2, 3]), { source: 'y.pth' })).toThrow(/y\.pth: starts with bytes 01 02 03; expected a torch\.save checkpoint/);
  });

  it('writePth output reads back, with its extra records', () => {
    const tensors = new Map([
      ['a.weight', { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }],
      ['b', { shape: [], data: Float32Array.from([7]) }],
      ['big', { shape: [300, 2], data: Float32Array.from({ length: 600 }, (_, i) => i / 3) }],
    ]);
    const bytes = writePth(tensors, { extra: new Map([['tgnet.json', '{"variant":"dodnet"}']]) });
    const got = readPthStateDict(bytes, { source: 'written.pth' });
    expect(got.format).toBe('zip');
    expect([...got.tensors]).toEqual([...tensors].map(([k, t]) => [k, { shape: t.shape, data: t.data }]));
    expect(got.extra.get('tgnet.json')).toBe('{"variant":"dodnet"}');
    expect(() => writePth(new Map([['x', { shape: [2], data: new Float32Array(3) }]]))).toThrow(/tensor 'x' has shape \[2\] \(2 elements\) but 3 values/);
  });
});
