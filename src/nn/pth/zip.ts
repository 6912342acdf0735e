/**
 * The zip container of PyTorch >= 1.6 checkpoints: stored (uncompressed) records, 64-byte aligned, ZIP64 when
 * large. The central directory is read here rather than by fflate's unzipSync because that copies every record,
 * checks no CRC and silently shortens a record cut off by truncation; a checkpoint's tensors are only trusted
 * once their CRC matches. Deflated records (a checkpoint re-zipped by hand) go through fflate's inflate, with
 * the output size bounded by deflate's maximum ratio over the compressed bytes present.
 */
import { inflateSync } from 'fflate';
import { PthFormatError } from './pickle.js';

export interface ZipRecord {
  name: string;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  /** Offset of the record's local header. */
  localOffset: number;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE, as zip). */
export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Deflate cannot expand data by more than about 1032:1; anything claiming more is lying about its size. */
const MAX_DEFLATE_RATIO = 1032;

export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}

/** The central directory: every record by name, sizes and offsets checked against the file. */
export function readZipDirectory(bytes: Uint8Array, where: string): Map<string, ZipRecord> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = bytes.length;
  const fail = (msg: string): never => { throw new PthFormatError(`${where}: zip ${msg}`); };
  const u16 = (o: number) => view.getUint16(o, true);
  const u32 = (o: number) => view.getUint32(o, true);
  const u64 = (o: number, field: string) => {
    const v = view.getBigUint64(o, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${field} is ${v}; expected a size below 2^53`);
    return Number(v);
  };
  // The end-of-central-directory record sits in the last 22 + 65535 (comment) bytes.
  let eocd = -1;
  for (let e = len - 22; e >= 0 && e >= len - 22 - 0xffff; e--) {
    if (u32(e) === 0x06054b50) { eocd = e; break; }
  }
  if (eocd < 0) fail(`end-of-central-directory record not found in the last ${Math.min(len, 22 + 0xffff)} bytes of ${len}; the file is truncated or not a zip`);
  let count = u16(eocd + 10);
  let dirSize = u32(eocd + 12);
  let dirOffset = u32(eocd + 16);
  if (count === 0xffff || dirSize === 0xffffffff || dirOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || u32(loc) !== 0x07064b50) fail('end record says ZIP64 but has no ZIP64 locator before it');
    const z = u64(loc + 8, 'ZIP64 end record offset');
    if (z + 56 > len || u32(z) !== 0x06064b50) fail(`ZIP64 end record at ${z} is missing or past the end (${len} bytes)`);
    count = u64(z + 32, 'record count');
    dirSize = u64(z + 40, 'central directory size');
    dirOffset = u64(z + 48, 'central directory offset');
  }
  if (dirOffset + dirSize > len) fail(`central directory [${dirOffset}, ${dirOffset + dirSize}) runs past the end of the ${len}-byte file; truncated`);
  // Each directory entry takes at least 46 bytes, which bounds the count by the file.
  if (count * 46 > dirSize) fail(`directory claims ${count} records in ${dirSize} bytes; expected at least 46 bytes each`);
  const records = new Map<string, ZipRecord>();
  let o = dirOffset;
  const decoder = new TextDecoder('utf-8', { fatal: true });
  for (let i = 0; i < count; i++) {
    if (o + 46 > dirOffset + dirSize || u32(o) !== 0x02014b50) fail(`central directory entry ${i} at ${o} is malformed`);
    const nameLen = u16(o + 28), extraLen = u16(o + 30), commentLen = u16(o + 32);
    if (o + 46 + nameLen + extraLen + commentLen > dirOffset + dirSize) fail(`central directory entry ${i} runs past the directory`);
    let name: string;
    try {
      name = decoder.decode(bytes.subarray(o + 46, o + 46 + nameLen));
    } catch {
      return fail(`entry ${i}'s name is not UTF-8`);
    }
    let compressedSize = u32(o + 20), size = u32(o + 24), localOffset = u32(o + 42);
    // ZIP64 extra field: the 64-bit values of exactly the fields set to 0xffffffff, in this order.
    for (let e = o + 46 + nameLen; e + 4 <= o + 46 + nameLen + extraLen;) {
      const id = u16(e), n = u16(e + 2);
      if (id === 0x0001) {
        let p = e + 4;
        if (size === 0xffffffff) { size = u64(p, `'${name}' size`); p += 8; }
        if (compressedSize === 0xffffffff) { compressedSize = u64(p, `'${name}' compressed size`); p += 8; }
        if (localOffset === 0xffffffff) { localOffset = u64(p, `'${name}' offset`); p += 8; }
        if (p > e + 4 + n) fail(`'${name}' ZIP64 extra field is shorter than the fields it replaces`);
      }
      e += 4 + n;
    }
    if (records.has(name)) fail(`record '${name}' appears twice`);
    records.set(name, { name, method: u16(o + 10), crc: u32(o + 16), compressedSize, size, localOffset });
    o += 46 + nameLen + extraLen + commentLen;
  }
  return records;
}

/** A record's bytes, CRC checked: a view into `bytes` when stored, a new array when deflated. */
export function readZipRecord(bytes: Uint8Array, record: ZipRecord, where: string): Uint8Array {
  const fail = (msg: string): never => { throw new PthFormatError(`${where}: zip record '${record.name}': ${msg}`); };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const o = record.localOffset;
  if (o + 30 > bytes.length || view.getUint32(o, true) !== 0x04034b50) fail(`local header at ${o} is missing or past the end (${bytes.length} bytes)`);
  // The local header's extra field differs from the directory's (torch pads it to align the data).
  const start = o + 30 + view.getUint16(o + 26, true) + view.getUint16(o + 28, true);
  const end = start + record.compressedSize;
  if (end > bytes.length) fail(`data [${start}, ${end}) runs past the end of the ${bytes.length}-byte file; truncated`);
  let data: Uint8Array;
  if (record.method === 0) {
    if (record.compressedSize !== record.size) fail(`stored with size ${record.size} but ${record.compressedSize} bytes`);
    data = bytes.subarray(start, end);
  } else if (record.method === 8) {
    if (record.size > MAX_DEFLATE_RATIO * record.compressedSize + 64) {
      fail(`claims ${record.size} bytes from ${record.compressedSize} compressed; deflate cannot expand that much`);
    }
    try {
      data = inflateSync(bytes.subarray(start, end), { out: new Uint8Array(record.size) });
    } catch (e) {
      return fail(`inflate failed (${(e as Error).message})`);
    }
    if (data.length !== record.size) fail(`inflated to ${data.length} bytes; the directory says ${record.size}`);
  } else {
    return fail(`compression method ${record.method}; expected 0 (stored, as torch.save writes) or 8 (deflate)`);
  }
  const crc = crc32(data);
  if (crc !== record.crc) fail(`CRC-32 is ${crc.toString(16).padStart(8, '0')}, the directory says ${record.crc.toString(16).padStart(8, '0')}; the file is corrupt`);
  return data;
}

/**
 * A stored zip of `records` in order, each record's data aligned to 64 bytes as torch.save aligns them (so a
 * loader may map them in place). No ZIP64: refused past 4 GiB.
 */
export function writeZip(records: readonly { name: string; data: Uint8Array }[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const { name, data } of records) {
    const nameBytes = enc.encode(name);
    const headerEnd = offset + 30 + nameBytes.length;
    // Padding in an extra field (id 'FB', as torch's writer uses) puts the data on a 64-byte boundary.
    const pad = (64 - ((headerEnd + 4) % 64)) % 64;
    const extraLen = 4 + pad;
    const crc = crc32(data);
    if (offset + 30 + nameBytes.length + extraLen + data.length > 0xfffffffe) throw new RangeError(`writeZip: record '${name}' ends past 4 GiB; ZIP64 is not written`);
    const local = new Uint8Array(30 + nameBytes.length + extraLen);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, data.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, nameBytes.length, true);
    lv.setUint16(28, extraLen, true);
    local.set(nameBytes, 30);
    lv.setUint16(30 + nameBytes.length, 0x4246, true);
    lv.setUint16(32 + nameBytes.length, pad, true);
    const entry = new Uint8Array(46 + nameBytes.length);
    const cv = new DataView(entry.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, data.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, nameBytes.length, true);
    cv.setUint32(42, offset, true);
    entry.set(nameBytes, 46);
    parts.push(local, data);
    central.push(entry);
    offset += local.length + data.length;
  }
  const dirSize = central.reduce((a, c) => a + c.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, records.length, true);
  ev.setUint16(10, records.length, true);
  ev.setUint32(12, dirSize, true);
  ev.setUint32(16, offset, true);
  const out = new Uint8Array(offset + dirSize + 22);
  let p = 0;
  for (const part of [...parts, ...central, end]) { out.set(part, p); p += part.length; }
  return out;
}
