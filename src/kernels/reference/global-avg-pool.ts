/** CPU twins of global average pooling, in float64. */

function spatial(shape: readonly number[]): { NC: number; S: number } {
  let S = 1;
  for (let i = 2; i < shape.length; i++) S *= shape[i];
  return { NC: shape[0] * shape[1], S };
}

/** [N, C, ...] -> [N, C]: mean over the spatial dims. */
export function globalAvgPoolRef(x: ArrayLike<number>, shape: readonly number[]): Float64Array {
  const { NC, S } = spatial(shape);
  const out = new Float64Array(NC);
  for (let i = 0; i < NC; i++) {
    let s = 0;
    for (let j = 0; j < S; j++) s += x[i * S + j];
    out[i] = s / S;
  }
  return out;
}

/** Adjoint: dx[n, c, ...] = g[n, c] / S. `shape` is the input's shape. */
export function globalAvgPoolBackwardRef(g: ArrayLike<number>, shape: readonly number[]): Float64Array {
  const { NC, S } = spatial(shape);
  const dx = new Float64Array(NC * S);
  for (let i = 0; i < NC; i++) dx.fill(g[i] / S, i * S, (i + 1) * S);
  return dx;
}
