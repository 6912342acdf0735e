/** Module / ModuleList: PyTorch state-dict naming, state-dict loading (checks before writes), dispose, train/eval. */
import { describe, expect, it } from 'vitest';
import { Tensor } from '../../src/autograd/tensor.js';
import { tidy } from '../../src/autograd/scope.js';
import { Conv3d, GroupNorm } from '../../src/nn/layers.js';
import { createParameter, Module, ModuleList, type HostTensor } from '../../src/nn/module.js';
import { useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

/** A small tree shaped like TGNet's: own parameter, named children, a list of lists, an optional child. */
class Block extends Module {
  readonly norm = this.registerModule('norm', new GroupNorm(2, 4));
  readonly conv = this.registerModule('conv', new Conv3d(4, 4, 3, { bias: false }));
}

class Tree extends Module {
  readonly scale = this.registerParameter('scale', createParameter([0.5, 2], [2]));
  readonly stem = this.registerModule('stem', new Conv3d(1, 4, 1));
  readonly stages = this.registerModule('stages', new ModuleList([new ModuleList([new Block()]), new ModuleList([new Block(), new Block()])]));
}

const shapeOf = (m: Module) => m.namedParameters().map(([n, p]) => [n, [...p.shape]]);

describe('Module', () => {
  it('names parameters with dotted PyTorch state-dict names in registration order', () => {
    const m = new Tree();
    expect(shapeOf(m)).toEqual([
      ['scale', [2]],
      ['stem.weight', [4, 1, 1, 1, 1]], ['stem.bias', [4]],
      ['stages.0.0.norm.weight', [4]], ['stages.0.0.norm.bias', [4]], ['stages.0.0.conv.weight', [4, 4, 3, 3, 3]],
      ['stages.1.0.norm.weight', [4]], ['stages.1.0.norm.bias', [4]], ['stages.1.0.conv.weight', [4, 4, 3, 3, 3]],
      ['stages.1.1.norm.weight', [4]], ['stages.1.1.norm.bias', [4]], ['stages.1.1.conv.weight', [4, 4, 3, 3, 3]],
    ]);
    expect(m.parameters()).toHaveLength(12);
    expect(m.parameterCount()).toBe(2 + 4 + 4 + 3 * (8 + 4 * 4 * 27));
    expect([...m.stateDict().keys()]).toEqual(m.namedParameters().map(([n]) => n));
    expect(m.stages.at(1).length).toBe(2);
    expect(() => m.stages.at(2)).toThrow(/index 2 is out of range; expected an integer in \[0, 1\]/);
    m.dispose();
  });

  it('rejects duplicate and dotted names and parameters without grad', () => {
    class Bad extends Module {
      add(name: string, t: Tensor) {
        return this.registerParameter(name, t);
      }
    }
    const m = new Bad();
    m.add('w', createParameter([1], [1]));
    expect(() => m.add('w', createParameter([1], [1]))).toThrow(/name 'w' is already registered/);
    expect(() => m.add('a.b', createParameter([1], [1]))).toThrow(/name 'a.b' must be non-empty and without '.'/);
    const plain = Tensor.fromArray([1], [1]);
    expect(() => m.add('c', plain)).toThrow(/'c' does not require grad/);
    plain.dispose();
    m.dispose();
  });

  it('parameters outlive tidy scopes; dispose frees every buffer', async () => {
    const before = gpu().poolStats().liveBuffers;
    const m = tidy(() => new Tree());
    expect(m.parameters().every((p) => !p.isDisposed && p.requiresGrad)).toBe(true);
    expect(Array.from(await m.scale.toArray())).toEqual([0.5, 2]);
    expect(gpu().poolStats().liveBuffers).toBe(before + 12);
    m.dispose();
    expect(m.parameters().every((p) => p.isDisposed)).toBe(true);
    expect(gpu().poolStats().liveBuffers).toBe(before);
  });

  it('loadStateDict copies host arrays and tensors by name', async () => {
    const src = new Tree();
    const dst = new Tree();
    const host = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, p] of src.namedParameters()) host.set(name, { shape: [...p.shape], data: Float32Array.from({ length: p.size }, (_, i) => i * 0.25 + name.length) });
    expect(dst.loadStateDict(host)).toEqual({ missingKeys: [], unexpectedKeys: [] });
    for (const [name, p] of dst.namedParameters()) expect(Array.from(await p.toArray())).toEqual(Array.from(host.get(name)!.data));
    src.loadStateDict(dst.stateDict());
    for (const [name, p] of src.namedParameters()) expect(Array.from(await p.toArray())).toEqual(Array.from(host.get(name)!.data));
    src.dispose();
    dst.dispose();
  });

  it('loadStateDict names missing and unexpected keys and shape mismatches, and writes nothing on error', async () => {
    const m = new Tree();
    const good = new Map<string, HostTensor>([...m.stateDict()].map(([k, p]) => [k, { shape: [...p.shape], data: new Float32Array(p.size).fill(7) }]));
    const without = new Map(good);
    without.delete('stages.1.1.conv.weight');
    expect(() => m.loadStateDict(without)).toThrow(/missing key\(s\) 'stages\.1\.1\.conv\.weight'/);
    const extra = new Map(good).set('stages.2.0.norm.weight', { shape: [4], data: new Float32Array(4) });
    expect(() => m.loadStateDict(extra)).toThrow(/unexpected key\(s\) 'stages\.2\.0\.norm\.weight'/);
    const wrong = new Map(good).set('stem.weight', { shape: [4, 1, 3, 3, 3], data: new Float32Array(108) });
    expect(() => m.loadStateDict(wrong)).toThrow(/shape mismatch for 'stem\.weight': expected \[4, 1, 1, 1, 1\], got \[4, 1, 3, 3, 3\]/);
    const short = new Map(good).set('scale', { shape: [2], data: new Float32Array(1) });
    expect(() => m.loadStateDict(short)).toThrow(/'scale' has 1 values for shape \[2\] \(2 expected\)/);
    const ints = new Map(good).set('scale', { shape: [2], data: new BigInt64Array(2) });
    expect(() => m.loadStateDict(ints)).toThrow(/'scale' holds 64-bit integer data/);
    const half = new Map(good).set('scale', { dtype: 'F16', shape: [2], data: new Uint16Array(2) });
    expect(() => m.loadStateDict(half)).toThrow(/'scale' has dtype F16; expected F32/);
    // every failed load above left the initial values in place
    expect(Array.from(await m.scale.toArray())).toEqual([0.5, 2]);
    // non-strict: loads what matches and reports the rest; shapes are still checked
    expect(m.loadStateDict(extra.set('stem.weight', good.get('stem.weight')!), { strict: false })).toEqual({ missingKeys: [], unexpectedKeys: ['stages.2.0.norm.weight'] });
    expect(m.loadStateDict(without, { strict: false }).missingKeys).toEqual(['stages.1.1.conv.weight']);
    expect(Array.from(await m.scale.toArray())).toEqual([7, 7]);
    expect(() => m.loadStateDict(wrong, { strict: false })).toThrow(/shape mismatch for 'stem\.weight'/);
    m.dispose();
  });

  it('train() and eval() set the flag on the whole tree', () => {
    const m = new Tree();
    expect(m.eval().training).toBe(false);
    expect(m.stages.at(1).at(0).training).toBe(false);
    m.train();
    expect(m.stages.at(1).at(0).conv.training).toBe(true);
    m.dispose();
  });
});
