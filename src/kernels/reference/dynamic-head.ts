/**
 * CPU twin of the dynamic head (DoDNet's per-sample 1x1x1 convolutions 8 -> 8 -> 8 -> 2 whose weights come
 * from the controller), in float64. Parameter layout: ../dynamic-head-layout.ts.
 */
import { HEAD_OFFSETS, HEAD_PARAMS } from '../dynamic-head-layout.js';

const { w1: W1, w2: W2, w3: W3, b1: B1, b2: B2, b3: B3 } = HEAD_OFFSETS;

/** Hidden activations of one voxel: a1 = w1 x + b1, a2 = w2 relu(a1) + b2, y = w3 relu(a2) + b3. */
function voxelForward(p: ArrayLike<number>, po: number, x: number[]): { a1: number[]; a2: number[]; y: number[] } {
  const a1 = new Array<number>(8);
  const a2 = new Array<number>(8);
  const y = new Array<number>(2);
  for (let o = 0; o < 8; o++) {
    let s = p[po + B1 + o];
    for (let i = 0; i < 8; i++) s += p[po + W1 + o * 8 + i] * x[i];
    a1[o] = s;
  }
  for (let o = 0; o < 8; o++) {
    let s = p[po + B2 + o];
    for (let i = 0; i < 8; i++) s += p[po + W2 + o * 8 + i] * Math.max(a1[i], 0);
    a2[o] = s;
  }
  for (let k = 0; k < 2; k++) {
    let s = p[po + B3 + k];
    for (let i = 0; i < 8; i++) s += p[po + W3 + k * 8 + i] * Math.max(a2[i], 0);
    y[k] = s;
  }
  return { a1, a2, y };
}

function checkSizes(what: string, h: ArrayLike<number>, params: ArrayLike<number>, n: number, v: number): void {
  if (h.length !== n * 8 * v) throw new RangeError(`${what}: h has ${h.length} values, expected N*8*V = ${n * 8 * v}`);
  if (params.length !== n * HEAD_PARAMS) {
    throw new RangeError(`${what}: params has ${params.length} values, expected N*162 = ${n * HEAD_PARAMS}`);
  }
}

/** y [N, 2, V] from h [N, 8, V] and params [N, 162]. */
export function dynamicHeadRef(h: ArrayLike<number>, params: ArrayLike<number>, n: number, v: number): Float64Array {
  checkSizes('dynamicHeadRef', h, params, n, v);
  const y = new Float64Array(n * 2 * v);
  const x = new Array<number>(8);
  for (let s = 0; s < n; s++) {
    for (let j = 0; j < v; j++) {
      for (let c = 0; c < 8; c++) x[c] = h[(s * 8 + c) * v + j];
      const r = voxelForward(params, s * HEAD_PARAMS, x);
      y[(s * 2) * v + j] = r.y[0];
      y[(s * 2 + 1) * v + j] = r.y[1];
    }
  }
  return y;
}

/** Vector-Jacobian product of the dynamic head: dh [N, 8, V] and dparams [N, 162] for the cotangent dy [N, 2, V]. */
export function dynamicHeadBackwardRef(
  h: ArrayLike<number>, params: ArrayLike<number>, dy: ArrayLike<number>, n: number, v: number,
): { dh: Float64Array; dparams: Float64Array } {
  checkSizes('dynamicHeadBackwardRef', h, params, n, v);
  if (dy.length !== n * 2 * v) throw new RangeError(`dynamicHeadBackwardRef: dy has ${dy.length} values, expected N*2*V = ${n * 2 * v}`);
  const dh = new Float64Array(n * 8 * v);
  const dp = new Float64Array(n * HEAD_PARAMS);
  const x = new Array<number>(8);
  const da1 = new Array<number>(8);
  const da2 = new Array<number>(8);
  for (let s = 0; s < n; s++) {
    const po = s * HEAD_PARAMS;
    for (let j = 0; j < v; j++) {
      for (let c = 0; c < 8; c++) x[c] = h[(s * 8 + c) * v + j];
      const { a1, a2 } = voxelForward(params, po, x);
      const g = [dy[(s * 2) * v + j], dy[(s * 2 + 1) * v + j]];
      for (let o = 0; o < 8; o++) {
        let t = 0;
        for (let k = 0; k < 2; k++) t += params[po + W3 + k * 8 + o] * g[k];
        da2[o] = a2[o] > 0 ? t : 0;
      }
      for (let o = 0; o < 8; o++) {
        let t = 0;
        for (let k = 0; k < 8; k++) t += params[po + W2 + k * 8 + o] * da2[k];
        da1[o] = a1[o] > 0 ? t : 0;
      }
      for (let i = 0; i < 8; i++) {
        let t = 0;
        for (let o = 0; o < 8; o++) t += params[po + W1 + o * 8 + i] * da1[o];
        dh[(s * 8 + i) * v + j] = t;
      }
      for (let o = 0; o < 8; o++) {
        for (let i = 0; i < 8; i++) {
          dp[po + W1 + o * 8 + i] += da1[o] * x[i];
          dp[po + W2 + o * 8 + i] += da2[o] * Math.max(a1[i], 0);
        }
        dp[po + B1 + o] += da1[o];
        dp[po + B2 + o] += da2[o];
      }
      for (let k = 0; k < 2; k++) {
        for (let i = 0; i < 8; i++) dp[po + W3 + k * 8 + i] += g[k] * Math.max(a2[i], 0);
        dp[po + B3 + k] += g[k];
      }
    }
  }
  return { dh, dparams: dp };
}
