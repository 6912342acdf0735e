/**
 * Dynamic loss scaling for mixed precision, with PyTorch's GradScaler semantics: the loss is multiplied by
 * `scale` before backward so that small f16 gradients do not flush to zero; the optimiser divides the gradients
 * by it again (`gradScale`). When any gradient came out infinite or NaN (an f16 overflow), the step is skipped
 * and the scale halves; after `growthInterval` good steps in a row it doubles.
 */

export interface LossScalerOptions {
  /** Starting scale (default 2^16, PyTorch's init_scale). */
  initScale?: number;
  /** Factor after `growthInterval` finite steps (default 2). */
  growthFactor?: number;
  /** Factor after a step with an overflow (default 0.5). */
  backoffFactor?: number;
  /** Finite steps in a row before the scale grows (default 2000). */
  growthInterval?: number;
}

export interface LossScalerState {
  scale: number;
  /** Finite steps since the scale last changed. */
  growthTracker: number;
  /** Steps skipped for an overflow, over the whole run. */
  skippedSteps: number;
}

function positive(what: string, v: number, min = 0): number {
  if (!Number.isFinite(v) || v <= min) throw new RangeError(`LossScaler: ${what} must be a finite number > ${min}, got ${v}`);
  return v;
}

export class LossScaler {
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;
  private state: LossScalerState;

  constructor(options: LossScalerOptions = {}) {
    this.growthFactor = positive('growthFactor', options.growthFactor ?? 2, 1);
    this.backoffFactor = positive('backoffFactor', options.backoffFactor ?? 0.5);
    if (this.backoffFactor >= 1) throw new RangeError(`LossScaler: backoffFactor must be in (0, 1), got ${this.backoffFactor}`);
    this.growthInterval = options.growthInterval ?? 2000;
    if (!Number.isSafeInteger(this.growthInterval) || this.growthInterval < 1) {
      throw new RangeError(`LossScaler: growthInterval must be a positive integer, got ${this.growthInterval}`);
    }
    this.state = { scale: positive('initScale', options.initScale ?? 65536), growthTracker: 0, skippedSteps: 0 };
  }

  /** The factor the next loss is multiplied by. */
  get scale(): number {
    return this.state.scale;
  }

  get skippedSteps(): number {
    return this.state.skippedSteps;
  }

  /** After a step: `overflow` says whether its gradients held an infinity or a NaN (the step was then skipped). */
  update(overflow: boolean): void {
    const s = this.state;
    if (overflow) {
      s.scale *= this.backoffFactor;
      s.growthTracker = 0;
      s.skippedSteps++;
      return;
    }
    if (++s.growthTracker === this.growthInterval) {
      // PyTorch keeps the scale when growing would make it infinite.
      if (Number.isFinite(s.scale * this.growthFactor)) s.scale *= this.growthFactor;
      s.growthTracker = 0;
    }
  }

  exportState(): LossScalerState {
    return { ...this.state };
  }

  /** Continues from `exportState`'s output (validated first). */
  importState(state: LossScalerState): void {
    if (!state || !Number.isFinite(state.scale) || state.scale <= 0) {
      throw new RangeError(`LossScaler.importState: scale must be a finite number > 0, got ${JSON.stringify(state?.scale)}`);
    }
    for (const k of ['growthTracker', 'skippedSteps'] as const) {
      if (!Number.isSafeInteger(state[k]) || state[k] < 0) throw new RangeError(`LossScaler.importState: ${k} must be an integer >= 0, got ${JSON.stringify(state[k])}`);
    }
    this.state = { scale: state.scale, growthTracker: state.growthTracker, skippedSteps: state.skippedSteps };
  }
}
