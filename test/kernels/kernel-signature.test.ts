import { describe, expect, it } from 'vitest';
import { kernelSignature } from '../../src/kernels/runtime/kernel-signature.js';
import { linearMain, packParams } from '../../src/kernels/runtime/wgsl.js';
import { download, upload, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

const scale = kernelSignature('testScale', {
  uniforms: { n: 'u32', base: 'u32', s: 'f32' },
  storage: { xs: { access: 'read', type: 'f32' }, ys: { access: 'read_write', type: 'f32' } },
});

describe('kernel signature: declarations', () => {
  it('emits the Params struct, its uniform binding and numbered storage bindings in declaration order', () => {
    expect(scale.wgsl).toBe([
      'struct Params { n: u32, base: u32, s: f32 }',
      '@group(0) @binding(0) var<uniform> p: Params;',
      '@group(0) @binding(1) var<storage, read> xs: array<f32>;',
      '@group(0) @binding(2) var<storage, read_write> ys: array<f32>;',
    ].join('\n'));
    expect(scale.paramsBytes).toBe(16);
  });

  it('packs scalars by name exactly as the positional packer did', () => {
    const named = new Uint8Array(scale.params({ s: 2.5, base: 7, n: 12 }));
    const positional = new Uint8Array(packParams([{ u: 12 }, { u: 7 }, { f: 2.5 }]));
    expect([...named]).toEqual([...positional]);
  });

  it('lays out vectors and arrays with WGSL uniform alignment', () => {
    const sig = kernelSignature('layout', {
      uniforms: { a: 'u32', v3: 'vec3f', b: 'i32', v2: 'vec2u', arr: { array: 'vec4u', length: 2 }, c: 'f32' },
      storage: { out: { access: 'read_write', type: 'u32' } },
    });
    // a@0, v3@16 (align 16), b@28, v2@32 (align 8), arr@48 (align 16, 32 bytes), c@80 -> 84 -> 96.
    expect(sig.paramsBytes).toBe(96);
    const buf = sig.params({ a: 1, v3: [2, 3, 4], b: -5, v2: [6, 7], arr: [8, 9, 10, 11, 12, 13, 14, 15], c: 0.5 });
    const u = new Uint32Array(buf);
    const i = new Int32Array(buf);
    const f = new Float32Array(buf);
    expect(u[0]).toBe(1);
    expect([f[4], f[5], f[6]]).toEqual([2, 3, 4]);
    expect(i[7]).toBe(-5);
    expect([u[8], u[9]]).toEqual([6, 7]);
    expect([...u.slice(12, 20)]).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
    expect(f[20]).toBe(0.5);
  });

  it('omits the uniform struct when a kernel has no uniforms', () => {
    const sig = kernelSignature('noUniforms', { storage: { ys: { access: 'read_write', type: 'vec4f' } } });
    expect(sig.wgsl).toBe('@group(0) @binding(1) var<storage, read_write> ys: array<vec4f>;');
    const b = { label: 'b' } as unknown as GPUBuffer;
    expect(sig.bind({}, { ys: b })).toEqual({ bindings: [b], access: ['read_write'] });
  });
});

describe('kernel signature: errors name the kernel and the field', () => {
  it('rejects missing, extra and out-of-range uniforms', () => {
    expect(() => scale.params({ n: 1, base: 0 } as never)).toThrow(/testScale: uniform 's' is missing \(declared: n, base, s\)/);
    expect(() => scale.params({ n: 1, base: 0, s: 1, t: 2 } as never)).toThrow(/testScale: unknown uniform\(s\) 't'/);
    expect(() => scale.params({ n: 1, base: 0, s: NaN })).toThrow(/testScale: uniform 's' must be a finite number \(f32\), got NaN/);
    expect(() => scale.params({ n: 1, base: 0, s: -Infinity })).toThrow(/uniform 's' must be a finite number/);
    expect(() => scale.params({ n: -1, base: 0, s: 1 })).toThrow(/testScale: uniform 'n' must be an integer in \[0, 2\^32\) \(u32\), got -1/);
    expect(() => scale.params({ n: 1.5, base: 0, s: 1 })).toThrow(/uniform 'n' must be an integer/);
    expect(() => scale.params({ n: 2 ** 32, base: 0, s: 1 })).toThrow(/uniform 'n' must be an integer/);
    const vec = kernelSignature('vecKernel', { uniforms: { v: 'vec2i' }, storage: {} });
    expect(() => vec.params({ v: [1] })).toThrow(/vecKernel: uniform 'v' \(vec2i\) needs a list of 2 numbers, got \[1\]/);
    expect(() => vec.params({ v: [1, 2 ** 31] })).toThrow(/vecKernel: uniform 'v'\[1\] must be an integer in \[-2\^31, 2\^31\)/);
  });

  it('rejects missing and extra storage bindings', () => {
    const b = { label: 'b' } as unknown as GPUBuffer;
    expect(() => scale.bindings({ xs: b } as never)).toThrow(/testScale: storage binding 'ys' is missing \(declared: xs, ys\)/);
    expect(() => scale.bindings({ xs: b, ys: b, zs: b } as never)).toThrow(/testScale: unknown storage binding\(s\) 'zs'/);
    // An entry left undefined (an optional binding switched off) is absent, not extra.
    expect(scale.bindings({ xs: b, ys: b, zs: undefined } as never)).toEqual([b, b]);
  });

  it('rejects bad declarations', () => {
    expect(() => kernelSignature('bad', { uniforms: { p: 'u32' }, storage: {} })).toThrow(/bad: uniform name 'p' must be a WGSL identifier/);
    expect(() => kernelSignature('bad', { storage: { 'x-y': { access: 'read', type: 'f32' } } })).toThrow(/bad: storage binding name 'x-y'/);
    expect(() => kernelSignature('bad', { storage: { x: { access: 'write' as 'read', type: 'f32' } } })).toThrow(/bad: storage binding 'x' must be/);
    expect(() => kernelSignature('bad', { uniforms: { x: 'u64' as 'u32' }, storage: {} })).toThrow(/bad: uniform 'x' has unknown type "u64"/);
    expect(() => kernelSignature('bad', { uniforms: { x: 'u32' }, storage: { x: { access: 'read', type: 'f32' } } }))
      .toThrow(/bad: 'x' is declared both as a uniform and a storage binding/);
    expect(() => kernelSignature('big', { uniforms: { a: { array: 'vec4f', length: 17 } }, storage: {} }))
      .toThrow(/big: uniforms take 272 bytes, more than the 256-byte parameter slot/);
  });
});

describe('kernel signature: on the GPU', () => {
  it('runs a kernel declared by signature, with a window binding', async () => {
    const pipeline = scale.pipeline(gpu(), 'test:sig-scale', () => `${linearMain(64)}
  if (gid >= p.n) { return; }
  ys[gid] = xs[p.base + gid] * p.s;
}`);
    const x = upload(gpu(), Float32Array.from({ length: 100 }, (_, i) => i));
    const y = upload(gpu(), new Float32Array(80));
    // Window of x from element 64 (a 256-byte aligned offset), shifted 3 more by `base`.
    gpu().dispatch({
      pipeline, label: 'testScale', workgroups: 1,
      ...scale.bind({ n: 20, base: 3, s: 2 }, { xs: { buffer: x, offset: 256, size: 36 * 4 }, ys: y }),
    });
    const got = await download(gpu(), y, 21);
    expect([...got]).toEqual([...Array.from({ length: 20 }, (_, i) => 2 * (67 + i)), 0]);
  });

  it('matches WGSL\'s own uniform layout for vectors and arrays', async () => {
    const sig = kernelSignature('layoutOnGpu', {
      uniforms: { a: 'u32', v3: 'vec3f', b: 'i32', v2: 'vec2u', arr: { array: 'vec4u', length: 2 }, c: 'f32' },
      storage: { out: { access: 'read_write', type: 'f32' } },
    });
    const pipeline = sig.pipeline(gpu(), 'test:sig-layout', () => `
@compute @workgroup_size(1)
fn main() {
  out[0] = f32(p.a);
  out[1] = p.v3.x; out[2] = p.v3.y; out[3] = p.v3.z;
  out[4] = f32(p.b);
  out[5] = f32(p.v2.x); out[6] = f32(p.v2.y);
  for (var i = 0u; i < 8u; i++) { out[7u + i] = f32(p.arr[i / 4u][i % 4u]); }
  out[15] = p.c;
}`);
    const out = upload(gpu(), new Float32Array(16));
    gpu().dispatch({
      pipeline, label: 'layoutOnGpu', workgroups: 1,
      ...sig.bind({ a: 1, v3: [2, 3, 4], b: -5, v2: [6, 7], arr: [8, 9, 10, 11, 12, 13, 14, 15], c: 16.5 }, { out }),
    });
    expect([...(await download(gpu(), out, 16))]).toEqual([1, 2, 3, 4, -5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16.5]);
  });
});
