/**
 * Module and Parameter: a tree of named layers whose dotted parameter names are PyTorch's state-dict names
 * (children in registration order, list entries named "0", "1", ...), so that weights move between the two
 * frameworks by name alone.
 */
import { keep } from '../autograd/scope.js';
import { Tensor } from '../autograd/tensor.js';

/**
 * A trainable tensor: requiresGrad and kept out of every `tidy` scope, so it lives until its module is
 * disposed. A plain Tensor rather than a subclass, so that every op and the optimiser take it as is.
 */
export type Parameter = Tensor;

/** Uploads `data` as a new Parameter of the given shape. */
export function createParameter(data: ArrayLike<number>, shape: readonly number[]): Parameter {
  return keep(Tensor.fromArray(data, shape, { requiresGrad: true }));
}

/** Host-side tensor data, as `readSafetensors` returns it. */
export interface HostTensor {
  /** safetensors dtype when known: only 'F32' and 'F64' are accepted (F16/BF16 arrive as raw bits). */
  readonly dtype?: string;
  readonly shape: readonly number[];
  readonly data: ArrayLike<number> | ArrayLike<bigint>;
}

export interface LoadStateDictOptions {
  /** When true (default), keys the module lacks and parameters the map lacks are errors, as in PyTorch. */
  strict?: boolean;
}

/** What loadStateDict found: keys of the map it did not use and parameters it left untouched (non-strict). */
export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

const shapeText = (s: readonly number[]): string => `[${s.join(', ')}]`;

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function isBigIntArray(data: HostTensor['data']): boolean {
  return data instanceof BigInt64Array || data instanceof BigUint64Array;
}

export abstract class Module {
  private readonly ownParameters = new Map<string, Parameter>();
  private readonly children = new Map<string, Module>();
  /** Training mode flag (PyTorch's `module.training`); TGNet has no layer that behaves differently. */
  training = true;

  /** Registers a parameter under `name` (a key of this module's state dict); returns it. */
  protected registerParameter(name: string, p: Parameter): Parameter {
    this.checkFreeName(name);
    if (!p.requiresGrad) throw new Error(`${this.constructor.name}.registerParameter: '${name}' does not require grad; create it with createParameter`);
    this.ownParameters.set(name, keep(p));
    return p;
  }

  /** Registers a child module under `name` (its parameters become `name.<their names>`); returns it. */
  protected registerModule<M extends Module>(name: string, m: M): M {
    this.checkFreeName(name);
    this.children.set(name, m);
    return m;
  }

  private checkFreeName(name: string): void {
    if (!name || name.includes('.')) {
      throw new Error(`${this.constructor.name}: name '${name}' must be non-empty and without '.' (dots separate levels of the state dict)`);
    }
    if (this.ownParameters.has(name) || this.children.has(name)) {
      throw new Error(`${this.constructor.name}: name '${name}' is already registered`);
    }
  }

  /** Every parameter with its dotted name, in PyTorch's order (own parameters first, then children). */
  namedParameters(prefix = ''): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    for (const [name, p] of this.ownParameters) out.push([prefix + name, p]);
    for (const [name, child] of this.children) out.push(...child.namedParameters(`${prefix}${name}.`));
    return out;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Direct children with their names. */
  namedChildren(): [string, Module][] {
    return [...this.children];
  }

  /** Total number of scalar parameters. */
  parameterCount(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }

  /** The parameters by state-dict name (live tensors, not copies; TGNet's layers have no buffers). */
  stateDict(): Map<string, Parameter> {
    return new Map(this.namedParameters());
  }

  /**
   * Copies values into the parameters by name. Every key and shape is checked before anything is written,
   * so a failed load leaves the module unchanged. Shape mismatches are errors even when not strict.
   */
  loadStateDict(state: ReadonlyMap<string, HostTensor | Tensor>, options: LoadStateDictOptions = {}): LoadStateDictResult {
    const strict = options.strict ?? true;
    const where = `${this.constructor.name}.loadStateDict`;
    const own = this.stateDict();
    const missingKeys = [...own.keys()].filter((k) => !state.has(k));
    const unexpectedKeys = [...state.keys()].filter((k) => !own.has(k));
    if (strict && (missingKeys.length || unexpectedKeys.length)) {
      const parts = [];
      if (missingKeys.length) parts.push(`missing key(s) ${missingKeys.map((k) => `'${k}'`).join(', ')}`);
      if (unexpectedKeys.length) parts.push(`unexpected key(s) ${unexpectedKeys.map((k) => `'${k}'`).join(', ')}`);
      throw new Error(`${where}: ${parts.join('; ')} (strict load: the keys must equal the module's ${own.size} parameter names)`);
    }
    const writes: [Parameter, HostTensor | Tensor][] = [];
    for (const [name, p] of own) {
      const src = state.get(name);
      if (src === undefined) continue;
      if (!sameShape(src.shape, p.shape)) {
        throw new Error(`${where}: shape mismatch for '${name}': expected ${shapeText(p.shape)}, got ${shapeText(src.shape)}`);
      }
      if (src instanceof Tensor) {
        if (src.isDisposed) throw new Error(`${where}: tensor for '${name}' was disposed`);
      } else {
        if (src.dtype !== undefined && src.dtype !== 'F32' && src.dtype !== 'F64') {
          throw new TypeError(`${where}: '${name}' has dtype ${src.dtype}; expected F32 (or F64)`);
        }
        if (isBigIntArray(src.data)) {
          throw new TypeError(`${where}: '${name}' holds 64-bit integer data; expected floating-point values`);
        }
        if (src.data.length !== p.size) {
          throw new RangeError(`${where}: '${name}' has ${src.data.length} values for shape ${shapeText(src.shape)} (${p.size} expected)`);
        }
      }
      writes.push([p, src]);
    }
    for (const [p, src] of writes) {
      if (src instanceof Tensor) {
        p.gpu.copy(src.buffer, 0, p.buffer, 0, p.size * 4);
      } else {
        const data = src.data as ArrayLike<number>;
        p.gpu.write(p.buffer, data instanceof Float32Array ? data : Float32Array.from(data));
      }
    }
    return { missingKeys, unexpectedKeys };
  }

  /** Sets training mode on this module and every descendant. */
  train(mode = true): this {
    this.training = mode;
    for (const child of this.children.values()) child.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Frees every parameter (and its gradient). The module cannot be used afterwards. */
  dispose(): void {
    for (const p of this.ownParameters.values()) p.dispose();
    for (const child of this.children.values()) child.dispose();
  }
}

/** nn.ModuleList: children named "0", "1", ... in order. */
export class ModuleList<M extends Module = Module> extends Module {
  private readonly items: M[];

  constructor(modules: readonly M[] = []) {
    super();
    this.items = [];
    for (const m of modules) this.append(m);
  }

  append(m: M): this {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
    return this;
  }

  get length(): number {
    return this.items.length;
  }

  /** The i-th module; throws for an index outside [0, length). */
  at(i: number): M {
    if (!Number.isInteger(i) || i < 0 || i >= this.items.length) {
      throw new RangeError(`ModuleList.at: index ${i} is out of range; expected an integer in [0, ${this.items.length - 1}]`);
    }
    return this.items[i];
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
