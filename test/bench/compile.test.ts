/**
 * The compile benchmark's machinery (bench/compile.ts): shaders compiled cold in a child process on the current
 * adapter, one row each, a WGSL error reported as that shader's failure without stopping the rest. (Its figures
 * come from `npm run bench -- --only compile`, never from a test.)
 */
import { expect, it } from 'vitest';
import { compileCold } from '../../bench/compile.js';

const FILL = `struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> ys: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u) {
  if (id.x < p.n) { ys[id.x] = 1.0; }
}`;
const BROKEN = `@group(0) @binding(0) var<storage, read_write> ys: array<f32>;
@compute @workgroup_size(1)
fn main() {
  ys[0] = notDeclared;
}`;

it('compiles each shader cold in a child process and reports a broken one as its row\'s failure', async () => {
  const shaders = [
    { key: 'test:fill', code: FILL, sources: ['test'] },
    { key: 'test:broken', code: BROKEN, sources: ['test'] },
    { key: 'test:fill-again', code: FILL.replace('1.0', '2.0'), sources: ['test'] },
  ];
  const { adapterName, rows } = await compileCold(shaders, 'current', { limitSeconds: 300, memoryGiB: 16 });
  expect(adapterName.length).toBeGreaterThan(0);
  expect(rows.map((r) => r.key)).toEqual(['test:fill', 'test:broken', 'test:fill-again']);
  expect(rows[0].failure).toBeUndefined();
  expect(rows[2].failure).toBeUndefined();
  expect(rows[1].failure).toMatch(/notDeclared|invalid|error/i);
  expect(rows[0].lines).toBe(FILL.split('\n').length);
  for (const r of rows) {
    expect(r.ms).toBeGreaterThan(0);
    expect(r.cpuMs).toBeGreaterThan(0);
  }
});
