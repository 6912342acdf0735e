/**
 * The whole TGNet against PyTorch (bench/torch/tgnet_torch.py via scripts/make_tgnet_golden.sh): for each
 * variant (and tgnet with every encoder block task-guided, 'tgnet-all'), the golden's random weights are loaded
 * by state-dict name, then logits, the partial-label loss and every parameter gradient are compared. Width 2,
 * batch 2, crop 16x16x32 (see the script for why).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { partialLabelLoss } from '../../src/autograd/ops/head.js';
import { tidy } from '../../src/autograd/scope.js';
import { Tensor } from '../../src/autograd/tensor.js';
import { readSafetensors, type SafeTensor } from '../../src/nn/safetensors.js';
import { TGNet, TGNET_VARIANTS, type TGNetOptions } from '../../src/tgnet/model.js';
import { expectClose, useGpu } from '../helpers/gpu.js';

useGpu();

const WIDTH = 2;

interface Golden {
  model: Map<string, SafeTensor>;
  grads: Map<string, SafeTensor>;
  get(name: string): SafeTensor;
}

/** Golden file stem -> the model options it was written for. */
const CASES: [string, TGNetOptions][] = [
  ...TGNET_VARIANTS.map((variant): [string, TGNetOptions] => [variant, { variant, width: WIDTH }]),
  ['tgnet-all', { variant: 'tgnet', width: WIDTH, taskGuidedBlocks: 'all' }],
];

function loadGolden(stem: string): Golden {
  const file = `tgnet_${stem}.safetensors`;
  const all = readSafetensors(new Uint8Array(readFileSync(new URL(`../golden/${file}`, import.meta.url))), { source: file });
  const withPrefix = (prefix: string) =>
    new Map([...all].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v] as const));
  return {
    model: withPrefix('model.'),
    grads: withPrefix('grad.'),
    get(name) {
      const t = all.get(name);
      if (!t) throw new Error(`${file}: tensor '${name}' missing`);
      return t;
    },
  };
}

/** Largest |a - e| and the largest |a - e| / max|e| over a tensor (reported, and bounded by the test). */
function maxError(actual: Float32Array, expected: Float32Array): { abs: number; rel: number } {
  let abs = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    abs = Math.max(abs, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return { abs, rel: scale > 0 ? abs / scale : abs };
}

/**
 * Per-tensor atol, relative to the tensor's largest gradient because the small entries of a weight gradient are
 * sums that cancel. The last stage (enc.4, 1x1x2 voxels, one channel per group norm group) is ill-conditioned:
 * PyTorch's own float32 gradients there differ from float64 by 5.5e-3 of the largest, so it gets 2e-2 rather
 * than 2e-3. The 4e-9 floor covers gradients that are analytically zero and come out as rounding noise (a conv
 * bias feeding a one-channel group, a 2-tap weight-standardised filter).
 */
function gradAtol(name: string, scale: number): number {
  // The deepest stage and the fusion layer that normalises its output see one or two elements per group at this
  // width and crop: ill-conditioned statistics, where PyTorch's own f32 gradients are 2e-3 to 4e-3 (of the largest)
  // away from a float64 evaluation of the same weights, and ours 3e-3 to 1.3e-2 on lavapipe and up to 1.44e-2 on
  // SwiftShader (enc.4.0.conv1.weight of tgnet: its exp, rsqrt and fma round differently).
  return 4e-9 + (name.startsWith('enc.4.') || name.startsWith('fusion.') ? 2e-2 : 2e-3) * scale;
}

describe('TGNet vs its PyTorch twin (bench/torch/tgnet_torch.py)', () => {
  for (const [variant, options] of CASES) {
    it(`${variant}: parameter names and shapes equal the reference state dict, in order`, () => {
      const golden = loadGolden(variant);
      const model = TGNet.create(options);
      try {
        const ours = model.namedParameters().map(([name, p]) => [name, [...p.shape]]);
        const theirs = [...golden.model].map(([name, t]) => [name, t.shape]);
        expect(ours).toEqual(theirs);
        expect([...golden.grads.keys()]).toEqual(ours.map(([name]) => name));
      } finally {
        model.dispose();
      }
    });

    it(`${variant}: logits, loss and every parameter gradient match`, async () => {
      const golden = loadGolden(variant);
      const model = TGNet.create(options);
      try {
        model.loadStateDict(golden.model);
        const errors = await tidy(async () => {
          const input = golden.get('input');
          const target = golden.get('target');
          const taskIds = Array.from(golden.get('task_ids').data as BigInt64Array, Number);
          const logits = model.forward(Tensor.fromArray(input.data as Float32Array, input.shape), taskIds);
          expect(logits.shape).toEqual(golden.get('logits').shape);
          const expectedLogits = golden.get('logits').data as Float32Array;
          const gotLogits = await logits.toArray();
          expectClose(gotLogits, expectedLogits, 1e-4, 1e-3);
          const loss = partialLabelLoss(logits, Tensor.fromArray(target.data as Float32Array, target.shape));
          const gotLoss = await loss.item();
          const expectedLoss = (golden.get('loss').data as Float32Array)[0];
          expect(Math.abs(gotLoss - expectedLoss)).toBeLessThan(1e-5 + 1e-4 * Math.abs(expectedLoss));
          loss.backward();
          // Worst error relative to each tensor's largest gradient, over tensors whose gradient is not analytically
          // zero (e.g. a bias feeding a one-channel group norm, which cancels it; those are rounding noise).
          let grad = { abs: 0, rel: 0, name: '' };
          const failures: string[] = [];
          for (const [name, p] of model.namedParameters()) {
            expect(p.grad, `gradient of ${name}`).not.toBeNull();
            const expected = golden.grads.get(name)!.data as Float32Array;
            const got = await p.grad!.toArray();
            const e = maxError(got, expected);
            const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
            grad.abs = Math.max(grad.abs, e.abs);
            if (scale > 1e-6 && e.rel > grad.rel) grad = { ...e, abs: grad.abs, name };
            try {
              expectClose(got, expected, gradAtol(name, scale), 1e-3);
            } catch (err) {
              failures.push(`${name} (largest gradient ${scale.toExponential(2)}, max |err| ${e.abs.toExponential(2)}): ${(err as Error).message}`);
            }
          }
          expect(failures).toEqual([]);
          return { logits: maxError(gotLogits, expectedLogits), loss: Math.abs(gotLoss - expectedLoss), grad };
        });
        console.log(`${variant}: max |logits err| ${errors.logits.abs.toExponential(2)}, |loss err| ${errors.loss.toExponential(2)}, `
          + `max |grad err| ${errors.grad.abs.toExponential(2)}, worst relative to the tensor's largest gradient ${errors.grad.rel.toExponential(2)} (${errors.grad.name})`);
      } finally {
        model.dispose();
      }
    });
  }
});
