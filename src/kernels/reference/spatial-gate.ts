/** CPU twins of voxel-wise gating, in float64. */

function dims(shape: readonly number[]): { N: number; C: number; S: number } {
  let S = 1;
  for (let i = 2; i < shape.length; i++) S *= shape[i];
  return { N: shape[0], C: shape[1], S };
}

/** y = x[n, c, v] * g[n, v]. */
export function spatialGateRef(x: ArrayLike<number>, shape: readonly number[], g: ArrayLike<number>): Float64Array {
  const { N, C, S } = dims(shape);
  const y = new Float64Array(N * C * S);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) for (let v = 0; v < S; v++) y[(n * C + c) * S + v] = x[(n * C + c) * S + v] * g[n * S + v];
  }
  return y;
}

/** dx = dy * g[n, v]; dg[n, v] = sum over channels of dy * x. */
export function spatialGateBackwardRef(
  dy: ArrayLike<number>, x: ArrayLike<number>, shape: readonly number[], g: ArrayLike<number>,
): { dx: Float64Array; dg: Float64Array } {
  const { N, C, S } = dims(shape);
  const dx = new Float64Array(N * C * S);
  const dg = new Float64Array(N * S);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      for (let v = 0; v < S; v++) {
        const i = (n * C + c) * S + v;
        dx[i] = dy[i] * g[n * S + v];
        dg[n * S + v] += dy[i] * x[i];
      }
    }
  }
  return { dx, dg };
}
