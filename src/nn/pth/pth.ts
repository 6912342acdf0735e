/**
 * PyTorch checkpoints (`torch.save`, `.pth`/`.pt`) read without Python, in Node and the browser.
 *
 * Two containers: the zip of PyTorch >= 1.6 (`<archive>/data.pkl`, the storages as `<archive>/data/<key>`) and
 * the legacy stream of PyTorch 1.4-1.5 (`_use_new_zipfile_serialization=False`): five pickles or raw blocks in a
 * row: a magic number, the protocol version, system info, the object itself, the storage keys, then each storage
 * as an int64 element count and its raw bytes. The object's pickle goes through the restricted unpickler
 * (pickle.ts); tensors come out as lazy views (`PthTensor`: storage, offset, shape, stride) whose bounds are
 * checked against the bytes present before anything is allocated for them.
 */
import { PickleDict, PickleExternal, PickleGlobal, PickleTuple, PthFormatError, unpickle, type PickleKey, type PickleValue, type UnpickleHooks } from './pickle.js';
import { isZip, readZipDirectory, readZipRecord } from './zip.js';

export type PthDtype = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'uint8' | 'bool';

const STORAGE_DTYPES: Readonly<Record<string, { dtype: PthDtype; bytes: number }>> = {
  FloatStorage: { dtype: 'float32', bytes: 4 }, HalfStorage: { dtype: 'float16', bytes: 2 },
  BFloat16Storage: { dtype: 'bfloat16', bytes: 2 }, DoubleStorage: { dtype: 'float64', bytes: 8 },
  LongStorage: { dtype: 'int64', bytes: 8 }, IntStorage: { dtype: 'int32', bytes: 4 },
  ByteStorage: { dtype: 'uint8', bytes: 1 }, BoolStorage: { dtype: 'bool', bytes: 1 },
};

/** One storage of the file: its bytes are located (and, in a zip, CRC-checked) only when a tensor is read. */
export class PthStorage extends PickleExternal {
  constructor(
    readonly key: string,
    readonly dtype: PthDtype,
    readonly elementBytes: number,
    /** Elements, as the persistent id declares them (checked against the bytes present). */
    readonly numel: number,
    private readonly load: () => Uint8Array,
  ) { super(); }

  private cached: Uint8Array | undefined;

  /** The storage's raw little-endian bytes (a view into the file when possible). */
  bytes(): Uint8Array {
    this.cached ??= this.load();
    return this.cached;
  }

  describe(): string { return `storage '${this.key}' (${this.dtype}, ${this.numel} elements)`; }
}

/** A tensor as the file describes it: a strided view of a storage, not yet read. */
export class PthTensor extends PickleExternal {
  constructor(
    readonly storage: PthStorage,
    readonly storageOffset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
    readonly requiresGrad: boolean,
  ) { super(); }

  get dtype(): PthDtype { return this.storage.dtype; }

  get numel(): number { return this.shape.reduce((a, b) => a * b, 1); }

  describe(): string { return `a ${this.dtype} tensor [${this.shape.join(', ')}]`; }

  /** Every element, in row-major order, converted to float32 (int64 beyond 2^24 loses precision, as torch's .float()). */
  toFloat32(): Float32Array {
    const n = this.numel;
    const out = new Float32Array(n);
    if (n === 0) return out;
    const raw = this.storage.bytes();
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const eb = this.storage.elementBytes;
    const read = ELEMENT_READERS[this.dtype];
    const contiguous = isContiguous(this.shape, this.stride);
    if (contiguous && this.dtype === 'float32' && (raw.byteOffset + this.storageOffset * 4) % 4 === 0) {
      out.set(new Float32Array(raw.buffer, raw.byteOffset + this.storageOffset * 4, n));
      return out;
    }
    if (contiguous) {
      for (let i = 0, b = this.storageOffset * eb; i < n; i++, b += eb) out[i] = read(view, b);
      return out;
    }
    // Strided: walk the index like an odometer, innermost dimension fastest.
    const rank = this.shape.length;
    const idx = new Array<number>(rank).fill(0);
    let e = this.storageOffset;
    for (let i = 0; i < n; i++) {
      out[i] = read(view, e * eb);
      for (let d = rank - 1; d >= 0; d--) {
        e += this.stride[d];
        if (++idx[d] < this.shape[d]) break;
        e -= this.stride[d] * this.shape[d];
        idx[d] = 0;
      }
    }
    return out;
  }

  /** Visits the storage element index of every element (for overlap checks). */
  forEachElement(visit: (storageIndex: number) => void): void {
    const n = this.numel;
    const rank = this.shape.length;
    const idx = new Array<number>(rank).fill(0);
    let e = this.storageOffset;
    for (let i = 0; i < n; i++) {
      visit(e);
      for (let d = rank - 1; d >= 0; d--) {
        e += this.stride[d];
        if (++idx[d] < this.shape[d]) break;
        e -= this.stride[d] * this.shape[d];
        idx[d] = 0;
      }
    }
  }
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

const BF16_SCRATCH = new DataView(new ArrayBuffer(4));

const ELEMENT_READERS: Readonly<Record<PthDtype, (v: DataView, b: number) => number>> = {
  float32: (v, b) => v.getFloat32(b, true),
  float16: (v, b) => halfToFloat(v.getUint16(b, true)),
  bfloat16: (v, b) => { BF16_SCRATCH.setUint32(0, v.getUint16(b, true) << 16); return BF16_SCRATCH.getFloat32(0); },
  float64: (v, b) => v.getFloat64(b, true),
  int64: (v, b) => Number(v.getBigInt64(b, true)),
  int32: (v, b) => v.getInt32(b, true),
  uint8: (v, b) => v.getUint8(b),
  bool: (v, b) => (v.getUint8(b) ? 1 : 0),
};

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d];
  }
  return true;
}

export interface PthCheckpoint {
  source: string;
  format: 'zip' | 'legacy';
  /** Pickle protocol of the object's pickle. */
  protocol: number;
  /** The saved object: dicts, lists, tuples, numbers, strings and PthTensor views. */
  root: PickleValue;
  /** Every tensor in the file, in pickle order. */
  tensors: PthTensor[];
  /** Extra text records of a zip checkpoint (`<archive>/extra/<name>`), e.g. tgnet's `tgnet.json`. */
  extra: Map<string, string>;
}

export interface ReadPthOptions {
  /** Name of the file, used in every error message. */
  source?: string;
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL_VERSION = 1001;

const int = (v: PickleValue, what: string, where: string, min = 0): number => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new PthFormatError(`${where}: ${what} is ${typeof v === 'string' ? JSON.stringify(v) : String(v)}; expected an integer >= ${min}`);
  }
  return v;
};

const intTuple = (v: PickleValue, what: string, where: string): number[] => {
  if (!(v instanceof PickleTuple)) throw new PthFormatError(`${where}: ${what} is not a tuple; expected a tuple of integers`);
  return v.items.map((x, i) => int(x, `${what}[${i}]`, where));
};

/**
 * Shared by both containers: the allowlisted rebuild calls, checked against the storage they view. A view that
 * reaches past its storage, or maps two indices onto one element, is refused here, before any data is read.
 */
function tensorHooks(where: string, tensors: PthTensor[], storageFor: (pid: PickleTuple, at: number) => PthStorage): UnpickleHooks {
  return {
    persistentLoad(pid, at) {
      if (!(pid instanceof PickleTuple) || pid.items[0] !== 'storage') {
        throw new PthFormatError(`${where}: pickle byte ${at}: persistent id is not a ('storage', ...) tuple; expected torch.save's storage references`);
      }
      return storageFor(pid, at);
    },
    reduce(callable: PickleGlobal, args: PickleTuple, at: number) {
      const a = args.items;
      const here = `${where}: pickle byte ${at}: ${callable.name}`;
      if (callable.name === '_rebuild_tensor_v2') {
        // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        if (a.length !== 6 && a.length !== 7) throw new PthFormatError(`${here} has ${a.length} arguments; expected 6 or 7`);
        const storage = a[0];
        if (!(storage instanceof PthStorage)) throw new PthFormatError(`${here}: first argument is not a storage`);
        const offset = int(a[1], 'storage offset', here);
        const shape = intTuple(a[2], 'size', here);
        const stride = intTuple(a[3], 'stride', here);
        if (shape.length !== stride.length) throw new PthFormatError(`${here}: size [${shape.join(', ')}] and stride [${stride.join(', ')}] differ in rank`);
        if (typeof a[4] !== 'boolean') throw new PthFormatError(`${here}: requires_grad is not a bool`);
        checkView(storage, offset, shape, stride, here);
        const t = new PthTensor(storage, offset, shape, stride, a[4]);
        tensors.push(t);
        return t;
      }
      if (callable.name === '_rebuild_parameter') {
        // (data, requires_grad, backward_hooks): a Parameter is its tensor here
        if (a.length !== 3 || !(a[0] instanceof PthTensor)) throw new PthFormatError(`${here}: expected (tensor, requires_grad, backward_hooks)`);
        return a[0];
      }
      throw new PthFormatError(`${here}: cannot be called`);
    },
  };
}

function checkView(storage: PthStorage, offset: number, shape: readonly number[], stride: readonly number[], here: string): void {
  if (shape.some((s) => s === 0)) return;
  let last = offset;
  for (let d = 0; d < shape.length; d++) last += (shape[d] - 1) * stride[d];
  if (last >= storage.numel) {
    throw new PthFormatError(`${here}: view at offset ${offset}, size [${shape.join(', ')}], stride [${stride.join(', ')}] reaches element ${last} of ${storage.describe()}; expected it within the storage`);
  }
  // Injective iff, with dimensions sorted by stride, each stride exceeds the span of all smaller ones.
  const dims = shape.map((s, d) => [s, stride[d]]).filter(([s]) => s > 1).sort((x, y) => x[1] - y[1]);
  let span = 0;
  for (const [s, st] of dims) {
    if (st <= span) {
      throw new PthFormatError(`${here}: size [${shape.join(', ')}] with stride [${stride.join(', ')}] maps several elements onto one (an overlapping view); expected each element stored once`);
    }
    span += (s - 1) * st;
  }
}

function readZipCheckpoint(bytes: Uint8Array, where: string): PthCheckpoint {
  const records = readZipDirectory(bytes, where);
  const pkl = [...records.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (!pkl) {
    const some = [...records.keys()].slice(0, 5).join(', ');
    throw new PthFormatError(`${where}: zip has no '<archive>/data.pkl' record (found ${records.size}: ${some}); expected a torch.save checkpoint`);
  }
  const archive = pkl.slice(0, -'/data.pkl'.length);
  const byteorder = records.get(`${archive}/byteorder`);
  if (byteorder) {
    const order = new TextDecoder().decode(readZipRecord(bytes, byteorder, where)).trim();
    if (order !== 'little') throw new PthFormatError(`${where}: byteorder record says '${order}'; only little-endian checkpoints are read`);
  }
  const storages = new Map<string, PthStorage>();
  const tensors: PthTensor[] = [];
  const hooks = tensorHooks(`${where} (${pkl})`, tensors, (pid, at) => {
    // ('storage', storage_type, key, location, numel)
    const [, type, key, , numel] = pid.items;
    const here = `${where} (${pkl}): pickle byte ${at}: storage reference`;
    const info = storageInfo(type, here);
    if (typeof key !== 'string' || pid.items.length !== 5) throw new PthFormatError(`${here} is not ('storage', type, key, location, numel)`);
    const n = int(numel, `storage '${key}' numel`, here);
    const prev = storages.get(key);
    if (prev) {
      if (prev.dtype !== info.dtype || prev.numel !== n) throw new PthFormatError(`${here}: storage '${key}' is referenced as ${info.dtype} x ${n} and as ${prev.dtype} x ${prev.numel}`);
      return prev;
    }
    const record = records.get(`${archive}/data/${key}`);
    if (!record) throw new PthFormatError(`${here}: no record '${archive}/data/${key}' in the zip`);
    if (record.size !== n * info.bytes) {
      throw new PthFormatError(`${here}: record '${record.name}' holds ${record.size} bytes; ${n} ${info.dtype} elements need ${n * info.bytes}`);
    }
    const s = new PthStorage(key, info.dtype, info.bytes, n, () => readZipRecord(bytes, record, where));
    storages.set(key, s);
    return s;
  });
  const data = readZipRecord(bytes, records.get(pkl)!, where);
  const { value, protocol } = unpickle(data, `${where} (${pkl})`, hooks);
  const extra = new Map<string, string>();
  for (const [name, rec] of records) {
    const name2 = name.slice(archive.length + '/extra/'.length);
    if (name.startsWith(`${archive}/extra/`) && !name2.includes('/') && rec.size <= 1 << 20) {
      extra.set(name2, new TextDecoder().decode(readZipRecord(bytes, rec, where)));
    }
  }
  return { source: where, format: 'zip', protocol, root: value, tensors, extra };
}

function storageInfo(type: PickleValue, here: string): { dtype: PthDtype; bytes: number } {
  if (!(type instanceof PickleGlobal) || (type.module !== 'torch' && type.module !== 'torch.cuda') || !Object.hasOwn(STORAGE_DTYPES, type.name)) {
    throw new PthFormatError(`${here}: storage type is ${type instanceof PickleGlobal ? type.qualifiedName : typeof type}; expected one of ${Object.keys(STORAGE_DTYPES).map((k) => `torch.${k}`).join(', ')}`);
  }
  return STORAGE_DTYPES[type.name];
}

function readLegacyCheckpoint(bytes: Uint8Array, where: string): PthCheckpoint {
  const noHooks: UnpickleHooks = {
    persistentLoad: (_pid, at) => { throw new PthFormatError(`${where}: pickle byte ${at}: a storage reference in the legacy header`); },
    reduce: (c, _a, at) => { throw new PthFormatError(`${where}: pickle byte ${at}: ${c.qualifiedName} called in the legacy header`); },
  };
  const magic = unpickle(bytes, `${where} (magic number)`, noHooks);
  if (magic.value !== LEGACY_MAGIC && magic.value !== Number(LEGACY_MAGIC)) {
    throw new PthFormatError(`${where}: first pickle is ${String(magic.value)}; expected torch's magic number ${LEGACY_MAGIC} (not a torch.save file)`);
  }
  const version = unpickle(bytes, `${where} (protocol version)`, noHooks, magic.end);
  if (version.value !== LEGACY_PROTOCOL_VERSION) {
    throw new PthFormatError(`${where}: legacy protocol version ${String(version.value)}; expected ${LEGACY_PROTOCOL_VERSION}`);
  }
  const sys = unpickle(bytes, `${where} (sys info)`, noHooks, version.end);
  if (sys.value instanceof PickleDict && sys.value.entries.get('little_endian') === false) {
    throw new PthFormatError(`${where}: sys info says big-endian; only little-endian checkpoints are read`);
  }
  // Storages are declared by the object's pickle; their bytes follow the key list, in its order.
  interface Declared { dtype: PthDtype; bytes: number; numel: number; storage: PthStorage; data?: Uint8Array }
  const declared = new Map<string, Declared>();
  const views = new Map<string, PthStorage>();
  const tensors: PthTensor[] = [];
  const hooks = tensorHooks(where, tensors, (pid, at) => {
    // ('storage', storage_type, root_key, location, numel, view_metadata)
    const here = `${where}: pickle byte ${at}: storage reference`;
    if (pid.items.length !== 6) throw new PthFormatError(`${here} has ${pid.items.length} fields; expected ('storage', type, key, location, numel, view_metadata)`);
    const [, type, key, , numel, viewMeta] = pid.items;
    const info = storageInfo(type, here);
    if (typeof key !== 'string') throw new PthFormatError(`${here}: key is not a str`);
    const n = int(numel, `storage '${key}' numel`, here);
    let root = declared.get(key);
    if (!root) {
      const entry: Declared = {
        ...info, numel: n,
        storage: new PthStorage(key, info.dtype, info.bytes, n, () => {
          if (!entry.data) throw new PthFormatError(`${where}: storage '${key}' is not in the storage key list`);
          return entry.data;
        }),
      };
      root = entry;
      declared.set(key, root);
    } else if (root.dtype !== info.dtype || root.numel !== n) {
      throw new PthFormatError(`${here}: storage '${key}' is referenced as ${info.dtype} x ${n} and as ${root.dtype} x ${root.numel}`);
    }
    if (viewMeta === null) return root.storage;
    // PyTorch < 1.0 storage views: (view_key, offset, view_size) in elements of the root
    if (!(viewMeta instanceof PickleTuple) || viewMeta.items.length !== 3 || typeof viewMeta.items[0] !== 'string') {
      throw new PthFormatError(`${here}: view metadata is not (view_key, offset, size)`);
    }
    const viewKey = viewMeta.items[0];
    const off = int(viewMeta.items[1], 'view offset', here);
    const size = int(viewMeta.items[2], 'view size', here);
    if (off + size > n) throw new PthFormatError(`${here}: view '${viewKey}' [${off}, ${off + size}) runs past storage '${key}' of ${n} elements`);
    let v = views.get(viewKey);
    if (!v) {
      const r = root;
      v = new PthStorage(viewKey, info.dtype, info.bytes, size, () => r.storage.bytes().subarray(off * info.bytes, (off + size) * info.bytes));
      views.set(viewKey, v);
    }
    return v;
  });
  const main = unpickle(bytes, where, hooks, sys.end);
  const keys = unpickle(bytes, `${where} (storage keys)`, noHooks, main.end);
  if (!Array.isArray(keys.value) || keys.value.some((k) => typeof k !== 'string')) {
    throw new PthFormatError(`${where}: storage key list is not a list of str`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = keys.end;
  for (const key of keys.value as string[]) {
    const entry = declared.get(key);
    if (!entry) throw new PthFormatError(`${where}: storage key '${key}' at byte ${pos} was never referenced by the pickle`);
    if (entry.data) throw new PthFormatError(`${where}: storage key '${key}' is listed twice`);
    if (pos + 8 > bytes.length) throw new PthFormatError(`${where}: storage '${key}' at byte ${pos}: its element count is cut off; the file is truncated`);
    const count = view.getBigInt64(pos, true);
    if (count !== BigInt(entry.numel)) throw new PthFormatError(`${where}: storage '${key}' at byte ${pos} holds ${count} elements; the pickle declared ${entry.numel}`);
    const len = entry.numel * entry.bytes;
    pos += 8;
    if (pos + len > bytes.length) throw new PthFormatError(`${where}: storage '${key}' needs bytes [${pos}, ${pos + len}) but the file has ${bytes.length}; truncated`);
    entry.data = bytes.subarray(pos, pos + len);
    pos += len;
  }
  for (const [key, entry] of declared) if (!entry.data) throw new PthFormatError(`${where}: storage '${key}' is referenced but not in the storage key list`);
  return { source: where, format: 'legacy', protocol: main.protocol, root: main.value, tensors, extra: new Map() };
}

/** True when the bytes start like a torch.save file (zip or legacy pickle), as opposed to safetensors. */
export function isPth(bytes: Uint8Array): boolean {
  return isZip(bytes) || (bytes.length >= 2 && bytes[0] === 0x80 && bytes[1] >= 2 && bytes[1] <= 5);
}

/** Parses a torch.save checkpoint: the whole pickle, every storage declared and every view bounds-checked. */
export function readPth(bytes: Uint8Array, options: ReadPthOptions = {}): PthCheckpoint {
  const where = options.source ?? '(bytes)';
  if (isZip(bytes)) return readZipCheckpoint(bytes, where);
  if (bytes.length >= 2 && bytes[0] === 0x80) return readLegacyCheckpoint(bytes, where);
  if (bytes.length >= 262 && new TextDecoder().decode(bytes.subarray(257, 262)) === 'ustar') {
    throw new PthFormatError(`${where}: a tar archive (torch.save before PyTorch 0.4); expected the zip (>= 1.6) or legacy (1.4-1.5) container`);
  }
  const head = [...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new PthFormatError(`${where}: starts with bytes ${head || '(empty file)'}; expected a torch.save checkpoint (zip 'PK\\x03\\x04' or a pickle '\\x80\\x02')`);
}

export interface PthStateDict {
  /** Where in the saved object the state dict was found, e.g. "['model']" (empty: the top level). */
  path: string;
  /** Names as saved, less a `module.` prefix on every one of them. */
  tensors: Map<string, PthTensor>;
}

/** Keys under which training scripts keep the model's weights, tried in order. */
const STATE_DICT_KEYS = ['state_dict', 'model_state_dict', 'model', 'net', 'network'];

function isTensorDict(v: PickleValue): boolean {
  if (!(v instanceof PickleDict) || v.entries.size === 0) return false;
  for (const [k, t] of v.entries) if (typeof k !== 'string' || !(t instanceof PthTensor)) return false;
  return true;
}

/**
 * The model's state dict in a checkpoint: the top level when it is a dict of tensors, else the first of
 * `state_dict`, `model_state_dict`, `model`, `net`, `network` that is one (DoDNet's FP16 checkpoints keep it under
 * `model` beside `optimizer` and `amp`), searched depth-first. A `module.` prefix (DataParallel) is removed when
 * every name has it.
 */
export function findStateDict(ckpt: PthCheckpoint): PthStateDict {
  const seen = new Set<PickleValue>();
  const search = (v: PickleValue, path: string): PthStateDict | null => {
    if (!(v instanceof PickleDict) || seen.has(v) || seen.size > 64) return null;
    seen.add(v);
    if (isTensorDict(v)) return { path, tensors: new Map(v.entries as Map<string, PthTensor>) };
    for (const k of STATE_DICT_KEYS) {
      const child = v.entries.get(k);
      if (child !== undefined) {
        const found = search(child, `${path}['${k}']`);
        if (found) return found;
      }
    }
    return null;
  };
  const found = search(ckpt.root, '');
  if (!found) {
    const keys = ckpt.root instanceof PickleDict ? [...ckpt.root.entries.keys()].slice(0, 8).map((k: PickleKey) => JSON.stringify(String(k))).join(', ') : '';
    throw new PthFormatError(`${ckpt.source}: no state dict (a dict of str -> tensor) at the top level or under ${STATE_DICT_KEYS.map((k) => `'${k}'`).join('/')}`
      + `${keys ? `; the top-level keys are ${keys}` : `; the top level is not a dict`}`);
  }
  const names = [...found.tensors.keys()];
  if (names.every((n) => n.startsWith('module.'))) {
    found.tensors = new Map([...found.tensors].map(([k, t]) => [k.slice('module.'.length), t]));
  }
  return found;
}

export interface NamedFloat32Tensor {
  shape: number[];
  data: Float32Array;
}

/**
 * The state dict of a .pth file as float32 arrays (float16/bfloat16/float64/integers converted), in the file's
 * order. Tensors may share a storage (slices of one flat buffer) but not elements: two entries reading the same
 * element are refused, so the output never exceeds four bytes per stored element.
 */
export function readPthStateDict(bytes: Uint8Array, options: ReadPthOptions = {}): { tensors: Map<string, NamedFloat32Tensor>; path: string; format: 'zip' | 'legacy'; extra: Map<string, string> } {
  const ckpt = readPth(bytes, options);
  const { path, tensors } = findStateDict(ckpt);
  const byStorage = new Map<PthStorage, string[]>();
  for (const [name, t] of tensors) byStorage.set(t.storage, [...(byStorage.get(t.storage) ?? []), name]);
  for (const [storage, names] of byStorage) {
    storage.bytes(); // reads the record and checks its CRC before any output is allocated
    if (names.length < 2) continue;
    const owner = new Int32Array(storage.numel).fill(-1);
    names.forEach((name, i) => {
      tensors.get(name)!.forEachElement((e) => {
        if (owner[e] >= 0) {
          throw new PthFormatError(`${ckpt.source}: state dict entries '${names[owner[e]]}' and '${name}' both read element ${e} of ${storage.describe()} (overlapping views); expected disjoint tensors`);
        }
        owner[e] = i;
      });
    });
  }
  const out = new Map<string, NamedFloat32Tensor>();
  for (const [name, t] of tensors) out.set(name, { shape: [...t.shape], data: t.toFloat32() });
  return { tensors: out, path, format: ckpt.format, extra: ckpt.extra };
}
