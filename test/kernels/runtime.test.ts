import { describe, expect, it } from 'vitest';
import { unary } from '../../src/kernels/elementwise.js';
import { sizeClass } from '../../src/kernels/runtime/buffer-pool.js';
import { initGpu } from '../../src/kernels/runtime/gpu.js';
import { blockedMain } from '../../src/kernels/runtime/wgsl.js';
import { download, upload, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

describe('buffer pool', () => {
  it('buckets sizes and recycles buffers, with counters', () => {
    expect(sizeClass(1)).toBe(256);
    expect(sizeClass(1000)).toBe(1024);
    expect(sizeClass((1 << 20) + 1)).toBe((1 << 20) + (1 << 17));
    const s0 = gpu().poolStats();
    const a = gpu().pool.acquire(1000, 'a');
    expect(gpu().poolStats().liveBuffers).toBe(s0.liveBuffers + 1);
    expect(gpu().poolStats().liveBytes).toBe(s0.liveBytes + 1024);
    gpu().pool.release(a);
    const created = gpu().poolStats().created;
    const b = gpu().pool.acquire(900, 'b');
    expect(b).toBe(a);
    expect(gpu().poolStats().created).toBe(created);
    expect(gpu().poolStats().highWaterBytes).toBeGreaterThanOrEqual(1024);
    gpu().pool.release(b);
    expect(() => gpu().pool.release(b)).toThrow(/released twice/);
    expect(() => gpu().pool.acquire(-1, 'neg')).toThrow(/neg: buffer size must be a non-negative finite number/);
  });

  it('hands out the oldest free buffer of a class, whatever order they came back in', () => {
    const a = gpu().pool.acquire(3000, 'a');
    const b = gpu().pool.acquire(3000, 'b');
    const c = gpu().pool.acquire(3000, 'c');
    for (const order of [[a, b, c], [c, a, b], [b, c, a]]) {
      for (const x of order) gpu().pool.release(x);
      // The same three acquisitions get the same three buffers every time (what lets a step reuse its bind groups).
      expect([gpu().pool.acquire(3000), gpu().pool.acquire(3000), gpu().pool.acquire(3000)]).toEqual([a, b, c]);
    }
    for (const x of [a, b, c]) gpu().pool.release(x);
  });
});

describe('dispatch and batching', () => {
  it('caches pipelines by key', () => {
    const n0 = gpu().pipelineCount;
    const p1 = gpu().pipeline('test:k', () => '@compute @workgroup_size(1) fn main() {}');
    const p2 = gpu().pipeline('test:k', () => { throw new Error('must not recompile'); });
    expect(p2).toBe(p1);
    expect(gpu().pipelineCount).toBe(n0 + 1);
  });

  it('folds linear grids past the per-dimension limit', () => {
    const max = gpu().limits.maxComputeWorkgroupsPerDimension;
    expect(gpu().grid(10, 't')).toEqual([10, 1, 1]);
    expect(gpu().grid(max + 1, 't')).toEqual([max, 2, 1]);
    expect(gpu().grid(max * max + 1, 't')).toEqual([max, max, 2]);
    expect(() => gpu().grid([max + 1, 1, 1], 'k')).toThrow(/k: workgroup grid \[\d+, 1, 1\] exceeds maxComputeWorkgroupsPerDimension/);
  });

  it('blockedMain: every index of a folded grid once, several per invocation', async () => {
    // 2 invocations x 3 indices per workgroup: 70001 indices need 11667 workgroups; with a 1-invocation
    // workgroup and 1 index the grid passes 65535 and folds into y.
    for (const [wg, per, n] of [[2, 3, 70001], [1, 1, 70001], [4, 4, 13]]) {
      const p = gpu().pipeline(`test:blocked:${wg}:${per}`, () => `
@group(0) @binding(0) var<uniform> n: vec4u;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
${blockedMain(wg, per)}
  if (gid >= n.x) { return; }
  out[gid] = out[gid] + f32(gid) + 1.0;
}`);
      const out = upload(gpu(), new Float32Array(n + 5));
      gpu().dispatch({
        pipeline: p, bindings: [out], params: new Uint32Array([n, 0, 0, 0]), workgroups: Math.ceil(n / (wg * per)), label: 'blocked',
      });
      const got = await download(gpu(), out, n + 5);
      const want = Float32Array.from({ length: n + 5 }, (_, i) => (i < n ? i + 1 : 0));
      expect(got).toEqual(want);
    }
  });

  it('keeps per-dispatch params distinct inside one batch', async () => {
    const x = upload(gpu(), new Float32Array([1, 2, 3, 4]));
    const outs = [0, 1, 2, 3].map(() => gpu().pool.acquire(16));
    const before = gpu().submitCount;
    outs.forEach((o, i) => unary(gpu(), 'mulScalar', x, o, 4, i + 1));
    expect(gpu().submitCount).toBe(before); // nothing submitted yet: one batch
    for (let i = 0; i < 4; i++) expect([...(await download(gpu(), outs[i], 4))]).toEqual([1, 2, 3, 4].map((v) => v * (i + 1)));
  });

  it('a step that repeats the one before reuses its bind groups, each reading its own params', async () => {
    const x = upload(gpu(), new Float32Array([1, 2, 3, 4]));
    const outs = [0, 1, 2, 3].map(() => gpu().pool.acquire(16));
    // The same dispatches after a submission each time (the arena's slots start over): the second round and later
    // make no bind group, and every dispatch still reads its own factor.
    const round = async (factor: number) => {
      gpu().flush();
      outs.forEach((o, i) => unary(gpu(), 'mulScalar', x, o, 4, factor * (i + 1)));
      for (let i = 0; i < 4; i++) expect([...(await download(gpu(), outs[i], 4))]).toEqual([1, 2, 3, 4].map((v) => v * factor * (i + 1)));
    };
    await round(1);
    const before = gpu().bindGroupStats();
    await round(2);
    await round(3);
    const after = gpu().bindGroupStats();
    expect(after.made).toBe(before.made);
    expect(after.reused - before.reused).toBe(8);
    // Another output buffer, or another element count (another window of the same buffers), is another bind group.
    gpu().flush();
    unary(gpu(), 'mulScalar', x, outs[1], 4, 1);
    unary(gpu(), 'mulScalar', x, outs[0], 4, 1);
    unary(gpu(), 'mulScalar', x, outs[2], 2, 1);
    expect(gpu().bindGroupStats().made).toBe(after.made + 3);
    for (const b of [x, ...outs]) gpu().pool.release(b);
  });

  it('names the binding that exceeds maxStorageBufferBindingSize', () => {
    const limit = gpu().limits.maxStorageBufferBindingSize;
    // A window claiming more than the limit: the runtime must refuse it before WebGPU sees it (no huge
    // allocation, which SwiftShader could not make anyway: its maxBufferSize equals the binding limit).
    const small = gpu().pool.acquire(256);
    const big = { buffer: small, offset: 0, size: limit + 256 };
    const p = gpu().pipeline('test:bind', () => `@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@compute @workgroup_size(1) fn main() { a[0] = 1.0; }`);
    expect(() => gpu().dispatch({ pipeline: p, bindings: [big], workgroups: 1, label: 'bigop' }))
      .toThrow(new RegExp(`bigop: binding 1 is ${limit + 256} bytes, larger than this device's maxStorageBufferBindingSize of ${limit} bytes`));
    gpu().pool.release(small);
  });

  it('profiles dispatches with GPU timestamps where the adapter has them', async () => {
    if (!gpu().features.has('timestamp-query')) {
      expect(gpu().startProfiling()).toBe(false);
      return;
    }
    expect(gpu().startProfiling()).toBe(true);
    const x = upload(gpu(), new Float32Array(1024).fill(1));
    const y = gpu().pool.acquire(4096);
    unary(gpu(), 'relu', x, y, 1024);
    unary(gpu(), 'exp', x, y, 1024);
    const t = await gpu().stopProfiling();
    expect(t.map((e) => e.label)).toEqual(['unary:relu', 'unary:exp']);
    for (const e of t) expect(e.ms).toBeGreaterThanOrEqual(0);
  });
});

describe('device loss and teardown', () => {
  it('a read on a destroyed device fails with a clear error, not a hang', async () => {
    const own = await initGpu({ makeCurrent: false });
    const b = own.pool.acquire(16);
    own.device.destroy();
    await expect(own.read(b, 16)).rejects.toThrow(/device lost|destroyed/i);
    expect(own.isLost).toBe(true);
    own.destroy();
    await expect(own.sync()).rejects.toThrow(/sync: the GPU runtime was destroyed/);
  });
});
