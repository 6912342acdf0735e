/** CPU twins of channel-wise gating, in float64. */

function dims(shape: readonly number[]): { NC: number; S: number } {
  let S = 1;
  for (let i = 2; i < shape.length; i++) S *= shape[i];
  return { NC: shape[0] * shape[1], S };
}

/** y = x[n, c, ...] * g[n, c]. */
export function channelGateRef(x: ArrayLike<number>, shape: readonly number[], g: ArrayLike<number>): Float64Array {
  const { NC, S } = dims(shape);
  const y = new Float64Array(NC * S);
  for (let i = 0; i < NC; i++) for (let j = 0; j < S; j++) y[i * S + j] = x[i * S + j] * g[i];
  return y;
}

/** dx = dy * g[n, c]; dg[n, c] = sum_voxels dy * x. */
export function channelGateBackwardRef(
  dy: ArrayLike<number>, x: ArrayLike<number>, shape: readonly number[], g: ArrayLike<number>,
): { dx: Float64Array; dg: Float64Array } {
  const { NC, S } = dims(shape);
  const dx = new Float64Array(NC * S);
  const dg = new Float64Array(NC);
  for (let i = 0; i < NC; i++) {
    for (let j = 0; j < S; j++) {
      dx[i * S + j] = dy[i * S + j] * g[i];
      dg[i] += dy[i * S + j] * x[i * S + j];
    }
  }
  return { dx, dg };
}
