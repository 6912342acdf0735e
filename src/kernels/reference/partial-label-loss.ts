/**
 * CPU twin of the DoDNet/TGNet partial-label loss (bench/torch/tgnet_torch.py `loss_fn`), in float64.
 *
 * p = sigmoid(logits), t = max(target, 0). Per sample n and channel c:
 *   dice[n,c] = 1 - 2 sum(p t) / (sum(p) + sum(t) + 1),   bce[n,c] = mean of max(x,0) - x t + log(1 + exp(-|x|)).
 * A channel is annotated for a sample when target[n, c, 0] != -1 (the reference checks the first voxel only).
 * loss = mean over channels with at least one annotating sample of (mean dice + mean bce over those samples).
 * When no channel is annotated at all (where PyTorch's torch.stack([]) would raise) the loss is defined as 0,
 * with a zero gradient.
 */

export interface PartialLabelLossRef {
  loss: number;
  /** Per (n, c), row-major [N, 2]. */
  dice: Float64Array;
  bce: Float64Array;
  labelled: boolean[];
  /** d loss / d dice[n,c] (= d loss / d bce[n,c]): 1 / (active channels * annotating samples of c), or 0. */
  coef: Float64Array;
  /** Per (n, c): sum(p t), sum(p), sum(t). */
  intersection: Float64Array;
  predSum: Float64Array;
  targetSum: Float64Array;
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

function check(what: string, logits: ArrayLike<number>, target: ArrayLike<number>, n: number, v: number): void {
  if (logits.length !== n * 2 * v) throw new RangeError(`${what}: logits has ${logits.length} values, expected N*2*V = ${n * 2 * v}`);
  if (target.length !== n * 2 * v) throw new RangeError(`${what}: target has ${target.length} values, expected N*2*V = ${n * 2 * v}`);
}

export function partialLabelLossRef(logits: ArrayLike<number>, target: ArrayLike<number>, n: number, v: number): PartialLabelLossRef {
  check('partialLabelLossRef', logits, target, n, v);
  const m = n * 2;
  const r: PartialLabelLossRef = {
    loss: 0, dice: new Float64Array(m), bce: new Float64Array(m), labelled: new Array<boolean>(m).fill(false),
    coef: new Float64Array(m), intersection: new Float64Array(m), predSum: new Float64Array(m), targetSum: new Float64Array(m),
  };
  for (let nc = 0; nc < m; nc++) {
    let spt = 0;
    let sp = 0;
    let st = 0;
    let sb = 0;
    for (let j = 0; j < v; j++) {
      const x = logits[nc * v + j];
      const t = Math.max(target[nc * v + j], 0);
      const p = sigmoid(x);
      spt += p * t;
      sp += p;
      st += t;
      sb += Math.max(x, 0) - x * t + Math.log1p(Math.exp(-Math.abs(x)));
    }
    r.intersection[nc] = spt;
    r.predSum[nc] = sp;
    r.targetSum[nc] = st;
    r.dice[nc] = 1 - (2 * spt) / (sp + st + 1);
    r.bce[nc] = v > 0 ? sb / v : 0;
    r.labelled[nc] = v > 0 && target[nc * v] !== -1;
  }
  const counts = [0, 0];
  for (let nc = 0; nc < m; nc++) if (r.labelled[nc]) counts[nc % 2]++;
  const active = (counts[0] > 0 ? 1 : 0) + (counts[1] > 0 ? 1 : 0);
  if (active === 0) return r;
  let loss = 0;
  for (let c = 0; c < 2; c++) {
    if (!counts[c]) continue;
    let s = 0;
    for (let s0 = 0; s0 < n; s0++) {
      const nc = s0 * 2 + c;
      if (r.labelled[nc]) {
        s += r.dice[nc] + r.bce[nc];
        r.coef[nc] = 1 / (active * counts[c]);
      }
    }
    loss += s / counts[c];
  }
  r.loss = loss / active;
  return r;
}

/** d loss / d logits [N, 2, V], scaled by the upstream gradient `dloss`. */
export function partialLabelLossBackwardRef(
  logits: ArrayLike<number>, target: ArrayLike<number>, n: number, v: number, dloss = 1,
): Float64Array {
  const r = partialLabelLossRef(logits, target, n, v);
  const g = new Float64Array(n * 2 * v);
  for (let nc = 0; nc < n * 2; nc++) {
    const k = dloss * r.coef[nc];
    if (k === 0) continue;
    const den = r.predSum[nc] + r.targetSum[nc] + 1;
    for (let j = 0; j < v; j++) {
      const x = logits[nc * v + j];
      const t = Math.max(target[nc * v + j], 0);
      const p = sigmoid(x);
      const dDiceDp = (-2 * t) / den + (2 * r.intersection[nc]) / (den * den);
      g[nc * v + j] = k * (dDiceDp * p * (1 - p) + (p - t) / v);
    }
  }
  return g;
}
