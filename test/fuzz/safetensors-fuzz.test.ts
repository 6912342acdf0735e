/**
 * Seeded fuzz of the safetensors reader: truncation, byte flips, structural JSON edits of the header, and targeted
 * header edits (overlapping, out-of-range and gapped data_offsets, wrong dtypes, shape/byte-count mismatch, header
 * length beyond the file, non-JSON headers). Each case reads into tensors whose data matches their dtype and shape
 * and tiles the data section, or is refused with an Error naming the source and the field.
 */
import { describe, expect, it } from 'vitest';
import { readSafetensorsFile, writeSafetensors, type SafetensorsFile } from '../../src/nn/safetensors.js';
import { caseCount, caseSeed, expectClean, flipBytes, garbage, mutateJson, newOutcome, Rng, runCase, truncate, type Outcome } from './fuzz-util.js';

const BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1 };

function base(): Uint8Array {
  return writeSafetensors(new Map([
    ['conv.weight', { shape: [2, 3], data: new Float32Array([1, -2, 3.5, 4, 5, 6]) }],
    ['steps', { shape: [1], data: new BigInt64Array([12n]) }],
    ['half', { dtype: 'F16', shape: [3], data: new Uint16Array([0x3c00, 0xc000, 0]) }],
    ['empty', { shape: [0, 4], data: new Float32Array(0) }],
    ['mask', { dtype: 'BOOL', shape: [5], data: new Uint8Array([1, 0, 1, 1, 0]) }],
    ['scalar', { shape: [], data: new Float64Array([Math.PI]) }],
  ]), { format: 'pt', step: '12' });
}

interface Parts {
  header: Record<string, unknown>;
  data: Uint8Array;
}

function split(bytes: Uint8Array): Parts {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { header: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>, data: bytes.slice(8 + n) };
}

const headerLengthOf = (bytes: Uint8Array): number => Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));

function join(headerText: string | Uint8Array, data: Uint8Array, lengthOverride?: bigint): Uint8Array {
  const h = typeof headerText === 'string' ? new TextEncoder().encode(headerText) : headerText;
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

type Entry = { dtype: unknown; shape: unknown; data_offsets: unknown };

/** Targeted edits of one tensor entry or of the framing, each a way real files go wrong. */
function targeted(rng: Rng, parts: Parts): { bytes: Uint8Array; what: string } {
  const header = structuredClone(parts.header);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const name = rng.pick(names);
  const e = header[name] as Entry;
  const offs = e.data_offsets as [number, number];
  const other = header[rng.pick(names.filter((k) => k !== name))] as Entry;
  const [ob, oe] = other.data_offsets as [number, number];
  const edits: [string, () => void][] = [
    ['overlap: points into another tensor', () => { e.data_offsets = [ob, ob + (offs[1] - offs[0])]; }],
    ['overlap: shifted by a few bytes', () => { const d = rng.int(-8, 8) || 1; e.data_offsets = [offs[0] + d, offs[1] + d]; }],
    ['out-of-range end', () => { e.data_offsets = [offs[0], rng.pick([parts.data.length + 1, 2 ** 40, 2 ** 53 + 2, 1e300])]; }],
    ['out-of-range begin', () => { e.data_offsets = [rng.pick([-1, -8, parts.data.length + 8]), offs[1]]; }],
    ['offsets wrong type', () => { e.data_offsets = rng.pick([null, 'x', [0], [0, 1, 2], [0.5, 4.5], ['0', '4'], {}, [offs[1], offs[0]]]); }],
    ['gap: tensor moved to the end', () => { e.data_offsets = [parts.data.length + 8, parts.data.length + 8 + offs[1] - offs[0]]; }],
    ['both tensors swap offsets', () => { e.data_offsets = [ob, oe]; other.data_offsets = [...offs]; }],
    ['wrong dtype', () => { e.dtype = rng.pick(['F8', 'f32', 'float32', '', 'toString', '__proto__', 'constructor', 'hasOwnProperty', 3, null, ['F32']]); }],
    ['other dtype, same offsets', () => { e.dtype = rng.pick(Object.keys(BYTES)); }],
    ['shape/byte mismatch', () => { const s = [...(e.shape as number[])]; if (s.length === 0) s.push(2); else s[rng.int(0, s.length - 1)] += rng.pick([1, -1, 1000, 2 ** 40]); e.shape = s; }],
    ['shape wrong type', () => { e.shape = rng.pick([null, 3, '3', [1.5], [-1], [Infinity], [2 ** 53], ['2'], [[2]]]); }],
    ['entry removed', () => { delete header[name]; }],
    ['entry not an object', () => { header[name] = rng.pick([null, 1, 'x', [], [1, 2]]); }],
    ['__metadata__ garbage', () => { header.__metadata__ = garbage(rng); }],
    ['extra unknown field (allowed)', () => { (e as Record<string, unknown>).note = 'hello'; }],
    ['tensor named after a prototype member', () => { header[rng.pick(['__proto__', 'constructor', 'toString'])] = e; delete header[name]; }],
  ];
  const [what, apply] = rng.pick(edits);
  apply();
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - (text.length % 8)) % 8);
  return { bytes: join(text, parts.data), what };
}

function framing(rng: Rng, parts: Parts): { bytes: Uint8Array; what: string } {
  const text = JSON.stringify(parts.header);
  const choices: [string, () => Uint8Array][] = [
    ['header length beyond the file', () => join(text, parts.data, BigInt(text.length + parts.data.length + rng.int(1, 100)))],
    ['header length 2^64 - 1', () => join(text, parts.data, (1n << 64n) - 1n)],
    ['header length short (cuts the JSON)', () => join(text, parts.data, BigInt(rng.int(0, text.length - 1)))],
    ['header length long (data read as JSON)', () => join(text, parts.data, BigInt(text.length + rng.int(1, parts.data.length)))],
    ['non-JSON header', () => join(rng.pick(['', 'null', '[]', '"x"', '42', '{', '{"a":1', 'hello', '{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}}']), parts.data)],
    ['invalid UTF-8 header', () => { const h = new TextEncoder().encode(text); h[rng.int(1, h.length - 2)] = rng.pick([0xff, 0xc0, 0x80]); return join(h, parts.data); }],
    ['trailing bytes after the data', () => join(text, Uint8Array.from([...parts.data, ...new Uint8Array(rng.int(1, 16))]))],
    ['data section cut', () => join(text, parts.data.subarray(0, rng.int(0, parts.data.length - 1)))],
    // Written as text: JSON.stringify itself recurses too deep for this; the reader's parse must cope.
    ['deeply nested header', () => { const d = rng.pick([1000, 100_000]); return join(`{"deep": ${'['.repeat(d)}${']'.repeat(d)}, "a": ${JSON.stringify(garbage(rng))}}`, parts.data); }],
  ];
  const [what, make] = rng.pick(choices);
  return { bytes: make(), what };
}

/**
 * A successful read must match the file: each tensor's bytes are the file's bytes at its data_offsets, and the
 * offsets, in order, tile the data section with no overlap, gap or trailing bytes (the format's rule).
 */
function check(file: SafetensorsFile, bytes: Uint8Array): string | undefined {
  const headerLength = headerLengthOf(bytes);
  const dataStart = 8 + headerLength;
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, dataStart))) as Record<string, Entry>;
  const spans: [number, number, string][] = [];
  for (const [name, t] of file.tensors) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return `tensor ${name}: shape ${JSON.stringify(t.shape)}`;
    if (t.data.byteLength !== numel * BYTES[t.dtype]) return `tensor ${name}: ${t.data.byteLength} bytes for ${t.dtype} ${JSON.stringify(t.shape)}`;
    const [begin, end] = header[name].data_offsets as [number, number];
    const got = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const want = bytes.subarray(dataStart + begin, dataStart + end);
    if (got.length !== want.length || got.some((b, i) => b !== want[i])) return `tensor ${name}: data differs from file bytes ${begin}..${end}`;
    spans.push([begin, end, name]);
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let at = 0;
  for (const [begin, end, name] of spans) {
    if (begin !== at) return `tensor ${name} at [${begin}, ${end}] ${begin < at ? 'overlaps the previous one' : 'leaves a gap'}, yet the file was read`;
    at = end;
  }
  if (at !== bytes.length - dataStart) return `tensors end at ${at} but the data section has ${bytes.length - dataStart} bytes, yet the file was read`;
  for (const v of Object.values(file.metadata)) if (typeof v !== 'string') return `metadata value ${String(v)}`;
  return undefined;
}

const FIELD = /header|tensor '|__metadata__|data_offsets|file of \d+ bytes/;
/** Arithmetic on a value the reader never checked shows up as NaN or undefined in its message. */
const UNHELPFUL = /needs NaN|\bundefined\b|\[object Object\]/;

describe('safetensors fuzz base', () => {
  it('the unmutated file reads', () => {
    const good = base();
    const file = readSafetensorsFile(good);
    expect(check(file, good)).toBeUndefined();
    expect(file.tensors.size).toBe(6);
  });
});

describe('safetensors fuzz: every mutated file reads into consistent tensors or is refused naming the source and the field', () => {
  const good = base();
  const parts = split(good);
  const families: { name: string; count: number; make: (rng: Rng) => { bytes: Uint8Array; what: string } }[] = [
    { name: 'truncate', count: 30, make: (rng) => { const bytes = truncate(rng, good); return { bytes, what: `cut at ${bytes.length}` }; } },
    { name: 'flip', count: 60, make: (rng) => ({ bytes: flipBytes(rng, good, [0, good.length - parts.data.length]), what: 'byte flips' }) },
    {
      name: 'header JSON structure', count: 60, make: (rng) => {
        let header: unknown = parts.header;
        for (let k = rng.int(1, 3); k > 0; k--) header = mutateJson(rng, header);
        return { bytes: join(JSON.stringify(header) ?? '', parts.data), what: 'JSON edits' };
      },
    },
    { name: 'targeted header edits', count: 80, make: (rng) => targeted(rng, parts) },
    { name: 'framing', count: 40, make: (rng) => framing(rng, parts) },
  ];
  families.forEach((family, familyIndex) => {
    it(family.name, async () => {
      const outcome: Outcome = newOutcome();
      const count = caseCount(family.count);
      for (let i = 0; i < count; i++) {
        const seed = caseSeed(200 + familyIndex, i);
        const { bytes, what } = family.make(new Rng(seed));
        const source = `fuzz-${seed}.safetensors`;
        await runCase({ family: family.name, seed, what, source, inputBytes: bytes.length }, outcome,
          () => readSafetensorsFile(bytes, { source }), (f) => check(f, bytes), FIELD, UNHELPFUL);
      }
      expectClean(`safetensors ${family.name}`, outcome, count);
    });
  });
});
