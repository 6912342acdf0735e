/** CPU twins of group normalisation (PyTorch nn.GroupNorm semantics, optional fused ReLU), in float64. */

function dims(shape: readonly number[], groups: number): { N: number; C: number; S: number; G: number; cg: number } {
  let S = 1;
  for (let i = 2; i < shape.length; i++) S *= shape[i];
  const C = shape[1];
  if (C % groups !== 0) throw new RangeError(`groupNormRef: groups G=${groups} must divide the channels C=${C}`);
  return { N: shape[0], C, S, G: groups, cg: C / groups };
}

/** Per-(n, g) mean and 1/sqrt(biased variance + eps). */
export function groupNormStatsRef(
  x: ArrayLike<number>, shape: readonly number[], groups: number, eps = 1e-5,
): { mean: Float64Array; rstd: Float64Array } {
  const { N, S, G, cg } = dims(shape, groups);
  const M = cg * S;
  const mean = new Float64Array(N * G);
  const rstd = new Float64Array(N * G);
  for (let s = 0; s < N * G; s++) {
    let sum = 0;
    for (let i = 0; i < M; i++) sum += x[s * M + i];
    const m = sum / M;
    let sq = 0;
    for (let i = 0; i < M; i++) sq += (x[s * M + i] - m) ** 2;
    mean[s] = m;
    rstd[s] = 1 / Math.sqrt(sq / M + eps);
  }
  return { mean, rstd };
}

/** y = (x - mean) * rstd * weight[c] + bias[c], then max(y, 0) when `relu`. */
export function groupNormRef(
  x: ArrayLike<number>, shape: readonly number[], groups: number, weight: ArrayLike<number>, bias: ArrayLike<number>,
  eps = 1e-5, relu = false,
): { y: Float64Array; mean: Float64Array; rstd: Float64Array } {
  const { N, C, S, G, cg } = dims(shape, groups);
  const { mean, rstd } = groupNormStatsRef(x, shape, groups, eps);
  const y = new Float64Array(N * C * S);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      const s = n * G + Math.floor(c / cg);
      const o = (n * C + c) * S;
      for (let i = 0; i < S; i++) {
        const z = (x[o + i] - mean[s]) * rstd[s] * weight[c] + bias[c];
        y[o + i] = relu ? Math.max(z, 0) : z;
      }
    }
  }
  return { y, mean, rstd };
}

/** Gradients of groupNormRef (same eps and relu) with respect to x, weight and bias. */
export function groupNormBackwardRef(
  dy: ArrayLike<number>, x: ArrayLike<number>, shape: readonly number[], groups: number,
  weight: ArrayLike<number>, bias: ArrayLike<number>, eps = 1e-5, relu = false,
): { dx: Float64Array; dweight: Float64Array; dbias: Float64Array } {
  const { N, C, S, G, cg } = dims(shape, groups);
  const { mean, rstd } = groupNormStatsRef(x, shape, groups, eps);
  const M = cg * S;
  const dx = new Float64Array(N * C * S);
  const dweight = new Float64Array(C);
  const dbias = new Float64Array(C);
  const xhat = (o: number, s: number) => (x[o] - mean[s]) * rstd[s];
  const dz = (o: number, s: number, c: number) => (relu && xhat(o, s) * weight[c] + bias[c] <= 0 ? 0 : dy[o]);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < G; g++) {
      const s = n * G + g;
      let a = 0; // sum of dz*w
      let b = 0; // sum of dz*w*xhat
      for (let c = g * cg; c < (g + 1) * cg; c++) {
        const o0 = (n * C + c) * S;
        for (let i = 0; i < S; i++) {
          const d = dz(o0 + i, s, c);
          const xh = xhat(o0 + i, s);
          a += d * weight[c];
          b += d * weight[c] * xh;
          dweight[c] += d * xh;
          dbias[c] += d;
        }
      }
      a /= M;
      b /= M;
      for (let c = g * cg; c < (g + 1) * cg; c++) {
        const o0 = (n * C + c) * S;
        for (let i = 0; i < S; i++) {
          dx[o0 + i] = rstd[s] * (dz(o0 + i, s, c) * weight[c] - a - xhat(o0 + i, s) * b);
        }
      }
    }
  }
  return { dx, dweight, dbias };
}
