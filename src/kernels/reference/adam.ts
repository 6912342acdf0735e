/**
 * CPU twin of the fused Adam / AdamW update, in float64, with torch.optim.Adam / AdamW semantics
 * (amsgrad and maximize off); `step` is the 1-based count of this update:
 *   Adam: g = grad + weightDecay * p;   AdamW: g = grad, p = p * (1 - lr * weightDecay)
 *   m = m + (1 - beta1) * (g - m);  v = beta2 * v + (1 - beta2) * g^2     (m = v = 0 before step 1)
 *   p = p - lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
 */

export interface AdamRefOptions {
  lr: number;
  betas: readonly [number, number];
  eps: number;
  weightDecay: number;
  decoupled: boolean;
  step: number;
}

export interface AdamRefState {
  params: Float64Array;
  expAvg: Float64Array;
  expAvgSq: Float64Array;
}

/** One step on copies of the inputs; returns the new parameters and both moments. */
export function adamRef(
  params: ArrayLike<number>, grads: ArrayLike<number>, expAvg: ArrayLike<number>, expAvgSq: ArrayLike<number>, o: AdamRefOptions,
): AdamRefState {
  const n = params.length;
  if (grads.length !== n || expAvg.length !== n || expAvgSq.length !== n) {
    throw new RangeError(`adamRef: params, grads, expAvg and expAvgSq lengths differ (${n}, ${grads.length}, ${expAvg.length}, ${expAvgSq.length})`);
  }
  if (!Number.isSafeInteger(o.step) || o.step < 1) throw new RangeError(`adamRef: step must be a positive integer, got ${o.step}`);
  const [b1, b2] = o.betas;
  const p = Float64Array.from(params);
  const m = o.step === 1 ? new Float64Array(n) : Float64Array.from(expAvg);
  const v = o.step === 1 ? new Float64Array(n) : Float64Array.from(expAvgSq);
  const stepSize = o.lr / (1 - b1 ** o.step);
  const bc2Sqrt = Math.sqrt(1 - b2 ** o.step);
  for (let i = 0; i < n; i++) {
    let g = grads[i];
    if (o.decoupled) p[i] *= 1 - o.lr * o.weightDecay;
    else g += o.weightDecay * p[i];
    m[i] += (1 - b1) * (g - m[i]);
    v[i] = b2 * v[i] + (1 - b2) * g * g;
    p[i] -= stepSize * (m[i] / (Math.sqrt(v[i]) / bc2Sqrt + o.eps));
  }
  return { params: p, expAvg: m, expAvgSq: v };
}
