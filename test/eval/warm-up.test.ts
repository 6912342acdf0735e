/**
 * Compiling a model's pipelines before its first step (warmUpPipelines): discovery executes nothing and changes
 * nothing, and what it finds is what the step uses, so the step after it compiles no pipeline and computes exactly
 * what it computes without the warm-up.
 */
import { describe, expect, it } from 'vitest';
import { partialLabelLoss } from '../../src/autograd/ops/head.js';
import { tidy } from '../../src/autograd/scope.js';
import { Tensor } from '../../src/autograd/tensor.js';
import { discoverModelPipelines, warmUpPipelines } from '../../src/eval/warm-up.js';
import { unary } from '../../src/kernels/elementwise.js';
import { Adam } from '../../src/nn/optim.js';
import { TGNet } from '../../src/tgnet/model.js';
import { download, empty, randomArray, upload, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

/** Two Adam steps of a width-2 TGNet on seeded data: the losses and the first parameter afterwards. */
async function twoSteps(model: TGNet): Promise<{ losses: number[]; param: Float32Array }> {
  const opt = new Adam(model.parameters());
  const v = 2 * 16 * 32 * 32;
  const losses: number[] = [];
  for (let i = 0; i < 2; i++) {
    const loss = tidy(() => {
      const x = Tensor.fromArray(randomArray(v, 10 + i), [2, 1, 16, 32, 32]);
      const y = Tensor.fromArray(randomArray(2 * v, 20 + i, 0, 1).map((t) => (t > 0.7 ? 1 : 0)), [2, 2, 16, 32, 32]);
      const l = partialLabelLoss(model.forward(x, [0, 3]), y);
      l.backward();
      opt.step();
      opt.zeroGrad();
      return l;
    });
    losses.push(await loss.item());
    loss.dispose();
  }
  const param = await model.parameters()[0].toArray();
  opt.dispose();
  return { losses, param };
}

describe('warmUpPipelines', () => {
  it('compiles every pipeline of a training step first; the step then compiles none and computes the same', async () => {
    const g = gpu();
    // First in the file: this runtime has compiled nothing yet, so the warm-up has the whole step to find.
    const model = TGNet.create({ variant: 'tgnet', width: 2, seed: 3 });
    const progress: number[] = [];
    const result = await warmUpPipelines(model, { crop: [16, 32, 32], optimizer: 'adam', onProgress: (done, total) => progress.push(done / total) });
    expect(result.pipelines).toBeGreaterThan(40);
    expect(progress.length).toBe(result.pipelines);
    expect(progress.at(-1)).toBe(1);
    const before = g.pipelineCount;
    const after = await twoSteps(model);
    expect(g.pipelineCount, 'pipelines compiled by the steps after the warm-up').toBe(before);

    const plain = TGNet.create({ variant: 'tgnet', width: 2, seed: 3 });
    const expected = await twoSteps(plain);
    plain.dispose();
    expect(after.losses).toEqual(expected.losses);
    expect(after.param).toEqual(expected.param);
    // Nothing left to discover for the same configuration.
    expect(await discoverModelPipelines(model, { crop: [16, 32, 32], optimizer: 'adam' })).toEqual([]);
    model.dispose();
  });

  it('finds pipelines no step has compiled yet, and compiles them so that the step does not', async () => {
    const g = gpu();
    // Width 8: channel counts whose register blockings the width-2 test above does not build.
    const model = TGNet.create({ variant: 'dodnet', width: 8, seed: 1 });
    const found = await discoverModelPipelines(model, { crop: [16, 32, 32], optimizer: 'sgd', inference: false });
    expect(found.length).toBeGreaterThan(0);
    for (const r of found) {
      expect(r.code).toMatch(/@compute/);
      expect(r.key.length).toBeGreaterThan(0);
    }
    const before = g.pipelineCount;
    await g.compilePipelines(found, { concurrency: 2 });
    expect(g.pipelineCount).toBe(before + found.length);
    model.dispose();
  });

  it('discovery executes nothing: uploads, dispatches and copies are dropped and reads give zeros', async () => {
    const g = gpu();
    const data = randomArray(64, 5);
    const buf = upload(g, data);
    const out = empty(g, 64);
    const seen = await g.discoverPipelines(async () => {
      g.write(buf, new Float32Array(64).fill(7));
      unary(g, 'fill', null, buf, 64, 3);
      g.copy(buf, 0, out, 0, 256);
      expect(new Float32Array(await g.read(buf, 256))).toEqual(new Float32Array(64));
    });
    expect(seen.every((r) => r.code.includes('@compute'))).toBe(true);
    expect(await download(g, buf, 64)).toEqual(data);
    g.pool.release(buf);
    g.pool.release(out);
  });

  it('a broken shader fails compilePipelines, naming the pipeline and the WGSL line', async () => {
    const g = gpu();
    const code = '@group(0) @binding(0) var<storage, read_write> ys: array<f32>;\n@compute @workgroup_size(1)\nfn main() {\n  ys[0] = undefinedValue;\n}';
    await expect(g.compilePipelines([{ key: 'test:broken-warm-up', code }])).rejects.toThrow(/test:broken-warm-up[\s\S]*undefinedValue/);
    expect(g.pipelineCount).toBeGreaterThanOrEqual(0);
  });

  it('rejects a crop that TGNet cannot halve four times', async () => {
    const model = TGNet.create({ variant: 'tgnet', width: 2, seed: 0 });
    await expect(warmUpPipelines(model, { crop: [16, 30, 32] })).rejects.toThrow(/crop is \[16, 30, 32\]; expected \[D, H, W\], multiples of 16/);
    model.dispose();
  });
});
