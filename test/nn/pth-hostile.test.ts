/**
 * Hostile and broken .pth files: pickles that would run code under Python's unpickler (os.system, builtins.eval,
 * subprocess through REDUCE, BUILD, INST, OBJ, NEWOBJ, STACK_GLOBAL), huge shapes and counts, offsets past the
 * end, overlapping views, truncated zips and legacy streams, bad CRCs, a deflate "bomb" claim, and a seeded fuzz
 * of byte flips and truncations over torch.save's own files. Each is refused with an error naming the file and
 * what was wrong (the opcode or global for refused content), before any tensor data is read, and without
 * allocating more than the file could hold.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PthFormatError, readPth, readPthStateDict, UnsafePickleError } from '../../src/nn/pth/index.js';
import { crc32, writeZip } from '../../src/nn/pth/zip.js';
import { caseCount, caseSeed, expectClean, flipBytes, newOutcome, Rng, runCase, truncate } from '../fuzz/fuzz-util.js';

const fixture = (name: string) => new Uint8Array(readFileSync(new URL(`../golden/pth/${name}`, import.meta.url)));

// A small pickle assembler: numbers are opcodes/bytes, strings are raw ASCII (GLOBAL lines), arrays are spliced,
// functions give the part for one container (the legacy storage reference has a sixth field).
type Part = number | string | Uint8Array | Part[] | ((legacy: boolean) => Part);
function pkFor(legacy: boolean, ...parts: Part[]): Uint8Array {
  const out: number[] = [];
  const add = (p: Part) => {
    if (typeof p === 'number') out.push(p);
    else if (typeof p === 'string') for (const c of p) out.push(c.charCodeAt(0));
    else if (p instanceof Uint8Array) out.push(...p);
    else if (typeof p === 'function') add(p(legacy));
    else p.forEach(add);
  };
  parts.forEach(add);
  return Uint8Array.from(out);
}
const pk = (...parts: Part[]) => pkFor(false, ...parts);
const le32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
const uni = (s: string): Part => { const b = new TextEncoder().encode(s); return [0x58, le32(b.length), b]; };
const glob = (m: string, n: string): Part => `c${m}\n${n}\n`;
const int = (v: number): Part => (v < 256 ? [0x4b, v] : [0x4a, le32(v)]);
const tuple = (xs: Part[]): Part => (xs.length ? ['(', ...xs, 't'] : ')');
const PROTO2: Part = [0x80, 2];
const STOP = '.';

/** `_rebuild_tensor_v2(FloatStorage pid, offset, shape, stride, False, OrderedDict())` */
function tensor(key: string, numel: Part, offset: Part, shape: Part[], stride: Part[], storage = 'FloatStorage'): Part {
  return [glob('torch._utils', '_rebuild_tensor_v2'), '(',
    '(', uni('storage'), glob('torch', storage), uni(key), uni('cpu'), numel, (legacy: boolean) => (legacy ? 'N' : []), 't', 'Q',
    offset, tuple(shape), tuple(stride), 0x89, glob('collections', 'OrderedDict'), ')', 'R', 't', 'R'];
}

/** A dict pickle {name: value, ...}. */
const dict = (...items: [string, Part][]): Part => ['}', '(', ...items.map(([k, v]) => [uni(k), v]), 'u'];

function zipOf(pkl: Uint8Array, storages: Record<string, Uint8Array> = {}): Uint8Array {
  return writeZip([{ name: 'archive/data.pkl', data: pkl }, ...Object.entries(storages).map(([k, data]) => ({ name: `archive/data/${k}`, data }))]);
}

const LEGACY_HEAD = pk(
  PROTO2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, STOP, // magic 0x1950a86a20f9469cfc6c
  PROTO2, 0x4d, 0xe9, 0x03, STOP, // protocol version 1001
  PROTO2, '}', STOP, // sys info
);

function legacyOf(pkl: Uint8Array, storages: [string, number, Uint8Array][] = []): Uint8Array {
  const keys = pk(PROTO2, ']', storages.length ? ['(', ...storages.map(([k]) => uni(k)), 'e'] : [], STOP);
  const blocks = storages.map(([, n, data]) => { const b = new Uint8Array(8 + data.length); new DataView(b.buffer).setUint32(0, n, true); b.set(data, 8); return b; });
  return pk(LEGACY_HEAD, pkl, keys, ...blocks);
}

const f32 = (...v: number[]) => new Uint8Array(Float32Array.from(v).buffer);

/** Both containers around one object pickle whose tensors are FloatStorage '0' of `n` elements. */
function both(body: Part, n = 4): { name: string; bytes: Uint8Array }[] {
  const data = f32(...Array.from({ length: n }, (_, i) => i));
  return [
    { name: 'hostile_zip.pth', bytes: zipOf(pk(PROTO2, body, STOP), { 0: data }) },
    { name: 'hostile_legacy.pth', bytes: legacyOf(pkFor(true, PROTO2, body, STOP), [['0', n, data]]) },
  ];
}

function expectRefused(bytes: Uint8Array, name: string, kind: typeof UnsafePickleError | typeof PthFormatError, message: RegExp): void {
  const before = process.memoryUsage().arrayBuffers;
  let thrown: unknown;
  try {
    readPthStateDict(bytes, { source: name });
  } catch (e) {
    thrown = e;
  }
  expect(thrown, `${name} was read`).toBeInstanceOf(kind);
  expect((thrown as Error).message).toContain(name);
  expect((thrown as Error).message).toMatch(message);
  expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 << 20);
}

describe('.pth: code-running pickles are refused by name', () => {
  const cases: [string, Part, RegExp][] = [
    ['os.system via GLOBAL + REDUCE', [glob('os', 'system'), tuple([uni('touch /tmp/pwned')]), 'R'], /GLOBAL \(0x63\) names global 'os\.system', which is not allowed/],
    ['builtins.eval via STACK_GLOBAL', [uni('builtins'), uni('eval'), 0x93, tuple([uni('1+1')]), 'R'], /STACK_GLOBAL \(0x93\) names global 'builtins\.eval'/],
    ['subprocess.Popen via GLOBAL', [glob('subprocess', 'Popen'), tuple([uni('ls')]), 'R'], /global 'subprocess\.Popen', which is not allowed/],
    ['posix.system (os.system as pickled on Linux)', [glob('posix', 'system'), tuple([uni('id')]), 'R'], /global 'posix\.system'/],
    ['builtins.getattr', [glob('builtins', 'getattr'), tuple([uni('x'), uni('y')]), 'R'], /global 'builtins\.getattr'/],
    ['torch.load from inside a pickle', [glob('torch.serialization', 'load'), tuple([uni('/etc/passwd')]), 'R'], /global 'torch\.serialization\.load'/],
    ['numpy reconstruct (not a storage)', [glob('numpy.core.multiarray', '_reconstruct'), ')', 'R'], /global 'numpy\.core\.multiarray\._reconstruct'/],
    ['os.system via INST', ['(', uni('id'), 'ios\nsystem\n'], /opcode INST \(0x69\) is not in the subset/],
    ['OBJ on an allowed class', ['(', glob('collections', 'OrderedDict'), 'o'], /opcode OBJ \(0x6f\) is not in the subset/],
    ['NEWOBJ on an allowed class', [glob('collections', 'OrderedDict'), ')', 0x81], /opcode NEWOBJ \(0x81\) is not in the subset/],
    ['NEWOBJ_EX', [glob('collections', 'OrderedDict'), ')', '}', 0x92], /opcode NEWOBJ_EX \(0x92\)/],
    ['BUILD on a global (a __setstate__ call in Python)', [glob('torch._utils', '_rebuild_tensor_v2'), '}', 'b'], /BUILD \(0x62\) sets state on global torch\._utils\._rebuild_tensor_v2; only an OrderedDict's attributes are accepted/],
    ['BUILD on a tensor', [tensor('0', int(4), int(0), [int(4)], [int(1)]), dict(['__class__', uni('x')]), 'b'], /BUILD \(0x62\) sets state on a float32 tensor \[4\]/],
    ['REDUCE of a storage class', [glob('torch', 'FloatStorage'), tuple([int(4)]), 'R'], /REDUCE \(0x52\) calls torch\.FloatStorage; storages come only from persistent ids/],
    ['REDUCE of a non-callable', [uni('os.system'), tuple([]), 'R'], /REDUCE \(0x52\) calls string "os\.system"; only allowlisted globals may be reduced/],
    ['text-protocol PERSID', ['P0\n'], /opcode PERSID \(0x50\)/],
    ['EXT1 (copyreg extension registry)', [0x82, 1], /opcode EXT1 \(0x82\)/],
    ['text GET/PUT', ['}', 'p0\n'], /opcode PUT \(0x70\)/],
    ['bytes objects', [0x43, 2, 'ab'], /opcode SHORT_BINBYTES \(0x43\)/],
    ['a set', [0x8f], /opcode EMPTY_SET \(0x8f\)/],
  ];
  for (const [what, body, message] of cases) {
    it(what, () => {
      for (const { name, bytes } of both(body)) expectRefused(bytes, name, UnsafePickleError, message);
    });
  }

  it('refuses a hostile global hidden after real tensors, before any tensor data is read', () => {
    // the tensor's storage record has a bad CRC: were any tensor read first, the error would be the CRC's
    const body = dict(['w', tensor('0', int(4), int(0), [int(4)], [int(1)])], ['x', [glob('os', 'system'), tuple([uni('id')]), 'R']]);
    const zip = zipOf(pk(PROTO2, body, STOP), { 0: f32(1, 2, 3, 4) });
    const last = zip.lastIndexOf(0x40); // 2.0f's high byte, in the storage record
    zip[last] ^= 1;
    expectRefused(zip, 'hidden.pth', UnsafePickleError, /global 'os\.system'/);
    expectRefused(zipOf(pk(PROTO2, dict(['w', tensor('0', int(4), int(0), [int(4)], [int(1)])]), STOP), { 0: f32(1, 2, 3, 4) }).map((b, i, a) => (i === a.lastIndexOf(0x40) ? b ^ 1 : b)),
      'hidden.pth', PthFormatError, /CRC-32/);
  });
});

describe('.pth: malformed tensors and storages are refused by name', () => {
  const cases: [string, Part, RegExp][] = [
    ['a huge shape', dict(['w', tensor('0', int(4), int(0), [int(100000), int(100000)], [int(100000), int(1)])]), /_rebuild_tensor_v2: view at offset 0, size \[100000, 100000\], stride \[100000, 1\] reaches element 9999999999 of storage '0' \(float32, 4 elements\)/],
    ['a shape of 2^64 (LONG1)', dict(['w', tensor('0', int(4), int(0), [[0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1]], [int(1)])]), /size\[0\] is 18446744073709551616; expected an integer >= 0/],
    ['a negative stride', dict(['w', tensor('0', int(4), int(3), [int(2)], [[0x4a, le32(-1 >>> 0)]])]), /stride\[0\] is -1; expected an integer >= 0/],
    ['a storage offset past the end', dict(['w', tensor('0', int(4), int(9), [int(1)], [int(1)])]), /view at offset 9, size \[1\], stride \[1\] reaches element 9 of storage '0' \(float32, 4 elements\)/],
    ['a view running past the end', dict(['w', tensor('0', int(4), int(2), [int(3)], [int(1)])]), /reaches element 4 of storage '0'/],
    ['a stride-0 (self-overlapping) view', dict(['w', tensor('0', int(4), int(0), [int(1000), int(4)], [int(0), int(1)])]), /size \[1000, 4\] with stride \[0, 1\] maps several elements onto one \(an overlapping view\)/],
    ['interleaved overlapping strides', dict(['w', tensor('0', int(4), int(0), [int(2), int(3)], [int(1), int(1)])]), /size \[2, 3\] with stride \[1, 1\] maps several elements onto one/],
    ['two entries on the same elements', dict(['a', tensor('0', int(4), int(0), [int(3)], [int(1)])], ['b', tensor('0', int(4), int(1), [int(2)], [int(1)])]), /entries 'a' and 'b' both read element 1 of storage '0' \(float32, 4 elements\) \(overlapping views\)/],
    ['an unknown storage type', dict(['w', tensor('0', int(4), int(0), [int(4)], [int(1)], 'ComplexFloatStorage')]), /global 'torch\.ComplexFloatStorage', which is not allowed/],
    ['rebuild with a non-storage', dict(['w', [glob('torch._utils', '_rebuild_tensor_v2'), tuple([uni('x'), int(0), tuple([int(1)]), tuple([int(1)]), 0x89, 'N']), 'R']]), /_rebuild_tensor_v2: first argument is not a storage/],
    ['a persistent id that is not a storage', dict(['w', [tuple([uni('module'), uni('os')]), 'Q']]), /persistent id is not a \('storage', \.\.\.\) tuple/],
    ['a memo slot never stored', dict(['w', [0x68, 7]]), /BINGET \(0x68\) of memo slot 7, which was never stored/],
    ['a string longer than the file', dict(['w', [0x58, le32(0x7fffffff), 'ab']]), /BINUNICODE needs 2147483647 bytes, only \d+ left; the pickle is truncated/],
  ];
  for (const [what, body, message] of cases) {
    it(what, () => {
      for (const { name, bytes } of both(body)) {
        const kind = /not allowed/.test(message.source) ? UnsafePickleError : PthFormatError;
        expectRefused(bytes, name, kind, message);
      }
    });
  }

  it('a storage whose declared count exceeds its bytes (zip record, legacy block)', () => {
    const body = dict(['w', tensor('0', [0x4a, le32(0x40000000)], int(0), [int(4)], [int(1)])]);
    expectRefused(zipOf(pk(PROTO2, body, STOP), { 0: f32(1, 2, 3, 4) }), 'big_zip.pth', PthFormatError,
      /record 'archive\/data\/0' holds 16 bytes; 1073741824 float32 elements need 4294967296/);
    expectRefused(legacyOf(pkFor(true, PROTO2, body, STOP), [['0', 0x40000000, f32(1, 2, 3, 4)]]), 'big_legacy.pth', PthFormatError,
      /storage '0' needs bytes \[\d+, 4294967\d+\) but the file has \d+; truncated/);
  });

  it('legacy: a key list that names unknown storages or miscounts them', () => {
    const body = pkFor(true, PROTO2, dict(['w', tensor('0', int(4), int(0), [int(4)], [int(1)])]), STOP);
    expectRefused(legacyOf(body, [['9', 4, f32(1, 2, 3, 4)]]), 'keys.pth', PthFormatError, /storage key '9' at byte \d+ was never referenced by the pickle/);
    expectRefused(legacyOf(body, [['0', 5, f32(1, 2, 3, 4, 5)]]), 'count.pth', PthFormatError, /storage '0' at byte \d+ holds 5 elements; the pickle declared 4/);
    expectRefused(legacyOf(body, []), 'missing.pth', PthFormatError, /storage '0' is referenced but not in the storage key list/);
    expectRefused(pk(PROTO2, int(7), STOP), 'magic.pth', PthFormatError, /first pickle is 7; expected torch's magic number/);
  });

  it('zip: a bad CRC, a missing record, an unknown compression, a deflate ratio no data can have', () => {
    const good = fixture('tiny_plain_zip.pth');
    const bad = good.slice();
    // flip a byte of the first storage record's data (after data.pkl)
    const dir = new DataView(bad.buffer);
    const name = new TextEncoder().encode('data/0');
    let at = -1;
    for (let i = 0; i + name.length < bad.length; i++) if (dir.getUint32(i, true) === 0x04034b50 && bad.subarray(i + 30, i + 30 + dir.getUint16(i + 26, true)).join().endsWith(name.join())) { at = i; break; }
    expect(at).toBeGreaterThan(0);
    const dataAt = at + 30 + dir.getUint16(at + 26, true) + dir.getUint16(at + 28, true);
    bad[dataAt + 1] ^= 0x40;
    expectRefused(bad, 'crc.pth', PthFormatError, /zip record 'tiny_plain_zip\/data\/0': CRC-32 is [0-9a-f]{8}, the directory says [0-9a-f]{8}; the file is corrupt/);

    const pkl = pk(PROTO2, dict(['w', tensor('0', int(4), int(0), [int(4)], [int(1)])]), STOP);
    expectRefused(zipOf(pkl, {}), 'norecord.pth', PthFormatError, /no record 'archive\/data\/0' in the zip/);
    expectRefused(writeZip([{ name: 'x/other', data: pkl }]), 'nopkl.pth', PthFormatError, /zip has no '<archive>\/data\.pkl' record \(found 1: x\/other\)/);

    // Rewrite the storage record's method: 12 (bzip2), then 8 (deflate) with 16 bytes claiming a 4 GB output.
    const z = zipOf(pk(PROTO2, dict(['w', tensor('0', [0x4a, le32(0x3ffffffc)], int(0), [int(4)], [int(1)])]), STOP), { 0: f32(1, 2, 3, 4) });
    const v = new DataView(z.buffer);
    const patch = (method: number, size?: number) => {
      const out = z.slice();
      const ov = new DataView(out.buffer);
      for (let i = 0; i + 4 < out.length; i++) {
        const sig = v.getUint32(i, true);
        if (sig === 0x02014b50 && new TextDecoder().decode(out.subarray(i + 46, i + 46 + v.getUint16(i + 28, true))) === 'archive/data/0') {
          ov.setUint16(i + 10, method, true);
          if (size !== undefined) ov.setUint32(i + 24, size, true);
        }
      }
      return out;
    };
    expectRefused(patch(12, 0xfffffff0), 'bzip.pth', PthFormatError, /compression method 12; expected 0 \(stored, as torch\.save writes\) or 8 \(deflate\)/);
    expectRefused(patch(8, 0xfffffff0), 'bomb.pth', PthFormatError, /claims 4294967280 bytes from 16 compressed; deflate cannot expand that much/);
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  });

  it('cycles and deep nesting in the object do not hang the state-dict search', () => {
    // a list that contains itself, a dict under 'model' that contains itself under 'model'
    const cyc = pk(PROTO2, '}', 0x71, 0, '(', uni('model'), 0x68, 0, uni('l'), ']', 0x71, 1, 0x68, 1, 'a', 'u', STOP);
    for (const { name, bytes } of [{ name: 'cycle_zip.pth', bytes: zipOf(cyc) }, { name: 'cycle_legacy.pth', bytes: legacyOf(cyc) }]) {
      expectRefused(bytes, name, PthFormatError, /no state dict \(a dict of str -> tensor\) at the top level or under 'state_dict'\/'model_state_dict'\/'model'\/'net'\/'network'; the top-level keys are "model", "l"/);
    }
    const deep = pk(PROTO2, Array.from({ length: 100_000 }, () => ']'), Array.from({ length: 99_999 }, () => 'a'), STOP);
    expect(() => readPth(zipOf(deep), { source: 'deep.pth' })).not.toThrow();
  });
});

describe('.pth fuzz: torch.save files truncated and flipped', () => {
  const inputs = ['tiny_plain_zip.pth', 'tiny_fp16_legacy.pth', 'tiny_fp16_zip.pth', 'dtypes_legacy.pth'];
  const families: [string, (rng: Rng, b: Uint8Array) => Uint8Array][] = [
    ['truncate', truncate],
    ['flip', (rng, b) => flipBytes(rng, b)],
  ];
  families.forEach(([family, mutate], f) => {
    it(`${family}: read consistently or refused naming the file`, async () => {
      const outcome = newOutcome();
      const n = caseCount(60);
      for (let i = 0; i < n; i++) {
        const seed = caseSeed(40 + f, i);
        const rng = new Rng(seed);
        const input = rng.pick(inputs);
        const bytes = mutate(rng, fixture(input));
        const source = `fuzz-${input}`;
        await runCase({ family, seed, what: input, source, inputBytes: bytes.length }, outcome,
          () => readPthStateDict(bytes, { source }),
          (r) => ([...r.tensors.values()].every((t) => t.data.length === t.shape.reduce((a, b) => a * b, 1)) ? undefined : 'a tensor whose data does not match its shape'),
          /pickle byte \d+|zip|storage|record|state dict|view|opcode|global|starts with bytes|magic|protocol|pickle|element|stride|size/);
      }
      expectClean(`pth ${family}`, outcome, n);
    });
  });
});
