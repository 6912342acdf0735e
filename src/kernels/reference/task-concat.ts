/** CPU twins of the feature + task one-hot concatenation, in float64. */

/** [N, C] features and N task ids -> [N, C + T] = [features, one_hot(task, T)]. */
export function taskConcatRef(
  features: ArrayLike<number>, shape: readonly number[], taskIds: readonly number[], numTasks: number,
): Float64Array {
  const [N, C] = shape;
  const W = C + numTasks;
  const out = new Float64Array(N * W);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) out[n * W + c] = features[n * C + c];
    out[n * W + C + taskIds[n]] = 1;
  }
  return out;
}

/** dfeatures [N, C] = dout[:, :C]. */
export function taskConcatBackwardRef(dout: ArrayLike<number>, shape: readonly number[], numTasks: number): Float64Array {
  const [N, C] = shape;
  const W = C + numTasks;
  const df = new Float64Array(N * C);
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) df[n * C + c] = dout[n * W + c];
  return df;
}
