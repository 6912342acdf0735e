/** Learning-rate schedules. */

/**
 * DoDNet/TGNet's poly schedule: lr0 * (1 - step / totalSteps) ^ power (0 at and past the last step when power > 0).
 * `step` counts from 0; pass the result to `sgdStep` as its `lr` (a uniform, so changing it recompiles nothing).
 */
export function polyLr(lr0: number, step: number, totalSteps: number, power = 0.9): number {
  if (!Number.isFinite(lr0) || lr0 < 0) throw new RangeError(`polyLr: lr0 must be a finite non-negative number, got ${lr0}`);
  if (!Number.isInteger(totalSteps) || totalSteps < 1) throw new RangeError(`polyLr: totalSteps must be a positive integer, got ${totalSteps}`);
  if (!Number.isFinite(step) || step < 0) throw new RangeError(`polyLr: step must be a non-negative number, got ${step}`);
  if (!Number.isFinite(power) || power < 0) throw new RangeError(`polyLr: power must be a finite non-negative number, got ${power}`);
  const frac = Math.max(0, 1 - step / totalSteps);
  return lr0 * frac ** power;
}

export type LrDecay = 'poly' | 'cosine';

export interface ScheduleOptions {
  /** Steps of linear warm-up before the decay starts (default 0: the decay alone, e.g. exactly `polyLr`). */
  warmupSteps?: number;
  /** Decay after the warm-up (default 'poly'). */
  decay?: LrDecay;
  /** Exponent of the poly decay (default 0.9). */
  power?: number;
}

/**
 * Linear warm-up, then a decay to 0 at `totalSteps`. Step s < W (W = warmupSteps) uses lr0 * (s + 1) / (W + 1),
 * a ramp that never spends a step at lr 0 and reaches lr0 at step W; from there the decay runs over the
 * remaining T - W steps: 'poly' is `polyLr(lr0, s - W, T - W, power)` (so W = 0 is `polyLr` exactly), 'cosine'
 * is lr0 * (1 + cos(pi * (s - W) / (T - W))) / 2. Warm-up keeps Adam's early, poorly estimated second moments,
 * and a high SGD rate, from throwing the weights far before the statistics settle.
 */
export function scheduledLr(lr0: number, step: number, totalSteps: number, options: ScheduleOptions = {}): number {
  const warmup = options.warmupSteps ?? 0;
  const decay = options.decay ?? 'poly';
  const power = options.power ?? 0.9;
  if (!Number.isInteger(totalSteps) || totalSteps < 1) throw new RangeError(`scheduledLr: totalSteps must be a positive integer, got ${totalSteps}`);
  if (!Number.isInteger(warmup) || warmup < 0 || warmup >= totalSteps) {
    throw new RangeError(`scheduledLr: warmupSteps must be an integer in [0, totalSteps) = [0, ${totalSteps}), got ${warmup}`);
  }
  if (decay !== 'poly' && decay !== 'cosine') throw new RangeError(`scheduledLr: decay must be 'poly' or 'cosine', got ${JSON.stringify(decay)}`);
  if (!Number.isFinite(step) || step < 0) throw new RangeError(`scheduledLr: step must be a non-negative number, got ${step}`);
  if (step < warmup) {
    if (!Number.isFinite(lr0) || lr0 < 0) throw new RangeError(`scheduledLr: lr0 must be a finite non-negative number, got ${lr0}`);
    return (lr0 * (step + 1)) / (warmup + 1);
  }
  if (decay === 'poly') return polyLr(lr0, step - warmup, totalSteps - warmup, power);
  if (!Number.isFinite(lr0) || lr0 < 0) throw new RangeError(`scheduledLr: lr0 must be a finite non-negative number, got ${lr0}`);
  const frac = Math.min(1, (step - warmup) / (totalSteps - warmup));
  return (lr0 * (1 + Math.cos(Math.PI * frac))) / 2;
}
