import { describe, expect, it } from 'vitest';
import { checkpoint } from '../../src/autograd/activation-checkpoint.js';
import { conv3d, weightStandardize } from '../../src/autograd/ops/conv.js';
import { add, mul } from '../../src/autograd/ops/elementwise.js';
import { groupNormRelu } from '../../src/autograd/ops/norm.js';
import { sum } from '../../src/autograd/ops/reduce.js';
import { scopeDepth, tidy } from '../../src/autograd/scope.js';
import { noGrad } from '../../src/autograd/tape.js';
import { liveTensorCount, Tensor } from '../../src/autograd/tensor.js';
import { randomArray, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

const X_SHAPE = [2, 4, 4, 4, 4];

/** The parameters a segment reads from its closure, as a model's modules would hold them. */
function makeParams(seed: number): Record<string, Tensor> {
  const p = (shape: number[], s: number, lo = -0.5, hi = 0.5): Tensor =>
    Tensor.fromArray(randomArray(shape.reduce((a, b) => a * b, 1), s, lo, hi), shape, { requiresGrad: true });
  return {
    gnW: p([4], seed, 0.5, 1.5), gnB: p([4], seed + 1), w1: p([4, 4, 3, 3, 3], seed + 2),
    gn2W: p([4], seed + 3, 0.5, 1.5), gn2B: p([4], seed + 4), w2: p([4, 4, 3, 3, 3], seed + 5), b2: p([4], seed + 6),
  };
}

/** A pre-activation residual block: conv2(relu(gn(conv1(relu(gn(x)))))) + x. */
function block(params: Record<string, Tensor>): (x: Tensor) => Tensor {
  return (x) => {
    const h = conv3d(groupNormRelu(x, 2, params.gnW, params.gnB, 1e-5), weightStandardize(params.w1), { padding: 1 });
    return add(conv3d(groupNormRelu(h, 2, params.gn2W, params.gn2B, 1e-5), params.w2, { bias: params.b2, padding: 1 }), x);
  };
}

/** Host copies of the gradients of `tensors` (null where none arrived). */
async function gradsOf(tensors: Tensor[]): Promise<(number[] | null)[]> {
  return Promise.all(tensors.map(async (t) => (t.grad ? [...(await t.grad.toArray())] : null)));
}

/**
 * Runs loss = sum(stage2(stage1(x)) * x-independent weights) with or without checkpointing both stages and returns
 * the loss and the gradients of x and of every parameter. Everything is freed on return.
 */
async function runGraph(useCheckpoint: boolean, xRequiresGrad: boolean): Promise<{ loss: number; grads: (number[] | null)[] }> {
  return tidy(async () => {
    const p1 = makeParams(10);
    const p2 = makeParams(20);
    const x = Tensor.fromArray(randomArray(2 * 4 * 64, 3), X_SHAPE, { requiresGrad: xRequiresGrad });
    const weights = Tensor.fromArray(randomArray(2 * 4 * 64, 4), X_SHAPE);
    const s1 = block(p1);
    const s2 = block(p2);
    const h1 = useCheckpoint ? checkpoint(s1, [x]) : s1(x);
    const h2 = useCheckpoint ? checkpoint(s2, [h1]) : s2(h1);
    // h1 is also used outside the checkpointed segment, as an encoder stage's output feeds a skip connection.
    const loss = sum(add(mul(h2, weights), h1));
    expect(h2.requiresGrad).toBe(true);
    loss.backward();
    const params = [...Object.values(p1), ...Object.values(p2)];
    return { loss: await loss.item(), grads: await gradsOf([x, ...params]) };
  });
}

describe('checkpoint', () => {
  it('gives the same loss and bit-identical gradients as the un-checkpointed graph, without leaking', async () => {
    const buffers = gpu().poolStats().liveBuffers;
    const tensors = liveTensorCount();
    const plain = await runGraph(false, true);
    const afterPlain = gpu().poolStats().liveBuffers;
    const ckpt = await runGraph(true, true);
    expect(gpu().poolStats().liveBuffers).toBe(afterPlain);
    expect(afterPlain).toBe(buffers);
    expect(liveTensorCount()).toBe(tensors);
    expect(ckpt.loss).toBe(plain.loss);
    expect(ckpt.grads[0]).not.toBeNull();
    expect(plain.grads.every((g) => g !== null)).toBe(true);
    expect(ckpt.grads).toEqual(plain.grads);
    expect(scopeDepth()).toBe(0);
  });

  it('gives parameter gradients when the inputs do not require grad (only the closure\'s parameters do)', async () => {
    const buffers = gpu().poolStats().liveBuffers;
    const plain = await runGraph(false, false);
    const ckpt = await runGraph(true, false);
    expect(ckpt.grads[0]).toBeNull();
    expect(plain.grads[0]).toBeNull();
    expect(ckpt.grads.slice(1).every((g) => g !== null)).toBe(true);
    expect(ckpt.grads).toEqual(plain.grads);
    expect(gpu().poolStats().liveBuffers).toBe(buffers);
  });

  it('keeps only the inputs and the result through the forward pass', () => {
    tidy(() => {
      const params = makeParams(30);
      const x = Tensor.fromArray(randomArray(2 * 4 * 64, 5), X_SHAPE, { requiresGrad: true });
      const before = gpu().poolStats().liveBuffers;
      const plain = block(params)(x);
      const plainHeld = gpu().poolStats().liveBuffers - before;
      plain.dispose();
      const before2 = gpu().poolStats().liveBuffers;
      const out = checkpoint(block(params), [x]);
      // The plain block keeps its normalised activations, conv outputs and statistics for backward; the
      // checkpointed one holds its result only (x's view shares x's buffer).
      expect(gpu().poolStats().liveBuffers - before2).toBe(1);
      expect(plainHeld).toBeGreaterThan(1);
      expect(out.requiresGrad).toBe(true);
    });
  });

  it('handles several inputs, some without grad, and a segment that returns an input unchanged', async () => {
    await tidy(async () => {
      const a = Tensor.fromArray([1, 2, 3], [3], { requiresGrad: true });
      const b = Tensor.fromArray([4, 5, 6], [3]);
      const w = Tensor.fromArray([0.5, -1, 2], [3], { requiresGrad: true });
      const out = checkpoint((u, v) => add(mul(mul(u, v), w), u), [a, b]);
      const same = checkpoint((u) => u, [out]);
      expect(same).toBe(out);
      sum(same).backward();
      expect([...(await a.grad!.toArray())]).toEqual([1 + 4 * 0.5, 1 - 5, 1 + 12]);
      expect([...(await w.grad!.toArray())]).toEqual([4, 10, 18]);
      expect(b.grad).toBeNull();
    });
  });

  it('is plain fn under noGrad: no node, no grad', () => {
    tidy(() => {
      const x = Tensor.fromArray([1, 2], [2], { requiresGrad: true });
      const y = noGrad(() => checkpoint((u) => mul(u, u), [x]));
      expect(y.requiresGrad).toBe(false);
      expect(y.node).toBeNull();
    });
  });

  it('frees the stand-ins when the graph is dropped without backward', () => {
    const buffers = gpu().poolStats().liveBuffers;
    const tensors = liveTensorCount();
    tidy(() => {
      const params = makeParams(40);
      const x = Tensor.fromArray(randomArray(2 * 4 * 64, 6), X_SHAPE);
      checkpoint(block(params), [x]);
    });
    expect(gpu().poolStats().liveBuffers).toBe(buffers);
    expect(liveTensorCount()).toBe(tensors);
  });

  it('refuses nested segments and a segment that records other ops when recomputed', () => {
    tidy(() => {
      const x = Tensor.fromArray([1, 2], [2], { requiresGrad: true });
      expect(() => checkpoint((u) => checkpoint((v) => mul(v, v), [u]), [x])).toThrow(/checkpointed segments cannot nest/);
      let calls = 0;
      const moody = (u: Tensor): Tensor => (calls++ === 0 ? mul(u, u) : add(u, u));
      const y = checkpoint(moody, [x]);
      expect(() => sum(y).backward()).toThrow(/checkpoint: fn recorded op 0 is 'add' instead of 'mul' when recomputed in backward; fn must be deterministic/);
    });
  });

  it('refuses a segment that returns something other than one Tensor, freeing what it made', () => {
    const buffers = gpu().poolStats().liveBuffers;
    tidy(() => {
      const x = Tensor.fromArray([1, 2], [2], { requiresGrad: true });
      const asArray = (u: Tensor): Tensor => [mul(u, u), u] as unknown as Tensor;
      expect(() => checkpoint(asArray, [x])).toThrow(/checkpoint: fn must return a single Tensor in the forward pass, got an array of 2/);
      const asPromise = (u: Tensor): Tensor => Promise.resolve(u) as unknown as Tensor;
      expect(() => checkpoint(asPromise, [x])).toThrow(/got a Promise \(fn must be synchronous\)/);
      expect(() => checkpoint((() => 3) as unknown as () => Tensor, [x])).toThrow(/got number/);
      expect(() => checkpoint((u) => u, [x, null as unknown as Tensor])).toThrow(/checkpoint: input 1 must be a Tensor, got null/);
    });
    expect(gpu().poolStats().liveBuffers).toBe(buffers);
    expect(scopeDepth()).toBe(0);
  });
});
