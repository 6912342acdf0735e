/** CPU twins of weight standardisation (bench/torch/tgnet_torch.py `standardize`), in float64. */

function split(shape: readonly number[]): { cout: number; k: number } {
  let k = 1;
  for (let i = 1; i < shape.length; i++) k *= shape[i];
  return { cout: shape[0], k };
}

/** Per filter: (w - mean) / sqrt(unbiased var + 1e-12). Returns what and the per-filter mean and rstd. */
export function weightStandardizeRef(
  w: ArrayLike<number>, shape: readonly number[], eps = 1e-12,
): { what: Float64Array; mean: Float64Array; rstd: Float64Array } {
  const { cout, k } = split(shape);
  const what = new Float64Array(cout * k);
  const mean = new Float64Array(cout);
  const rstd = new Float64Array(cout);
  for (let o = 0; o < cout; o++) {
    let s = 0;
    for (let i = 0; i < k; i++) s += w[o * k + i];
    const m = s / k;
    let q = 0;
    for (let i = 0; i < k; i++) q += (w[o * k + i] - m) ** 2;
    const r = 1 / Math.sqrt(q / (k - 1) + eps);
    for (let i = 0; i < k; i++) what[o * k + i] = (w[o * k + i] - m) * r;
    mean[o] = m;
    rstd[o] = r;
  }
  return { what, mean, rstd };
}

/** dw = rstd * (g - mean(g) - what * sum(g * what) / (K - 1)), per filter. */
export function weightStandardizeBackwardRef(
  dwhat: ArrayLike<number>, w: ArrayLike<number>, shape: readonly number[], eps = 1e-12,
): Float64Array {
  const { cout, k } = split(shape);
  const { what, rstd } = weightStandardizeRef(w, shape, eps);
  const dw = new Float64Array(cout * k);
  for (let o = 0; o < cout; o++) {
    let gs = 0;
    let gw = 0;
    for (let i = 0; i < k; i++) {
      gs += dwhat[o * k + i];
      gw += dwhat[o * k + i] * what[o * k + i];
    }
    for (let i = 0; i < k; i++) {
      dw[o * k + i] = rstd[o] * (dwhat[o * k + i] - gs / k - what[o * k + i] * gw / (k - 1));
    }
  }
  return dw;
}
