/**
 * A restricted unpickler: the opcodes and globals a PyTorch state dict, an optimizer state dict and apex amp's
 * loss-scaler state need, and nothing else. Python's unpickler calls whatever a pickle names (`os.system` via
 * REDUCE, a class's `__setstate__` via BUILD, constructors via INST/OBJ/NEWOBJ); this one has no way to call
 * anything: the allowed globals are inert markers that REDUCE turns into plain data (an empty dict, a lazy
 * tensor view), and any other global or opcode stops the parse with an `UnsafePickleError` naming it, the byte
 * offset and the file. The whole pickle is parsed before the caller builds any tensor.
 *
 * Every length read from the stream is checked against the bytes left, and every opcode consumes at least one
 * byte, so the stack, the memo and the strings together stay within a small multiple of the pickle's size.
 */

/** Refused content: a global outside the allowlist, an opcode outside the subset, a call the subset does not make. */
export class UnsafePickleError extends Error {
  override name = 'UnsafePickleError';
}

/** Malformed content: truncated, inconsistent, or shaped unlike anything torch.save writes. */
export class PthFormatError extends Error {
  override name = 'PthFormatError';
}

/** A Python tuple (kept apart from lists: torch's persistent ids and tensor sizes are tuples). */
export class PickleTuple {
  constructor(readonly items: readonly PickleValue[]) {}
}

export type PickleKey = string | number | bigint | boolean | null;

/** A dict or OrderedDict; `state` holds what BUILD set on it (an OrderedDict's `_metadata`), kept as data. */
export class PickleDict {
  readonly entries = new Map<PickleKey, PickleValue>();
  state: PickleValue | undefined;
  constructor(readonly ordered: boolean) {}
}

/** An allowlisted global as the stream named it; REDUCE gives it meaning, nothing ever calls it. */
export class PickleGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualifiedName(): string { return `${this.module}.${this.name}`; }
}

/**
 * What persistent ids (BINPERSID) and allowlisted calls (REDUCE) turn into: supplied by the container reader,
 * which knows the storages. Opaque to the unpickler.
 */
export abstract class PickleExternal {
  abstract describe(): string;
}

export type PickleValue =
  | null | boolean | number | bigint | string | PickleValue[] | PickleTuple | PickleDict | PickleGlobal | PickleExternal;

/** Storage classes of the dtypes read; only ever persistent-id tags, never called. */
export const STORAGE_CLASSES = [
  'FloatStorage', 'HalfStorage', 'BFloat16Storage', 'DoubleStorage', 'LongStorage', 'IntStorage', 'ByteStorage', 'BoolStorage',
] as const;

/**
 * The only globals a pickle may name (torch.save of state dicts, optimizer and amp state). The `torch.cuda`
 * storage classes are how PyTorch 1.4-1.12 tagged the storages of a model saved from the GPU (DoDNet's were).
 */
export const ALLOWED_GLOBALS: ReadonlySet<string> = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  ...STORAGE_CLASSES.map((c) => `torch.${c}`),
  ...STORAGE_CLASSES.map((c) => `torch.cuda.${c}`),
]);

export interface UnpickleHooks {
  /** BINPERSID: a storage reference (tuple) -> the container's storage object. */
  persistentLoad(pid: PickleValue, at: number): PickleValue;
  /** REDUCE of an allowlisted torch global: the rebuild call's result (a lazy tensor view). */
  reduce(callable: PickleGlobal, args: PickleTuple, at: number): PickleValue;
}

export interface UnpickleResult {
  value: PickleValue;
  protocol: number;
  /** Offset just after STOP: where the next pickle (legacy container) starts. */
  end: number;
}

/** Every opcode of pickle protocols 0-5, so a refusal can say which one it met. */
const OPCODE_NAMES: Record<number, string> = {
  0x28: 'MARK', 0x2e: 'STOP', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x46: 'FLOAT', 0x49: 'INT', 0x4a: 'BININT',
  0x4b: 'BININT1', 0x4c: 'LONG', 0x4d: 'BININT2', 0x4e: 'NONE', 0x50: 'PERSID', 0x51: 'BINPERSID', 0x52: 'REDUCE',
  0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x56: 'UNICODE', 0x58: 'BINUNICODE', 0x61: 'APPEND',
  0x62: 'BUILD', 0x63: 'GLOBAL', 0x64: 'DICT', 0x7d: 'EMPTY_DICT', 0x65: 'APPENDS', 0x67: 'GET', 0x68: 'BINGET',
  0x69: 'INST', 0x6a: 'LONG_BINGET', 0x6c: 'LIST', 0x5d: 'EMPTY_LIST', 0x6f: 'OBJ', 0x70: 'PUT', 0x71: 'BINPUT',
  0x72: 'LONG_BINPUT', 0x73: 'SETITEM', 0x74: 'TUPLE', 0x29: 'EMPTY_TUPLE', 0x75: 'SETITEMS', 0x47: 'BINFLOAT',
  0x80: 'PROTO', 0x81: 'NEWOBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x85: 'TUPLE1', 0x86: 'TUPLE2',
  0x87: 'TUPLE3', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x8a: 'LONG1', 0x8b: 'LONG4', 0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES', 0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8', 0x8e: 'BINBYTES8', 0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x92: 'NEWOBJ_EX', 0x93: 'STACK_GLOBAL', 0x94: 'MEMOIZE', 0x95: 'FRAME',
  0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
};

export function opcodeName(op: number): string {
  return `${OPCODE_NAMES[op] ?? 'unknown opcode'} (0x${op.toString(16).padStart(2, '0')})`;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function describe(v: PickleValue): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'a list';
  if (v instanceof PickleTuple) return `a ${v.items.length}-tuple`;
  if (v instanceof PickleDict) return v.ordered ? 'an OrderedDict' : 'a dict';
  if (v instanceof PickleGlobal) return `global ${v.qualifiedName}`;
  if (v instanceof PickleExternal) return v.describe();
  return `${typeof v} ${typeof v === 'string' ? JSON.stringify(v.slice(0, 40)) : String(v)}`;
}

/**
 * Parses one pickle starting at `start` and returns its value. `where` names the file (and record) in errors.
 * Torch writes protocol 2; protocols 3-5 add only framing, short strings, memoize and STACK_GLOBAL here.
 */
export function unpickle(bytes: Uint8Array, where: string, hooks: UnpickleHooks, start = 0): UnpickleResult {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: PickleValue[] = [];
  // Python keeps marked items on a separate metastack; here a MARK is the stack height it was set at.
  const marks: number[] = [];
  const memo = new Map<number, PickleValue>();
  let pos = start;
  let protocol = 0;
  let opAt = start;

  const fail = (msg: string): never => { throw new PthFormatError(`${where}: pickle byte ${opAt}: ${msg}`); };
  const need = (n: number, what: string) => {
    if (n > bytes.length - pos) fail(`${what} needs ${n} bytes, only ${bytes.length - pos} left; the pickle is truncated`);
  };
  const u8 = () => { need(1, 'a 1-byte argument'); return bytes[pos++]; };
  const u16 = () => { need(2, 'a 2-byte argument'); const v = view.getUint16(pos, true); pos += 2; return v; };
  const u32 = () => { need(4, 'a 4-byte argument'); const v = view.getUint32(pos, true); pos += 4; return v; };
  const u64 = () => {
    need(8, 'an 8-byte length');
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(bytes.length - pos)) fail(`length ${v} exceeds the ${bytes.length - pos} bytes left; the pickle is truncated`);
    return Number(v);
  };
  const text = (n: number, what: string): string => {
    need(n, what);
    try {
      return utf8.decode(bytes.subarray(pos, pos + n));
    } catch {
      return fail(`${what} is not valid UTF-8`);
    } finally {
      pos += n;
    }
  };
  const line = (what: string): string => {
    const nl = bytes.indexOf(0x0a, pos);
    if (nl < 0) fail(`${what} has no terminating newline; the pickle is truncated`);
    const s = text(nl - pos, what);
    pos++;
    return s;
  };
  const floor = () => (marks.length ? marks[marks.length - 1] : 0);
  const pop = (what: string): PickleValue => {
    if (stack.length <= floor()) fail(`${what} found ${marks.length ? 'nothing above the MARK' : 'an empty stack'}`);
    return stack.pop()!;
  };
  const top = (what: string): PickleValue => {
    if (stack.length <= floor()) fail(`${what} found ${marks.length ? 'nothing above the MARK' : 'an empty stack'}`);
    return stack[stack.length - 1];
  };
  const popMark = (what: string): PickleValue[] => {
    if (!marks.length) fail(`${what} without a MARK`);
    return stack.splice(marks.pop()!);
  };
  const global = (module: string, name: string, op: number): PickleGlobal => {
    const qualified = `${module}.${name}`;
    if (!ALLOWED_GLOBALS.has(qualified)) {
      throw new UnsafePickleError(`${where}: pickle byte ${opAt}: ${opcodeName(op)} names global '${qualified}', which is not allowed; `
        + `a state dict needs only ${[...ALLOWED_GLOBALS].join(', ')}. Nothing was executed and no tensor was built`);
    }
    return new PickleGlobal(module, name);
  };
  const asKey = (k: PickleValue, what: string): PickleKey => {
    if (k === null || typeof k === 'string' || typeof k === 'number' || typeof k === 'bigint' || typeof k === 'boolean') return k;
    return fail(`${what}: dict key is ${describe(k)}; expected a str, int, float, bool or None`);
  };
  const setItems = (items: PickleValue[], what: string) => {
    if (items.length % 2) fail(`${what} has an odd number (${items.length}) of keys and values`);
    const d = top(what);
    if (!(d instanceof PickleDict)) fail(`${what} on ${describe(d)}; expected a dict`);
    for (let i = 0; i < items.length; i += 2) (d as PickleDict).entries.set(asKey(items[i], what), items[i + 1]);
  };
  const str = (v: PickleValue, what: string): string => {
    if (typeof v !== 'string') fail(`${what} is ${describe(v)}; expected a str`);
    return v as string;
  };

  for (;;) {
    opAt = pos;
    if (pos >= bytes.length) fail('the pickle ends without STOP; the file is truncated');
    const op = bytes[pos++];
    switch (op) {
      case 0x80: { // PROTO
        protocol = u8();
        if (protocol < 2 || protocol > 5) fail(`protocol ${protocol}; expected 2 (torch.save's) to 5`);
        break;
      }
      case 0x95: u64(); break; // FRAME: a length hint; the frame's opcodes follow inline
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x7d: stack.push(new PickleDict(false)); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push(new PickleTuple([])); break; // EMPTY_TUPLE
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x4a: { need(4, 'BININT'); stack.push(view.getInt32(pos, true)); pos += 4; break; }
      case 0x47: { need(8, 'BINFLOAT'); stack.push(view.getFloat64(pos, false)); pos += 8; break; }
      case 0x8a: { // LONG1: little-endian two's complement of n bytes
        const n = u8();
        need(n, 'LONG1');
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[pos + i]);
        if (n > 0 && bytes[pos + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        pos += n;
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x58: stack.push(text(u32(), 'BINUNICODE')); break;
      case 0x8c: stack.push(text(u8(), 'SHORT_BINUNICODE')); break;
      case 0x8d: stack.push(text(u64(), 'BINUNICODE8')); break;
      case 0x71: memo.set(u8(), top('BINPUT')); break;
      case 0x72: memo.set(u32(), top('LONG_BINPUT')); break;
      case 0x94: memo.set(memo.size, top('MEMOIZE')); break;
      case 0x68: case 0x6a: { // BINGET, LONG_BINGET
        const i = op === 0x68 ? u8() : u32();
        if (!memo.has(i)) fail(`${opcodeName(op)} of memo slot ${i}, which was never stored`);
        stack.push(memo.get(i)!);
        break;
      }
      case 0x63: { // GLOBAL "module\nname\n"
        const module = line('GLOBAL module');
        stack.push(global(module, line('GLOBAL name'), op));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = str(pop('STACK_GLOBAL'), 'STACK_GLOBAL name');
        stack.push(global(str(pop('STACK_GLOBAL'), 'STACK_GLOBAL module'), name, op));
        break;
      }
      case 0x74: stack.push(new PickleTuple(popMark('TUPLE'))); break;
      case 0x85: stack.push(new PickleTuple([pop('TUPLE1')])); break;
      case 0x86: { const b = pop('TUPLE2'); stack.push(new PickleTuple([pop('TUPLE2'), b])); break; }
      case 0x87: { const c = pop('TUPLE3'); const b = pop('TUPLE3'); stack.push(new PickleTuple([pop('TUPLE3'), b, c])); break; }
      case 0x61: { // APPEND
        const v = pop('APPEND');
        const l = top('APPEND');
        if (!Array.isArray(l)) fail(`APPEND to ${describe(l)}; expected a list`);
        (l as PickleValue[]).push(v);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark('APPENDS');
        const l = top('APPENDS');
        if (!Array.isArray(l)) fail(`APPENDS to ${describe(l)}; expected a list`);
        for (const v of items) (l as PickleValue[]).push(v);
        break;
      }
      case 0x73: { const v = pop('SETITEM'); const k = pop('SETITEM'); setItems([k, v], 'SETITEM'); break; }
      case 0x75: setItems(popMark('SETITEMS'), 'SETITEMS'); break;
      case 0x51: { // BINPERSID
        const pid = pop('BINPERSID');
        stack.push(hooks.persistentLoad(pid, opAt));
        break;
      }
      case 0x52: { // REDUCE: only the allowlisted globals, each turned into data
        const args = pop('REDUCE');
        const callable = pop('REDUCE');
        if (!(callable instanceof PickleGlobal)) {
          throw new UnsafePickleError(`${where}: pickle byte ${opAt}: REDUCE (0x52) calls ${describe(callable)}; only allowlisted globals may be reduced`);
        }
        if (!(args instanceof PickleTuple)) fail(`REDUCE of ${callable.qualifiedName} with ${describe(args)}; expected an argument tuple`);
        const a = args as PickleTuple;
        if (callable.qualifiedName === 'collections.OrderedDict') {
          if (a.items.length !== 0) fail(`OrderedDict called with ${a.items.length} argument(s); torch.save writes OrderedDict() and SETITEMS`);
          stack.push(new PickleDict(true));
        } else if (callable.name.endsWith('Storage')) {
          throw new UnsafePickleError(`${where}: pickle byte ${opAt}: REDUCE (0x52) calls ${callable.qualifiedName}; storages come only from persistent ids`);
        } else {
          stack.push(hooks.reduce(callable, a, opAt));
        }
        break;
      }
      case 0x62: { // BUILD: only an OrderedDict's attributes (state_dict()'s _metadata), stored as data
        const state = pop('BUILD');
        const target = top('BUILD');
        if (!(target instanceof PickleDict) || !target.ordered) {
          throw new UnsafePickleError(`${where}: pickle byte ${opAt}: BUILD (0x62) sets state on ${describe(target)}; only an OrderedDict's attributes are accepted`);
        }
        if (!(state instanceof PickleDict) && state !== null) fail(`BUILD state is ${describe(state)}; expected a dict of attributes`);
        target.state = state;
        break;
      }
      case 0x2e: { // STOP
        if (marks.length) fail(`STOP with ${marks.length} open MARK(s)`);
        if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack; expected exactly one`);
        return { value: stack[0], protocol, end: pos };
      }
      default: {
        throw new UnsafePickleError(`${where}: pickle byte ${opAt}: opcode ${opcodeName(op)} is not in the subset a state dict needs `
          + '(no code, objects, sets, bytes or text-protocol opcodes are read). Nothing was executed and no tensor was built');
      }
    }
  }
}
