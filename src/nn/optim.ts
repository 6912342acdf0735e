/**
 * SGD over a model's parameters as one fused dispatch: parameters, gradients and momentum are packed into
 * flat buffers (each tensor at an aligned offset), updated by one kernel, and the parameters copied back.
 * The copies are stream-ordered buffer copies, far cheaper than a dispatch per parameter on real GPUs.
 */
import { unary } from '../kernels/elementwise.js';
import { reduce } from '../kernels/reduce.js';
import type { Gpu } from '../kernels/runtime/gpu.js';
import { packedLayout, sgdStep, sgdStepList, type SgdTensor } from '../kernels/sgd.js';
import { Tensor } from '../autograd/tensor.js';

export interface SgdConfig {
  /** Base learning rate (default 0.01, as TGNet); `step({ lr })` overrides it per step (poly schedule). */
  lr?: number;
  momentum?: number;
  nesterov?: boolean;
  weightDecay?: number;
}

export class SGD {
  readonly lr: number;
  readonly momentum: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;
  /** Steps taken so far. */
  steps = 0;
  private readonly gpu: Gpu;
  private readonly offsets: number[];
  private readonly total: number;
  private readonly flatParams: GPUBuffer;
  private readonly flatGrads: GPUBuffer;
  private readonly flatMomentum: GPUBuffer;
  /** Whether each parameter's momentum buffer holds state (PyTorch creates it on a parameter's first update). */
  private readonly started: boolean[];
  private disposed = false;

  constructor(readonly params: readonly Tensor[], config: SgdConfig = {}) {
    if (params.length === 0) throw new RangeError('SGD: needs at least one parameter');
    this.lr = config.lr ?? 0.01;
    this.momentum = config.momentum ?? 0.99;
    this.nesterov = config.nesterov ?? true;
    this.weightDecay = config.weightDecay ?? 0;
    this.gpu = params[0].gpu;
    const align = this.gpu.limits.minStorageBufferOffsetAlignment;
    const { offsets, total } = packedLayout(params.map((p) => p.size), Math.max(256, align));
    this.offsets = offsets;
    this.total = Math.max(total, 1);
    const acquire = (what: string) => this.gpu.pool.acquire(this.total * 4, `SGD ${what}`);
    this.flatParams = acquire('params');
    this.flatGrads = acquire('grads');
    this.flatMomentum = acquire('momentum');
    // Padding between packed tensors is updated too; zeros keep it inert.
    for (const b of [this.flatParams, this.flatGrads, this.flatMomentum]) unary(this.gpu, 'fill', null, b, this.total, 0);
    this.started = params.map(() => false);
  }

  /** One update of every parameter that has a gradient (others are skipped, as PyTorch does). */
  step(options: { lr?: number } = {}): void {
    if (this.disposed) throw new Error('SGD.step: optimizer was disposed');
    const lr = options.lr ?? this.lr;
    const active = this.params.map((p) => p.grad !== null && !p.isDisposed);
    this.params.forEach((p, i) => {
      if (!active[i]) return;
      const g = p.grad as Tensor;
      if (g.size !== p.size) throw new RangeError(`SGD.step: gradient of parameter ${i} has ${g.size} elements, parameter has ${p.size}`);
      this.gpu.copy(p.buffer, 0, this.flatParams, this.offsets[i] * 4, p.size * 4);
      this.gpu.copy(g.buffer, 0, this.flatGrads, this.offsets[i] * 4, p.size * 4);
    });
    const common = { lr, momentum: this.momentum, nesterov: this.nesterov, weightDecay: this.weightDecay };
    const allActive = active.every(Boolean);
    const uniformStart = this.started.every((s) => s === this.started[0]);
    if (allActive && uniformStart) {
      sgdStep(this.gpu, { params: this.flatParams, grads: this.flatGrads, momentum: this.flatMomentum, count: this.total },
        { ...common, firstStep: !this.started[0] });
    } else {
      // Some parameters skip this step or start later: update each as its own window, still one batch.
      for (const first of [true, false]) {
        const list: SgdTensor[] = [];
        this.params.forEach((p, i) => {
          if (!active[i] || this.started[i] === first) return;
          const win = (b: GPUBuffer) => ({ buffer: b, offset: this.offsets[i] * 4, size: p.size * 4 });
          list.push({ param: win(this.flatParams), grad: win(this.flatGrads), momentum: win(this.flatMomentum), size: p.size });
        });
        if (list.length) sgdStepList(this.gpu, list, { ...common, firstStep: first });
      }
    }
    this.params.forEach((p, i) => {
      if (!active[i]) return;
      this.gpu.copy(this.flatParams, this.offsets[i] * 4, p.buffer, 0, p.size * 4);
      this.started[i] = true;
    });
    this.steps++;
  }

  /** Drops every parameter's gradient (the next backward starts from zero). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** The momentum buffer of parameter i (for checkpoints), read back to the host. */
  async momentumOf(i: number): Promise<Float32Array> {
    const p = this.params[i];
    const bytes = await this.gpu.read(this.flatMomentum, p.size * 4, this.offsets[i] * 4);
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
    const out = Tensor.empty([1], this.gpu);
    reduce(this.gpu, 'sum', this.flatParams, [this.total], undefined, out.buffer);
    return out;
  }

  /**
   * Every parameter's momentum buffer, in parameter order, read back with one transfer (for checkpoints).
   * Before the first step the buffers hold no state and come back as zeros.
   */
  async momentumState(): Promise<Float32Array[]> {
    if (this.disposed) throw new Error('SGD.momentumState: optimizer was disposed');
    const flat = new Float32Array(await this.gpu.read(this.flatMomentum, this.total * 4));
    return this.params.map((p, i) => flat.slice(this.offsets[i], this.offsets[i] + p.size));
  }

  /**
   * Restores momentum buffers saved by `momentumState` and the step count, so the next step continues the
   * run as if it had never stopped. `steps` 0 means a fresh optimiser (its next step seeds the buffers from
   * the gradient, as PyTorch's first step does); otherwise every buffer counts as holding state.
   */
  loadMomentumState(state: readonly Float32Array[], steps: number): void {
    if (this.disposed) throw new Error('SGD.loadMomentumState: optimizer was disposed');
    if (!Number.isSafeInteger(steps) || steps < 0) throw new RangeError(`SGD.loadMomentumState: steps must be a non-negative integer, got ${steps}`);
    if (state.length !== this.params.length) {
      throw new RangeError(`SGD.loadMomentumState: got ${state.length} momentum buffers, expected one per parameter (${this.params.length})`);
    }
    state.forEach((m, i) => {
      if (!(m instanceof Float32Array) || m.length !== this.params[i].size) {
        const got = m instanceof Float32Array ? `${m.length} values` : String((m as unknown as object)?.constructor?.name ?? typeof m);
        throw new RangeError(`SGD.loadMomentumState: momentum of parameter ${i} has ${got}, expected a Float32Array of ${this.params[i].size} values`);
      }
    });
    // Validated first, written second: a bad state leaves the optimiser untouched.
    state.forEach((m, i) => this.gpu.write(this.flatMomentum, m, this.offsets[i] * 4));
    this.started.fill(steps > 0);
    this.steps = steps;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const b of [this.flatParams, this.flatGrads, this.flatMomentum]) this.gpu.pool.release(b);
  }
}
