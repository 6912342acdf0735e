/**
 * Central-difference gradient checks in float64 for the CPU twins. Each backward twin is checked as the
 * vector-Jacobian product against a random cotangent: d/dx <f(x), v> by finite differences.
 */

/** Numerical gradient of the scalar `loss(x)` with respect to every element of x (x is restored). */
export function numericGradient(loss: (x: Float64Array) => number, x: Float64Array, eps = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    x[i] = v + eps;
    const up = loss(x);
    x[i] = v - eps;
    const down = loss(x);
    x[i] = v;
    g[i] = (up - down) / (2 * eps);
  }
  return g;
}

/** <a, b> in float64. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`dot: lengths differ (${a.length} vs ${b.length})`);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Largest |a - b| / (atol + rtol |b|); <= 1 means close. */
export function maxRelativeError(a: ArrayLike<number>, b: ArrayLike<number>, atol = 1e-6, rtol = 1e-5): number {
  if (a.length !== b.length) throw new RangeError(`maxRelativeError: lengths differ (${a.length} vs ${b.length})`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]) / (atol + rtol * Math.abs(b[i]));
    if (!(e <= worst)) worst = e;
  }
  return worst;
}
