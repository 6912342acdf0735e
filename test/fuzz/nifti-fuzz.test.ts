/**
 * Seeded fuzz of the NIfTI reader (.nii and .nii.gz, NIfTI-1 and -2, both byte orders): truncation, byte flips,
 * header field edits, absurd sizes, gzip trailer edits and non-finite voxels. Each case reads into a volume that
 * passes every check below, or is refused with an Error naming the file and the field.
 */
import { describe, expect, it } from 'vitest';
import { gzipSync } from 'fflate';
import { readNifti, writeNifti, type NiftiVolume, type ReadNiftiOptions } from '../../src/data/nifti.js';
import { caseCount, caseSeed, expectClean, flipBytes, newOutcome, Rng, runCase, truncate, type Outcome } from './fuzz-util.js';

interface Base {
  label: string;
  bytes: Uint8Array;
  version: 1 | 2;
  littleEndian: boolean;
  options: ReadNiftiOptions;
}

function nifti1(littleEndian: boolean, dim: number[], datatype: number, bitpix: number, fill: (v: DataView, offset: number) => void, dataBytes: number, slope = 0, inter = 0): Uint8Array {
  const out = new Uint8Array(352 + dataBytes);
  const v = new DataView(out.buffer);
  const le = littleEndian;
  v.setInt32(0, 348, le);
  dim.forEach((d, i) => v.setInt16(40 + 2 * i, d, le));
  v.setInt16(70, datatype, le);
  v.setInt16(72, bitpix, le);
  [-1, 0.75, 0.8, 2.5, 1, 0, 0, 0].forEach((p, i) => v.setFloat32(76 + 4 * i, p, le));
  v.setFloat32(108, 352, le);
  v.setFloat32(112, slope, le);
  v.setFloat32(116, inter, le);
  v.setInt16(252, 1, le);
  [0, 0, Math.SQRT1_2, 10, -20, 30].forEach((x, i) => v.setFloat32(256 + 4 * i, x, le));
  out.set([0x6e, 0x2b, 0x31, 0], 344);
  fill(v, 352);
  return out;
}

function nifti2(dim: number[], values: number[]): Uint8Array {
  const voxOffset = 544;
  const out = new Uint8Array(voxOffset + values.length * 8);
  const v = new DataView(out.buffer);
  v.setInt32(0, 540, true);
  out.set([0x6e, 0x2b, 0x32, 0, 0x0d, 0x0a, 0x1a, 0x0a], 4);
  v.setInt16(12, 64, true);
  v.setInt16(14, 64, true);
  dim.forEach((d, i) => v.setBigInt64(16 + 8 * i, BigInt(d), true));
  [1, 1.5, 1.25, 3, 0, 0, 0, 0].forEach((p, i) => v.setFloat64(104 + 8 * i, p, true));
  v.setBigInt64(168, BigInt(voxOffset), true);
  v.setInt32(348, 2, true);
  [[1.5, 0, 0, 1], [0, 1.25, 0, 2], [0, 0, 3, 3]].forEach((row, r) => row.forEach((x, c) => v.setFloat64(400 + 32 * r + 8 * c, x, true)));
  values.forEach((x, i) => v.setFloat64(voxOffset + 8 * i, x, true));
  return out;
}

function bases(): Base[] {
  const shape: [number, number, number] = [6, 5, 4];
  const n = shape[0] * shape[1] * shape[2];
  const written = writeNifti(
    { data: Float32Array.from({ length: n }, (_, i) => (i * 37) % 2000 - 1000), shape, spacing: [0.8, 0.8, 2], affine: [-0.8, 0, 0, 50, 0, -0.8, 0, 60, 0, 0, 2, -70, 0, 0, 0, 1] },
    { datatype: 'int16' },
  );
  return [
    { label: 'nifti1 LE int16 (writer)', bytes: written, version: 1, littleEndian: true, options: {} },
    {
      label: 'nifti1 BE float32', version: 1, littleEndian: false, options: {},
      bytes: nifti1(false, [3, 5, 4, 3, 1, 1, 1, 1], 16, 32, (v, o) => { for (let i = 0; i < 60; i++) v.setFloat32(o + 4 * i, Math.sin(i) * 100, false); }, 240),
    },
    { label: 'nifti2 LE float64', version: 2, littleEndian: true, options: {}, bytes: nifti2([3, 4, 3, 2, 1, 1, 1, 1], Array.from({ length: 24 }, (_, i) => i / 4 - 3)) },
    {
      label: 'nifti1 LE uint8 4-D, frame 1', version: 1, littleEndian: true, options: { volumeIndex: 1 },
      bytes: nifti1(true, [4, 3, 3, 2, 2, 1, 1, 1], 2, 8, (v, o) => { for (let i = 0; i < 36; i++) v.setUint8(o + i, i * 7); }, 36),
    },
    {
      label: 'nifti1 LE int16 scaled', version: 1, littleEndian: true, options: {},
      bytes: nifti1(true, [3, 4, 4, 2, 1, 1, 1, 1], 4, 16, (v, o) => { for (let i = 0; i < 32; i++) v.setInt16(o + 2 * i, i * 100 - 1600, true); }, 64, 2, -1024),
    },
  ];
}

function checkVolume(v: NiftiVolume, options: ReadNiftiOptions = {}): string | undefined {
  if (options.volumeIndex === undefined && (v.header?.volumeCount ?? 1) > 1) return `a ${v.header?.volumeCount}-frame file read as one frame`;
  if (!v.shape.every((n) => Number.isInteger(n) && n >= 1)) return `shape ${v.shape}`;
  if (v.data.length !== v.shape[0] * v.shape[1] * v.shape[2]) return `data length ${v.data.length} for shape ${v.shape}`;
  const bad = v.data.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) return `voxel ${bad} is ${v.data[bad]} but the read succeeded`;
  if (!v.spacing.every((s) => s > 0 && Number.isFinite(s))) return `spacing ${v.spacing}`;
  if (v.affine.length !== 16 || !v.affine.every(Number.isFinite)) return `affine ${v.affine}`;
  const a = v.affine;
  const det = a[0] * (a[5] * a[10] - a[6] * a[9]) - a[1] * (a[4] * a[10] - a[6] * a[8]) + a[2] * (a[4] * a[9] - a[5] * a[8]);
  if (!(Math.abs(det) > 0)) return `singular affine ${v.affine}`;
  return undefined;
}

const FIELD = /header field|vox_offset|\bdim\b|truncated|gzip|voxel values|volumeIndex/;

type Edit = { what: string; apply: (v: DataView, rng: Rng, length: number) => void };

const INT16_VALUES = [0, -1, 1, 2, 3, 4, 7, 8, 100, 32767, -32768];
const FLOAT_VALUES = [0, -0, -1, NaN, Infinity, -Infinity, 1e-30, 1e30, 1e-45, 3.4e38];

function headerEdits(version: 1 | 2, le: boolean): Edit[] {
  const i16 = (offset: number, name: string, values: number[]): Edit => ({
    what: name, apply: (v, rng) => { const x = rng.chance(0.8) ? rng.pick(values) : rng.int(-32768, 32767); v.setInt16(offset, x, le); },
  });
  const float = (offset: number, name: string, values: number[] = FLOAT_VALUES): Edit => ({
    what: name, apply: (v, rng) => { const x = rng.pick(values); if (version === 1) v.setFloat32(offset, x, le); else v.setFloat64(offset, x, le); },
  });
  const int64 = (offset: number, name: string, values: bigint[]): Edit => ({
    what: name, apply: (v, rng) => v.setBigInt64(offset, rng.chance(0.8) ? rng.pick(values) : BigInt(rng.int(-1e9, 1e9)), le),
  });
  const edits: Edit[] = [];
  const swapped = (x: number) => ((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24);
  edits.push({ what: 'sizeof_hdr', apply: (v, rng) => v.setInt32(0, rng.pick([0, 347, 349, 348, 540, swapped(348), swapped(540), rng.int(-1e9, 1e9)]), le) });
  edits.push({ what: 'endianness (sizeof_hdr byte-swapped)', apply: (v) => v.setInt32(0, v.getInt32(0, !le), le) });
  const codes = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304, -1];
  if (version === 1) {
    for (let i = 0; i < 8; i++) edits.push(i16(40 + 2 * i, `dim[${i}]`, INT16_VALUES));
    edits.push(i16(70, 'datatype', codes), i16(72, 'bitpix', [0, 1, 8, 16, 32, 64, 128, -8]));
    for (let i = 0; i < 8; i++) edits.push(float(76 + 4 * i, `pixdim[${i}]`));
    edits.push(float(108, 'vox_offset', [0, 347, 348, 351, 352, 352.5, 353, 356, NaN, Infinity, -352, 1e9, 2 ** 31]));
    edits.push(float(112, 'scl_slope'), float(116, 'scl_inter'));
    edits.push(i16(252, 'qform_code', [-1, 0, 1, 2, 4, 5]), i16(254, 'sform_code', [-1, 0, 1, 2, 4, 5]));
    for (let i = 0; i < 6; i++) edits.push(float(256 + 4 * i, `quatern/qoffset[${i}]`, [...FLOAT_VALUES, 2, -2]));
    for (let i = 0; i < 12; i++) edits.push(float(280 + 4 * i, `srow[${i}]`));
    edits.push({ what: 'magic', apply: (v, rng) => { for (let i = 0; i < 4; i++) v.setUint8(344 + i, rng.chance(0.5) ? rng.pick([0x6e, 0x2b, 0x31, 0x32, 0x69, 0]) : rng.int(0, 255)); } });
  } else {
    const big = [0n, -1n, 1n, 2n, 7n, 8n, 1n << 31n, 1n << 40n, 1n << 62n, -(1n << 63n)];
    for (let i = 0; i < 8; i++) edits.push(int64(16 + 8 * i, `dim[${i}]`, big));
    edits.push(i16(12, 'datatype', codes), i16(14, 'bitpix', [0, 8, 16, 32, 64, 128]));
    for (let i = 0; i < 8; i++) edits.push(float(104 + 8 * i, `pixdim[${i}]`));
    edits.push(int64(168, 'vox_offset', [0n, 539n, 540n, 544n, 545n, 1n << 40n, -544n]));
    edits.push(float(176, 'scl_slope'), float(184, 'scl_inter'));
    edits.push({ what: 'sform_code', apply: (v, rng) => v.setInt32(348, rng.pick([-1, 0, 1, 2, 5, 1 << 30]), le) });
    for (let i = 0; i < 12; i++) edits.push(float(400 + 8 * i, `srow[${i}]`));
    edits.push({ what: 'magic', apply: (v, rng) => { for (let i = 0; i < 8; i++) if (rng.chance(0.3)) v.setUint8(4 + i, rng.int(0, 255)); } });
  }
  return edits;
}

/** 100 GB (or more) claimed by the dims, in a file of a few hundred bytes. */
function absurdSize(base: Base, rng: Rng): Uint8Array {
  const out = base.bytes.slice();
  const v = new DataView(out.buffer);
  const le = base.littleEndian;
  if (base.version === 1) {
    const dims = rng.pick([[3, 32767, 32767, 100], [4, 1000, 1000, 1000, 100], [3, 32767, 32767, 32767], [7, 100, 100, 100, 100, 100, 100, 100]]);
    dims.forEach((d, i) => v.setInt16(40 + 2 * i, d, le));
  } else {
    const dims = rng.pick([[3n, 5000n, 5000n, 1000n], [3n, 1n << 40n, 1n << 20n, 1n], [4n, 1n << 20n, 1n << 20n, 1n << 20n, 1n << 20n]]);
    dims.forEach((d, i) => v.setBigInt64(16 + 8 * i, d, le));
  }
  return out;
}

function gzipTrailerEdit(bytes: Uint8Array, rng: Rng): Uint8Array {
  const gz = gzipSync(bytes).slice();
  const t = new DataView(gz.buffer, gz.length - 8, 8);
  if (rng.chance(0.5)) t.setUint32(4, rng.pick([0, 1, bytes.length - 1, bytes.length + 1, 0x7fffffff, 0xffffffff, rng.int(0, 0xffffffff)]), true);
  else t.setUint32(0, rng.int(0, 0xffffffff), true);
  return gz;
}

function nonFiniteVoxel(base: Base, rng: Rng): Uint8Array {
  const out = base.bytes.slice();
  const v = new DataView(out.buffer);
  // Only the float bases can store NaN; edit one voxel of the data section.
  if (base.version === 2) v.setFloat64(544 + 8 * rng.int(0, 23), rng.pick([NaN, Infinity, -Infinity]), true);
  else v.setFloat32(352 + 4 * rng.int(0, 59), rng.pick([NaN, Infinity, -Infinity]), base.littleEndian);
  return out;
}

describe('NIfTI fuzz bases', () => {
  it('every unmutated base reads, plain and gzipped', () => {
    for (const base of bases()) {
      for (const bytes of [base.bytes, gzipSync(base.bytes)]) expect(checkVolume(readNifti(bytes, base.label, base.options), base.options)).toBeUndefined();
    }
  });
});

describe('NIfTI fuzz: every mutated file reads into a valid volume or is refused naming the file and the field', () => {
  const all = bases();
  const families: { name: string; count: number; gz: boolean; make: (base: Base, rng: Rng) => { bytes: Uint8Array; what: string }; only?: (b: Base) => boolean }[] = [
    { name: 'truncate .nii', count: 40, gz: false, make: (b, rng) => { const bytes = truncate(rng, b.bytes); return { bytes, what: `cut at ${bytes.length}` }; } },
    { name: 'flip .nii', count: 80, gz: false, make: (b, rng) => ({ bytes: flipBytes(rng, b.bytes, [0, b.version === 1 ? 352 : 544]), what: 'byte flips' }) },
    {
      name: 'header field .nii', count: 120, gz: false, make: (b, rng) => {
        const out = b.bytes.slice();
        const edits = headerEdits(b.version, b.littleEndian);
        const names: string[] = [];
        for (let k = rng.int(1, 3); k > 0; k--) {
          const e = rng.pick(edits);
          e.apply(new DataView(out.buffer), rng, out.length);
          names.push(e.what);
        }
        return { bytes: out, what: names.join(', ') };
      },
    },
    { name: 'truncate .nii.gz', count: 30, gz: true, make: (b, rng) => { const bytes = truncate(rng, gzipSync(b.bytes)); return { bytes, what: `gz cut at ${bytes.length}` }; } },
    { name: 'flip .nii.gz', count: 50, gz: true, make: (b, rng) => { const gz = gzipSync(b.bytes); return { bytes: flipBytes(rng, gz, [0, Math.min(gz.length, 64)]), what: 'gz byte flips' }; } },
    {
      name: 'header field .nii.gz', count: 40, gz: true, make: (b, rng) => {
        const out = b.bytes.slice();
        const e = rng.pick(headerEdits(b.version, b.littleEndian));
        e.apply(new DataView(out.buffer), rng, out.length);
        return { bytes: gzipSync(out), what: `gz ${e.what}` };
      },
    },
    { name: 'absurd size', count: 30, gz: false, make: (b, rng) => { const raw = absurdSize(b, rng); const gz = rng.chance(0.5); return { bytes: gz ? gzipSync(raw) : raw, what: `100 GB dims${gz ? ' (gz)' : ''}` }; } },
    { name: 'gzip trailer', count: 20, gz: true, make: (b, rng) => ({ bytes: gzipTrailerEdit(b.bytes, rng), what: 'gz trailer ISIZE/CRC' }) },
    { name: 'non-finite voxel', count: 20, gz: false, make: (b, rng) => ({ bytes: nonFiniteVoxel(b, rng), what: 'NaN/Inf voxel' }), only: (b) => b.label.includes('float') },
  ];

  families.forEach((family, familyIndex) => {
    it(`${family.name}`, async () => {
      const outcome: Outcome = newOutcome();
      const count = caseCount(family.count);
      const pool = all.filter(family.only ?? (() => true));
      for (let i = 0; i < count; i++) {
        const seed = caseSeed(100 + familyIndex, i);
        const rng = new Rng(seed);
        const base = rng.pick(pool);
        const { bytes, what } = family.make(base, rng);
        const source = `fuzz-${seed}${family.gz ? '.nii.gz' : '.nii'}`;
        await runCase({ family: family.name, seed, what: `${base.label}: ${what}`, source, inputBytes: bytes.length }, outcome,
          () => readNifti(bytes, source, base.options), (v) => checkVolume(v, base.options), FIELD);
      }
      expectClean(`NIfTI ${family.name}`, outcome, count);
    });
  });
});
