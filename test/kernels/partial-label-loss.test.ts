import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  LOSS_STAT, LOSS_STATS_STRIDE, checkFinite, lossStatsSize, partialLabelLoss, partialLabelLossBackward,
} from '../../src/kernels/partial-label-loss.js';
import { partialLabelLossBackwardRef, partialLabelLossRef } from '../../src/kernels/reference/partial-label-loss.js';
import { maxRelativeError, numericGradient } from '../../src/kernels/reference/gradcheck.js';
import type { Gpu } from '../../src/kernels/runtime/gpu.js';
import { readSafetensors } from '../../src/nn/safetensors.js';
import { download, empty, expectClose, randomArray, rng, upload, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

/** Which channels each sample annotates: [organ, tumour]; false fills that channel with -1. */
type Annotated = [boolean, boolean][];

function makeCase(shape: number[], annotated: Annotated, seed: number) {
  const n = shape[0];
  const v = shape.slice(2).reduce((a, b) => a * b, 1);
  const logits = randomArray(n * 2 * v, seed, -3, 3);
  const r = rng(seed + 1);
  const target = new Float32Array(n * 2 * v);
  for (let s = 0; s < n; s++) {
    for (let c = 0; c < 2; c++) {
      for (let j = 0; j < v; j++) target[(s * 2 + c) * v + j] = annotated[s][c] ? (r() > 0.7 ? 1 : 0) : -1;
    }
  }
  return { n, v, logits, target };
}

async function runGpu(shape: number[], logits: Float32Array, target: Float32Array, dlossValue: number, blockVoxels?: number, g?: Gpu) {
  const G = g ?? gpu();
  const n = shape[0];
  const total = logits.length;
  const xb = upload(gpu(), logits);
  const tb = upload(gpu(), target);
  const lossB = empty(gpu(), 1);
  const statsB = empty(gpu(), lossStatsSize(n));
  partialLabelLoss(G, xb, shape, tb, shape, lossB, statsB, { blockVoxels });
  const dlossB = upload(gpu(), new Float32Array([dlossValue]));
  const gb = empty(gpu(), total);
  partialLabelLossBackward(G, xb, shape, tb, statsB, dlossB, gb);
  return {
    loss: (await download(gpu(), lossB, 1))[0],
    stats: await download(gpu(), statsB, lossStatsSize(n)),
    dlogits: await download(gpu(), gb, total),
  };
}

const CASES: { name: string; shape: number[]; annotated: Annotated; blockVoxels?: number }[] = [
  { name: 'all channels annotated', shape: [2, 2, 3, 5, 7], annotated: [[true, true], [true, true]] },
  { name: 'one channel -1 for some samples', shape: [3, 2, 5, 7, 9], annotated: [[true, true], [true, false], [true, true]] },
  { name: 'colon/lung-like (organ -1) with spleen-like (tumour -1)', shape: [2, 2, 4, 6, 5], annotated: [[false, true], [true, false]] },
  { name: 'organ -1 for every sample', shape: [2, 2, 3, 3, 11], annotated: [[false, true], [false, true]] },
  { name: 'past the partials threshold (small blocks)', shape: [2, 2, 9, 11, 13], annotated: [[true, true], [false, true]], blockVoxels: 200 },
  { name: 'past the default 4096-voxel block', shape: [2, 2, 7, 23, 29], annotated: [[true, false], [true, true]] },
];

describe('partial-label loss: GPU vs CPU twin', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const { n, v, logits, target } = makeCase(c.shape, c.annotated, 5 + c.shape[4]);
      const r = await runGpu(c.shape, logits, target, 0.75, c.blockVoxels);
      const ref = partialLabelLossRef(logits, target, n, v);
      expectClose([r.loss], [ref.loss], 1e-5, 1e-4);
      for (let nc = 0; nc < n * 2; nc++) {
        const o = nc * LOSS_STATS_STRIDE;
        expect(r.stats[o + LOSS_STAT.labelled]).toBe(ref.labelled[nc] ? 1 : 0);
        expectClose(
          [r.stats[o + LOSS_STAT.intersection], r.stats[o + LOSS_STAT.predSum], r.stats[o + LOSS_STAT.targetSum]],
          [ref.intersection[nc], ref.predSum[nc], ref.targetSum[nc]], 1e-3, 1e-4,
        );
        expectClose([r.stats[o + LOSS_STAT.dice], r.stats[o + LOSS_STAT.bce], r.stats[o + LOSS_STAT.coef]],
          [ref.dice[nc], ref.bce[nc], ref.coef[nc]], 1e-5, 1e-4);
      }
      expectClose(r.dlogits, partialLabelLossBackwardRef(logits, target, n, v, 0.75), 1e-4, 1e-3);
    });
  }

  it('none annotated: loss 0 and zero gradient', async () => {
    const shape = [2, 2, 3, 4, 5];
    const { n, v, logits, target } = makeCase(shape, [[false, false], [false, false]], 9);
    const r = await runGpu(shape, logits, target, 1);
    expect(r.loss).toBe(0);
    expect(partialLabelLossRef(logits, target, n, v).loss).toBe(0);
    expect(r.dlogits.every((x) => x === 0)).toBe(true);
    expect(partialLabelLossBackwardRef(logits, target, n, v).every((x) => x === 0)).toBe(true);
  });

  it('splits samples over several binding windows', async () => {
    const shape = [5, 2, 3, 5, 7];
    const { logits, target, n, v } = makeCase(shape, [[true, true], [false, true], [true, false], [true, true], [false, true]], 12);
    const limits = { ...gpu().limits, maxStorageBufferBindingSize: 2048, minStorageBufferOffsetAlignment: 256 };
    const small = new Proxy(gpu(), { get: (t, k) => (k === 'limits' ? limits : Reflect.get(t, k)) });
    const before = gpu().dispatchCount;
    const r = await runGpu(shape, logits, target, 1.5, 64, small);
    expect(gpu().dispatchCount - before).toBe(2 * 3 + 1); // 840-byte samples in chunks of 2, 2, 1: reduce and backward each + finalize
    const ref = partialLabelLossRef(logits, target, n, v);
    expectClose([r.loss], [ref.loss], 1e-5, 1e-4);
    expectClose(r.dlogits, partialLabelLossBackwardRef(logits, target, n, v, 1.5), 1e-4, 1e-3);
  });
});

describe('partial-label loss: CPU twin gradcheck', () => {
  for (const annotated of [[[true, true], [true, false], [false, true]], [[false, true], [false, true], [true, true]]] as Annotated[]) {
    it(`annotated ${JSON.stringify(annotated)}`, () => {
      const shape = [3, 2, 2, 2, 3];
      const { n, v, logits, target } = makeCase(shape, annotated, 77);
      const x = Float64Array.from(logits);
      const g = partialLabelLossBackwardRef(x, target, n, v);
      const num = numericGradient((z) => partialLabelLossRef(z, target, n, v).loss, x);
      expect(maxRelativeError(g, num, 1e-7, 1e-5)).toBeLessThan(1);
    });
  }
});

describe('partial-label loss errors', () => {
  it('rejects a target shape mismatch, a non-2-channel logits and small buffers', () => {
    const b = empty(gpu(), 1024);
    expect(() => partialLabelLoss(gpu(), b, [2, 2, 4, 4], b, [2, 2, 4, 5], b, b))
      .toThrow(/partialLabelLoss: target shape \[2, 2, 4, 5\] does not match logits \[2, 2, 4, 4\]/);
    expect(() => partialLabelLoss(gpu(), b, [2, 3, 4], b, [2, 3, 4], b, b)).toThrow(/logits must be \[N, 2, \.\.\.spatial\]/);
    expect(() => partialLabelLoss(gpu(), b, [2, 2, 0], b, [2, 2, 0], b, b)).toThrow(/are empty/);
    const tiny = empty(gpu(), 1);
    expect(() => partialLabelLoss(gpu(), b, [5, 2, 8], b, [5, 2, 8], b, tiny)).toThrow(/partialLabelLoss stats: buffer of 256 bytes is too small for 80 f32/);
    expect(() => partialLabelLossBackward(gpu(), b, [2, 2, 2000], b, b, b, b)).toThrow(/partialLabelLossBackward logits: buffer/);
  });

  it('checkFinite names the value', () => {
    expect(checkFinite(0.5)).toBe(0.5);
    expect(() => checkFinite(Number.NaN, 'step 12 loss')).toThrow(/step 12 loss is NaN/);
    expect(() => checkFinite(Infinity)).toThrow(/loss is Infinity/);
  });
});

const GOLDEN = new URL('../golden/partial_label_loss.safetensors', import.meta.url);

describe('partial-label loss against PyTorch (test/golden/partial_label_loss.safetensors)', () => {
  it('loss and dlogits match torch autograd for every case in the file', async () => {
    expect(existsSync(GOLDEN), 'run scripts/make_op_goldens.py to create the goldens').toBe(true);
    const g = readSafetensors(new Uint8Array(readFileSync(GOLDEN)));
    const cases = [...g.keys()].filter((k) => k.endsWith('.logits')).map((k) => k.slice(0, -'.logits'.length));
    expect(cases.length).toBeGreaterThanOrEqual(3);
    for (const name of cases) {
      const get = (k: string) => {
        const t = g.get(`${name}.${k}`);
        if (!t) throw new Error(`golden tensor ${name}.${k} missing`);
        return t;
      };
      const logits = get('logits');
      const r = await runGpu(logits.shape, logits.data as Float32Array, get('target').data as Float32Array, 1, 64);
      expectClose([r.loss], get('loss').data as Float32Array, 1e-5, 1e-4);
      expectClose(r.dlogits, get('dlogits').data as Float32Array, 1e-5, 1e-3);
    }
  });
});
