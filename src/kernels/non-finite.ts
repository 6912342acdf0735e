/**
 * Whether a buffer holds an infinity or a NaN: mixed precision's overflow check (PyTorch's
 * `_amp_foreach_non_finite_check_and_unscale_`), one dispatch over the optimiser's flat gradient buffer. A
 * value is non-finite when its exponent bits are all ones; WGSL has no isinf/isnan, and comparisons with NaN
 * may be folded away by a compiler, so the bits are tested.
 */
import type { Gpu } from './runtime/gpu.js';
import { kernelSignature, readOnly, readWrite } from './runtime/kernel-signature.js';
import { blockedMain, checkBuffer, invocationBlock, linearWorkgroupSize } from './runtime/wgsl.js';
import { forEachWindow } from './runtime/windows.js';

const NON_FINITE = kernelSignature('nonFinite', {
  uniforms: { n: 'u32' },
  storage: { xs: readOnly('f32'), found: readWrite('atomic<u32>') },
});

/**
 * Sets found[0] to a non-zero value when any of the first n f32 values of `x` is infinite or NaN; never clears
 * it (the caller zeroes it first, so several buffers can be checked into one flag).
 */
export function flagNonFinite(gpu: Gpu, x: GPUBuffer, n: number, found: GPUBuffer): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`flagNonFinite: element count must be a non-negative integer, got ${n}`);
  checkBuffer(x, n, 'flagNonFinite input');
  checkBuffer(found, 1, 'flagNonFinite flag');
  const wg = linearWorkgroupSize(gpu);
  const per = invocationBlock(gpu);
  const pipeline = NON_FINITE.pipeline(gpu, `nonFinite:${wg}:${per}`, () => `
${blockedMain(wg, per)}
  if (gid >= p.n) { return; }
  if ((bitcast<u32>(xs[gid]) & 0x7f800000u) == 0x7f800000u) { atomicOr(&found[0], 1u); }
}`);
  forEachWindow(gpu, n, (start, count) => {
    gpu.dispatch({
      pipeline, label: 'nonFinite', workgroups: Math.ceil(count / (wg * per)),
      ...NON_FINITE.bind({ n: count }, { xs: { buffer: x, offset: start * 4, size: count * 4 }, found: { buffer: found, offset: 0, size: 4 } }),
    });
  });
}
