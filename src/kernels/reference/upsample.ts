/** CPU twins of trilinear x2 upsampling (PyTorch align_corners=False), in float64. */

/** PyTorch's source index for scale 2, align_corners=False: [i0, i1, lambda1]. */
export function sourceIndex(o: number, L: number): [number, number, number] {
  const s = Math.max((o + 0.5) * 0.5 - 0.5, 0);
  const i0 = Math.floor(s);
  return [i0, Math.min(i0 + 1, L - 1), s - i0];
}

/** y [N, C, 2D, 2H, 2W] from x [N, C, D, H, W]. */
export function upsampleTrilinear2xRef(x: ArrayLike<number>, shape: readonly number[]): Float64Array {
  const [N, C, D, H, W] = shape;
  const [OD, OH, OW] = [2 * D, 2 * H, 2 * W];
  const y = new Float64Array(N * C * OD * OH * OW);
  let o = 0;
  for (let nc = 0; nc < N * C; nc++) {
    const at = (d: number, h: number, w: number) => x[((nc * D + d) * H + h) * W + w];
    for (let od = 0; od < OD; od++) {
      const [d0, d1, ld] = sourceIndex(od, D);
      for (let oh = 0; oh < OH; oh++) {
        const [h0, h1, lh] = sourceIndex(oh, H);
        for (let ow = 0; ow < OW; ow++) {
          const [w0, w1, lw] = sourceIndex(ow, W);
          y[o++] = (1 - ld) * ((1 - lh) * ((1 - lw) * at(d0, h0, w0) + lw * at(d0, h0, w1))
                             + lh * ((1 - lw) * at(d0, h1, w0) + lw * at(d0, h1, w1)))
                 + ld * ((1 - lh) * ((1 - lw) * at(d1, h0, w0) + lw * at(d1, h0, w1))
                       + lh * ((1 - lw) * at(d1, h1, w0) + lw * at(d1, h1, w1)));
        }
      }
    }
  }
  return y;
}

/** dx [N, C, D, H, W]: the adjoint, by scattering each output gradient to its 8 sources. `shape` is x's. */
export function upsampleTrilinear2xBackwardRef(dy: ArrayLike<number>, shape: readonly number[]): Float64Array {
  const [N, C, D, H, W] = shape;
  const [OD, OH, OW] = [2 * D, 2 * H, 2 * W];
  const dx = new Float64Array(N * C * D * H * W);
  let o = 0;
  for (let nc = 0; nc < N * C; nc++) {
    for (let od = 0; od < OD; od++) {
      const [d0, d1, ld] = sourceIndex(od, D);
      for (let oh = 0; oh < OH; oh++) {
        const [h0, h1, lh] = sourceIndex(oh, H);
        for (let ow = 0; ow < OW; ow++) {
          const [w0, w1, lw] = sourceIndex(ow, W);
          const g = dy[o++];
          for (const [d, wd] of [[d0, 1 - ld], [d1, ld]]) {
            for (const [h, wh] of [[h0, 1 - lh], [h1, lh]]) {
              for (const [w, wwt] of [[w0, 1 - lw], [w1, lw]]) {
                dx[((nc * D + d) * H + h) * W + w] += g * wd * wh * wwt;
              }
            }
          }
        }
      }
    }
  }
  return dx;
}
