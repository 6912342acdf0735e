/**
 * Optimisers over a model's parameters as one fused dispatch: parameters, gradients and the optimiser's
 * state (SGD's momentum; Adam's two moments) are packed into flat buffers (each tensor at an aligned offset),
 * updated by one kernel, and the parameters copied back. The copies are stream-ordered buffer copies, far
 * cheaper than a dispatch per parameter on real GPUs. `PackedParameters` holds the packing both share.
 */
import { adamStep, adamStepList, type AdamTensor } from '../kernels/adam.js';
import { unary } from '../kernels/elementwise.js';
import { flagNonFinite } from '../kernels/non-finite.js';
import { reduce } from '../kernels/reduce.js';
import type { Gpu } from '../kernels/runtime/gpu.js';
import { packedLayout, sgdStep, sgdStepList, type SgdTensor } from '../kernels/sgd.js';
import { Tensor } from '../autograd/tensor.js';

export type OptimizerKind = 'sgd' | 'adam' | 'adamw';
export const OPTIMIZER_KINDS: readonly OptimizerKind[] = ['sgd', 'adam', 'adamw'];

/** The default peak learning rate of each optimiser: TGNet's 0.01 for SGD, PyTorch's 1e-3 for Adam and AdamW. */
export const DEFAULT_LEARNING_RATES: Readonly<Record<OptimizerKind, number>> = { sgd: 0.01, adam: 1e-3, adamw: 1e-3 };

/**
 * An optimiser's state on the host, for checkpoints: the step count and, per state slot, one Float32Array per
 * parameter in parameter order. Slots: SGD `momentum`; Adam and AdamW `expAvg`, `expAvgSq` (PyTorch's
 * exp_avg, exp_avg_sq).
 */
export interface OptimizerState {
  kind: OptimizerKind;
  steps: number;
  slots: Record<string, Float32Array[]>;
}

/** What a training loop needs of an optimiser; SGD and Adam implement it. */
export interface Optimizer {
  readonly kind: OptimizerKind;
  readonly params: readonly Tensor[];
  /** Base learning rate; `step({ lr })` overrides it per step (schedules). */
  readonly lr: number;
  readonly weightDecay: number;
  /** Steps taken so far. */
  readonly steps: number;
  /** Names of the per-parameter state slots, as in `OptimizerState.slots`. */
  readonly slotNames: readonly string[];
  /**
   * One update of every parameter that has a gradient (others are skipped, as PyTorch does). `gradScale`
   * multiplies every gradient first (mixed precision: 1 / the loss scale).
   */
  step(options?: StepOptions): void;
  /**
   * Whether any gradient holds an infinity or a NaN (one dispatch over the packed gradients and one 4-byte
   * readback): mixed precision's overflow check before `step`, which then reuses the packed gradients.
   */
  nonFiniteGradients(): Promise<boolean>;
  /** Drops every parameter's gradient (the next backward starts from zero). */
  zeroGrad(): void;
  /** Sum of all parameters as of the last step, as a new one-element tensor (a cheap NaN/Inf probe). */
  parameterSum(): Tensor;
  /** The state, read back with one transfer per slot. */
  exportState(): Promise<OptimizerState>;
  /** Restores a state from `exportState` so the next step continues the run exactly; validates before writing. */
  importState(state: OptimizerState): void;
  dispose(): void;
}

export interface StepOptions {
  /** This step's learning rate (default: the optimiser's base rate). */
  lr?: number;
  /** Factor applied to every gradient before the update (default 1; mixed precision: 1 / the loss scale). */
  gradScale?: number;
}

/**
 * Parameters, gradients and `slots` state buffers packed into flat GPU buffers with `packedLayout`. Padding
 * between tensors is zeroed once and never written, so an element-wise update leaves it inert.
 */
class PackedParameters {
  readonly offsets: number[];
  readonly total: number;
  readonly flatParams: GPUBuffer;
  readonly flatGrads: GPUBuffer;
  readonly slots: GPUBuffer[];
  private readonly gpu: Gpu;

  constructor(private readonly owner: string, readonly params: readonly Tensor[], readonly slotNames: readonly string[]) {
    if (params.length === 0) throw new RangeError(`${owner}: needs at least one parameter`);
    this.gpu = params[0].gpu;
    const align = this.gpu.limits.minStorageBufferOffsetAlignment;
    const { offsets, total } = packedLayout(params.map((p) => p.size), Math.max(256, align));
    this.offsets = offsets;
    this.total = Math.max(total, 1);
    const acquire = (what: string) => this.gpu.pool.acquire(this.total * 4, `${owner} ${what}`);
    this.flatParams = acquire('params');
    this.flatGrads = acquire('grads');
    this.slots = slotNames.map(acquire);
    for (const b of this.buffers()) unary(this.gpu, 'fill', null, b, this.total, 0);
  }

  /** Which parameters `nonFinite` already gathered (the next `gather` reuses them), else null. */
  private gathered: boolean[] | null = null;

  /** Copies the weights and gradients of parameters that have a gradient in; returns which do. */
  gather(): boolean[] {
    if (this.gathered) {
      const active = this.gathered;
      this.gathered = null;
      return active;
    }
    const active = this.params.map((p) => p.grad !== null && !p.isDisposed);
    this.params.forEach((p, i) => {
      if (!active[i]) return;
      const g = p.grad as Tensor;
      if (g.size !== p.size) throw new RangeError(`${this.owner}.step: gradient of parameter ${i} has ${g.size} elements, parameter has ${p.size}`);
      this.gpu.copy(p.buffer, 0, this.flatParams, this.offsets[i] * 4, p.size * 4);
      this.gpu.copy(g.buffer, 0, this.flatGrads, this.offsets[i] * 4, p.size * 4);
    });
    return active;
  }

  /** Gathers, then whether any gathered gradient is infinite or NaN (the padding is zero). */
  async nonFinite(): Promise<boolean> {
    const active = this.gather();
    const flag = this.gpu.pool.acquire(4, `${this.owner} non-finite flag`);
    try {
      this.gpu.write(flag, new Uint32Array([0]));
      flagNonFinite(this.gpu, this.flatGrads, this.total, flag);
      this.gathered = active;
      return new Uint32Array(await this.gpu.read(flag, 4))[0] !== 0;
    } finally {
      this.gpu.pool.release(flag);
    }
  }

  /** Forgets a gather made for `nonFinite` (the gradients are about to change). */
  forgetGather(): void {
    this.gathered = null;
  }

  /** Copies the updated weights of the `active` parameters back to them. */
  scatter(active: readonly boolean[]): void {
    this.params.forEach((p, i) => {
      if (active[i]) this.gpu.copy(this.flatParams, this.offsets[i] * 4, p.buffer, 0, p.size * 4);
    });
  }

  /** Parameter i's window of a flat buffer, for the per-tensor kernels. */
  window(b: GPUBuffer, i: number): { buffer: GPUBuffer; offset: number; size: number } {
    return { buffer: b, offset: this.offsets[i] * 4, size: this.params[i].size * 4 };
  }

  sum(): Tensor {
    const out = Tensor.empty([1], this.gpu);
    reduce(this.gpu, 'sum', this.flatParams, [this.total], undefined, out.buffer);
    return out;
  }

  async readSlot(slot: number): Promise<Float32Array[]> {
    const flat = new Float32Array(await this.gpu.read(this.slots[slot], this.total * 4));
    return this.params.map((p, i) => flat.slice(this.offsets[i], this.offsets[i] + p.size));
  }

  /** Throws, naming the slot and parameter, unless `state` holds one Float32Array of the right size per parameter. */
  checkSlot(where: string, slot: string, state: readonly Float32Array[] | undefined): void {
    if (!Array.isArray(state) || state.length !== this.params.length) {
      throw new RangeError(`${where}: got ${Array.isArray(state) ? state.length : String(state)} ${slot} buffers, expected one per parameter (${this.params.length})`);
    }
    state.forEach((m, i) => {
      if (!(m instanceof Float32Array) || m.length !== this.params[i].size) {
        const got = m instanceof Float32Array ? `${m.length} values` : String((m as unknown as object)?.constructor?.name ?? typeof m);
        throw new RangeError(`${where}: ${slot} of parameter ${i} has ${got}, expected a Float32Array of ${this.params[i].size} values`);
      }
    });
  }

  writeSlot(slot: number, state: readonly Float32Array[]): void {
    state.forEach((m, i) => this.gpu.write(this.slots[slot], m, this.offsets[i] * 4));
  }

  release(): void {
    for (const b of this.buffers()) this.gpu.pool.release(b);
  }

  private buffers(): GPUBuffer[] {
    return [this.flatParams, this.flatGrads, ...this.slots];
  }
}

function checkSteps(where: string, steps: number): void {
  if (!Number.isSafeInteger(steps) || steps < 0) throw new RangeError(`${where}: steps must be a non-negative integer, got ${steps}`);
}

function checkKind(where: string, state: OptimizerState, kinds: readonly OptimizerKind[]): void {
  if (!state || !kinds.includes(state.kind)) {
    throw new RangeError(`${where}: state is for optimizer ${JSON.stringify(state?.kind)}; expected ${kinds.map((k) => JSON.stringify(k)).join(' or ')}`);
  }
}

export interface SgdConfig {
  /** Base learning rate (default 0.01, as TGNet); `step({ lr })` overrides it per step (poly schedule). */
  lr?: number;
  momentum?: number;
  nesterov?: boolean;
  weightDecay?: number;
}

export class SGD implements Optimizer {
  readonly kind = 'sgd';
  readonly slotNames = ['momentum'] as const;
  readonly lr: number;
  readonly momentum: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;
  /** Steps taken so far. */
  steps = 0;
  private readonly packed: PackedParameters;
  /** Whether each parameter's momentum buffer holds state (PyTorch creates it on a parameter's first update). */
  private readonly started: boolean[];
  private disposed = false;

  constructor(readonly params: readonly Tensor[], config: SgdConfig = {}) {
    this.lr = config.lr ?? DEFAULT_LEARNING_RATES.sgd;
    this.momentum = config.momentum ?? 0.99;
    this.nesterov = config.nesterov ?? true;
    this.weightDecay = config.weightDecay ?? 0;
    this.packed = new PackedParameters('SGD', params, this.slotNames);
    this.started = params.map(() => false);
  }

  step(options: StepOptions = {}): void {
    if (this.disposed) throw new Error('SGD.step: optimizer was disposed');
    const lr = options.lr ?? this.lr;
    const pk = this.packed;
    const momentum = pk.slots[0];
    const active = pk.gather();
    const common = { lr, momentum: this.momentum, nesterov: this.nesterov, weightDecay: this.weightDecay, gradScale: options.gradScale };
    const uniformStart = this.started.every((s) => s === this.started[0]);
    if (active.every(Boolean) && uniformStart) {
      sgdStep(this.gpu(), { params: pk.flatParams, grads: pk.flatGrads, momentum, count: pk.total },
        { ...common, firstStep: !this.started[0] });
    } else {
      // Some parameters skip this step or start later: update each as its own window, still one batch.
      for (const first of [true, false]) {
        const list: SgdTensor[] = [];
        this.params.forEach((p, i) => {
          if (!active[i] || this.started[i] === first) return;
          list.push({ param: pk.window(pk.flatParams, i), grad: pk.window(pk.flatGrads, i), momentum: pk.window(momentum, i), size: p.size });
        });
        if (list.length) sgdStepList(this.gpu(), list, { ...common, firstStep: first });
      }
    }
    pk.scatter(active);
    active.forEach((a, i) => { if (a) this.started[i] = true; });
    this.steps++;
  }

  zeroGrad(): void {
    this.packed.forgetGather();
    zeroGrads(this.params);
  }

  nonFiniteGradients(): Promise<boolean> {
    return this.packed.nonFinite();
  }

  /** The momentum buffer of parameter i (for checkpoints), read back to the host. */
  async momentumOf(i: number): Promise<Float32Array> {
    const p = this.params[i];
    const bytes = await this.gpu().read(this.packed.slots[0], p.size * 4, this.packed.offsets[i] * 4);
    return new Float32Array(bytes);
  }

  /**
   * The sum of every parameter as of the last step: one reduction over the packed buffer, a cheap probe for
   * NaN/Inf anywhere in the model (the sum is then non-finite). The loss alone can miss them: ReLU's max(x, 0)
   * turns NaN activations into 0 on some GPUs, so NaN weights may still give a finite loss. Before the first
   * step the packed buffer holds zeros. Returns a new one-element tensor (the caller disposes it).
   */
  parameterSum(): Tensor {
    if (this.disposed) throw new Error('SGD.parameterSum: optimizer was disposed');
    return this.packed.sum();
  }

  /**
   * Every parameter's momentum buffer, in parameter order, read back with one transfer (for checkpoints).
   * Before the first step the buffers hold no state and come back as zeros.
   */
  async momentumState(): Promise<Float32Array[]> {
    if (this.disposed) throw new Error('SGD.momentumState: optimizer was disposed');
    return this.packed.readSlot(0);
  }

  /**
   * Restores momentum buffers saved by `momentumState` and the step count, so the next step continues the
   * run as if it had never stopped. `steps` 0 means a fresh optimiser (its next step seeds the buffers from
   * the gradient, as PyTorch's first step does); otherwise every buffer counts as holding state.
   */
  loadMomentumState(state: readonly Float32Array[], steps: number): void {
    const where = 'SGD.loadMomentumState';
    if (this.disposed) throw new Error(`${where}: optimizer was disposed`);
    checkSteps(where, steps);
    this.packed.checkSlot(where, 'momentum', state);
    // Validated first, written second: a bad state leaves the optimiser untouched.
    this.packed.writeSlot(0, state);
    this.started.fill(steps > 0);
    this.steps = steps;
  }

  async exportState(): Promise<OptimizerState> {
    return { kind: 'sgd', steps: this.steps, slots: { momentum: await this.momentumState() } };
  }

  importState(state: OptimizerState): void {
    checkKind('SGD.importState', state, ['sgd']);
    this.loadMomentumState(state.slots.momentum, state.steps);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.packed.release();
  }

  private gpu(): Gpu {
    return this.params[0].gpu;
  }
}

function zeroGrads(params: readonly Tensor[]): void {
  for (const p of params) {
    p.grad?.dispose();
    p.grad = null;
  }
}

export interface AdamConfig {
  /** Base learning rate (default 1e-3, PyTorch's); `step({ lr })` overrides it per step (schedules). */
  lr?: number;
  /** Decay rates of the first and second moment (default [0.9, 0.999]). */
  betas?: readonly [number, number];
  /** Added to the bias-corrected sqrt of the second moment (default 1e-8); must be > 0 (see the class comment). */
  eps?: number;
  /** Weight decay (default 0): an L2 term in the gradient (Adam) or decoupled from it (AdamW). */
  weightDecay?: number;
  /** AdamW's decoupled weight decay (default false: Adam's L2 penalty). */
  decoupled?: boolean;
}

/**
 * torch.optim.Adam (or AdamW with `decoupled`; see also `AdamW`) as one fused dispatch per step. Each
 * parameter keeps its own step count for the bias correction, as PyTorch's state['step'] does, so a parameter
 * that skips steps (no gradient) is corrected by its own count. eps must be > 0: with eps 0 a zero gradient and
 * zero moment give 0/0, which PyTorch would also produce, and the zero padding between packed tensors would
 * then turn the parameter-sum NaN probe NaN.
 */
export class Adam implements Optimizer {
  readonly kind: 'adam' | 'adamw';
  readonly slotNames = ['expAvg', 'expAvgSq'] as const;
  readonly lr: number;
  readonly betas: readonly [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly decoupled: boolean;
  /** Steps taken so far (calls to `step`). */
  steps = 0;
  private readonly packed: PackedParameters;
  /** Updates each parameter has had (PyTorch's per-parameter state['step']). */
  private readonly counts: number[];
  private disposed = false;

  constructor(readonly params: readonly Tensor[], config: AdamConfig = {}) {
    const name = config.decoupled ? 'AdamW' : 'Adam';
    this.lr = config.lr ?? DEFAULT_LEARNING_RATES[config.decoupled ? 'adamw' : 'adam'];
    this.betas = config.betas ? [config.betas[0], config.betas[1]] : [0.9, 0.999];
    this.eps = config.eps ?? 1e-8;
    this.weightDecay = config.weightDecay ?? 0;
    this.decoupled = config.decoupled ?? false;
    this.kind = this.decoupled ? 'adamw' : 'adam';
    if (!Number.isFinite(this.lr) || this.lr < 0) throw new RangeError(`${name}: lr must be a finite number >= 0, got ${this.lr}`);
    if (!Number.isFinite(this.eps) || this.eps <= 0) throw new RangeError(`${name}: eps must be a finite number > 0, got ${this.eps}`);
    if (!Number.isFinite(this.weightDecay) || this.weightDecay < 0) throw new RangeError(`${name}: weightDecay must be a finite number >= 0, got ${this.weightDecay}`);
    this.betas.forEach((b, i) => {
      if (!Number.isFinite(b) || b < 0 || b >= 1) throw new RangeError(`${name}: betas[${i}] must be in [0, 1), got ${b}`);
    });
    this.packed = new PackedParameters(name, params, this.slotNames);
    this.counts = params.map(() => 0);
  }

  step(options: StepOptions = {}): void {
    if (this.disposed) throw new Error(`${this.name()}.step: optimizer was disposed`);
    const lr = options.lr ?? this.lr;
    const pk = this.packed;
    const [expAvg, expAvgSq] = pk.slots;
    const active = pk.gather();
    const common = { lr, betas: this.betas, eps: this.eps, weightDecay: this.weightDecay, decoupled: this.decoupled, gradScale: options.gradScale };
    const gpu = this.params[0].gpu;
    if (active.every(Boolean) && this.counts.every((c) => c === this.counts[0])) {
      adamStep(gpu, { params: pk.flatParams, grads: pk.flatGrads, expAvg, expAvgSq, count: pk.total }, { ...common, step: this.counts[0] + 1 });
    } else {
      // Parameters that skip this step or have other step counts: one window each, grouped by bias correction.
      const groups = new Map<number, AdamTensor[]>();
      this.params.forEach((p, i) => {
        if (!active[i]) return;
        const list = groups.get(this.counts[i] + 1) ?? [];
        list.push({ param: pk.window(pk.flatParams, i), grad: pk.window(pk.flatGrads, i), expAvg: pk.window(expAvg, i), expAvgSq: pk.window(expAvgSq, i), size: p.size });
        groups.set(this.counts[i] + 1, list);
      });
      for (const [step, list] of groups) adamStepList(gpu, list, { ...common, step });
    }
    pk.scatter(active);
    active.forEach((a, i) => { if (a) this.counts[i]++; });
    this.steps++;
  }

  zeroGrad(): void {
    this.packed.forgetGather();
    zeroGrads(this.params);
  }

  nonFiniteGradients(): Promise<boolean> {
    return this.packed.nonFinite();
  }

  /** See SGD.parameterSum. */
  parameterSum(): Tensor {
    if (this.disposed) throw new Error(`${this.name()}.parameterSum: optimizer was disposed`);
    return this.packed.sum();
  }

  /** Both moments of every parameter (zeros before the first step) and the step count. */
  async exportState(): Promise<OptimizerState> {
    if (this.disposed) throw new Error(`${this.name()}.exportState: optimizer was disposed`);
    const [expAvg, expAvgSq] = await Promise.all([this.packed.readSlot(0), this.packed.readSlot(1)]);
    return { kind: this.kind, steps: this.steps, slots: { expAvg, expAvgSq } };
  }

  /**
   * Restores moments and the step count; every parameter's bias-correction count becomes `steps` (a training
   * loop updates every parameter every step). Adam and AdamW states are accepted by either: the moments mean
   * the same; the trainer checks the kind itself. Validated first, written second.
   */
  importState(state: OptimizerState): void {
    const where = `${this.name()}.importState`;
    if (this.disposed) throw new Error(`${where}: optimizer was disposed`);
    checkKind(where, state, ['adam', 'adamw']);
    checkSteps(where, state.steps);
    this.packed.checkSlot(where, 'expAvg', state.slots.expAvg);
    this.packed.checkSlot(where, 'expAvgSq', state.slots.expAvgSq);
    this.packed.writeSlot(0, state.slots.expAvg);
    this.packed.writeSlot(1, state.slots.expAvgSq);
    this.counts.fill(state.steps);
    this.steps = state.steps;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.packed.release();
  }

  private name(): string {
    return this.decoupled ? 'AdamW' : 'Adam';
  }
}

/** torch.optim.AdamW: Adam with decoupled weight decay (default 1e-2, PyTorch's). */
export class AdamW extends Adam {
  constructor(params: readonly Tensor[], config: Omit<AdamConfig, 'decoupled'> = {}) {
    super(params, { ...config, weightDecay: config.weightDecay ?? 1e-2, decoupled: true });
  }
}
