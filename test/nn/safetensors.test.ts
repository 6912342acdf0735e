import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readSafetensors, readSafetensorsFile, writeSafetensors } from '../../src/nn/safetensors.js';

/** Builds a file from a raw header object and data bytes (for malformed cases). */
function rawFile(header: unknown, data: Uint8Array, headerLenOverride?: bigint): Uint8Array {
  const h = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + h.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, headerLenOverride ?? BigInt(h.byteLength), true);
  out.set(h, 8);
  out.set(data, 8 + h.byteLength);
  return out;
}

describe('safetensors round trip', () => {
  it('writes and reads F32, I64, F64, I32, U8 with metadata; header padded to 8 bytes', () => {
    const tensors = new Map([
      ['model.conv.weight', { dtype: 'F32' as const, shape: [2, 3], data: new Float32Array([1, -2, 3.5, 4, 5, 6e-8]) }],
      ['task_ids', { shape: [3], data: new BigInt64Array([0n, 6n, -1n]) }],
      ['double', { shape: [2], data: new Float64Array([Math.PI, -1e300]) }],
      ['ints', { shape: [1, 2], data: new Int32Array([7, -9]) }],
      ['bytes', { shape: [3], data: new Uint8Array([1, 2, 255]) }],
      ['scalar', { shape: [], data: new Float32Array([0.25]) }],
      ['empty', { shape: [0, 4], data: new Float32Array(0) }],
    ]);
    const bytes = writeSafetensors(tensors, { format: 'pt' });
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(headerLen % 8).toBe(0);
    const { tensors: back, metadata } = readSafetensorsFile(bytes);
    expect(metadata).toEqual({ format: 'pt' });
    expect([...back.keys()]).toEqual([...tensors.keys()]);
    expect(back.get('model.conv.weight')).toEqual({ dtype: 'F32', shape: [2, 3], data: new Float32Array([1, -2, 3.5, 4, 5, 6e-8]) });
    expect(back.get('task_ids')).toEqual({ dtype: 'I64', shape: [3], data: new BigInt64Array([0n, 6n, -1n]) });
    expect(back.get('double')?.dtype).toBe('F64');
    expect(Array.from(back.get('double')?.data as Float64Array)).toEqual([Math.PI, -1e300]);
    expect(back.get('ints')).toEqual({ dtype: 'I32', shape: [1, 2], data: new Int32Array([7, -9]) });
    expect(back.get('bytes')?.dtype).toBe('U8');
    expect(back.get('scalar')).toEqual({ dtype: 'F32', shape: [], data: new Float32Array([0.25]) });
    expect(back.get('empty')?.shape).toEqual([0, 4]);
    // Writing what was read gives the same bytes.
    expect(writeSafetensors(back, metadata)).toEqual(bytes);
  });

  it('reads from an unaligned view of a larger buffer and copies the data out', () => {
    const bytes = writeSafetensors({ a: { shape: [3], data: new Float32Array([1, 2, 3]) } });
    const big = new Uint8Array(bytes.byteLength + 3);
    big.set(bytes, 3);
    const t = readSafetensors(big.subarray(3));
    expect(Array.from(t.get('a')?.data as Float32Array)).toEqual([1, 2, 3]);
    big.fill(0);
    expect(Array.from(t.get('a')?.data as Float32Array)).toEqual([1, 2, 3]);
  });

  it('reads from a Node Buffer from the shared pool (Buffer.slice is a view, not a copy)', () => {
    const bytes = writeSafetensors(new Map([['a', { dtype: 'F32' as const, shape: [3], data: new Float32Array([1.5, -2, 3]) }]]));
    const pooled = Buffer.from(bytes); // small Buffers live inside a larger shared ArrayBuffer
    const t = readSafetensors(pooled).get('a');
    expect(t && [...(t.data as Float32Array)]).toEqual([1.5, -2, 3]);
  });

  it('reads the PyTorch-written goldens (the twin\'s save_safetensors format)', () => {
    const t = readSafetensorsFile(new Uint8Array(readFileSync(new URL('../golden/dynamic_head.safetensors', import.meta.url))), {
      source: 'dynamic_head.safetensors',
    });
    expect(t.metadata.generator).toBe('scripts/make_op_goldens.py');
    expect(t.tensors.get('params')?.shape).toEqual([2, 162]);
    expect(t.tensors.get('h')?.dtype).toBe('F32');
    const sgd = readSafetensors(new Uint8Array(readFileSync(new URL('../golden/sgd.safetensors', import.meta.url))));
    expect(sgd.get('steps')?.dtype).toBe('I64');
  });
});

describe('safetensors errors', () => {
  const data = new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer);

  it('names the tensor, its offsets and the file length when the data is truncated', () => {
    const full = writeSafetensors({ w: { shape: [4], data: new Float32Array([1, 2, 3, 4]) } });
    const cut = full.subarray(0, full.byteLength - 5);
    expect(() => readSafetensors(cut, { source: 'ckpt.safetensors' })).toThrow(
      new RegExp(`safetensors ckpt.safetensors: tensor 'w': data_offsets \\[0, 16\\] .* data section of 11 bytes \\(file length ${cut.byteLength}\\); the file is truncated`),
    );
  });

  it('rejects a file shorter than the length field and a header longer than the file', () => {
    expect(() => readSafetensors(new Uint8Array(5))).toThrow(/file of 5 bytes is too short/);
    expect(() => readSafetensors(rawFile({}, data, 1000n))).toThrow(/header length 1000 exceeds the .* bytes after the length field \(file length/);
  });

  it('rejects bad JSON, unknown dtypes, bad shapes and inconsistent offsets', () => {
    expect(() => readSafetensors(rawFile('{"a": ', data))).toThrow(/header \(bytes 8\.\.14\) is not valid UTF-8 JSON/);
    expect(() => readSafetensors(rawFile('[1, 2]', data))).toThrow(/header must be a JSON object/);
    expect(() => readSafetensors(rawFile({ a: { dtype: 'F8', shape: [4], data_offsets: [0, 16] } }, data)))
      .toThrow(/tensor 'a': unsupported dtype "F8"/);
    expect(() => readSafetensors(rawFile({ a: { dtype: 'F32', shape: [-4], data_offsets: [0, 16] } }, data)))
      .toThrow(/tensor 'a': shape must be an array of non-negative integers/);
    expect(() => readSafetensors(rawFile({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, data)))
      .toThrow(/tensor 'a': data_offsets \[0, 16\] span 16 bytes but F32 \[3\] needs 12/);
    expect(() => readSafetensors(rawFile({ a: { dtype: 'F32', shape: [4], data_offsets: [16, 0] } }, data)))
      .toThrow(/tensor 'a': data_offsets must be \[begin, end\]/);
    expect(() => readSafetensors(rawFile({ __metadata__: { n: 3 } }, data))).toThrow(/__metadata__.n must be a string/);
  });

  it('refuses overlapping data_offsets (two tensors sharing bytes)', () => {
    const header = { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } };
    expect(() => readSafetensors(rawFile(header, data), { source: 'overlap.safetensors' })).toThrow(
      /safetensors overlap\.safetensors: tensor 'b': data_offsets \[8, 16\] overlaps tensor 'a' \(tensor 'a' ends at 16\); expected contiguous, non-overlapping data_offsets starting at 16/,
    );
    // The same tensor region named twice is an overlap too.
    const twice = { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } };
    expect(() => readSafetensors(rawFile(twice, data))).toThrow(/tensor '[ab]': data_offsets \[0, 16\] overlaps tensor '[ab]'/);
  });

  it('refuses gaps, data not starting at 0 and trailing bytes after the last tensor', () => {
    const gap = { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } };
    expect(() => readSafetensors(rawFile(gap, data), { source: 'gap' })).toThrow(
      /safetensors gap: tensor 'b': data_offsets \[8, 16\] leaves a gap of 4 bytes \(tensor 'a' ends at 4\); expected contiguous/,
    );
    const late = { a: { dtype: 'F32', shape: [3], data_offsets: [4, 16] } };
    expect(() => readSafetensors(rawFile(late, data))).toThrow(/tensor 'a': data_offsets \[4, 16\] leaves a gap of 4 bytes \(the data section starts at 0\)/);
    const short = { a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] } };
    expect(() => readSafetensors(rawFile(short, data), { source: 'tail' })).toThrow(
      /safetensors tail: data_offsets end at 12 but the data section holds 16 bytes \(file length \d+\); expected the tensors to fill it exactly/,
    );
    expect(() => readSafetensors(rawFile({}, data))).toThrow(/data_offsets end at 0 but the data section holds 16 bytes/);
  });

  it('accepts tensors listed out of data order, and empty tensors, when the data is contiguous', () => {
    const header = {
      b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
      empty: { dtype: 'F32', shape: [0], data_offsets: [8, 8] },
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    };
    const t = readSafetensors(rawFile(header, data));
    expect([...t.keys()]).toEqual(['b', 'empty', 'a']);
    expect(Array.from(t.get('a')?.data as Float32Array)).toEqual([1, 2]);
    expect(Array.from(t.get('b')?.data as Float32Array)).toEqual([3, 4]);
    expect(t.get('empty')?.data.length).toBe(0);
  });

  it('refuses dtypes named after Object.prototype members, missing fields and non-object entries, saying what was found', () => {
    for (const dtype of ['toString', 'constructor', '__proto__']) {
      expect(() => readSafetensors(rawFile({ a: { dtype, shape: [4], data_offsets: [0, 16] } }, data))).toThrow(new RegExp(`tensor 'a': unsupported dtype "${dtype}", expected one of F64`));
    }
    expect(() => readSafetensors(rawFile({ a: { shape: [4], data_offsets: [0, 16] } }, data))).toThrow(/tensor 'a': unsupported dtype nothing \(the field is missing\)/);
    expect(() => readSafetensors(rawFile({ a: [1, 2] }, data))).toThrow(/tensor 'a': entry must be an object \{dtype, shape, data_offsets\}, got \[1,2\]/);
    const deep = `{"a": ${'['.repeat(100000)}${']'.repeat(100000)}}`;
    expect(() => readSafetensors(rawFile(deep, data))).toThrow(/tensor 'a': entry must be an object \{dtype, shape, data_offsets\}, got a deeply nested array/);
  });

  it('refuses a shape whose byte count is not a safe integer', () => {
    const header = { a: { dtype: 'F64', shape: [2 ** 40, 2 ** 20], data_offsets: [0, 16] } };
    expect(() => readSafetensors(rawFile(header, data))).toThrow(/tensor 'a': data_offsets \[0, 16\] span 16 bytes but F64 \[1099511627776, 1048576\] needs/);
  });

  it('writer rejects mismatched shapes and dtypes', () => {
    expect(() => writeSafetensors({ a: { shape: [3], data: new Float32Array(4) } })).toThrow(/tensor 'a': shape \[3\] has 3 elements but the data has 4/);
    expect(() => writeSafetensors({ a: { dtype: 'I64', shape: [4], data: new Float32Array(4) } })).toThrow(/dtype I64 needs a BigInt64Array, got Float32Array/);
    expect(() => writeSafetensors({ __metadata__: { shape: [0], data: new Float32Array(0) } })).toThrow(/reserved/);
  });
});
