/**
 * The geometry of one conv3d (sizes, stride, padding, output extent) and the WGSL that reads those sizes,
 * either compiled in as constants (one pipeline per layer shape) or from the uniforms (one per kernel size).
 */
import type { UniformType, UniformValues } from '../runtime/kernel-signature.js';
import { checkShape } from '../runtime/wgsl.js';

/** The geometry of one convolution. */
export interface Conv3dShape {
  /** Input [N, Cin, D, H, W]. */
  x: readonly number[];
  /** Weight [Cout, Cin, k, k, k] (cubic kernel). */
  w: readonly number[];
  /** Stride, the same on all three axes (default 1). */
  stride?: number;
  /** Zero padding on every side of all three axes (default 0, as PyTorch; TGNet uses k >> 1). */
  padding?: number;
}

/** A checked Conv3dShape: input, kernel and output extents. */
export interface Conv3dGeometry {
  N: number; Cin: number; D: number; H: number; W: number;
  Cout: number; k: number; s: number; p: number;
  Do: number; Ho: number; Wo: number;
  out: number[];
}

/** [N, Cout, Do, Ho, Wo] of conv3d(x, w) with Do = floor((D + 2p - k) / s) + 1; throws on bad shapes. */
export function conv3dOutputShape(
  xShape: readonly number[], wShape: readonly number[], opts: { stride?: number; padding?: number } = {},
): number[] {
  return geometry({ x: xShape, w: wShape, stride: opts.stride, padding: opts.padding }, 'conv3d').out;
}

/** Checks a shape; `what` names the op in errors. */
export function geometry(shape: Conv3dShape, what: string): Conv3dGeometry {
  const { x, w } = shape;
  checkShape(x as number[], `${what} input`);
  checkShape(w as number[], `${what} weight`);
  if (x.length !== 5) throw new RangeError(`${what}: input must be [N, Cin, D, H, W], got [${x.join(', ')}]`);
  if (w.length !== 5) throw new RangeError(`${what}: weight must be [Cout, Cin, k, k, k], got [${w.join(', ')}]`);
  const [N, Cin, D, H, W] = x;
  const [Cout, wCin, k, kh, kw] = w;
  if (wCin !== Cin) {
    throw new RangeError(
      `${what}: weight [${w.join(', ')}] expects ${wCin} input channels but input [${x.join(', ')}] has ${Cin}`,
    );
  }
  if (k !== kh || k !== kw) throw new RangeError(`${what}: kernel must be cubic, got weight [${w.join(', ')}]`);
  if (k < 1) throw new RangeError(`${what}: kernel size must be at least 1, got weight [${w.join(', ')}]`);
  if (Cin < 1 || Cout < 1) throw new RangeError(`${what}: channel counts must be positive, got input [${x.join(', ')}] and weight [${w.join(', ')}]`);
  const s = shape.stride ?? 1;
  const p = shape.padding ?? 0;
  if (!Number.isInteger(s) || s < 1) throw new RangeError(`${what}: stride must be a positive integer, got ${s}`);
  if (!Number.isInteger(p) || p < 0) throw new RangeError(`${what}: padding must be a non-negative integer, got ${p}`);
  const o = (n: number) => Math.floor((n + 2 * p - k) / s) + 1;
  const [Do, Ho, Wo] = [o(D), o(H), o(W)];
  const out = [N, Cout, Math.max(Do, 0), Math.max(Ho, 0), Math.max(Wo, 0)];
  if (N < 1 || Do < 1 || Ho < 1 || Wo < 1) {
    throw new RangeError(
      `${what}: output would be empty: input [${x.join(', ')}] with kernel ${k}, stride ${s}, padding ${p} gives [${out.join(', ')}]`,
    );
  }
  return { N, Cin, D, H, W, Cout, k, s, p, Do, Ho, Wo, out };
}

export function checkWeightFits(g: Conv3dGeometry, budget: number, what: string): void {
  const n = g.Cout * g.Cin * g.k ** 3;
  if (n > budget) throw new RangeError(`${what}: weight of ${n} elements does not fit one storage binding (${budget * 4} bytes)`);
}

/** Tensor sizes the implicit GEMMs read either as constants (specialised) or from these uniforms (generic). */
export const SIZE_UNIFORMS = {
  D: 'u32', H: 'u32', W: 'u32', HW: 'u32', DHW: 'u32', DO: 'u32', HO: 'u32', WO: 'u32', HWO: 'u32', DHWO: 'u32',
  PAD: 'u32', XS: 'u32', OS: 'u32', WROW: 'u32', WSIZE: 'u32',
} as const satisfies Record<string, UniformType>;

export type SizeValues = UniformValues<typeof SIZE_UNIFORMS>;

export function sizeValues(g: Conv3dGeometry): SizeValues {
  const K3 = g.k ** 3;
  const DHW = g.D * g.H * g.W;
  const DHWO = g.Do * g.Ho * g.Wo;
  return {
    D: g.D, H: g.H, W: g.W, HW: g.H * g.W, DHW, DO: g.Do, HO: g.Ho, WO: g.Wo, HWO: g.Ho * g.Wo, DHWO,
    PAD: g.p, XS: g.Cin * DHW, OS: g.Cout * DHWO, WROW: g.Cin * K3, WSIZE: g.Cout * g.Cin * K3,
  };
}

/**
 * WGSL declarations of the sizes (`decl`, module scope) and their initialisation (`init`, first statements of
 * main). Kernel size and stride are always constants; the rest are constants only when specialised. The
 * padding is `P`, an i32.
 */
export function sizeConstants(g: Conv3dGeometry, specialize: boolean): { decl: string; init: string } {
  const fixed = `const KS = ${g.k}u; const K2 = ${g.k * g.k}u; const K3 = ${g.k ** 3}u; const S = ${g.s}u;`;
  const names = Object.keys(SIZE_UNIFORMS) as (keyof SizeValues)[];
  if (specialize) {
    const v = sizeValues(g);
    const decl = names.map((n) => (n === 'PAD' ? `const P = ${v[n]}i;` : `const ${n} = ${v[n]}u;`)).join(' ');
    return { decl: `${fixed}\n${decl}`, init: '' };
  }
  const decl = names.map((n) => (n === 'PAD' ? 'var<private> P: i32;' : `var<private> ${n}: u32;`)).join(' ');
  const init = names.map((n) => (n === 'PAD' ? 'P = i32(p.PAD);' : `${n} = p.${n};`)).join(' ');
  return { decl: `${fixed}\n${decl}`, init };
}

/** WGSL statements splitting kernel offset `r` (< K3) into kd, kh, kw. */
export function splitKernelOffset(g: Conv3dGeometry, r: string): string {
  if (g.k === 1) return 'let kd = 0u; let kh = 0u; let kw = 0u;';
  return `let kd = ${r} / K2; let krem = ${r} - kd * K2; let kh = krem / KS; let kw = krem - kh * KS;`;
}

/** The part of a pipeline key that identifies what `sizeConstants` compiled in. */
export function geometryKey(g: Conv3dGeometry, specialize: boolean): string {
  return specialize ? `${g.N}x${g.Cin}x${g.D}x${g.H}x${g.W}:${g.Cout}k${g.k}s${g.s}p${g.p}` : `k${g.k}s${g.s}`;
}
