/**
 * CPU twins of the conv3d kernels (NCDHW, cross-correlation as PyTorch's F.conv3d), direct loops in float64.
 * Slow by design: they are the ground truth for the GPU kernels on small shapes.
 */
import { conv3dOutputShape, type Conv3dShape } from '../conv3d/index.js';

interface Dims {
  N: number; Cin: number; D: number; H: number; W: number;
  Cout: number; k: number; s: number; p: number; Do: number; Ho: number; Wo: number;
}

function dims(shape: Conv3dShape): Dims {
  const s = shape.stride ?? 1;
  const p = shape.padding ?? 0;
  const out = conv3dOutputShape(shape.x, shape.w, { stride: s, padding: p });
  const [N, Cin, D, H, W] = shape.x;
  return { N, Cin, D, H, W, Cout: shape.w[0], k: shape.w[2], s, p, Do: out[2], Ho: out[3], Wo: out[4] };
}

/**
 * Calls fn(xIndex, wIndex, outIndex) for every (input, weight, output) triple that the convolution multiplies
 * together; every kernel below is a contraction over this one loop nest.
 */
function forEachTap(d: Dims, fn: (xi: number, wi: number, oi: number) => void): void {
  const { N, Cin, D, H, W, Cout, k, s, p, Do, Ho, Wo } = d;
  for (let n = 0; n < N; n++) {
    for (let co = 0; co < Cout; co++) {
      for (let od = 0; od < Do; od++) {
        for (let oh = 0; oh < Ho; oh++) {
          for (let ow = 0; ow < Wo; ow++) {
            const oi = (((n * Cout + co) * Do + od) * Ho + oh) * Wo + ow;
            for (let ci = 0; ci < Cin; ci++) {
              for (let kd = 0; kd < k; kd++) {
                const id = od * s - p + kd;
                if (id < 0 || id >= D) continue;
                for (let kh = 0; kh < k; kh++) {
                  const ih = oh * s - p + kh;
                  if (ih < 0 || ih >= H) continue;
                  for (let kw = 0; kw < k; kw++) {
                    const iw = ow * s - p + kw;
                    if (iw < 0 || iw >= W) continue;
                    const xi = (((n * Cin + ci) * D + id) * H + ih) * W + iw;
                    const wi = (((co * Cin + ci) * k + kd) * k + kh) * k + kw;
                    fn(xi, wi, oi);
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}

/** y = conv3d(x, w) + bias, shape conv3dOutputShape(shape.x, shape.w, shape). */
export function conv3dRef(
  x: ArrayLike<number>, w: ArrayLike<number>, bias: ArrayLike<number> | null, shape: Conv3dShape,
): { data: Float64Array; shape: number[] } {
  const d = dims(shape);
  const outShape = [d.N, d.Cout, d.Do, d.Ho, d.Wo];
  const y = new Float64Array(outShape.reduce((a, b) => a * b, 1));
  if (bias) {
    const vox = d.Do * d.Ho * d.Wo;
    for (let i = 0; i < y.length; i++) y[i] = bias[Math.floor(i / vox) % d.Cout];
  }
  forEachTap(d, (xi, wi, oi) => {
    y[oi] += x[xi] * w[wi];
  });
  return { data: y, shape: outShape };
}

/** dL/dx given dL/dy (the transposed convolution), shape shape.x. */
export function conv3dBackwardDataRef(gy: ArrayLike<number>, w: ArrayLike<number>, shape: Conv3dShape): Float64Array {
  const d = dims(shape);
  const gx = new Float64Array(d.N * d.Cin * d.D * d.H * d.W);
  forEachTap(d, (xi, wi, oi) => {
    gx[xi] += gy[oi] * w[wi];
  });
  return gx;
}

/** dL/dw given the input and dL/dy, shape shape.w. */
export function conv3dBackwardWeightRef(x: ArrayLike<number>, gy: ArrayLike<number>, shape: Conv3dShape): Float64Array {
  const d = dims(shape);
  const gw = new Float64Array(d.Cout * d.Cin * d.k ** 3);
  forEachTap(d, (xi, wi, oi) => {
    gw[wi] += gy[oi] * x[xi];
  });
  return gw;
}

/** dL/dbias: dL/dy summed over the batch and all output voxels, shape [Cout]. */
export function conv3dBackwardBiasRef(gy: ArrayLike<number>, shape: Conv3dShape): Float64Array {
  const d = dims(shape);
  const vox = d.Do * d.Ho * d.Wo;
  const gb = new Float64Array(d.Cout);
  for (let n = 0; n < d.N; n++) {
    for (let co = 0; co < d.Cout; co++) {
      const base = (n * d.Cout + co) * vox;
      let s = 0;
      for (let v = 0; v < vox; v++) s += gy[base + v];
      gb[co] += s;
    }
  }
  return gb;
}

/**
 * The input a conv with Conv3dOptions.inputNormRelu reads: relu((x - mean) * a + beta) per (sample, channel),
 * `coef` holding (mean, a, beta, 0) per (n, c) as groupNormCoefficients writes it.
 */
export function normReluInputRef(x: ArrayLike<number>, coef: ArrayLike<number>, shape: readonly number[]): Float64Array {
  const [N, C] = shape;
  const S = shape.slice(2).reduce((a, b) => a * b, 1);
  const out = new Float64Array(N * C * S);
  for (let nc = 0; nc < N * C; nc++) {
    const [m, a, b] = [coef[4 * nc], coef[4 * nc + 1], coef[4 * nc + 2]];
    for (let i = 0; i < S; i++) out[nc * S + i] = Math.max((x[nc * S + i] - m) * a + b, 0);
  }
  return out;
}
