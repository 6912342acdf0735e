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
