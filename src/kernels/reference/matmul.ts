/** CPU twin of the batched matmul, float64 accumulation. */
import type { MatmulOptions } from '../matmul.js';

/** out[b, i, j] = sum_l op(A[b])[i, l] * op(B[b])[l, j], as `matmul`. */
export function matmulRef(a: ArrayLike<number>, b: ArrayLike<number>, options: MatmulOptions): Float64Array {
  const { m, n, k } = options;
  const batch = options.batch ?? 1;
  const sA = options.batchStrideA ?? m * k;
  const sB = options.batchStrideB ?? k * n;
  const out = new Float64Array(batch * m * n);
  for (let z = 0; z < batch; z++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let l = 0; l < k; l++) {
          const av = a[z * sA + (options.transposeA ? l * m + i : i * k + l)];
          const bv = b[z * sB + (options.transposeB ? j * k + l : l * n + j)];
          s += av * bv;
        }
        out[(z * m + i) * n + j] = s;
      }
    }
  }
  return out;
}

/** Gradients of matmulRef for the cotangent gOut ([batch, m, n]), in A's and B's storage layouts (shared operands accumulate). */
export function matmulBackwardRef(
  a: ArrayLike<number>, b: ArrayLike<number>, gOut: ArrayLike<number>, options: MatmulOptions,
): { gradA: Float64Array; gradB: Float64Array } {
  const { m, n, k } = options;
  const batch = options.batch ?? 1;
  const sA = options.batchStrideA ?? m * k;
  const sB = options.batchStrideB ?? k * n;
  const gradA = new Float64Array(a.length);
  const gradB = new Float64Array(b.length);
  for (let z = 0; z < batch; z++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        const g = gOut[(z * m + i) * n + j];
        for (let l = 0; l < k; l++) {
          const ia = z * sA + (options.transposeA ? l * m + i : i * k + l);
          const ib = z * sB + (options.transposeB ? j * k + l : l * n + j);
          gradA[ia] += g * b[ib];
          gradB[ib] += g * a[ia];
        }
      }
    }
  }
  return { gradA, gradB };
}
