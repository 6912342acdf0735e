import { describe, it, expect } from 'vitest';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'fflate';
import {
  affineFromQuaternion,
  quaternionFromAffine,
  readNifti,
  readNiftiHeader,
  writeNifti,
  type NiftiDatatypeName,
  type NiftiVolume,
} from '../../src/data/nifti.js';
import { readNiftiFile, writeNiftiFile } from '../../src/data/nifti-file.js';

const DATATYPE_CODES: Record<NiftiDatatypeName, [number, number]> = {
  uint8: [2, 1], int8: [256, 1], int16: [4, 2], uint16: [512, 2], int32: [8, 4], uint32: [768, 4], float32: [16, 4], float64: [64, 8],
};

function volume(shape: [number, number, number], fill: (i: number) => number, spacing: [number, number, number] = [0.8, 0.9, 2.5]): NiftiVolume {
  const n = shape[0] * shape[1] * shape[2];
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = fill(i);
  const affine = [-spacing[0], 0, 0, 10, 0, -spacing[1], 0, 20, 0, 0, spacing[2], -30, 0, 0, 0, 1];
  return { data, shape, spacing, affine };
}

/** Hand-built NIfTI-1 file, either byte order, for the reader tests. */
function buildNifti1(opts: {
  littleEndian: boolean;
  dim: number[];
  datatype: number;
  bitpix: number;
  pixdim?: number[];
  voxOffset?: number;
  slope?: number;
  inter?: number;
  magic?: string;
  qform?: { code: number; b: number; c: number; d: number; offset: [number, number, number] };
  srow?: number[][];
  data: (view: DataView, offset: number) => void;
  dataBytes: number;
}): Uint8Array {
  const voxOffset = opts.voxOffset ?? 352;
  const out = new Uint8Array(voxOffset + opts.dataBytes);
  const v = new DataView(out.buffer);
  const le = opts.littleEndian;
  v.setInt32(0, 348, le);
  opts.dim.forEach((d, i) => v.setInt16(40 + 2 * i, d, le));
  v.setInt16(70, opts.datatype, le);
  v.setInt16(72, opts.bitpix, le);
  (opts.pixdim ?? [1, 1, 1, 1, 0, 0, 0, 0]).forEach((p, i) => v.setFloat32(76 + 4 * i, p, le));
  v.setFloat32(108, voxOffset, le);
  v.setFloat32(112, opts.slope ?? 0, le);
  v.setFloat32(116, opts.inter ?? 0, le);
  if (opts.qform) {
    v.setInt16(252, opts.qform.code, le);
    [opts.qform.b, opts.qform.c, opts.qform.d, ...opts.qform.offset].forEach((x, i) => v.setFloat32(256 + 4 * i, x, le));
  }
  if (opts.srow) {
    v.setInt16(254, 1, le);
    opts.srow.forEach((row, r) => row.forEach((x, c) => v.setFloat32(280 + 16 * r + 4 * c, x, le)));
  }
  const magic = opts.magic ?? 'n+1';
  for (let i = 0; i < magic.length; i++) out[344 + i] = magic.charCodeAt(i);
  opts.data(v, voxOffset);
  return out;
}

describe('NIfTI round trip', () => {
  const ranges: Record<NiftiDatatypeName, (i: number) => number> = {
    uint8: (i) => (i * 7) % 256,
    int8: (i) => ((i * 7) % 256) - 128,
    int16: (i) => ((i * 997) % 65536) - 32768,
    uint16: (i) => (i * 997) % 65536,
    int32: (i) => (i * 104729) % 2000000 - 1000000,
    uint32: (i) => (i * 104729) % 4000000,
    float32: (i) => Math.fround(Math.sin(i) * 1000.5),
    float64: (i) => Math.fround(Math.cos(i) * 1e-3),
  };
  for (const datatype of Object.keys(ranges) as NiftiDatatypeName[]) {
    for (const gzip of [false, true]) {
      it(`${datatype} ${gzip ? '.nii.gz' : '.nii'} keeps values, shape, spacing and affine`, () => {
        const vol = volume([5, 4, 3], ranges[datatype]);
        const bytes = writeNifti(vol, { datatype, gzip });
        expect(bytes[0] === 0x1f && bytes[1] === 0x8b).toBe(gzip);
        const back = readNifti(bytes, 'roundtrip.nii');
        expect(back.shape).toEqual([5, 4, 3]);
        expect(back.header?.datatype).toBe(DATATYPE_CODES[datatype][0]);
        expect(back.header?.bitpix).toBe(DATATYPE_CODES[datatype][1] * 8);
        expect(Array.from(back.data)).toEqual(Array.from(vol.data));
        back.spacing.forEach((s, i) => expect(s).toBeCloseTo(vol.spacing[i], 5));
        back.affine.forEach((a, i) => expect(a).toBeCloseTo(vol.affine[i], 5));
      });
    }
  }

  it('rounds to integers and rejects values outside the integer range', () => {
    const vol = volume([2, 1, 1], (i) => [1.4, 2.6][i]);
    expect(Array.from(readNifti(writeNifti(vol, { datatype: 'int16' })).data)).toEqual([1, 3]);
    const tooBig = volume([2, 1, 1], (i) => [0, 300][i]);
    expect(() => writeNifti(tooBig, { datatype: 'uint8', name: 'label.nii' })).toThrow(/label\.nii.*voxel 1.*300.*uint8/);
  });

  it('keeps the source header geometry (distinct qform and sform) through read and write', () => {
    const src = buildNifti1({
      littleEndian: true, dim: [3, 2, 2, 2, 1, 1, 1, 1], datatype: 4, bitpix: 16, pixdim: [-1, 0.7, 0.8, 3, 0, 0, 0, 0],
      qform: { code: 1, b: 0, c: 0, d: Math.SQRT1_2, offset: [1, 2, 3] },
      srow: [[0.7, 0, 0, -5], [0, 0.8, 0, -6], [0, 0, 3, -7]],
      data: (v, o) => { for (let i = 0; i < 8; i++) v.setInt16(o + 2 * i, i * 10 - 20, true); }, dataBytes: 16,
    });
    const vol = readNifti(src, 'src.nii');
    expect(vol.affine).toEqual([0.7, 0, 0, -5, 0, 0.8, 0, -6, 0, 0, 3, -7, 0, 0, 0, 1].map(Math.fround));
    const again = readNifti(writeNifti(vol, { datatype: 'float32' }), 'copy.nii');
    const h1 = vol.header;
    const h2 = again.header;
    expect(h2?.qformCode).toBe(1);
    expect(h2?.sformCode).toBe(1);
    expect(h2?.pixdim).toEqual(h1?.pixdim);
    expect([h2?.quaternB, h2?.quaternC, h2?.quaternD, h2?.qoffsetX, h2?.qoffsetY, h2?.qoffsetZ]).toEqual([h1?.quaternB, h1?.quaternC, h1?.quaternD, h1?.qoffsetX, h1?.qoffsetY, h1?.qoffsetZ]);
    expect(h2?.srowX).toEqual(h1?.srowX);
    expect(Array.from(again.data)).toEqual([-20, -10, 0, 10, 20, 30, 40, 50]);
  });

  it('writes a new sform and a matching qform when the geometry changed', () => {
    const vol = readNifti(writeNifti(volume([3, 3, 3], () => 1), { datatype: 'uint8' }));
    const changed: NiftiVolume = { ...vol, spacing: [2, 2, 2], affine: [0, -2, 0, 5, 2, 0, 0, 6, 0, 0, 2, 7, 0, 0, 0, 1] };
    const back = readNifti(writeNifti(changed, { datatype: 'uint8' }));
    expect(back.spacing).toEqual([2, 2, 2]);
    expect(back.affine).toEqual(changed.affine);
    const h = back.header;
    if (!h) throw new Error('header missing');
    const fromQuaternion = affineFromQuaternion(h.quaternB, h.quaternC, h.quaternD, h.qoffsetX, h.qoffsetY, h.qoffsetZ, h.pixdim);
    fromQuaternion.forEach((a, i) => expect(a).toBeCloseTo(changed.affine[i], 5));
  });
});

describe('NIfTI geometry', () => {
  it('qform: 90 degrees about z with qfac -1, as the standard prescribes', () => {
    const a = affineFromQuaternion(0, 0, Math.SQRT1_2, 1, 2, 3, [-1, 2, 3, 4]);
    // R = [[0,-1,0],[1,0,0],[0,0,1]]; columns scaled by 2, 3 and 4 * qfac.
    const expected = [0, -3, 0, 1, 2, 0, 0, 2, 0, 0, -4, 3, 0, 0, 0, 1];
    a.forEach((x, i) => expect(x).toBeCloseTo(expected[i], 6));
  });

  it('qform from a file when sform_code is 0, pixdim scaling when both codes are 0', () => {
    const make = (qform: boolean) => buildNifti1({
      littleEndian: true, dim: [3, 1, 1, 1, 1, 1, 1, 1], datatype: 2, bitpix: 8, pixdim: [1, 2, 3, 4, 0, 0, 0, 0],
      qform: qform ? { code: 2, b: 1, c: 0, d: 0, offset: [5, 6, 7] } : undefined, data: () => undefined, dataBytes: 1,
    });
    // b = 1 is a 180-degree turn about x: y and z flip.
    expect(readNifti(make(true)).affine).toEqual([2, 0, 0, 5, 0, -3, 0, 6, 0, 0, -4, 7, 0, 0, 0, 1]);
    expect(readNifti(make(false)).affine).toEqual([2, 0, 0, 0, 0, 3, 0, 0, 0, 0, 4, 0, 0, 0, 0, 1]);
  });

  it('quaternionFromAffine inverts affineFromQuaternion, and refuses shear', () => {
    const b = 0.1, c = -0.3, d = 0.2;
    const affine = affineFromQuaternion(b, c, d, 4, 5, 6, [-1, 0.7, 0.9, 2.5]);
    const q = quaternionFromAffine(affine);
    expect(q?.qfac).toBe(-1);
    expect(q?.b).toBeCloseTo(b, 6);
    expect(q?.c).toBeCloseTo(c, 6);
    expect(q?.d).toBeCloseTo(d, 6);
    q?.spacing.forEach((s, i) => expect(s).toBeCloseTo([0.7, 0.9, 2.5][i], 6));
    expect(quaternionFromAffine([1, 0.5, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1])).toBeUndefined();
  });
});

describe('NIfTI reader: byte orders, scaling, NIfTI-2, 4D', () => {
  it('reads a hand-built big-endian int16 file', () => {
    const values = [-300, -1, 0, 1, 2, 1000];
    const bytes = buildNifti1({
      littleEndian: false, dim: [3, 3, 2, 1, 1, 1, 1, 1], datatype: 4, bitpix: 16, pixdim: [1, 0.5, 0.6, 2, 0, 0, 0, 0],
      data: (v, o) => values.forEach((x, i) => v.setInt16(o + 2 * i, x, false)), dataBytes: 12,
    });
    const vol = readNifti(bytes, 'be.nii');
    expect(vol.header?.littleEndian).toBe(false);
    expect(vol.shape).toEqual([3, 2, 1]);
    expect(Array.from(vol.data)).toEqual(values);
    expect(vol.spacing.map((s) => Math.round(s * 100) / 100)).toEqual([0.5, 0.6, 2]);
  });

  it('reads big-endian float64 and gzipped big-endian files', () => {
    const values = [0.25, -1.5, 3e10];
    const bytes = buildNifti1({
      littleEndian: false, dim: [1, 3, 1, 1, 1, 1, 1, 1], datatype: 64, bitpix: 64,
      data: (v, o) => values.forEach((x, i) => v.setFloat64(o + 8 * i, x, false)), dataBytes: 24,
    });
    expect(Array.from(readNifti(gzipSync(bytes)).data)).toEqual(values.map(Math.fround));
  });

  it('applies scl_slope and scl_inter; slope 0 means unscaled', () => {
    const make = (slope: number, inter: number) => buildNifti1({
      littleEndian: true, dim: [3, 3, 1, 1, 1, 1, 1, 1], datatype: 4, bitpix: 16, slope, inter,
      data: (v, o) => [0, 10, -5].forEach((x, i) => v.setInt16(o + 2 * i, x, true)), dataBytes: 6,
    });
    expect(Array.from(readNifti(make(2, -1024)).data)).toEqual([-1024, -1004, -1034]);
    expect(Array.from(readNifti(make(0, 7)).data)).toEqual([0, 10, -5]);
    expect(Array.from(readNifti(make(0.5, 0)).data)).toEqual([0, 5, -2.5]);
  });

  it('writer scl_slope/scl_inter options store scaled integers', () => {
    const vol = volume([3, 1, 1], (i) => [-1024, 0, 1000][i]);
    const bytes = writeNifti(vol, { datatype: 'int16', sclSlope: 2, sclInter: -1024 });
    const h = readNiftiHeader(bytes);
    expect([h.sclSlope, h.sclInter]).toEqual([2, -1024]);
    const raw = new DataView(bytes.buffer, bytes.byteOffset + 352, 6);
    expect([raw.getInt16(0, true), raw.getInt16(2, true), raw.getInt16(4, true)]).toEqual([0, 512, 1012]);
    expect(Array.from(readNifti(bytes).data)).toEqual([-1024, 0, 1000]);
  });

  it('reads a hand-built NIfTI-2 file (int64 dims, float64 geometry, sform)', () => {
    const voxOffset = 544;
    const values = [1.5, -2.5, 3.25, 4, 5, 6];
    const out = new Uint8Array(voxOffset + values.length * 4);
    const v = new DataView(out.buffer);
    v.setInt32(0, 540, true);
    [0x6e, 0x2b, 0x32, 0, 0x0d, 0x0a, 0x1a, 0x0a].forEach((b, i) => (out[4 + i] = b));
    v.setInt16(12, 16, true);
    v.setInt16(14, 32, true);
    [3, 1, 2, 3, 1, 1, 1, 1].forEach((d, i) => v.setBigInt64(16 + 8 * i, BigInt(d), true));
    [1, 0.75, 0.8, 1.25, 0, 0, 0, 0].forEach((p, i) => v.setFloat64(104 + 8 * i, p, true));
    v.setBigInt64(168, BigInt(voxOffset), true);
    v.setFloat64(176, 2, true); // slope
    v.setFloat64(184, 1, true); // intercept
    v.setInt32(348, 1, true); // sform_code
    [[0.75, 0, 0, 1], [0, 0.8, 0, 2], [0, 0, 1.25, 3]].forEach((row, r) => row.forEach((x, c) => v.setFloat64(400 + 32 * r + 8 * c, x, true)));
    values.forEach((x, i) => v.setFloat32(voxOffset + 4 * i, x, true));
    const vol = readNifti(out, 'two.nii');
    expect(vol.header?.version).toBe(2);
    expect(vol.shape).toEqual([1, 2, 3]);
    expect(vol.spacing).toEqual([0.75, 0.8, 1.25]);
    expect(vol.affine).toEqual([0.75, 0, 0, 1, 0, 0.8, 0, 2, 0, 0, 1.25, 3, 0, 0, 0, 1]);
    expect(Array.from(vol.data)).toEqual(values.map((x) => x * 2 + 1));
  });

  it('refuses a 4D file with several frames unless volumeIndex picks one', () => {
    const bytes = buildNifti1({
      littleEndian: true, dim: [4, 2, 1, 1, 3, 1, 1, 1], datatype: 2, bitpix: 8,
      data: (v, o) => [1, 2, 3, 4, 5, 6].forEach((x, i) => v.setUint8(o + i, x)), dataBytes: 6,
    });
    expect(readNiftiHeader(bytes).volumeCount).toBe(3);
    expect(() => readNifti(bytes, 'four.nii')).toThrow(/four\.nii: header field dim is \[2, 1, 1, 3\] \(4-D, 3 frames\); expected a 3-D volume.*volumeIndex option \(0\.\.2\)/);
    expect(Array.from(readNifti(bytes, 'x', { volumeIndex: 0 }).data)).toEqual([1, 2]);
    expect(Array.from(readNifti(bytes, 'x', { volumeIndex: 2 }).data)).toEqual([5, 6]);
    expect(() => readNifti(bytes, 'four.nii', { volumeIndex: 3 })).toThrow(/four\.nii.*volumeIndex.*3/);
  });

  it("refuses multi-frame files shaped like nibabel's example4d.nii.gz [128, 96, 24, 2] and functional.nii [17, 21, 3, 20]", () => {
    const example4d = buildNifti1({
      littleEndian: true, dim: [4, 128, 96, 24, 2, 1, 1, 1], datatype: 4, bitpix: 16, pixdim: [-1, 2, 2, 2.2, 2000, 1, 1, 1],
      data: (v, o) => v.setInt16(o + 2 * 128 * 96 * 24, 7, true), dataBytes: 2 * 128 * 96 * 24 * 2,
    });
    expect(() => readNifti(gzipSync(example4d), 'example4d.nii.gz')).toThrow(/example4d\.nii\.gz: header field dim is \[128, 96, 24, 2\] \(4-D, 2 frames\); expected a 3-D volume/);
    const second = readNifti(gzipSync(example4d), 'example4d.nii.gz', { volumeIndex: 1 });
    expect(second.shape).toEqual([128, 96, 24]);
    expect(second.data[0]).toBe(7);
    const functional = buildNifti1({
      littleEndian: true, dim: [4, 17, 21, 3, 20, 1, 1, 1], datatype: 16, bitpix: 32, pixdim: [1, 3, 3, 6, 3, 0, 0, 0],
      data: () => undefined, dataBytes: 4 * 17 * 21 * 3 * 20,
    });
    expect(() => readNifti(functional, 'functional.nii')).toThrow(/functional\.nii: header field dim is \[17, 21, 3, 20\] \(4-D, 20 frames\).*volumeIndex option \(0\.\.19\)/);
  });

  it('accepts trailing dimensions of 1 (4-D and 5-D headers holding one frame)', () => {
    for (const dim of [[4, 2, 2, 1, 1, 1, 1, 1], [5, 2, 2, 1, 1, 1, 1, 1], [7, 2, 2, 1, 1, 1, 1, 1]]) {
      const bytes = buildNifti1({ littleEndian: true, dim, datatype: 2, bitpix: 8, data: (v, o) => [1, 2, 3, 4].forEach((x, i) => v.setUint8(o + i, x)), dataBytes: 4 });
      const vol = readNifti(bytes, 'one-frame.nii');
      expect(vol.shape).toEqual([2, 2, 1]);
      expect(Array.from(vol.data)).toEqual([1, 2, 3, 4]);
    }
  });

  it('decodes a large int16 volume from an unaligned byte view', () => {
    const vol = volume([64, 64, 16], (i) => (i % 4001) - 2000);
    const bytes = writeNifti(vol, { datatype: 'int16' });
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const back = readNifti(shifted.subarray(1), 'shifted.nii');
    const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((x, i) => x === b[i]);
    expect(same(back.data, vol.data)).toBe(true);
  });
});

describe('NIfTI reader errors name the file, the field and the expectation', () => {
  const good = () => writeNifti(volume([4, 4, 4], (i) => i), { datatype: 'int16' });

  it('truncated data', () => {
    const bytes = good();
    expect(() => readNifti(bytes.subarray(0, bytes.length - 10), 'ct.nii')).toThrow(/ct\.nii: truncated.*4x4x4 of int16.*needs 480 bytes.*has 470/);
  });

  it('truncated header', () => {
    expect(() => readNifti(good().subarray(0, 100), 'short.nii')).toThrow(/short\.nii: truncated: 100 bytes.*348-byte NIfTI-1 header/);
  });

  it('truncated gzip stream', () => {
    const gz = writeNifti(volume([4, 4, 4], (i) => i), { datatype: 'int16', gzip: true });
    expect(() => readNifti(gz.subarray(0, gz.length - 20), 'ct.nii.gz')).toThrow(/ct\.nii\.gz/);
  });

  it('wrong magic', () => {
    const bytes = good();
    bytes[345] = 'X'.charCodeAt(0);
    expect(() => readNifti(bytes, 'bad.nii')).toThrow(/bad\.nii: header field magic is "nX1"; expected "n\+1"/);
  });

  it('header/image pairs are refused with a hint', () => {
    const bytes = good();
    bytes[345] = 'i'.charCodeAt(0);
    expect(() => readNifti(bytes, 'pair.hdr')).toThrow(/pair\.hdr.*"ni1".*\.hdr\/\.img/);
  });

  it('not a NIfTI file at all', () => {
    expect(() => readNifti(new TextEncoder().encode('hello world, this is not an image'.repeat(20)), 'notes.txt')).toThrow(/notes\.txt: header field sizeof_hdr.*expected 348/);
  });

  it('header dims disagree with the data length', () => {
    const bytes = good();
    new DataView(bytes.buffer).setInt16(46, 5, true); // dim[3] = 5 but only 4 slices of data
    expect(() => readNifti(bytes, 'dims.nii')).toThrow(/dims\.nii.*dim 4x4x5.*needs 512 bytes.*has 480/);
  });

  it('unsupported datatype and inconsistent bitpix', () => {
    const a = good();
    new DataView(a.buffer).setInt16(70, 128, true); // RGB24
    expect(() => readNifti(a, 'rgb.nii')).toThrow(/rgb\.nii: header field datatype is 128; expected one of/);
    const b = good();
    new DataView(b.buffer).setInt16(72, 32, true);
    expect(() => readNifti(b, 'bitpix.nii')).toThrow(/bitpix\.nii: header field bitpix is 32; expected 16 for datatype int16/);
  });

  it('non-positive dims', () => {
    const bytes = good();
    new DataView(bytes.buffer).setInt16(44, 0, true);
    expect(() => readNifti(bytes, 'zero.nii')).toThrow(/zero\.nii: header field dim\[2\] is 0; expected a positive integer/);
  });

  it('NaN and infinite voxels: refused with the count and the first position, unless allowNonFinite', () => {
    const values = [1, 2, NaN, 4, Infinity, 6, 7, -Infinity];
    const bytes = buildNifti1({
      littleEndian: true, dim: [3, 2, 2, 2, 1, 1, 1, 1], datatype: 16, bitpix: 32,
      data: (v, o) => values.forEach((x, i) => v.setFloat32(o + 4 * i, x, true)), dataBytes: 32,
    });
    expect(() => readNifti(bytes, 'nan.nii')).toThrow(/nan\.nii: voxel values: 3 of 8 voxels are NaN or infinite \(first at \[x, y, z\] = \[0, 1, 0\], value NaN\); expected finite numbers/);
    expect(() => readNifti(gzipSync(bytes), 'nan.nii.gz')).toThrow(/nan\.nii\.gz: voxel values: 3 of 8/);
    expect(Array.from(readNifti(bytes, 'nan.nii', { allowNonFinite: true }).data)).toEqual(values);
    // Integer storage cannot hold NaN, but a scale factor can overflow float32 to infinity.
    const scaled = buildNifti1({
      littleEndian: true, dim: [3, 2, 1, 1, 1, 1, 1, 1], datatype: 4, bitpix: 16, slope: 1e38,
      data: (v, o) => [0, 1000].forEach((x, i) => v.setInt16(o + 2 * i, x, true)), dataBytes: 4,
    });
    expect(() => readNifti(scaled, 'scaled.nii')).toThrow(/scaled\.nii: voxel values: 1 of 2 voxels are NaN or infinite after scl_slope [\d.e+]+ \/ scl_inter 0 \(first at \[x, y, z\] = \[1, 0, 0\]/);
  });

  it('zero, negative and NaN voxel sizes are refused; unused axes do not matter', () => {
    for (const [i, p] of [[1, 0], [2, -0.5], [3, NaN], [3, Infinity]] as const) {
      const pixdim = [1, 0.8, 0.8, 2, 0, 0, 0, 0];
      pixdim[i] = p;
      const bytes = buildNifti1({ littleEndian: true, dim: [3, 2, 1, 1, 1, 1, 1, 1], datatype: 2, bitpix: 8, pixdim, data: () => undefined, dataBytes: 2 });
      expect(() => readNifti(bytes, 'spacing.nii')).toThrow(new RegExp(`spacing\\.nii: header field pixdim\\[${i}\\] \\(voxel size along axis ${'xyz'[i - 1]}\\) is ${p}; expected a positive finite size in mm`));
      expect(() => readNiftiHeader(bytes, 'spacing.nii')).toThrow(/pixdim/);
    }
    // A 2-D image has no third axis; its pixdim[3] is not a voxel size.
    const flat = buildNifti1({ littleEndian: true, dim: [2, 2, 1, 1, 1, 1, 1, 1], datatype: 2, bitpix: 8, pixdim: [1, 0.5, 0.5, 0, 0, 0, 0, 0], data: () => undefined, dataBytes: 2 });
    expect(readNifti(flat, 'flat.nii').spacing).toEqual([0.5, 0.5, 1]);
    expect(() => writeNifti(volume([2, 2, 2], () => 0, [1, 0, 1]), { datatype: 'uint8', name: 'out.nii' })).toThrow(/out\.nii: spacing\[1\] is 0; expected a positive finite voxel size/);
    const flatAffine: NiftiVolume = { ...volume([2, 2, 2], () => 0), affine: [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1] };
    expect(() => writeNifti(flatAffine, { datatype: 'uint8', name: 'out.nii' })).toThrow(/out\.nii: affine \[.*\] is non-finite or singular/);
  });

  it('a non-finite sform or qform is refused', () => {
    const sform = buildNifti1({
      littleEndian: true, dim: [3, 1, 1, 1, 1, 1, 1, 1], datatype: 2, bitpix: 8, srow: [[1, 0, 0, 0], [0, NaN, 0, 0], [0, 0, 1, 0]], data: () => undefined, dataBytes: 1,
    });
    expect(() => readNifti(sform, 'sform.nii')).toThrow(/sform\.nii: header fields srow_x\/srow_y\/srow_z \(sform_code > 0\) give a non-finite affine/);
    const qform = buildNifti1({
      littleEndian: true, dim: [3, 1, 1, 1, 1, 1, 1, 1], datatype: 2, bitpix: 8, qform: { code: 1, b: 0, c: 0, d: 0, offset: [0, Infinity, 0] }, data: () => undefined, dataBytes: 1,
    });
    expect(() => readNifti(qform, 'qform.nii')).toThrow(/qform\.nii: header fields quatern_b\/c\/d and qoffset_x\/y\/z \(qform_code > 0\) give a non-finite affine/);
  });

  it('a singular sform (an axis with no direction, or two parallel axes) is refused', () => {
    for (const srow of [[[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]], [[1, 2, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0]], [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]]) {
      const bytes = buildNifti1({ littleEndian: true, dim: [3, 1, 1, 1, 1, 1, 1, 1], datatype: 2, bitpix: 8, srow, data: () => undefined, dataBytes: 1 });
      expect(() => readNifti(bytes, 'flat.nii')).toThrow(/flat\.nii: header fields srow_x\/srow_y\/srow_z \(sform_code 1\) give a singular affine .*; expected three independent voxel axes/);
    }
    // Oblique but independent axes read.
    const oblique = buildNifti1({ littleEndian: true, dim: [3, 1, 1, 1, 1, 1, 1, 1], datatype: 2, bitpix: 8, srow: [[0.7, 0.7, 0, 1], [-0.7, 0.7, 0, 2], [0, 0, 3, 3]], data: () => undefined, dataBytes: 1 });
    expect(readNifti(oblique, 'oblique.nii').affine.slice(0, 3)).toEqual([0.7, 0.7, 0].map(Math.fround));
  });

  it('a header claiming a 100 GB volume in a small file is refused before allocating', () => {
    // NIfTI-2 (int64 dims): 5000 x 5000 x 1000 float32 = 100 GB, in a file of 1 MB.
    const out = new Uint8Array(1 << 20);
    const v = new DataView(out.buffer);
    v.setInt32(0, 540, true);
    [0x6e, 0x2b, 0x32, 0, 0x0d, 0x0a, 0x1a, 0x0a].forEach((b, i) => (out[4 + i] = b));
    v.setInt16(12, 16, true);
    v.setInt16(14, 32, true);
    [3, 5000, 5000, 1000, 1, 1, 1, 1].forEach((d, i) => v.setBigInt64(16 + 8 * i, BigInt(d), true));
    [1, 1, 1, 1, 0, 0, 0, 0].forEach((p, i) => v.setFloat64(104 + 8 * i, p, true));
    v.setBigInt64(168, 544n, true);
    const before = process.memoryUsage().arrayBuffers;
    expect(() => readNifti(out, 'huge.nii')).toThrow(/huge\.nii: truncated or header dims disagree with data length: dim 5000x5000x1000 of float32 at vox_offset 544 needs 100000000544 bytes, the file has 1048576/);
    expect(() => readNifti(gzipSync(out), 'huge.nii.gz')).toThrow(/huge\.nii\.gz: truncated or header dims disagree.*needs 100000000544 bytes/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 << 20);
  });

  it('gzip: an absurd trailer size is refused before inflating; size and CRC32 are verified', () => {
    const gz = writeNifti(volume([4, 4, 4], (i) => i), { datatype: 'int16', gzip: true });
    const withTrailer = (crcDelta: number, size: number) => {
      const copy = gz.slice();
      const t = new DataView(copy.buffer, copy.length - 8, 8);
      t.setUint32(0, (t.getUint32(0, true) + crcDelta) >>> 0, true);
      t.setUint32(4, size, true);
      return copy;
    };
    const before = process.memoryUsage().arrayBuffers;
    expect(() => readNifti(withTrailer(0, 0xfffffff0), 'big.nii.gz')).toThrow(/big\.nii\.gz: gzip trailer field ISIZE claims 4294967280 bytes from \d+ compressed bytes \(deflate expands at most 1032:1\)/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 << 20);
    expect(() => readNifti(withTrailer(0, 400), 'short.nii.gz')).toThrow(/short\.nii\.gz: gzip data inflates to more than 400 bytes but trailer field ISIZE says 400/);
    expect(() => readNifti(withTrailer(0, 600), 'long.nii.gz')).toThrow(/long\.nii\.gz: gzip data inflates to 480 bytes but trailer field ISIZE says 600/);
    expect(() => readNifti(withTrailer(1, 480), 'crc.nii.gz')).toThrow(/crc\.nii\.gz: gzip trailer field CRC32 is 0x[0-9a-f]{8} but the data's is 0x[0-9a-f]{8}: corrupt/);
    const bad = gz.slice();
    bad[2] = 7;
    expect(() => readNifti(bad, 'method.nii.gz')).toThrow(/method\.nii\.gz: gzip header field CM \(compression method\) is 7; expected 8/);
    expect(() => readNifti(gz.subarray(0, 12), 'tiny.nii.gz')).toThrow(/tiny\.nii\.gz: gzip stream of 12 bytes is truncated/);
    // A stream with a file name in its header (as the gzip tool writes) still reads.
    expect(readNifti(gzipSync(writeNifti(volume([2, 2, 2], (i) => i), { datatype: 'uint8' }), { filename: 'x.nii' }), 'named.nii.gz').shape).toEqual([2, 2, 2]);
  });

  it('readNiftiFile names the path in data errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tgnet-nifti-'));
    try {
      const path = join(dir, 'series.nii');
      const bytes = buildNifti1({ littleEndian: true, dim: [4, 1, 1, 1, 2, 1, 1, 1], datatype: 2, bitpix: 8, data: () => undefined, dataBytes: 2 });
      await writeFile(path, bytes);
      await expect(readNiftiFile(path)).rejects.toThrow(new RegExp(`${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: header field dim is \\[1, 1, 1, 2\\]`));
      expect((await readNiftiFile(path, { volumeIndex: 1 })).shape).toEqual([1, 1, 1]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('writer: data length and shape mismatch', () => {
    const vol = volume([2, 2, 2], () => 0);
    expect(() => writeNifti({ ...vol, shape: [2, 2, 3] }, { datatype: 'float32', name: 'out.nii' })).toThrow(/out\.nii: data length is 8; expected 12/);
  });
});

describe('NIfTI files', () => {
  it('writeNiftiFile gzips .nii.gz, leaves no temporary files, and readNiftiFile reads it back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tgnet-nifti-'));
    try {
      const vol = volume([6, 5, 4], (i) => i - 50);
      await writeNiftiFile(join(dir, 'sub', 'a.nii.gz'), vol, { datatype: 'int16' });
      await writeNiftiFile(join(dir, 'sub', 'b.nii'), vol, { datatype: 'float32' });
      expect((await readdir(join(dir, 'sub'))).sort()).toEqual(['a.nii.gz', 'b.nii']);
      const gz = await readFile(join(dir, 'sub', 'a.nii.gz'));
      expect([gz[0], gz[1]]).toEqual([0x1f, 0x8b]);
      const back = await readNiftiFile(join(dir, 'sub', 'a.nii.gz'));
      expect(back.data).toEqual(vol.data);
      await expect(readNiftiFile(join(dir, 'missing.nii'))).rejects.toThrow(/missing\.nii: cannot read NIfTI file/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
