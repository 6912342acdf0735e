/**
 * NIfTI-1 read/write and NIfTI-2 read, for single-file `.nii` and gzipped `.nii.gz` images.
 *
 * Axis convention: NIfTI stores voxels x-fastest (index = x + X*(y + Y*z)), so a volume of shape
 * [X, Y, Z] is, byte for byte, a C-order array [Z, Y, X] = [D, H, W] with D the slice axis.
 * Nothing is transposed anywhere in the data layer.
 *
 * 4D files (dim[4..7] > 1): `readNifti` refuses them unless `options.volumeIndex` picks one frame, so a
 * time series or vector image is never silently cut to its first frame; a trailing dimension of 1 is fine.
 * The full dims are in `header.dim` and `header.volumeCount`.
 *
 * Malformed input is refused with an error naming the file and the field: header fields are checked before
 * anything is allocated, a `.nii.gz` is inflated into a buffer no larger than the gzip stream can hold and its
 * CRC32 and size are verified, and voxel sizes, the affine and (by default) the voxel values must be finite.
 *
 * Browser-safe: only fflate and typed arrays, no Node built-ins.
 */
import { gzipSync, inflateSync } from 'fflate';
import type { XYZ } from '../common/shape.js';

export type NiftiDatatypeName = 'uint8' | 'int8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64';

interface DatatypeInfo {
  name: NiftiDatatypeName;
  code: number;
  bytes: number;
  min: number;
  max: number;
  integer: boolean;
}

const DATATYPES: readonly DatatypeInfo[] = [
  { name: 'uint8', code: 2, bytes: 1, min: 0, max: 255, integer: true },
  { name: 'int16', code: 4, bytes: 2, min: -32768, max: 32767, integer: true },
  { name: 'int32', code: 8, bytes: 4, min: -2147483648, max: 2147483647, integer: true },
  { name: 'float32', code: 16, bytes: 4, min: -3.4028234663852886e38, max: 3.4028234663852886e38, integer: false },
  { name: 'float64', code: 64, bytes: 8, min: -Number.MAX_VALUE, max: Number.MAX_VALUE, integer: false },
  { name: 'int8', code: 256, bytes: 1, min: -128, max: 127, integer: true },
  { name: 'uint16', code: 512, bytes: 2, min: 0, max: 65535, integer: true },
  { name: 'uint32', code: 768, bytes: 4, min: 0, max: 4294967295, integer: true },
];

const NIFTI1_HEADER_BYTES = 348;
const NIFTI2_HEADER_BYTES = 540;

function datatypeByCode(code: number): DatatypeInfo | undefined {
  return DATATYPES.find((d) => d.code === code);
}

function datatypeByName(name: string): DatatypeInfo | undefined {
  return DATATYPES.find((d) => d.name === name);
}

/** Every header field the reader understands, in NIfTI-1 naming, camelCased; NIfTI-2 maps onto it. */
export interface NiftiHeader {
  /** 1 or 2. */
  version: 1 | 2;
  littleEndian: boolean;
  sizeofHdr: number;
  dimInfo: number;
  /** dim[0] = number of dimensions, dim[1..7] = sizes. */
  dim: number[];
  intentP1: number;
  intentP2: number;
  intentP3: number;
  intentCode: number;
  datatype: number;
  datatypeName: NiftiDatatypeName;
  bitpix: number;
  sliceStart: number;
  /** pixdim[0] = qfac, pixdim[1..3] = voxel size, pixdim[4] = time step. */
  pixdim: number[];
  voxOffset: number;
  sclSlope: number;
  sclInter: number;
  sliceEnd: number;
  sliceCode: number;
  xyztUnits: number;
  calMax: number;
  calMin: number;
  sliceDuration: number;
  toffset: number;
  descrip: string;
  auxFile: string;
  qformCode: number;
  sformCode: number;
  quaternB: number;
  quaternC: number;
  quaternD: number;
  qoffsetX: number;
  qoffsetY: number;
  qoffsetZ: number;
  srowX: number[];
  srowY: number[];
  srowZ: number[];
  intentName: string;
  magic: string;
  /** Product of dim[4..7]: how many 3D volumes the file holds. */
  volumeCount: number;
}

/** A 3D scalar volume with world geometry. `shape` and `spacing` are in NIfTI order [x, y, z]. */
export interface NiftiVolume {
  /** Voxel values, x fastest, scl_slope/scl_inter applied. */
  data: Float32Array;
  shape: XYZ;
  /** Voxel size in mm, [x, y, z] (absolute pixdim[1..3]). */
  spacing: XYZ;
  /** Voxel index (i, j, k, 1) to world mm, 4x4 row-major (16 numbers). */
  affine: number[];
  /** The source header, when the volume came from a file; the writer keeps its geometry. */
  header?: NiftiHeader;
}

export interface ReadNiftiOptions {
  /**
   * Which 3D volume (frame) of a 4D file to read. Without it a file holding more than one frame is refused;
   * a 3D file (or one whose extra dimensions are all 1) accepts only 0.
   */
  volumeIndex?: number;
  /**
   * Accept NaN and +-Inf voxel values (default false: refused with the count and the first position, since
   * one such voxel silently poisons normalisation, training losses and predictions).
   */
  allowNonFinite?: boolean;
}

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Parses a NIfTI-1 or NIfTI-2 header; `name` only labels errors. Accepts gzip-compressed bytes. */
export function readNiftiHeader(bytes: Uint8Array, name = '<bytes>'): NiftiHeader {
  const raw = isGzip(bytes) ? gunzip(bytes, name) : bytes;
  return parseHeader(raw, name);
}

/**
 * Decodes a NIfTI image. Plain and gzipped, NIfTI-1 and NIfTI-2, either byte order.
 * Values are decoded straight from the file's bytes into one Float32Array (no intermediate copy),
 * so a 512x512x600 int16 CT costs the gunzipped buffer plus the float volume.
 */
export function readNifti(bytes: Uint8Array, name = '<bytes>', options: ReadNiftiOptions = {}): NiftiVolume {
  const raw = isGzip(bytes) ? gunzip(bytes, name) : bytes;
  const header = parseHeader(raw, name);
  const dt = datatypeByCode(header.datatype);
  if (!dt) throw new Error(`${name}: header field datatype is ${header.datatype}; expected one of ${DATATYPES.map((d) => `${d.code} (${d.name})`).join(', ')}`);
  const shape: XYZ = [header.dim[1], header.dim[2], header.dim[3]];
  const voxels = shape[0] * shape[1] * shape[2];
  const dims = header.dim.slice(1, header.dim[0] + 1);
  if (options.volumeIndex === undefined && header.volumeCount > 1) {
    throw new Error(
      `${name}: header field dim is [${dims.join(', ')}] (${header.dim[0]}-D, ${header.volumeCount} frames); expected a 3-D volume ` +
        `(a trailing dimension of 1 is fine). Extract one frame first, or read it with the volumeIndex option (0..${header.volumeCount - 1})`,
    );
  }
  const volumeIndex = options.volumeIndex ?? 0;
  if (!Number.isInteger(volumeIndex) || volumeIndex < 0 || volumeIndex >= header.volumeCount) {
    throw new Error(`${name}: volumeIndex is ${volumeIndex}; expected an integer in [0, ${header.volumeCount - 1}] (dim[4..7] = ${header.dim.slice(4).join(', ')})`);
  }
  // Checked before allocating anything: a header may claim any size, the file's length is the truth.
  const needed = header.voxOffset + voxels * header.volumeCount * dt.bytes;
  if (raw.length < needed) {
    throw new Error(
      `${name}: truncated or header dims disagree with data length: dim ${dims.join('x')} of ${dt.name} ` +
        `at vox_offset ${header.voxOffset} needs ${needed} bytes, the file has ${raw.length}`,
    );
  }
  const affine = affineFromHeader(header);
  if (!affine.every(Number.isFinite)) {
    const fields = header.sformCode > 0 ? 'srow_x/srow_y/srow_z (sform_code > 0)' : 'quatern_b/c/d and qoffset_x/y/z (qform_code > 0)';
    throw new Error(`${name}: header fields ${fields} give a non-finite affine [${affine.join(', ')}]; expected finite numbers`);
  }
  if (isSingular(affine)) {
    // Only an sform can be singular (a qform is a rotation times positive voxel sizes); the slice axis and
    // resampling are judged from the affine's columns, so a flat one has no meaning to give them.
    throw new Error(`${name}: header fields srow_x/srow_y/srow_z (sform_code ${header.sformCode}) give a singular affine [${affine.slice(0, 12).join(', ')}]; expected three independent voxel axes`);
  }
  const start = header.voxOffset + volumeIndex * voxels * dt.bytes;
  const data = decodeVoxels(raw, start, voxels, dt, header.littleEndian);
  // scl_slope 0 means "no scaling" in the standard; NaN/Inf are treated the same as common readers do.
  const slope = header.sclSlope;
  const scaled = slope !== 0 && Number.isFinite(slope) && (slope !== 1 || (header.sclInter !== 0 && Number.isFinite(header.sclInter)));
  if (scaled) {
    const inter = Number.isFinite(header.sclInter) ? header.sclInter : 0;
    for (let i = 0; i < voxels; i++) data[i] = data[i] * slope + inter;
  }
  // Integers cannot decode to NaN/Inf; only float storage or scaling (overflow to Inf) can.
  if (!options.allowNonFinite && (!dt.integer || scaled)) checkFinite(data, shape, name, scaled ? ` after scl_slope ${slope} / scl_inter ${header.sclInter}` : '');
  return { data, shape, spacing: spacingFromHeader(header), affine, header };
}

/** True when the 3x3 part's columns are (nearly) linearly dependent, relative to their lengths. */
function isSingular(a: readonly number[]): boolean {
  const det = a[0] * (a[5] * a[10] - a[6] * a[9]) - a[1] * (a[4] * a[10] - a[6] * a[8]) + a[2] * (a[4] * a[9] - a[5] * a[8]);
  const norms = [0, 1, 2].map((j) => Math.hypot(a[j], a[4 + j], a[8 + j]));
  const scale = norms[0] * norms[1] * norms[2];
  return !(scale > 0) || !(Math.abs(det) > 1e-6 * scale);
}

function checkFinite(data: Float32Array, shape: XYZ, name: string, scaling: string): void {
  let first = -1;
  let count = 0;
  for (let i = 0; i < data.length; i++) {
    // x - x is 0 for finite x and NaN for NaN and +-Inf: one comparison per voxel.
    if (data[i] - data[i] !== 0) {
      if (first < 0) first = i;
      count++;
    }
  }
  if (count === 0) return;
  const x = first % shape[0];
  const y = Math.floor(first / shape[0]) % shape[1];
  const z = Math.floor(first / (shape[0] * shape[1]));
  throw new Error(
    `${name}: voxel values: ${count} of ${data.length} voxels are NaN or infinite${scaling} (first at [x, y, z] = [${x}, ${y}, ${z}], value ${data[first]}); ` +
      'expected finite numbers (pass allowNonFinite to read them anyway)',
  );
}

/** Voxel size in mm from pixdim[1..3]; validateHeader has already refused bad sizes on the image's own axes. */
function spacingFromHeader(h: NiftiHeader): XYZ {
  const size = (i: number) => (h.pixdim[i] > 0 && Number.isFinite(h.pixdim[i]) ? h.pixdim[i] : 1);
  return [size(1), size(2), size(3)];
}

/** Deflate cannot expand more than about 1032:1 (a 258-byte match coded in 2 bits), so a larger claim is corruption. */
const DEFLATE_MAX_RATIO = 1032;

/**
 * Inflates a single-member gzip stream into a buffer sized by its trailer, after checking that the trailer's size
 * is one the stream can hold; then verifies the size and CRC32, which fflate leaves to the caller.
 */
function gunzip(bytes: Uint8Array, name: string): Uint8Array {
  const fail = (what: string) => new Error(`${name}: gzip ${what}; expected a complete .nii.gz`);
  const len = bytes.length;
  if (len < 18) throw fail(`stream of ${len} bytes is truncated (a gzip member needs at least 18)`);
  if (bytes[2] !== 8) throw fail(`header field CM (compression method) is ${bytes[2]}; expected 8 (deflate)`);
  const flags = bytes[3];
  if (flags & 0xe0) throw fail(`header field FLG is ${flags} with reserved bits set`);
  const end = len - 8;
  let pos = 10;
  if (flags & 4) pos += 2 + (bytes[pos] | (bytes[pos + 1] << 8)); // FEXTRA
  for (const bit of [8, 16]) {
    // FNAME, FCOMMENT: zero-terminated strings
    if (flags & bit) {
      while (pos < end && bytes[pos] !== 0) pos++;
      pos++;
    }
  }
  if (flags & 2) pos += 2; // FHCRC
  if (pos >= end) throw fail(`header (${pos} bytes with its optional fields) leaves no room for data in a ${len}-byte file: truncated`);
  const trailer = new DataView(bytes.buffer, bytes.byteOffset + end, 8);
  const expectedCrc = trailer.getUint32(0, true);
  const size = trailer.getUint32(4, true);
  const compressed = end - pos;
  if (size > compressed * DEFLATE_MAX_RATIO) {
    throw fail(`trailer field ISIZE claims ${size} bytes from ${compressed} compressed bytes (deflate expands at most ${DEFLATE_MAX_RATIO}:1): corrupt or truncated`);
  }
  // One spare byte: fflate silently truncates output that overflows `out`, so a full buffer means "too long".
  let out: Uint8Array;
  try {
    out = inflateSync(bytes.subarray(pos, end), { out: new Uint8Array(size + 1) });
  } catch (err) {
    throw fail(`data is corrupt or truncated (${(err as Error).message})`);
  }
  if (out.length !== size) {
    throw fail(
      `data inflates to ${out.length > size ? `more than ${size}` : out.length} bytes but trailer field ISIZE says ${size}: corrupt, truncated, ` +
        'several concatenated gzip members (not supported; recompress as one), or over 4 GiB unpacked (gzip records the size modulo 2^32)',
    );
  }
  const crc = crc32(out);
  if (crc !== expectedCrc) throw fail(`trailer field CRC32 is ${hex32(expectedCrc)} but the data's is ${hex32(crc)}: corrupt`);
  return out;
}

const hex32 = (x: number) => `0x${x.toString(16).padStart(8, '0')}`;

let crcTables: Int32Array | undefined;

/** CRC-32 (IEEE, reflected), eight bytes per step ("slicing by 8"). */
function crc32(data: Uint8Array): number {
  if (!crcTables) {
    const t = new Int32Array(256 * 8);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      t[i] = c;
    }
    for (let s = 1; s < 8; s++) for (let i = 0; i < 256; i++) t[s * 256 + i] = (t[(s - 1) * 256 + i] >>> 8) ^ t[t[(s - 1) * 256 + i] & 255];
    crcTables = t;
  }
  const t = crcTables;
  let c = -1;
  let i = 0;
  for (const stop = data.length - 8; i <= stop; i += 8) {
    c ^= data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
    c = t[1792 + (c & 255)] ^ t[1536 + ((c >>> 8) & 255)] ^ t[1280 + ((c >>> 16) & 255)] ^ t[1024 + (c >>> 24)] ^
      t[768 + data[i + 4]] ^ t[512 + data[i + 5]] ^ t[256 + data[i + 6]] ^ t[data[i + 7]];
  }
  for (; i < data.length; i++) c = t[(c ^ data[i]) & 255] ^ (c >>> 8);
  return ~c >>> 0;
}

function parseHeader(raw: Uint8Array, name: string): NiftiHeader {
  if (raw.length < 4) throw new Error(`${name}: truncated: ${raw.length} bytes, expected at least a ${NIFTI1_HEADER_BYTES}-byte NIfTI header`);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const le = view.getInt32(0, true);
  const be = view.getInt32(0, false);
  let version: 1 | 2;
  let littleEndian: boolean;
  if (le === NIFTI1_HEADER_BYTES || be === NIFTI1_HEADER_BYTES) {
    version = 1;
    littleEndian = le === NIFTI1_HEADER_BYTES;
  } else if (le === NIFTI2_HEADER_BYTES || be === NIFTI2_HEADER_BYTES) {
    version = 2;
    littleEndian = le === NIFTI2_HEADER_BYTES;
  } else {
    throw new Error(`${name}: header field sizeof_hdr is ${le} (little-endian) / ${be} (big-endian); expected 348 (NIfTI-1) or 540 (NIfTI-2): not a NIfTI file`);
  }
  const headerBytes = version === 1 ? NIFTI1_HEADER_BYTES : NIFTI2_HEADER_BYTES;
  if (raw.length < headerBytes) {
    throw new Error(`${name}: truncated: ${raw.length} bytes, expected at least the ${headerBytes}-byte NIfTI-${version} header`);
  }
  const header = version === 1 ? parseNifti1(view, raw, littleEndian) : parseNifti2(view, raw, littleEndian);
  validateHeader(header, name, raw.length);
  return header;
}

function readString(raw: Uint8Array, offset: number, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) {
    const c = raw[offset + i];
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

function parseNifti1(v: DataView, raw: Uint8Array, le: boolean): NiftiHeader {
  const i16 = (o: number) => v.getInt16(o, le);
  const f32 = (o: number) => v.getFloat32(o, le);
  const dim: number[] = [];
  for (let i = 0; i < 8; i++) dim.push(i16(40 + 2 * i));
  const pixdim: number[] = [];
  for (let i = 0; i < 8; i++) pixdim.push(f32(76 + 4 * i));
  const row = (o: number) => [f32(o), f32(o + 4), f32(o + 8), f32(o + 12)];
  const datatype = i16(70);
  return {
    version: 1,
    littleEndian: le,
    sizeofHdr: v.getInt32(0, le),
    dimInfo: raw[39],
    dim,
    intentP1: f32(56),
    intentP2: f32(60),
    intentP3: f32(64),
    intentCode: i16(68),
    datatype,
    datatypeName: datatypeByCode(datatype)?.name ?? 'float32',
    bitpix: i16(72),
    sliceStart: i16(74),
    pixdim,
    voxOffset: f32(108),
    sclSlope: f32(112),
    sclInter: f32(116),
    sliceEnd: i16(120),
    sliceCode: raw[122],
    xyztUnits: raw[123],
    calMax: f32(124),
    calMin: f32(128),
    sliceDuration: f32(132),
    toffset: f32(136),
    descrip: readString(raw, 148, 80),
    auxFile: readString(raw, 228, 24),
    qformCode: i16(252),
    sformCode: i16(254),
    quaternB: f32(256),
    quaternC: f32(260),
    quaternD: f32(264),
    qoffsetX: f32(268),
    qoffsetY: f32(272),
    qoffsetZ: f32(276),
    srowX: row(280),
    srowY: row(296),
    srowZ: row(312),
    intentName: readString(raw, 328, 16),
    magic: readString(raw, 344, 4),
    volumeCount: 1,
  };
}

function parseNifti2(v: DataView, raw: Uint8Array, le: boolean): NiftiHeader {
  const i64 = (o: number) => Number(v.getBigInt64(o, le));
  const f64 = (o: number) => v.getFloat64(o, le);
  const i32 = (o: number) => v.getInt32(o, le);
  const dim: number[] = [];
  for (let i = 0; i < 8; i++) dim.push(i64(16 + 8 * i));
  const pixdim: number[] = [];
  for (let i = 0; i < 8; i++) pixdim.push(f64(104 + 8 * i));
  const row = (o: number) => [f64(o), f64(o + 8), f64(o + 16), f64(o + 24)];
  const datatype = v.getInt16(12, le);
  return {
    version: 2,
    littleEndian: le,
    sizeofHdr: i32(0),
    dimInfo: raw[524],
    dim,
    intentP1: f64(80),
    intentP2: f64(88),
    intentP3: f64(96),
    intentCode: i32(504),
    datatype,
    datatypeName: datatypeByCode(datatype)?.name ?? 'float32',
    bitpix: v.getInt16(14, le),
    sliceStart: i64(224),
    pixdim,
    voxOffset: i64(168),
    sclSlope: f64(176),
    sclInter: f64(184),
    sliceEnd: i64(232),
    sliceCode: i32(496),
    xyztUnits: i32(500),
    calMax: f64(192),
    calMin: f64(200),
    sliceDuration: f64(208),
    toffset: f64(216),
    descrip: readString(raw, 240, 80),
    auxFile: readString(raw, 320, 24),
    qformCode: i32(344),
    sformCode: i32(348),
    quaternB: f64(352),
    quaternC: f64(360),
    quaternD: f64(368),
    qoffsetX: f64(376),
    qoffsetY: f64(384),
    qoffsetZ: f64(392),
    srowX: row(400),
    srowY: row(432),
    srowZ: row(464),
    intentName: readString(raw, 508, 16),
    magic: readString(raw, 4, 3),
    volumeCount: 1,
  };
}

function validateHeader(h: NiftiHeader, name: string, fileLength: number): void {
  const expectedMagic = h.version === 1 ? 'n+1' : 'n+2';
  if (h.magic !== expectedMagic) {
    const hint = h.magic === 'ni1' || h.magic === 'ni2' ? ' (a separate .hdr/.img pair; only single-file .nii is supported)' : '';
    throw new Error(`${name}: header field magic is ${JSON.stringify(h.magic)}; expected ${JSON.stringify(expectedMagic)}${hint}`);
  }
  const ndim = h.dim[0];
  if (!Number.isInteger(ndim) || ndim < 1 || ndim > 7) {
    throw new Error(`${name}: header field dim[0] is ${ndim}; expected 1..7`);
  }
  for (let i = 1; i <= ndim; i++) {
    if (!Number.isInteger(h.dim[i]) || h.dim[i] < 1) {
      throw new Error(`${name}: header field dim[${i}] is ${h.dim[i]}; expected a positive integer`);
    }
  }
  // Dimensions beyond dim[0] are ignored by the standard; normalise them to 1 so shape math is simple.
  for (let i = ndim + 1; i < 8; i++) h.dim[i] = 1;
  let volumes = 1;
  for (let i = 4; i < 8; i++) volumes *= h.dim[i];
  h.volumeCount = volumes;
  const dt = datatypeByCode(h.datatype);
  if (!dt) {
    throw new Error(`${name}: header field datatype is ${h.datatype}; expected one of ${DATATYPES.map((d) => `${d.code} (${d.name})`).join(', ')}`);
  }
  if (h.bitpix !== dt.bytes * 8) {
    throw new Error(`${name}: header field bitpix is ${h.bitpix}; expected ${dt.bytes * 8} for datatype ${dt.name}`);
  }
  const minOffset = h.version === 1 ? NIFTI1_HEADER_BYTES : NIFTI2_HEADER_BYTES;
  if (!Number.isFinite(h.voxOffset) || h.voxOffset < minOffset || h.voxOffset !== Math.floor(h.voxOffset)) {
    throw new Error(`${name}: header field vox_offset is ${h.voxOffset}; expected an integer >= ${minOffset}`);
  }
  if (h.voxOffset > fileLength) {
    throw new Error(`${name}: truncated: vox_offset is ${h.voxOffset} but the file has only ${fileLength} bytes`);
  }
  // Voxel sizes on the image's own axes drive resampling; 0, negative or NaN would silently distort it.
  for (let i = 1; i <= Math.min(3, ndim); i++) {
    const p = h.pixdim[i];
    if (!(p > 0 && Number.isFinite(p))) {
      throw new Error(`${name}: header field pixdim[${i}] (voxel size along axis ${'xyz'[i - 1]}) is ${p}; expected a positive finite size in mm`);
    }
  }
}

function decodeVoxels(raw: Uint8Array, start: number, count: number, dt: DatatypeInfo, littleEndian: boolean): Float32Array {
  const out = new Float32Array(count);
  const absolute = raw.byteOffset + start;
  const hostLittle = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  // Fast path: a typed-array view straight onto the file bytes (no copy) when alignment and byte order allow.
  if (littleEndian === hostLittle || dt.bytes === 1) {
    if (absolute % dt.bytes === 0) {
      // TypedArray.set converts element types natively, several times faster than a JS loop.
      out.set(typedView(raw.buffer, absolute, count, dt.name));
      return out;
    }
  }
  const dv = new DataView(raw.buffer, absolute, count * dt.bytes);
  const le = littleEndian;
  switch (dt.name) {
    case 'uint8': for (let i = 0; i < count; i++) out[i] = dv.getUint8(i); break;
    case 'int8': for (let i = 0; i < count; i++) out[i] = dv.getInt8(i); break;
    case 'int16': for (let i = 0; i < count; i++) out[i] = dv.getInt16(2 * i, le); break;
    case 'uint16': for (let i = 0; i < count; i++) out[i] = dv.getUint16(2 * i, le); break;
    case 'int32': for (let i = 0; i < count; i++) out[i] = dv.getInt32(4 * i, le); break;
    case 'uint32': for (let i = 0; i < count; i++) out[i] = dv.getUint32(4 * i, le); break;
    case 'float32': for (let i = 0; i < count; i++) out[i] = dv.getFloat32(4 * i, le); break;
    case 'float64': for (let i = 0; i < count; i++) out[i] = dv.getFloat64(8 * i, le); break;
  }
  return out;
}

type NumericArray = Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;

function typedView(buffer: ArrayBufferLike, byteOffset: number, length: number, name: NiftiDatatypeName): NumericArray {
  switch (name) {
    case 'uint8': return new Uint8Array(buffer, byteOffset, length);
    case 'int8': return new Int8Array(buffer, byteOffset, length);
    case 'int16': return new Int16Array(buffer, byteOffset, length);
    case 'uint16': return new Uint16Array(buffer, byteOffset, length);
    case 'int32': return new Int32Array(buffer, byteOffset, length);
    case 'uint32': return new Uint32Array(buffer, byteOffset, length);
    case 'float32': return new Float32Array(buffer, byteOffset, length);
    case 'float64': return new Float64Array(buffer, byteOffset, length);
  }
}

// ---------------------------------------------------------------------------------------------
// Geometry

/** The voxel-to-world affine the standard prescribes: sform if set, else qform, else pixdim scaling. */
export function affineFromHeader(h: NiftiHeader): number[] {
  if (h.sformCode > 0) {
    return [...h.srowX, ...h.srowY, ...h.srowZ, 0, 0, 0, 1];
  }
  if (h.qformCode > 0) {
    return affineFromQuaternion(h.quaternB, h.quaternC, h.quaternD, h.qoffsetX, h.qoffsetY, h.qoffsetZ, h.pixdim);
  }
  // Method 1 of the standard (ANALYZE compatibility): plain scaling, no origin.
  return [h.pixdim[1] || 1, 0, 0, 0, 0, h.pixdim[2] || 1, 0, 0, 0, 0, h.pixdim[3] || 1, 0, 0, 0, 0, 1];
}

/** qform method 2 of the NIfTI-1 standard (same numerics as nifti1_io's quatern_to_mat44). */
export function affineFromQuaternion(b: number, c: number, d: number, qx: number, qy: number, qz: number, pixdim: readonly number[]): number[] {
  let a = 1 - (b * b + c * c + d * d);
  if (a < 1e-7) {
    // Numerically a 180-degree rotation: renormalise (b, c, d) and take a = 0.
    const s = 1 / Math.sqrt(b * b + c * c + d * d);
    b *= s;
    c *= s;
    d *= s;
    a = 0;
  } else {
    a = Math.sqrt(a);
  }
  const dx = pixdim[1] > 0 ? pixdim[1] : 1;
  const dy = pixdim[2] > 0 ? pixdim[2] : 1;
  let dz = pixdim[3] > 0 ? pixdim[3] : 1;
  const qfac = pixdim[0] < 0 ? -1 : 1;
  dz *= qfac;
  const r11 = a * a + b * b - c * c - d * d;
  const r12 = 2 * (b * c - a * d);
  const r13 = 2 * (b * d + a * c);
  const r21 = 2 * (b * c + a * d);
  const r22 = a * a + c * c - b * b - d * d;
  const r23 = 2 * (c * d - a * b);
  const r31 = 2 * (b * d - a * c);
  const r32 = 2 * (c * d + a * b);
  const r33 = a * a + d * d - c * c - b * b;
  return [r11 * dx, r12 * dy, r13 * dz, qx, r21 * dx, r22 * dy, r23 * dz, qy, r31 * dx, r32 * dy, r33 * dz, qz, 0, 0, 0, 1];
}

interface Quaternion {
  b: number;
  c: number;
  d: number;
  qfac: number;
  spacing: XYZ;
}

/**
 * Inverse of affineFromQuaternion for affines whose columns are orthogonal (the common case);
 * returns undefined for sheared affines, which a qform cannot represent.
 */
export function quaternionFromAffine(affine: readonly number[]): Quaternion | undefined {
  const col = (j: number) => [affine[j], affine[4 + j], affine[8 + j]];
  const cols = [col(0), col(1), col(2)];
  const norms = cols.map((c) => Math.hypot(c[0], c[1], c[2]));
  if (norms.some((n) => !(n > 0))) return undefined;
  const u = cols.map((c, j) => c.map((x) => x / norms[j]));
  const dot = (p: number[], q: number[]) => p[0] * q[0] + p[1] * q[1] + p[2] * q[2];
  if (Math.abs(dot(u[0], u[1])) > 1e-4 || Math.abs(dot(u[0], u[2])) > 1e-4 || Math.abs(dot(u[1], u[2])) > 1e-4) return undefined;
  const det =
    u[0][0] * (u[1][1] * u[2][2] - u[2][1] * u[1][2]) - u[1][0] * (u[0][1] * u[2][2] - u[2][1] * u[0][2]) + u[2][0] * (u[0][1] * u[1][2] - u[1][1] * u[0][2]);
  const qfac = det < 0 ? -1 : 1;
  if (qfac < 0) u[2] = u[2].map((x) => -x);
  // Rotation matrix R[i][j] = u[j][i]; standard matrix-to-quaternion conversion, as in nifti1_io.
  const r11 = u[0][0], r12 = u[1][0], r13 = u[2][0];
  const r21 = u[0][1], r22 = u[1][1], r23 = u[2][1];
  const r31 = u[0][2], r32 = u[1][2], r33 = u[2][2];
  let a = r11 + r22 + r33 + 1;
  let b: number, c: number, d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (r32 - r23)) / a;
    c = (0.25 * (r13 - r31)) / a;
    d = (0.25 * (r21 - r12)) / a;
  } else {
    const xd = 1 + r11 - (r22 + r33);
    const yd = 1 + r22 - (r11 + r33);
    const zd = 1 + r33 - (r11 + r22);
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd);
      c = (0.25 * (r12 + r21)) / b;
      d = (0.25 * (r13 + r31)) / b;
      a = (0.25 * (r32 - r23)) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd);
      b = (0.25 * (r12 + r21)) / c;
      d = (0.25 * (r23 + r32)) / c;
      a = (0.25 * (r13 - r31)) / c;
    } else {
      d = 0.5 * Math.sqrt(zd);
      b = (0.25 * (r13 + r31)) / d;
      c = (0.25 * (r23 + r32)) / d;
      a = (0.25 * (r21 - r12)) / d;
    }
    if (a < 0) {
      b = -b;
      c = -c;
      d = -d;
    }
  }
  return { b, c, d, qfac, spacing: [norms[0], norms[1], norms[2]] };
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface WriteNiftiOptions {
  /** Storage type; integer types round to nearest and throw on values outside their range. */
  datatype: NiftiDatatypeName;
  /** gzip the result (for `.nii.gz`). Default false. */
  gzip?: boolean;
  /** Stored value = round((value - sclInter) / sclSlope); default slope 1, intercept 0. */
  sclSlope?: number;
  sclInter?: number;
  /** Text for the descrip field (80 bytes max). Default: the source header's, else "tgnet". */
  description?: string;
  /** Name used in error messages. */
  name?: string;
}

function affinesClose(p: readonly number[], q: readonly number[], tol = 1e-4): boolean {
  for (let i = 0; i < 16; i++) if (Math.abs(p[i] - q[i]) > tol * Math.max(1, Math.abs(p[i]))) return false;
  return true;
}

/**
 * Encodes a 3D volume as a single-file NIfTI-1 (`n+1`, little-endian, vox_offset 352).
 * Geometry: when the volume carries a source header whose geometry still matches the volume's
 * affine and spacing, its pixdim, qform and sform fields are copied unchanged (so a read-write
 * round trip is exact); otherwise sform is written from `volume.affine` and qform derived from it.
 */
/**
 * What writeNifti takes: a volume whose voxels may also be a Uint8Array or Int16Array, so a label map of a
 * full-size CT is written from its bytes instead of a float32 copy four times its size.
 */
export type NiftiWritable = Omit<NiftiVolume, 'data'> & { data: Float32Array | Uint8Array | Int16Array };

export function writeNifti(volume: NiftiWritable, options: WriteNiftiOptions): Uint8Array {
  const name = options.name ?? 'writeNifti';
  const dt = datatypeByName(options.datatype);
  if (!dt) throw new Error(`${name}: option datatype is ${JSON.stringify(options.datatype)}; expected one of ${DATATYPES.map((d) => d.name).join(', ')}`);
  const [nx, ny, nz] = volume.shape;
  for (const [i, n] of volume.shape.entries()) {
    if (!Number.isInteger(n) || n < 1 || n > 32767) throw new Error(`${name}: shape[${i}] is ${n}; expected an integer in [1, 32767] (NIfTI-1 dims are int16)`);
  }
  for (const [i, s] of volume.spacing.entries()) {
    // The reader refuses such sizes, so writing one would make a file nothing here can read back.
    if (!(s > 0 && Number.isFinite(s))) throw new Error(`${name}: spacing[${i}] is ${s}; expected a positive finite voxel size in mm`);
  }
  const voxels = nx * ny * nz;
  if (volume.data.length !== voxels) {
    throw new Error(`${name}: data length is ${volume.data.length}; expected ${voxels} for shape ${volume.shape.join('x')}`);
  }
  if (!Array.isArray(volume.affine) || volume.affine.length !== 16) {
    throw new Error(`${name}: affine has ${(volume.affine as unknown[] | undefined)?.length} entries; expected 16 (row-major 4x4)`);
  }
  if (!volume.affine.every(Number.isFinite) || isSingular(volume.affine)) {
    throw new Error(`${name}: affine [${volume.affine.slice(0, 12).join(', ')}] is non-finite or singular; expected finite numbers and three independent voxel axes (the reader refuses anything else)`);
  }
  const slope = options.sclSlope ?? 1;
  const inter = options.sclInter ?? 0;
  if (!(slope !== 0 && Number.isFinite(slope)) || !Number.isFinite(inter)) {
    throw new Error(`${name}: sclSlope ${slope} / sclInter ${inter}; expected a finite non-zero slope and a finite intercept`);
  }

  const voxOffset = 352;
  const out = new Uint8Array(voxOffset + voxels * dt.bytes);
  const v = new DataView(out.buffer);
  const le = true;
  const src = volume.header;
  v.setInt32(0, NIFTI1_HEADER_BYTES, le);
  out[38] = 'r'.charCodeAt(0); // "regular", as ANALYZE readers expect
  out[39] = src?.dimInfo ?? 0;
  const dims = [3, nx, ny, nz, 1, 1, 1, 1];
  dims.forEach((d, i) => v.setInt16(40 + 2 * i, d, le));
  v.setInt16(68, src?.intentCode ?? 0, le);
  v.setFloat32(56, src?.intentP1 ?? 0, le);
  v.setFloat32(60, src?.intentP2 ?? 0, le);
  v.setFloat32(64, src?.intentP3 ?? 0, le);
  v.setInt16(70, dt.code, le);
  v.setInt16(72, dt.bytes * 8, le);

  // Geometry
  const sourceAffine = src ? affineFromHeader(src) : undefined;
  const sourceSpacing = src ? [Math.abs(src.pixdim[1]), Math.abs(src.pixdim[2]), Math.abs(src.pixdim[3])] : undefined;
  const keepSource =
    src !== undefined &&
    sourceAffine !== undefined &&
    sourceSpacing !== undefined &&
    affinesClose(sourceAffine, volume.affine) &&
    sourceSpacing.every((s, i) => Math.abs(s - volume.spacing[i]) <= 1e-5 * Math.max(1, s));
  const pixdim = [1, volume.spacing[0], volume.spacing[1], volume.spacing[2], 0, 0, 0, 0];
  let qformCode = 1;
  let sformCode = 1;
  let quat = { b: 0, c: 0, d: 0, x: volume.affine[3], y: volume.affine[7], z: volume.affine[11] };
  let srow = [volume.affine.slice(0, 4), volume.affine.slice(4, 8), volume.affine.slice(8, 12)];
  if (keepSource && src) {
    for (let i = 0; i < 8; i++) pixdim[i] = src.pixdim[i];
    qformCode = src.qformCode;
    sformCode = src.sformCode;
    quat = { b: src.quaternB, c: src.quaternC, d: src.quaternD, x: src.qoffsetX, y: src.qoffsetY, z: src.qoffsetZ };
    srow = [src.srowX, src.srowY, src.srowZ];
    if (sformCode <= 0 && qformCode <= 0) {
      // Source had only pixdim scaling; keep it that way.
    }
  } else {
    const q = quaternionFromAffine(volume.affine);
    if (src) {
      // Keep the source's coordinate-system codes (scanner vs aligned) even though the geometry changed.
      qformCode = src.qformCode > 0 ? src.qformCode : 1;
      sformCode = src.sformCode > 0 ? src.sformCode : 1;
      pixdim[4] = src.pixdim[4];
    }
    if (q) {
      quat = { b: q.b, c: q.c, d: q.d, x: volume.affine[3], y: volume.affine[7], z: volume.affine[11] };
      pixdim[0] = q.qfac;
    } else {
      qformCode = 0; // sheared affine: only the sform can hold it
    }
  }
  pixdim.forEach((p, i) => v.setFloat32(76 + 4 * i, p, le));
  v.setFloat32(108, voxOffset, le);
  const storeScaling = slope !== 1 || inter !== 0;
  v.setFloat32(112, storeScaling ? slope : 1, le);
  v.setFloat32(116, storeScaling ? inter : 0, le);
  out[123] = src?.xyztUnits ?? 2 + 8; // mm + seconds
  const description = (options.description ?? src?.descrip ?? 'tgnet').slice(0, 79);
  for (let i = 0; i < description.length; i++) out[148 + i] = description.charCodeAt(i) & 0x7f;
  v.setInt16(252, qformCode, le);
  v.setInt16(254, sformCode, le);
  v.setFloat32(256, quat.b, le);
  v.setFloat32(260, quat.c, le);
  v.setFloat32(264, quat.d, le);
  v.setFloat32(268, quat.x, le);
  v.setFloat32(272, quat.y, le);
  v.setFloat32(276, quat.z, le);
  srow.forEach((r, ri) => r.forEach((x, ci) => v.setFloat32(280 + 16 * ri + 4 * ci, x, le)));
  const intentName = (src?.intentName ?? '').slice(0, 15);
  for (let i = 0; i < intentName.length; i++) out[328 + i] = intentName.charCodeAt(i) & 0x7f;
  out[344] = 'n'.charCodeAt(0);
  out[345] = '+'.charCodeAt(0);
  out[346] = '1'.charCodeAt(0);
  out[347] = 0;
  // Bytes 348..351: the extension flag, all zero = no extensions.

  encodeVoxels(volume.data, out, voxOffset, dt, slope, inter, name);
  // mtime 0: no timestamp in the gzip header, so the same volume always gives the same bytes.
  return options.gzip ? gzipSync(out, { level: 6, mtime: 0 }) : out;
}

function encodeVoxels(data: Float32Array | Uint8Array | Int16Array, out: Uint8Array, offset: number, dt: DatatypeInfo, slope: number, inter: number, name: string): void {
  const count = data.length;
  // offset 352 is 8-aligned and `out` owns its buffer, so a typed view always works on little-endian hosts.
  const hostLittle = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  const scaled = slope !== 1 || inter !== 0;
  if (hostLittle) {
    const view = typedView(out.buffer, offset, count, dt.name);
    for (let i = 0; i < count; i++) {
      let x = data[i];
      if (scaled) x = (x - inter) / slope;
      if (dt.integer) {
        x = Math.round(x);
        if (!(x >= dt.min && x <= dt.max)) {
          throw new Error(`${name}: voxel ${i} has value ${data[i]}, which does not fit datatype ${dt.name} [${dt.min}, ${dt.max}]${scaled ? ` after scaling (slope ${slope}, intercept ${inter})` : ''}`);
        }
      }
      view[i] = x;
    }
    return;
  }
  throw new Error(`${name}: writing NIfTI on a big-endian host is not supported`);
}
