/**
 * The differentiable GPU ops (tgnet/autograd) against PyTorch: each golden case runs forward on the GPU,
 * backward with the golden cotangent, and compares the output and every input gradient (f32 tolerances).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { conv3d, weightStandardize } from '../../src/autograd/ops/conv.js';
import { groupNorm } from '../../src/autograd/ops/norm.js';
import { channelGate, globalAvgPool, upsampleTrilinear2x } from '../../src/autograd/ops/volume.js';
import { tidy } from '../../src/autograd/scope.js';
import { Tensor } from '../../src/autograd/tensor.js';
import { readSafetensors } from '../../src/nn/safetensors.js';
import { expectClose, useGpu } from '../helpers/gpu.js';

useGpu();

function load(file: string) {
  const m = readSafetensors(new Uint8Array(readFileSync(new URL(`./${file}.safetensors`, import.meta.url))), { source: file });
  const get = (k: string) => {
    const t = m.get(k);
    if (!t) throw new Error(`${file}.safetensors: tensor ${k} missing`);
    return t;
  };
  return {
    cases: (suffix: string) => [...m.keys()].filter((k) => k.endsWith(`.${suffix}`)).map((k) => k.slice(0, -suffix.length - 1)),
    tensor: (k: string, requiresGrad = false) => Tensor.fromArray(get(k).data as Float32Array, get(k).shape, { requiresGrad }),
    f: (k: string) => get(k).data as Float32Array,
    i: (k: string) => Array.from(get(k).data as BigInt64Array, Number),
  };
}

/** Runs fn on golden inputs, backward with the golden dy, compares y and the named gradients. */
async function check(g: ReturnType<typeof load>, prefix: string, inputs: string[], fn: (...xs: Tensor[]) => Tensor): Promise<void> {
  await tidy(async () => {
    const xs = inputs.map((n) => g.tensor(`${prefix}${n}`, true));
    const y = fn(...xs);
    expectClose(await y.toArray(), g.f(`${prefix}y`));
    y.backward(g.tensor(`${prefix}dy`));
    for (let i = 0; i < inputs.length; i++) expectClose(await xs[i].grad!.toArray(), g.f(`${prefix}d${inputs[i]}`));
  });
}

describe('GPU ops vs PyTorch goldens', () => {
  const conv = load('conv3d');
  for (const c of conv.cases('meta')) {
    it(`conv3d ${c}`, async () => {
      const [stride, padding, hasBias] = conv.i(`${c}.meta`);
      await check(conv, `${c}.`, hasBias ? ['x', 'w', 'b'] : ['x', 'w'], (x, w, b) => conv3d(x, w, { bias: b ?? null, stride, padding }));
    });
  }
  const gn = load('group_norm');
  for (const c of gn.cases('meta')) {
    it(`groupNorm ${c}`, async () => {
      const [groups] = gn.i(`${c}.meta`);
      await check(gn, `${c}.`, ['x', 'weight', 'bias'], (x, w, b) => groupNorm(x, groups, w, b));
    });
  }
  const ws = load('weight_standardize');
  for (const c of ws.cases('dy')) it(`weightStandardize ${c}`, () => check(ws, `${c}.`, ['w'], (w) => weightStandardize(w)));
  const up = load('upsample_trilinear');
  for (const c of up.cases('dy')) it(`upsampleTrilinear2x ${c}`, () => check(up, `${c}.`, ['x'], (x) => upsampleTrilinear2x(x)));
  const gap = load('global_avg_pool');
  for (const c of gap.cases('dy')) it(`globalAvgPool ${c}`, () => check(gap, `${c}.`, ['x'], (x) => globalAvgPool(x)));
  const gate = load('channel_gate');
  for (const c of gate.cases('dy')) it(`channelGate ${c}`, () => check(gate, `${c}.`, ['x', 'g'], (x, gg) => channelGate(x, gg)));
  it('covers every golden family', () => {
    expect(conv.cases('meta').length).toBeGreaterThanOrEqual(6);
    expect(gn.cases('meta').length).toBeGreaterThanOrEqual(4);
  });
});
