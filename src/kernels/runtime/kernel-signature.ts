/**
 * Kernel signatures: a kernel declares its uniforms and storage buffers once, by name; the signature emits
 * the WGSL declarations (`enable f16;` when a binding stores half floats, the `Params` struct bound as `p` at
 * binding 0, storage buffers at bindings 1..n in declaration order, as `Gpu.dispatch` binds them), packs a
 * uniform object by name into the std140-like uniform layout, and orders the buffers given by name into the
 * dispatch's bindings. A missing, extra or
 * out-of-range field throws an error naming the kernel and the field, so a kernel body reads like the math
 * and nothing relies on two hand-kept lists agreeing.
 *
 *   const sig = kernelSignature('channelGate', {
 *     uniforms: { n: 'u32', base: 'u32', sv: 'u32' },
 *     storage: { xs: readOnly('vec4f'), gs: readOnly('f32'), ys: readWrite('vec4f') },
 *   });
 *   const pipeline = sig.pipeline(gpu, key, () => `${linearMain(wg)} ... ys[gid] = xs[gid] * gs[(p.base + gid) / p.sv]; }`);
 *   gpu.dispatch({ pipeline, label, workgroups, ...sig.bind({ n, base, sv }, { xs: x, gs: g, ys: y }) });
 */
import type { Binding, BindingAccess, Gpu } from './gpu.js';

export type ScalarType = 'u32' | 'i32' | 'f32';
export type VectorType =
  | 'vec2u' | 'vec3u' | 'vec4u' | 'vec2i' | 'vec3i' | 'vec4i' | 'vec2f' | 'vec3f' | 'vec4f';
/** A uniform array: WGSL pads uniform array elements to 16 bytes, so only 4-vectors are offered (value: 4 * length numbers). */
export interface UniformArrayType {
  array: 'vec4u' | 'vec4i' | 'vec4f';
  length: number;
}
export type UniformType = ScalarType | VectorType | UniformArrayType;
/** Half-float storage ('shader-f16'): kernels convert to f32 when they load and round when they store. */
export type HalfStorageType = 'f16' | 'vec2h' | 'vec4h';
export type StorageElementType = ScalarType | VectorType | HalfStorageType | 'atomic<u32>';

export interface StorageSpec {
  access: 'read' | 'read_write';
  /** Element type of the runtime-sized array (`array<type>`). */
  type: StorageElementType;
}

/** A read-only storage binding of `type` elements. */
export function readOnly<T extends StorageElementType>(type: T): { access: 'read'; type: T } {
  return { access: 'read', type };
}

/** A read-write storage binding of `type` elements. */
export function readWrite<T extends StorageElementType>(type: T): { access: 'read_write'; type: T } {
  return { access: 'read_write', type };
}

export interface SignatureSpec<U, S> {
  /** Uniform fields in struct order, read in WGSL as `p.<name>`. */
  uniforms?: U;
  /** Storage buffers in binding order (1, 2, ...), read in WGSL by their names. */
  storage: S;
}

/**
 * A number for a scalar field; the components for a vector; 4 * length numbers (flat) for an array (either,
 * checked when packed, for a field whose type is only known as UniformType).
 */
export type UniformValues<U> = {
  [K in keyof U]: U[K] extends ScalarType ? number : U[K] extends VectorType | UniformArrayType ? readonly number[] : number | readonly number[];
};
/** A buffer or `{ buffer, offset, size }` window per declared storage binding. */
export type StorageBindings<S> = { [K in keyof S]: Binding };

export interface KernelSignature<U, S> {
  readonly name: string;
  /** WGSL declarations: `struct Params`, its uniform binding `p` (when there are uniforms) and the storage bindings. */
  readonly wgsl: string;
  /** Bytes of the packed uniforms (a multiple of 16). */
  readonly paramsBytes: number;
  /** The uniforms packed in struct layout. Throws naming the kernel and field when one is missing, extra or out of range. */
  params(values: UniformValues<U>): ArrayBuffer;
  /** The buffers in binding order. Throws naming the kernel and binding when one is missing or extra. */
  bindings(buffers: StorageBindings<S>): Binding[];
  /**
   * `{ params, bindings, access }`, to spread into `gpu.dispatch({ pipeline, label, workgroups, ...sig.bind(u, b) })`;
   * `params` is left out when the kernel declares no uniforms; `access` (each binding's, in binding order) is
   * what the dispatch cost counter reads (`gpu.startCounting`).
   */
  bind(values: UniformValues<U>, buffers: StorageBindings<S>): { params?: ArrayBuffer; bindings: Binding[]; access: readonly BindingAccess[] };
  /** Access of each storage binding, in binding order. */
  readonly access: readonly BindingAccess[];
  /** `gpu.pipeline(key, ...)` whose code is this signature's declarations followed by `makeBody()`. */
  pipeline(gpu: Gpu, key: string, makeBody: () => string): GPUComputePipeline;
}

/** Largest uniform struct `Gpu.dispatch` accepts (its per-dispatch parameter slot). */
export const MAX_UNIFORM_BYTES = 256;

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Names a kernel may not give a field: the uniform variable, its struct, the entry point and WGSL keywords met so far. */
const TAKEN = new Set(['p', 'Params', 'main', 'as', 'array', 'struct', 'var', 'let', 'fn', 'loop', 'target']);

type Kind = 'u' | 'i' | 'f';

interface Field {
  name: string;
  kind: Kind;
  /** Offset in 4-byte words. */
  word: number;
  /** Components written (1 for a scalar). */
  count: number;
  /** Vectors and arrays take a list of `count` numbers. */
  list: boolean;
  wgsl: string;
}

function layoutOf(kernel: string, name: string, t: UniformType): { kind: Kind; count: number; align: number; size: number; list: boolean; wgsl: string } {
  if (typeof t === 'object' && t !== null) {
    if (!['vec4u', 'vec4i', 'vec4f'].includes(t.array) || !Number.isInteger(t.length) || t.length < 1) {
      throw new TypeError(`${kernel}: uniform '${name}' must be an array of vec4u, vec4i or vec4f with a positive integer length, got ${JSON.stringify(t)}`);
    }
    return { kind: t.array[4] as Kind, count: 4 * t.length, align: 16, size: 16 * t.length, list: true, wgsl: `array<${t.array}, ${t.length}>` };
  }
  if (t === 'u32' || t === 'i32' || t === 'f32') return { kind: t[0] as Kind, count: 1, align: 4, size: 4, list: false, wgsl: t };
  const m = /^vec([234])([uif])$/.exec(String(t));
  if (!m) throw new TypeError(`${kernel}: uniform '${name}' has unknown type ${JSON.stringify(t)}; expected u32, i32, f32, vecN{u,i,f} or { array, length }`);
  const n = Number(m[1]);
  return { kind: m[2] as Kind, count: n, align: n === 2 ? 8 : 16, size: 4 * n, list: true, wgsl: String(t) };
}

function checkName(kernel: string, what: string, name: string): void {
  if (!IDENTIFIER.test(name) || TAKEN.has(name)) {
    throw new TypeError(`${kernel}: ${what} name '${name}' must be a WGSL identifier other than ${[...TAKEN].join(', ')}`);
  }
}

const STORAGE_TYPES = new Set(['u32', 'i32', 'f32', 'vec2u', 'vec3u', 'vec4u', 'vec2i', 'vec3i', 'vec4i', 'vec2f', 'vec3f', 'vec4f', 'f16', 'vec2h', 'vec4h', 'atomic<u32>']);
const HALF_TYPES = new Set(['f16', 'vec2h', 'vec4h']);

/** Keys whose value is not undefined (an undefined entry counts as absent). */
function countDefined(o: Record<string, unknown>): number {
  let n = 0;
  for (const k in o) if (o[k] !== undefined) n++;
  return n;
}

function describe(v: unknown): string {
  return Array.isArray(v) ? `[${v.join(', ')}]` : typeof v === 'string' ? `'${v}'` : String(v);
}

/** The 32 bits `v` packs to (u32, i32 as two's complement, f32 via f32Bits); throws when `v` is out of range. */
function packValue(kernel: string, f: Field, v: unknown, component: string): number {
  if (typeof v === 'number') {
    if (f.kind === 'u') {
      if (v >= 0 && v <= 0xffffffff && Number.isInteger(v)) return v;
    } else if (f.kind === 'f') {
      if (Number.isFinite(v)) return f32Bits(v);
    } else if (v >= -0x80000000 && v <= 0x7fffffff && Number.isInteger(v)) {
      return v >>> 0;
    }
  }
  const expected = f.kind === 'f' ? 'a finite number' : f.kind === 'u' ? 'an integer in [0, 2^32)' : 'an integer in [-2^31, 2^31)';
  throw new RangeError(`${kernel}: uniform '${f.name}'${component} must be ${expected} (${f.kind}32), got ${describe(v)}`);
}

/**
 * Declares a kernel's uniforms and storage buffers once (see the file comment). `name` is the kernel's name in
 * errors. The signature is cheap to build, so a launcher may build one per specialisation (element type).
 */
export function kernelSignature<
  U extends Record<string, UniformType> = Record<never, UniformType>,
  S extends Record<string, StorageSpec> = Record<string, StorageSpec>,
>(name: string, spec: SignatureSpec<U, S>): KernelSignature<U, S> {
  const fields: Field[] = [];
  let offset = 0;
  for (const [field, type] of Object.entries(spec.uniforms ?? {}) as [string, UniformType][]) {
    checkName(name, 'uniform', field);
    const l = layoutOf(name, field, type);
    offset = Math.ceil(offset / l.align) * l.align;
    fields.push({ name: field, kind: l.kind, word: offset / 4, count: l.count, list: l.list, wgsl: l.wgsl });
    offset += l.size;
  }
  const paramsBytes = fields.length ? Math.max(16, Math.ceil(offset / 16) * 16) : 0;
  if (paramsBytes > MAX_UNIFORM_BYTES) {
    throw new RangeError(`${name}: uniforms take ${paramsBytes} bytes, more than the ${MAX_UNIFORM_BYTES}-byte parameter slot`);
  }
  const storage = Object.entries(spec.storage) as [string, StorageSpec][];
  for (const [b, s] of storage) {
    checkName(name, 'storage binding', b);
    if (fields.some((f) => f.name === b)) throw new TypeError(`${name}: '${b}' is declared both as a uniform and a storage binding`);
    if (!s || (s.access !== 'read' && s.access !== 'read_write') || !STORAGE_TYPES.has(s.type)) {
      throw new TypeError(
        `${name}: storage binding '${b}' must be { access: 'read' | 'read_write', type: u32, i32, f32, vecN{u,i,f}, f16, vec2h, vec4h or atomic<u32> }, got ${JSON.stringify(s)}`,
      );
    }
    if (s.type === 'atomic<u32>' && s.access !== 'read_write') throw new TypeError(`${name}: storage binding '${b}' of atomic<u32> must be read_write`);
  }
  const storageNames = storage.map(([b]) => b);
  const access: readonly BindingAccess[] = Object.freeze(storage.map(([, s]) => s.access));
  // Needed once per pipeline, so built on first use.
  let wgsl: string | null = null;
  const declarations = (): string => {
    if (wgsl === null) {
      // A directive must precede every declaration; a launcher that adds its own (`enable subgroups;`) puts it before these.
      const lines: string[] = storage.some(([, s]) => HALF_TYPES.has(s.type)) ? ['enable f16;'] : [];
      if (fields.length) {
        lines.push(`struct Params { ${fields.map((f) => `${f.name}: ${f.wgsl}`).join(', ')} }`);
        lines.push('@group(0) @binding(0) var<uniform> p: Params;');
      }
      storage.forEach(([b, s], i) => lines.push(`@group(0) @binding(${i + 1}) var<storage, ${s.access}> ${b}: array<${s.type}>;`));
      wgsl = lines.join('\n');
    }
    return wgsl;
  };

  const params = (values: UniformValues<U>): ArrayBuffer => {
    if (typeof values !== 'object' || values === null) throw new TypeError(`${name}: uniforms must be an object, got ${String(values)}`);
    const given = values as Record<string, unknown>;
    const buf = new ArrayBuffer(Math.max(16, paramsBytes));
    // One view: i32 values wrap to their two's complement bits, f32 values go through f32Bits.
    const u = new Uint32Array(buf);
    for (let j = 0; j < fields.length; j++) {
      const fld = fields[j];
      const v = given[fld.name];
      if (v === undefined) throw new TypeError(`${name}: uniform '${fld.name}' is missing (declared: ${fields.map((x) => x.name).join(', ')})`);
      if (!fld.list) {
        u[fld.word] = packValue(name, fld, v, '');
        continue;
      }
      if (!Array.isArray(v) || v.length !== fld.count) {
        throw new RangeError(`${name}: uniform '${fld.name}' (${fld.wgsl}) needs a list of ${fld.count} numbers, got ${describe(v)}`);
      }
      for (let k = 0; k < fld.count; k++) u[fld.word + k] = packValue(name, fld, v[k], `[${k}]`);
    }
    // Every declared field was found, so as many keys as fields means no extra one (counting is the fast path).
    let keys = 0;
    for (const k in given) if (k) keys++;
    if (keys !== fields.length && countDefined(given) !== fields.length) {
      const extra = Object.keys(given).filter((k) => given[k] !== undefined && !fields.some((fl) => fl.name === k));
      throw new TypeError(`${name}: unknown uniform(s) ${extra.map((e) => `'${e}'`).join(', ')} (declared: ${fields.map((x) => x.name).join(', ') || 'none'})`);
    }
    return buf;
  };

  const bindings = (buffers: StorageBindings<S>): Binding[] => {
    if (typeof buffers !== 'object' || buffers === null) throw new TypeError(`${name}: buffers must be an object, got ${String(buffers)}`);
    const given = buffers as Record<string, Binding | undefined>;
    const out: Binding[] = new Array<Binding>(storageNames.length);
    for (let i = 0; i < storageNames.length; i++) {
      const b = given[storageNames[i]];
      if (b === undefined || b === null || typeof b !== 'object') {
        throw new TypeError(`${name}: storage binding '${storageNames[i]}' is missing (declared: ${storageNames.join(', ')})`);
      }
      out[i] = b;
    }
    let keys = 0;
    for (const k in given) if (k) keys++;
    if (keys !== storageNames.length && countDefined(given) !== storageNames.length) {
      const extra = Object.keys(given).filter((k) => given[k] !== undefined && !storageNames.includes(k));
      throw new TypeError(`${name}: unknown storage binding(s) ${extra.map((e) => `'${e}'`).join(', ')} (declared: ${storageNames.join(', ')})`);
    }
    return out;
  };

  return {
    name, paramsBytes, params, bindings, access,
    get wgsl() { return declarations(); },
    bind: (values, buffers) => {
      const packed = params(values);
      return fields.length ? { params: packed, bindings: bindings(buffers), access } : { bindings: bindings(buffers), access };
    },
    // The access is registered with the pipeline too, for launchers that pass `sig.bindings(...)` alone.
    pipeline: (gpu, key, makeBody) => gpu.pipeline(key, () => `${declarations()}\n${makeBody()}`, access),
  };
}

const bitsF32 = new Float32Array(1);
const bitsU32 = new Uint32Array(bitsF32.buffer);

/**
 * The bits of `v` rounded to f32: an f32 uniform must be finite (a NaN there is almost always a bug), so a
 * value that may legitimately be infinite or NaN (a fill value) is declared 'u32' and read as `bitcast<f32>(p.x)`.
 */
export function f32Bits(v: number): number {
  bitsF32[0] = v;
  return bitsU32[0];
}

const cache = new Map<string, unknown>();

/**
 * The signature `make` builds, built once per `key` (which must identify everything the spec depends on: the
 * kernel and its specialisation, e.g. the pipeline key). For launchers whose signature depends on arguments
 * (element type, optional bindings, buffer counts), so building one is not paid per dispatch.
 */
export function cachedSignature<U, S>(key: string, make: () => KernelSignature<U, S>): KernelSignature<U, S> {
  let sig = cache.get(key) as KernelSignature<U, S> | undefined;
  if (!sig) {
    sig = make();
    cache.set(key, sig);
  }
  return sig;
}
