/** GEMM tiles of the conv3d implicit GEMMs: the choice from the shape and device limits, and its checks. */
import type { GemmTile } from '../gemm/skeleton.js';
import { isSoftwareAdapter, type Gpu } from '../runtime/gpu.js';

/** A GEMM tile of the conv3d implicit GEMMs (see GemmTile). */
export type Conv3dTile = GemmTile;

/**
 * The tile for an M x N GEMM (M: channels, N: voxels or weight columns) within the device limits: up to
 * 128 x 128 with 8 x 8 outputs per invocation on hardware; on software adapters at most 4 x 4 per invocation
 * (an 8 x 8 register tile takes lavapipe 5-15 s to compile and runs no faster there).
 */
export function chooseConv3dTile(gpu: Gpu, M: number, N: number, opts: { software?: boolean } = {}): Conv3dTile {
  const maxT = gpu.limits.maxComputeInvocationsPerWorkgroup;
  if (opts.software ?? isSoftwareAdapter(gpu)) {
    const [bm, tm] = M >= 48 ? [64, 4] : M >= 24 ? [32, 4] : [16, 2];
    const tn = N <= 32 ? 2 : 4;
    const tx = Math.min(16, Math.floor(Math.min(256, maxT) / (bm / tm)));
    return { bm, bn: tx * tn, bk: 8, tm, tn };
  }
  let bm: number;
  let tm: number;
  if (M >= 96) [bm, tm] = [128, 8];
  else if (M >= 48) [bm, tm] = [64, 4];
  else if (M >= 24) [bm, tm] = [32, 4];
  else if (M >= 12) [bm, tm] = [16, 2];
  else if (M >= 6) [bm, tm] = [8, 1];
  else [bm, tm] = [4, 1];
  const ty = bm / tm;
  let tx = Math.max(1, Math.floor(Math.min(256, maxT) / ty));
  // Narrow GEMMs (few weight columns) use fewer, not idler, invocations.
  while (tx > 8 && tx / 2 >= N) tx /= 2;
  let tn = 8;
  while (tn > 1 && tx * tn / 2 >= N) tn /= 2;
  while (tn > ty) tn /= 2; // BN <= invocations: every invocation loads one fixed B column
  while (ty / tn > 8) tn *= 2; // at most BK rows of B per pass
  return { bm, bn: tx * tn, bk: 8, tm, tn };
}

/** Throws unless `t` fits the GEMM skeleton and the device (see the message); returns its invocation count. */
export function checkTile(gpu: Gpu, t: Conv3dTile, what: string, sharedPad = 0): number {
  const threads = (t.bm / t.tm) * (t.bn / t.tn);
  const ok = [t.bm, t.bn, t.bk, t.tm, t.tn].every((v) => Number.isInteger(v) && v >= 1)
    && t.bm % t.tm === 0 && t.bn % t.tn === 0
    && threads <= gpu.limits.maxComputeInvocationsPerWorkgroup
    && threads % t.bn === 0 && (t.bk * t.bn) % threads === 0
    && (t.tm < 4 || t.tm % 4 === 0) && (t.tn < 4 || t.tn % 4 === 0)
    && 4 * t.bk * (t.bm + t.bn + 2 * sharedPad) <= gpu.limits.maxComputeWorkgroupStorageSize;
  if (!ok) {
    throw new RangeError(
      `${what}: tile ${JSON.stringify({ bm: t.bm, bn: t.bn, bk: t.bk, tm: t.tm, tn: t.tn })} is invalid here (needs tm | bm, tn | bn, ` +
      `(bm/tm)(bn/tn) invocations <= ${gpu.limits.maxComputeInvocationsPerWorkgroup} and a multiple of bn, bk*bn a multiple of the ` +
      `invocations, tm and tn 1, 2 or a multiple of 4, workgroup storage <= ${gpu.limits.maxComputeWorkgroupStorageSize} bytes)`,
    );
  }
  return threads;
}

export const tileKey = (t: Conv3dTile): string => `${t.bm}x${t.bn}x${t.bk}/${t.tm}x${t.tn}`;
