import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { dynamicHead, dynamicHeadBackward } from '../../src/kernels/dynamic-head.js';
import { dynamicHeadBackwardRef, dynamicHeadRef } from '../../src/kernels/reference/dynamic-head.js';
import { dot, maxRelativeError, numericGradient } from '../../src/kernels/reference/gradcheck.js';
import { readSafetensors } from '../../src/nn/safetensors.js';
import type { Gpu } from '../../src/kernels/runtime/gpu.js';
import { asStored, download, downloadAs, empty, emptyAs, expectClose, randomArray, runsF16, tolerance, upload, uploadAs, useGpu, withBindingLimit } from '../helpers/gpu.js';

const gpu = useGpu();

function vox(shape: number[]): number {
  return shape.slice(2).reduce((a, b) => a * b, 1);
}

/** Random head inputs; params scaled like a controller's output so that roughly half the ReLUs are active. */
function inputs(shape: number[], seed: number) {
  const n = shape[0];
  const v = vox(shape);
  return {
    n, v,
    h: randomArray(n * 8 * v, seed, -1, 1),
    params: randomArray(n * 162, seed + 1, -0.6, 0.6),
    dy: randomArray(n * 2 * v, seed + 2, -1, 1),
  };
}

async function runBackward(shape: number[], seed: number, blockVoxels?: number) {
  const { n, v, h, params, dy } = inputs(shape, seed);
  const dhB = empty(gpu(), n * 8 * v);
  const dpB = empty(gpu(), n * 162);
  dynamicHeadBackward(gpu(), upload(gpu(), h), shape, upload(gpu(), params), [n, 162], upload(gpu(), dy), dhB, dpB, { blockVoxels });
  const ref = dynamicHeadBackwardRef(h, params, dy, n, v);
  return { dh: await download(gpu(), dhB, n * 8 * v), dparams: await download(gpu(), dpB, n * 162), ref };
}

describe('dynamic head forward', () => {
  for (const shape of [[1, 8, 1, 1, 1], [2, 8, 3, 5, 7], [3, 8, 5, 9, 11], [2, 8, 301]]) {
    it(`matches the CPU twin for h [${shape}]`, async () => {
      const { n, v, h, params } = inputs(shape, 10 + shape.length);
      const out = empty(gpu(), n * 2 * v);
      const outShape = dynamicHead(gpu(), upload(gpu(), h), shape, upload(gpu(), params), [n, 162], out);
      expect(outShape).toEqual([n, 2, ...shape.slice(2)]);
      expectClose(await download(gpu(), out, n * 2 * v), dynamicHeadRef(h, params, n, v), 1e-4, 1e-3);
    });
  }
});

describe('dynamic head forward, several voxels an invocation (SwiftShader\'s default)', () => {
  // V not a multiple of the voxels a workgroup covers: the last workgroup's later rounds run past V.
  for (const [shape, perInvocation] of [[[2, 8, 301], 4], [[3, 8, 5, 9, 11], 16], [[1, 8, 1, 1, 1], 3]] as [number[], number][]) {
    it(`matches the CPU twin for h [${shape}], ${perInvocation} voxels an invocation`, async () => {
      const { n, v, h, params } = inputs(shape, 20 + perInvocation);
      const out = empty(gpu(), n * 2 * v);
      dynamicHead(gpu(), upload(gpu(), h), shape, upload(gpu(), params), [n, 162], out, { voxelsPerInvocation: perInvocation });
      expectClose(await download(gpu(), out, n * 2 * v), dynamicHeadRef(h, params, n, v), 1e-4, 1e-3);
    });
  }
  it('rejects a voxel count that is not a positive integer', () => {
    const out = empty(gpu(), 2);
    expect(() => dynamicHead(gpu(), empty(gpu(), 8), [1, 8, 1], empty(gpu(), 162), [1, 162], out, { voxelsPerInvocation: 0 }))
      .toThrow(/dynamicHead: voxelsPerInvocation is 0; expected a positive integer/);
  });
});

describe('dynamic head backward', () => {
  it('matches the CPU twin with one block per sample (no partials pass)', async () => {
    const r = await runBackward([2, 8, 3, 5, 7], 20);
    expectClose(r.dh, r.ref.dh, 1e-4, 1e-3);
    expectClose(r.dparams, r.ref.dparams, 1e-4, 1e-3);
  });

  it('matches the CPU twin past the partials threshold (small blocks, odd V)', async () => {
    const r = await runBackward([3, 8, 5, 7, 11], 21, 100); // V = 385, 128-voxel blocks -> 4 partials per sample
    expectClose(r.dh, r.ref.dh, 1e-4, 1e-3);
    expectClose(r.dparams, r.ref.dparams, 1e-4, 1e-3);
  });

  it('matches the CPU twin past the default 2048-voxel block', async () => {
    const r = await runBackward([2, 8, 7, 13, 29], 22); // V = 2639
    expectClose(r.dh, r.ref.dh, 1e-4, 1e-3);
    expectClose(r.dparams, r.ref.dparams, 1e-4, 1e-3);
  });

  it('is deterministic: two runs give identical bits', async () => {
    const a = await runBackward([2, 8, 4, 6, 9], 23, 64);
    const b = await runBackward([2, 8, 4, 6, 9], 23, 64);
    expect(Array.from(a.dparams)).toEqual(Array.from(b.dparams));
    expect(Array.from(a.dh)).toEqual(Array.from(b.dh));
  });

  it('CPU twin passes gradcheck (vector-Jacobian product against a random cotangent)', () => {
    const n = 2;
    const v = 5;
    const h = Float64Array.from(randomArray(n * 8 * v, 30, -1, 1));
    const params = Float64Array.from(randomArray(n * 162, 31, -0.6, 0.6));
    const dy = Float64Array.from(randomArray(n * 2 * v, 32, -1, 1));
    const { dh, dparams } = dynamicHeadBackwardRef(h, params, dy, n, v);
    const numH = numericGradient((x) => dot(dynamicHeadRef(x, params, n, v), dy), h);
    const numP = numericGradient((x) => dot(dynamicHeadRef(h, x, n, v), dy), params);
    expect(maxRelativeError(dh, numH, 1e-6, 1e-5)).toBeLessThan(1);
    expect(maxRelativeError(dparams, numP, 1e-6, 1e-5)).toBeLessThan(1);
  });
});

/** The test GPU with a small maxStorageBufferBindingSize and a large offset alignment, to exercise sample chunking. */
function smallBindingGpu(real: Gpu, maxBinding: number, align = 256): Gpu {
  const limits = { ...real.limits, maxStorageBufferBindingSize: maxBinding, minStorageBufferOffsetAlignment: align };
  return new Proxy(real, { get: (t, k) => (k === 'limits' ? limits : Reflect.get(t, k)) });
}

describe('dynamic head in sample chunks (tensors larger than one binding)', () => {
  it('forward and backward match the CPU twin when samples are split over several windows', async () => {
    const shape = [5, 8, 9, 11]; // 3168 bytes of h per sample: chunks of 2, 2 and 1 samples in 8 KiB windows
    const { n, v, h, params, dy } = inputs(shape, 40);
    const g = smallBindingGpu(gpu(), 8192);
    const hb = upload(gpu(), h);
    const pb = upload(gpu(), params);
    const out = empty(gpu(), n * 2 * v);
    let before = gpu().dispatchCount;
    dynamicHead(g, hb, shape, pb, [n, 162], out);
    expect(gpu().dispatchCount - before).toBe(3);
    expectClose(await download(gpu(), out, n * 2 * v), dynamicHeadRef(h, params, n, v), 1e-4, 1e-3);
    const dhB = empty(gpu(), n * 8 * v);
    const dpB = empty(gpu(), n * 162);
    before = gpu().dispatchCount;
    dynamicHeadBackward(g, hb, shape, pb, [n, 162], upload(gpu(), dy), dhB, dpB, { blockVoxels: 64 });
    expect(gpu().dispatchCount - before).toBe(6); // per chunk: fused backward (2 blocks) + partials reduction
    const ref = dynamicHeadBackwardRef(h, params, dy, n, v);
    expectClose(await download(gpu(), dhB, n * 8 * v), ref.dh, 1e-4, 1e-3);
    expectClose(await download(gpu(), dpB, n * 162), ref.dparams, 1e-4, 1e-3);
  });

  it('names the op when one sample does not fit a binding', () => {
    const b = empty(gpu(), 8 * 200);
    expect(() => dynamicHead(smallBindingGpu(gpu(), 1024), b, [1, 8, 200], b, [1, 162], b))
      .toThrow(/dynamicHead: one sample of 1600 f32 elements \(6400 bytes\) does not fit this device's maxStorageBufferBindingSize of 1024 bytes/);
  });
});

describe('dynamic head errors', () => {
  it('rejects params that are not [N, 162] and h without 8 channels', () => {
    const b = empty(gpu(), 4096);
    expect(() => dynamicHead(gpu(), b, [2, 8, 4], b, [2, 161], b)).toThrow(/dynamicHead: params must be \[N, 162\] = \[2, 162\].*got \[2, 161\]/);
    expect(() => dynamicHead(gpu(), b, [2, 8, 4], b, [3, 162], b)).toThrow(/params must be \[N, 162\]/);
    expect(() => dynamicHead(gpu(), b, [2, 7, 4], b, [2, 162], b)).toThrow(/dynamicHead: h must be \[N, 8, \.\.\.spatial\], got \[2, 7, 4\]/);
    expect(() => dynamicHeadBackward(gpu(), b, [2, 8, 4], b, [2, 162], b, b, b, { blockVoxels: 0 })).toThrow(/blockVoxels must be a positive integer/);
  });

  it('rejects buffers that are too small', () => {
    const small = empty(gpu(), 16);
    const big = empty(gpu(), 4096);
    expect(() => dynamicHead(gpu(), small, [1, 8, 10], big, [1, 162], big)).toThrow(/dynamicHead h: buffer of 256 bytes is too small for 80 f32/);
    expect(() => dynamicHead(gpu(), big, [1, 8, 10], small, [1, 162], big)).toThrow(/dynamicHead params: buffer/);
  });
});

const GOLDEN = new URL('../golden/dynamic_head.safetensors', import.meta.url);

describe('dynamic head against PyTorch (test/golden/dynamic_head.safetensors)', () => {
  it('forward and gradients match torch autograd', async () => {
    expect(existsSync(GOLDEN), 'run scripts/make_op_goldens.py to create the goldens').toBe(true);
    const g = readSafetensors(new Uint8Array(readFileSync(GOLDEN)));
    const get = (k: string) => {
      const t = g.get(k);
      if (!t) throw new Error(`golden tensor ${k} missing`);
      return t;
    };
    const h = get('h');
    const shape = h.shape;
    const n = shape[0];
    const v = vox(shape);
    const hb = upload(gpu(), h.data as Float32Array);
    const pb = upload(gpu(), get('params').data as Float32Array);
    const out = empty(gpu(), n * 2 * v);
    dynamicHead(gpu(), hb, shape, pb, [n, 162], out);
    expectClose(await download(gpu(), out, n * 2 * v), get('y').data as Float32Array, 1e-4, 1e-3);
    const dhB = empty(gpu(), n * 8 * v);
    const dpB = empty(gpu(), n * 162);
    dynamicHeadBackward(gpu(), hb, shape, pb, [n, 162], upload(gpu(), get('dy').data as Float32Array), dhB, dpB, { blockVoxels: 128 });
    expectClose(await download(gpu(), dhB, n * 8 * v), get('dh').data as Float32Array, 1e-4, 1e-3);
    expectClose(await download(gpu(), dpB, n * 162), get('dparams').data as Float32Array, 1e-4, 1e-3);
  });
});

describe('dynamic head with f16 features (mixed precision: h and dh f16, params and logits f32)', () => {
  const cases: [number[], number | undefined, number | undefined][] = [
    [[2, 8, 3, 5, 7], undefined, undefined], [[3, 8, 5, 7, 11], 100, undefined], [[3, 8, 5, 7, 11], undefined, 8192],
  ];
  for (const [shape, blockVoxels, bindingBytes] of cases) {
    it(`h [${shape}]${blockVoxels ? `, ${blockVoxels}-voxel blocks` : ''}${bindingBytes ? `, bindings of ${bindingBytes} bytes` : ''}`, async () => {
      const g = bindingBytes ? withBindingLimit(gpu(), bindingBytes) : gpu();
      const { n, v, params, dy } = inputs(shape, 40);
      const h = asStored(inputs(shape, 40).h, 'f16');
      const hB = uploadAs(g, h, 'f16');
      const out = empty(g, n * 2 * v);
      if (!runsF16(g, 'f16', () => dynamicHead(g, hB, shape, upload(g, params), [n, 162], out, { dtype: 'f16' }))) return;
      dynamicHead(g, hB, shape, upload(g, params), [n, 162], out, { dtype: 'f16' });
      // The logits are f32 stores of f32 sums of exactly converted f16 inputs: f32's tolerance.
      expectClose(await download(g, out, n * 2 * v), dynamicHeadRef(h, params, n, v), 1e-4, 1e-3);
      const dhB = emptyAs(g, n * 8 * v, 'f16');
      const dpB = empty(g, n * 162);
      dynamicHeadBackward(g, hB, shape, upload(g, params), [n, 162], upload(g, dy), dhB, dpB, { blockVoxels, dtype: 'f16' });
      const ref = dynamicHeadBackwardRef(h, params, dy, n, v);
      expectClose(await downloadAs(g, dhB, n * 8 * v, 'f16'), ref.dh, ...tolerance('f16'));
      expectClose(await download(g, dpB, n * 162), ref.dparams, 1e-4, 1e-3);
    });
  }
});
