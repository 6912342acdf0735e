/**
 * The CPU twins in src/kernels/reference/ against PyTorch (goldens written by scripts/make_op_goldens.py):
 * forward outputs and the gradients of <y, dy> with respect to every input. CPU only. The GPU kernels are
 * checked against these twins in test/kernels/ (and, for the dynamic head, the loss and SGD, against the
 * goldens directly).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { channelGateBackwardRef, channelGateRef } from '../../src/kernels/reference/channel-gate.js';
import {
  conv3dBackwardBiasRef, conv3dBackwardDataRef, conv3dBackwardWeightRef, conv3dRef,
} from '../../src/kernels/reference/conv3d.js';
import { dynamicHeadBackwardRef, dynamicHeadRef } from '../../src/kernels/reference/dynamic-head.js';
import { globalAvgPoolBackwardRef, globalAvgPoolRef } from '../../src/kernels/reference/global-avg-pool.js';
import { groupNormBackwardRef, groupNormRef } from '../../src/kernels/reference/group-norm.js';
import { partialLabelLossBackwardRef, partialLabelLossRef } from '../../src/kernels/reference/partial-label-loss.js';
import { sgdRef } from '../../src/kernels/reference/sgd.js';
import { upsampleTrilinear2xBackwardRef, upsampleTrilinear2xRef } from '../../src/kernels/reference/upsample.js';
import { weightStandardizeBackwardRef, weightStandardizeRef } from '../../src/kernels/reference/weight-standardize.js';
import { readSafetensors, type SafeTensor } from '../../src/nn/safetensors.js';
import { expectClose } from '../helpers/gpu.js';

const ATOL = 1e-4;
const RTOL = 1e-3;

function load(file: string) {
  const m = readSafetensors(new Uint8Array(readFileSync(new URL(`./${file}.safetensors`, import.meta.url))), { source: file });
  const cases = (suffix: string) => [...m.keys()].filter((k) => k.endsWith(`.${suffix}`)).map((k) => k.slice(0, -suffix.length - 1));
  const tensor = (k: string): SafeTensor => {
    const t = m.get(k);
    if (!t) throw new Error(`${file}.safetensors: tensor ${k} missing`);
    return t;
  };
  return {
    cases,
    t: tensor,
    f: (k: string) => tensor(k).data as Float32Array,
    i: (k: string) => Array.from(tensor(k).data as BigInt64Array, Number),
  };
}

describe('conv3d twin vs PyTorch (k1/k3, stride 1/2, bias, Cin=1, odd sizes)', () => {
  const g = load('conv3d');
  const names = g.cases('meta');
  it('has the expected cases', () => expect(names.length).toBeGreaterThanOrEqual(6));
  for (const c of names) {
    it(c, () => {
      const [stride, padding, hasBias] = g.i(`${c}.meta`);
      const shape = { x: g.t(`${c}.x`).shape, w: g.t(`${c}.w`).shape, stride, padding };
      const bias = hasBias ? g.f(`${c}.b`) : null;
      const y = conv3dRef(g.f(`${c}.x`), g.f(`${c}.w`), bias, shape);
      expect(y.shape).toEqual(g.t(`${c}.y`).shape);
      expectClose(y.data, g.f(`${c}.y`), ATOL, RTOL);
      const dy = g.f(`${c}.dy`);
      expectClose(conv3dBackwardDataRef(dy, g.f(`${c}.w`), shape), g.f(`${c}.dx`), ATOL, RTOL);
      expectClose(conv3dBackwardWeightRef(g.f(`${c}.x`), dy, shape), g.f(`${c}.dw`), ATOL, RTOL);
      if (hasBias) expectClose(conv3dBackwardBiasRef(dy, shape), g.f(`${c}.db`), ATOL, RTOL);
    });
  }
});

describe('group norm twin vs PyTorch (G=C, G=1, general)', () => {
  const g = load('group_norm');
  for (const c of g.cases('meta')) {
    it(c, () => {
      const [groups] = g.i(`${c}.meta`);
      const x = g.f(`${c}.x`);
      const shape = g.t(`${c}.x`).shape;
      const w = g.f(`${c}.weight`);
      const b = g.f(`${c}.bias`);
      expectClose(groupNormRef(x, shape, groups, w, b, 1e-5).y, g.f(`${c}.y`), ATOL, RTOL);
      const r = groupNormBackwardRef(g.f(`${c}.dy`), x, shape, groups, w, b, 1e-5);
      expectClose(r.dx, g.f(`${c}.dx`), ATOL, RTOL);
      expectClose(r.dweight, g.f(`${c}.dweight`), ATOL, RTOL);
      expectClose(r.dbias, g.f(`${c}.dbias`), ATOL, RTOL);
    });
  }
});

describe('weight standardisation twin vs PyTorch', () => {
  const g = load('weight_standardize');
  for (const c of g.cases('w')) {
    it(c, () => {
      const shape = g.t(`${c}.w`).shape;
      expectClose(weightStandardizeRef(g.f(`${c}.w`), shape).what, g.f(`${c}.y`), ATOL, RTOL);
      expectClose(weightStandardizeBackwardRef(g.f(`${c}.dy`), g.f(`${c}.w`), shape), g.f(`${c}.dw`), ATOL, RTOL);
    });
  }
});

describe('trilinear x2 upsampling twin vs PyTorch (align_corners=False)', () => {
  const g = load('upsample_trilinear');
  for (const c of g.cases('x')) {
    it(c, () => {
      const shape = g.t(`${c}.x`).shape;
      expectClose(upsampleTrilinear2xRef(g.f(`${c}.x`), shape), g.f(`${c}.y`), ATOL, RTOL);
      expectClose(upsampleTrilinear2xBackwardRef(g.f(`${c}.dy`), shape), g.f(`${c}.dx`), ATOL, RTOL);
    });
  }
});

describe('global average pool twin vs PyTorch', () => {
  const g = load('global_avg_pool');
  for (const c of g.cases('x')) {
    it(c, () => {
      const shape = g.t(`${c}.x`).shape;
      expectClose(globalAvgPoolRef(g.f(`${c}.x`), shape), g.f(`${c}.y`), ATOL, RTOL);
      expectClose(globalAvgPoolBackwardRef(g.f(`${c}.dy`), shape), g.f(`${c}.dx`), ATOL, RTOL);
    });
  }
});

describe('channel gating twin vs PyTorch', () => {
  const g = load('channel_gate');
  for (const c of g.cases('x')) {
    it(c, () => {
      const shape = g.t(`${c}.x`).shape;
      expectClose(channelGateRef(g.f(`${c}.x`), shape, g.f(`${c}.g`)), g.f(`${c}.y`), ATOL, RTOL);
      const r = channelGateBackwardRef(g.f(`${c}.dy`), g.f(`${c}.x`), shape, g.f(`${c}.g`));
      expectClose(r.dx, g.f(`${c}.dx`), ATOL, RTOL);
      expectClose(r.dg, g.f(`${c}.dg`), ATOL, RTOL);
    });
  }
});

describe('dynamic head, partial-label loss and SGD twins vs PyTorch', () => {
  it('dynamic head', () => {
    const g = load('dynamic_head');
    const shape = g.t('h').shape;
    const n = shape[0];
    const v = shape.slice(2).reduce((a, b) => a * b, 1);
    expectClose(dynamicHeadRef(g.f('h'), g.f('params'), n, v), g.f('y'), ATOL, RTOL);
    const r = dynamicHeadBackwardRef(g.f('h'), g.f('params'), g.f('dy'), n, v);
    expectClose(r.dh, g.f('dh'), ATOL, RTOL);
    expectClose(r.dparams, g.f('dparams'), ATOL, RTOL);
  });

  it('partial-label loss (all annotated, some -1, colon/lung-like, mixed)', () => {
    const g = load('partial_label_loss');
    const names = g.cases('logits');
    expect(names).toEqual(expect.arrayContaining(['all', 'some_missing', 'colon_lung', 'mixed']));
    for (const c of names) {
      const shape = g.t(`${c}.logits`).shape;
      const n = shape[0];
      const v = shape.slice(2).reduce((a, b) => a * b, 1);
      expectClose([partialLabelLossRef(g.f(`${c}.logits`), g.f(`${c}.target`), n, v).loss], g.f(`${c}.loss`), 1e-6, 1e-5);
      expectClose(partialLabelLossBackwardRef(g.f(`${c}.logits`), g.f(`${c}.target`), n, v), g.f(`${c}.dlogits`), 1e-6, 1e-4);
    }
  });

  it('SGD (momentum 0.99, Nesterov, weight decay, poly lr)', () => {
    const g = load('sgd');
    const [steps, count] = g.i('steps');
    const [, momentum, weightDecay] = g.f('hparams');
    const lrs = g.f('lr');
    for (let i = 0; i < count; i++) {
      let s: { params: Float64Array; momentum: Float64Array } = {
        params: Float64Array.from(g.f(`init.p${i}`)), momentum: new Float64Array(g.f(`init.p${i}`).length),
      };
      for (let k = 0; k < steps; k++) {
        s = sgdRef(s.params, g.f(`step${k}.grad.p${i}`), s.momentum, {
          lr: lrs[k], momentum, nesterov: true, weightDecay, dampening: 0, firstStep: k === 0,
        });
        expectClose(s.params, g.f(`step${k}.p${i}`), 1e-5, 1e-4);
        expectClose(s.momentum, g.f(`step${k}.momentum.p${i}`), 1e-5, 1e-4);
      }
    }
  });
});
