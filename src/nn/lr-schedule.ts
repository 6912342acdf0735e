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
