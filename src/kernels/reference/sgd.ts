/**
 * CPU twin of the fused SGD update, in float64, with torch.optim.SGD semantics (maximize=False):
 *   g = grad + weightDecay * p
 *   if momentum != 0: buf = firstStep ? g : momentum * buf + (1 - dampening) * g
 *                     g = nesterov ? g + momentum * buf : buf
 *   p = p - lr * g
 */

export interface SgdRefOptions {
  lr: number;
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
  dampening: number;
  firstStep: boolean;
}

/** One step on copies of the inputs; returns the new parameters and momentum buffer. */
export function sgdRef(
  params: ArrayLike<number>, grads: ArrayLike<number>, momentum: ArrayLike<number>, o: SgdRefOptions,
): { params: Float64Array; momentum: Float64Array } {
  const n = params.length;
  if (grads.length !== n || momentum.length !== n) {
    throw new RangeError(`sgdRef: params, grads and momentum lengths differ (${n}, ${grads.length}, ${momentum.length})`);
  }
  const p = Float64Array.from(params);
  const m = Float64Array.from(momentum);
  for (let i = 0; i < n; i++) {
    let g = grads[i] + o.weightDecay * p[i];
    if (o.momentum !== 0) {
      m[i] = o.firstStep ? g : o.momentum * m[i] + (1 - o.dampening) * g;
      g = o.nesterov ? g + o.momentum * m[i] : m[i];
    }
    p[i] -= o.lr * g;
  }
  return { params: p, momentum: m };
}
