import { describe, expect, it } from 'vitest';
import { pipelineErrorMessage } from '../../src/kernels/runtime/gpu.js';
import { kernelSignature } from '../../src/kernels/runtime/kernel-signature.js';
import { linearMain } from '../../src/kernels/runtime/wgsl.js';
import { download, upload, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

const sig = kernelSignature('brokenKernel', {
  uniforms: { n: 'u32' },
  storage: { xs: { access: 'read', type: 'f32' }, ys: { access: 'read_write', type: 'f32' } },
});

describe('pipeline creation errors', () => {
  it('a WGSL compile error throws at creation with the key, line:column and source line', () => {
    const make = () => sig.pipeline(gpu(), 'test:broken-kernel', () => `${linearMain(64)}
  if (gid >= p.n) { return; }
  ys[gid] = xs[gid] * undefinedScale;
}`);
    // 4 lines of declarations, then linearMain (a blank line and 4 more): the body's second line is line 11.
    let message = '';
    try {
      make();
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/^pipeline 'test:broken-kernel': WGSL line 11:23: unresolved value 'undefinedScale'/);
    expect(message).toContain('   11 |   ys[gid] = xs[gid] * undefinedScale;');
    expect(message).toContain(`      | ${' '.repeat(22)}^`);
    // Not cached: asking again compiles again and throws again.
    const before = gpu().pipelineCount;
    expect(make).toThrow(/pipeline 'test:broken-kernel': WGSL line 11:23/);
    expect(gpu().pipelineCount).toBe(before);
  });

  it('a pipeline validation error (no source location) throws at creation with the key', () => {
    const tooWide = gpu().limits.maxComputeInvocationsPerWorkgroup * 2;
    expect(() => gpu().pipeline('test:too-wide', () => `
@group(0) @binding(1) var<storage, read_write> ys: array<f32>;
@compute @workgroup_size(${tooWide})
fn main(@builtin(local_invocation_index) lid: u32) { ys[lid] = 1.0; }`)).toThrow(/^pipeline 'test:too-wide': .*workgroup/is);
  });

  it('the runtime stays usable: the error is not reported again by the next read', async () => {
    expect(() => gpu().pipeline('test:broken-again', () => 'fn main( {')).toThrow(/pipeline 'test:broken-again': WGSL line 1:/);
    const pipeline = sig.pipeline(gpu(), 'test:fine-kernel', () => `${linearMain(64)}
  if (gid >= p.n) { return; }
  ys[gid] = xs[gid] + 1.0;
}`);
    const x = upload(gpu(), new Float32Array([1, 2, 3]));
    const y = upload(gpu(), new Float32Array(3));
    gpu().dispatch({ pipeline, label: 'fine', workgroups: 1, ...sig.bind({ n: 3 }, { xs: x, ys: y }) });
    expect([...(await download(gpu(), y, 3))]).toEqual([2, 3, 4]);
  });

  it('formats diagnostics as Dawn and getCompilationInfo give them', () => {
    const code = 'line one\n  let x = oops;\nline three';
    expect(pipelineErrorMessage('k', code, [':2:11 error: unresolved value \'oops\'\n  let x = oops;\n          ^^^^'])).toBe(
      'pipeline \'k\': WGSL line 2:11: unresolved value \'oops\'\n    2 |   let x = oops;\n      |           ^',
    );
    expect(pipelineErrorMessage('k', code, ['  something else  '])).toBe('pipeline \'k\': something else');
  });
});
