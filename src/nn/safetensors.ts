/**
 * safetensors read/write (https://github.com/huggingface/safetensors): an 8-byte little-endian header length,
 * a JSON header `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__"?: { str: str } }`
 * (padded with spaces to a multiple of 8 bytes by writers), then the raw little-endian row-major data.
 *
 * Reading copies every tensor into its own (aligned) typed array. F16 and BF16 are returned as raw bits
 * (Uint16Array); BOOL as Uint8Array. Errors name the source, the tensor, its offsets and the file length.
 */

export type SafetensorsDtype =
  | 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

export type SafetensorsData =
  | Float64Array | Float32Array | BigInt64Array | BigUint64Array | Int32Array | Uint32Array | Int16Array
  | Uint16Array | Int8Array | Uint8Array;

export interface SafeTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: SafetensorsData;
}

/** A tensor to write: `dtype` may be left out and is then inferred from the typed array (not for F16/BF16/BOOL). */
export interface SafeTensorInput {
  dtype?: SafetensorsDtype;
  shape: readonly number[];
  data: SafetensorsData;
}

interface DtypeInfo {
  bytes: number;
  make: (buf: ArrayBuffer) => SafetensorsData;
  ctor: string;
}

const DTYPES: Record<SafetensorsDtype, DtypeInfo> = {
  F64: { bytes: 8, make: (b) => new Float64Array(b), ctor: 'Float64Array' },
  F32: { bytes: 4, make: (b) => new Float32Array(b), ctor: 'Float32Array' },
  F16: { bytes: 2, make: (b) => new Uint16Array(b), ctor: 'Uint16Array' },
  BF16: { bytes: 2, make: (b) => new Uint16Array(b), ctor: 'Uint16Array' },
  I64: { bytes: 8, make: (b) => new BigInt64Array(b), ctor: 'BigInt64Array' },
  I32: { bytes: 4, make: (b) => new Int32Array(b), ctor: 'Int32Array' },
  I16: { bytes: 2, make: (b) => new Int16Array(b), ctor: 'Int16Array' },
  I8: { bytes: 1, make: (b) => new Int8Array(b), ctor: 'Int8Array' },
  U64: { bytes: 8, make: (b) => new BigUint64Array(b), ctor: 'BigUint64Array' },
  U32: { bytes: 4, make: (b) => new Uint32Array(b), ctor: 'Uint32Array' },
  U16: { bytes: 2, make: (b) => new Uint16Array(b), ctor: 'Uint16Array' },
  U8: { bytes: 1, make: (b) => new Uint8Array(b), ctor: 'Uint8Array' },
  BOOL: { bytes: 1, make: (b) => new Uint8Array(b), ctor: 'Uint8Array' },
};

/** dtype inferred from a typed array when the caller gives none. */
const INFER: Record<string, SafetensorsDtype> = {
  Float64Array: 'F64', Float32Array: 'F32', BigInt64Array: 'I64', BigUint64Array: 'U64', Int32Array: 'I32',
  Uint32Array: 'U32', Int16Array: 'I16', Uint16Array: 'U16', Int8Array: 'I8', Uint8Array: 'U8',
};

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export interface ReadSafetensorsOptions {
  /** Name of the file or source, used in error messages. */
  source?: string;
}

export interface SafetensorsFile {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

/** Parses a safetensors file into tensors (in header order) and its `__metadata__`. */
export function readSafetensorsFile(bytes: Uint8Array, options: ReadSafetensorsOptions = {}): SafetensorsFile {
  const src = `safetensors ${options.source ?? '(bytes)'}`;
  if (!LITTLE_ENDIAN) throw new Error(`${src}: big-endian hosts are not supported`);
  const len = bytes.byteLength;
  if (len < 8) throw new RangeError(`${src}: file of ${len} bytes is too short for the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(len - 8)) {
    throw new RangeError(`${src}: header length ${headerLen} exceeds the ${len - 8} bytes after the length field (file length ${len}); truncated or not a safetensors file`);
  }
  const hl = Number(headerLen);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + hl)));
  } catch (e) {
    throw new SyntaxError(`${src}: header (bytes 8..${8 + hl}) is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new TypeError(`${src}: header must be a JSON object`);
  }
  const dataStart = 8 + hl;
  const dataLen = len - dataStart;
  const entries: HeaderEntry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        throw new TypeError(`${src}: __metadata__ must be an object of strings, got ${describe(entry)}`);
      }
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') throw new TypeError(`${src}: __metadata__.${k} must be a string, got ${describe(v)}`);
      }
      metadata = { ...(entry as Record<string, string>) };
      continue;
    }
    const what = `${src}: tensor '${name}'`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new TypeError(`${what}: entry must be an object {dtype, shape, data_offsets}, got ${describe(entry)}`);
    }
    const { dtype, shape, data_offsets: offs } = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    // Own keys only: "toString" or "constructor" must not find Object.prototype members.
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPES, dtype)) {
      throw new TypeError(`${what}: unsupported dtype ${describe(dtype)}, expected one of ${Object.keys(DTYPES).join(', ')}`);
    }
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      throw new TypeError(`${what}: shape must be an array of non-negative integers, got ${describe(shape)}`);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || offs.some((d) => !Number.isSafeInteger(d) || d < 0) || offs[1] < offs[0]) {
      throw new TypeError(`${what}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${describe(offs)}`);
    }
    const info = DTYPES[dtype as SafetensorsDtype];
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    const [begin, end] = offs as [number, number];
    if (!Number.isSafeInteger(numel * info.bytes) || end - begin !== numel * info.bytes) {
      throw new RangeError(`${what}: data_offsets [${begin}, ${end}] span ${end - begin} bytes but ${dtype} [${shape.join(', ')}] needs ${numel * info.bytes}`);
    }
    if (end > dataLen) {
      throw new RangeError(
        `${what}: data_offsets [${begin}, ${end}] (file bytes ${dataStart + begin}..${dataStart + end}) run past the end of the data section of ${dataLen} bytes (file length ${len}); the file is truncated`,
      );
    }
    entries.push({ name, dtype: dtype as SafetensorsDtype, shape: [...(shape as number[])], begin, end });
  }
  checkContiguous(entries, src, dataLen, len);
  const tensors = new Map<string, SafeTensor>();
  for (const { name, dtype, shape, begin, end } of entries) {
    // A fresh, aligned copy: `bytes` may be a Node Buffer, whose slice() is a view into a shared pool.
    const copy = new Uint8Array(end - begin);
    copy.set(bytes.subarray(dataStart + begin, dataStart + end));
    tensors.set(name, { dtype, shape, data: DTYPES[dtype].make(copy.buffer) });
  }
  return { tensors, metadata };
}

/** A header value for an error message: "missing" for an absent field, else short JSON. */
function describe(value: unknown): string {
  if (value === undefined) return 'nothing (the field is missing)';
  let text: string;
  try {
    text = JSON.stringify(value);
  } catch {
    // Nesting deep enough to overflow the stack (JSON.parse accepts more than JSON.stringify can print).
    return `a deeply nested ${Array.isArray(value) ? 'array' : typeof value}`;
  }
  return text.length > 80 ? `${text.slice(0, 80)}...` : text;
}

interface HeaderEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * The format requires the tensors, taken in data_offsets order, to tile the data section exactly: no overlap
 * (two tensors sharing bytes), no gap, and nothing after the last one (as the reference implementation checks).
 */
function checkContiguous(entries: readonly HeaderEntry[], src: string, dataLen: number, fileLen: number): void {
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  let previous: HeaderEntry | undefined;
  for (const e of sorted) {
    if (e.begin !== expected) {
      const after = previous ? `tensor '${previous.name}' ends at ${expected}` : 'the data section starts at 0';
      const problem = e.begin < expected ? `overlaps tensor '${previous?.name}'` : `leaves a gap of ${e.begin - expected} bytes`;
      throw new RangeError(
        `${src}: tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] ${problem} (${after}); expected contiguous, non-overlapping data_offsets starting at ${expected}`,
      );
    }
    expected = e.end;
    previous = e;
  }
  if (expected !== dataLen) {
    throw new RangeError(
      `${src}: data_offsets end at ${expected} but the data section holds ${dataLen} bytes (file length ${fileLen}); expected the tensors to fill it exactly (trailing bytes, or a tensor missing from the header)`,
    );
  }
}

/** Parses a safetensors file into a map from tensor name to { dtype, shape, data }. */
export function readSafetensors(bytes: Uint8Array, options: ReadSafetensorsOptions = {}): Map<string, SafeTensor> {
  return readSafetensorsFile(bytes, options).tensors;
}

/**
 * Serialises tensors (a Map or a plain object, written in iteration order) to safetensors bytes. The header is
 * padded with spaces to a multiple of 8 bytes; `metadata` becomes `__metadata__`.
 */
export function writeSafetensors(
  tensors: Map<string, SafeTensorInput> | Record<string, SafeTensorInput>, metadata?: Record<string, string>,
): Uint8Array {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new TypeError(`writeSafetensors: metadata '${k}' must be a string`);
    }
    header.__metadata__ = metadata;
  }
  const blobs: Uint8Array[] = [];
  let off = 0;
  for (const [name, t] of entries) {
    const what = `writeSafetensors: tensor '${name}'`;
    if (name === '__metadata__') throw new RangeError(`${what}: the name is reserved`);
    const ctor = t.data?.constructor?.name ?? typeof t.data;
    const dtype = t.dtype ?? INFER[ctor];
    if (!dtype || !(dtype in DTYPES)) throw new TypeError(`${what}: cannot write data of type ${ctor} with dtype ${String(t.dtype)}`);
    const info = DTYPES[dtype];
    if (info.ctor !== ctor) throw new TypeError(`${what}: dtype ${dtype} needs a ${info.ctor}, got ${ctor}`);
    if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      throw new TypeError(`${what}: shape must be non-negative integers, got ${JSON.stringify(t.shape)}`);
    }
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length) {
      throw new RangeError(`${what}: shape [${t.shape.join(', ')}] has ${numel} elements but the data has ${t.data.length}`);
    }
    const b = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype, shape: [...t.shape], data_offsets: [off, off + b.byteLength] };
    blobs.push(b);
    off += b.byteLength;
  }
  let json = JSON.stringify(header);
  let hb = new TextEncoder().encode(json);
  const pad = (8 - (hb.byteLength % 8)) % 8;
  if (pad) {
    json += ' '.repeat(pad);
    hb = new TextEncoder().encode(json);
  }
  const out = new Uint8Array(8 + hb.byteLength + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.byteLength), true);
  out.set(hb, 8);
  let p = 8 + hb.byteLength;
  for (const b of blobs) {
    out.set(b, p);
    p += b.byteLength;
  }
  return out;
}
