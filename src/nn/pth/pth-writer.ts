/**
 * Writing a state dict as PyTorch's zip checkpoint, so `model.load_state_dict(torch.load(path))` (and
 * `torch.load(path, weights_only=True)`) read it: `<archive>/data.pkl` (protocol 2: an OrderedDict of
 * `torch._utils._rebuild_tensor_v2` calls on FloatStorage persistent ids, as torch.save writes), one stored
 * record per tensor in `<archive>/data/<i>`, `<archive>/version` and `<archive>/byteorder`. Text records under
 * `<archive>/extra/` (torch ignores records it does not ask for) carry tgnet's configuration.
 */
import { writeZip } from './zip.js';

export interface PthTensorInput {
  shape: readonly number[];
  data: Float32Array;
}

export interface WritePthOptions {
  /** The zip's top folder (torch uses the file's base name; any name loads). */
  archive?: string;
  /** Text records stored as `<archive>/extra/<name>`. */
  extra?: ReadonlyMap<string, string>;
}

class PickleWriter {
  private chunks: number[] = [];
  private memo = new Map<string, number>();

  byte(...b: number[]): void { for (const x of b) this.chunks.push(x); }

  u32(v: number): void { this.byte(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff); }

  int(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw new RangeError(`writePth: integer ${v} outside [0, 2^31); expected a tensor size, stride or offset below 2^31`);
    if (v < 256) this.byte(0x4b, v); // BININT1
    else if (v < 65536) this.byte(0x4d, v & 0xff, v >> 8); // BININT2
    else { this.byte(0x4a); this.u32(v); } // BININT
  }

  str(s: string): void {
    const b = new TextEncoder().encode(s);
    this.byte(0x58); // BINUNICODE
    this.u32(b.length);
    for (const x of b) this.chunks.push(x);
  }

  /** GLOBAL, memoised like Python's pickler so each class appears once. */
  global(module: string, name: string): void {
    const key = `${module}\n${name}`;
    const slot = this.memo.get(key);
    if (slot !== undefined) { this.get(slot); return; }
    this.byte(0x63);
    for (const x of new TextEncoder().encode(`${key}\n`)) this.chunks.push(x);
    this.put(key);
  }

  intTuple(v: readonly number[]): void {
    if (v.length === 0) { this.byte(0x29); return; }
    this.byte(0x28); // MARK
    for (const x of v) this.int(x);
    this.byte(0x74); // TUPLE
  }

  private put(key: string): void {
    const i = this.memo.size;
    this.memo.set(key, i);
    if (i < 256) this.byte(0x71, i); else { this.byte(0x72); this.u32(i); }
  }

  private get(i: number): void {
    if (i < 256) this.byte(0x68, i); else { this.byte(0x6a); this.u32(i); }
  }

  bytes(): Uint8Array { return Uint8Array.from(this.chunks); }
}

/** The zip bytes of a float32 state dict that torch.load reads as an OrderedDict of tensors. */
export function writePth(tensors: ReadonlyMap<string, PthTensorInput>, options: WritePthOptions = {}): Uint8Array {
  const archive = options.archive ?? 'archive';
  if (!/^[A-Za-z0-9_.-]+$/.test(archive)) throw new Error(`writePth: archive name ${JSON.stringify(archive)}; expected letters, digits, '_', '.' or '-'`);
  const p = new PickleWriter();
  p.byte(0x80, 2); // PROTO 2
  p.global('collections', 'OrderedDict');
  p.byte(0x29, 0x52); // EMPTY_TUPLE, REDUCE
  p.byte(0x28); // MARK
  const records: { name: string; data: Uint8Array }[] = [];
  let key = 0;
  for (const [name, t] of tensors) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length) throw new Error(`writePth: tensor '${name}' has shape [${t.shape.join(', ')}] (${numel} elements) but ${t.data.length} values`);
    const stride: number[] = [];
    for (let d = t.shape.length - 1, s = 1; d >= 0; d--) { stride[d] = s; s *= t.shape[d]; }
    p.str(name);
    p.global('torch._utils', '_rebuild_tensor_v2');
    p.byte(0x28); // MARK: the call's arguments
    p.byte(0x28); // MARK: the persistent id ('storage', FloatStorage, key, 'cpu', numel)
    p.str('storage');
    p.global('torch', 'FloatStorage');
    p.str(String(key));
    p.str('cpu');
    p.int(numel);
    p.byte(0x74, 0x51); // TUPLE, BINPERSID
    p.int(0); // storage offset
    p.intTuple(t.shape);
    p.intTuple(stride);
    p.byte(0x89); // requires_grad False
    p.global('collections', 'OrderedDict');
    p.byte(0x29, 0x52); // OrderedDict(): backward hooks
    p.byte(0x74, 0x52); // TUPLE, REDUCE
    // Little-endian float32 bytes; a copy, so a view on a larger buffer writes only its own elements.
    records.push({ name: `${archive}/data/${key}`, data: new Uint8Array(Float32Array.from(t.data).buffer) });
    key++;
  }
  p.byte(0x75, 0x2e); // SETITEMS, STOP
  const text = (s: string) => new TextEncoder().encode(s);
  const extra = [...(options.extra ?? new Map<string, string>())].map(([n, v]) => {
    if (!/^[A-Za-z0-9_.-]+$/.test(n)) throw new Error(`writePth: extra record name ${JSON.stringify(n)}; expected letters, digits, '_', '.' or '-'`);
    return { name: `${archive}/extra/${n}`, data: text(v) };
  });
  return writeZip([
    { name: `${archive}/data.pkl`, data: p.bytes() },
    { name: `${archive}/byteorder`, data: text('little') },
    ...records,
    ...extra,
    { name: `${archive}/version`, data: text('3\n') },
  ]);
}
