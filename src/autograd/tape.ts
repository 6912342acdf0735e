/**
 * The tape: ops record a GraphNode (inputs, saved tensors, backward rule) only when a gradient is wanted;
 * `backward` walks the nodes in reverse topological order, summing the gradients of tensors used twice.
 *
 * Node lifetime is reference-counted: a node lives while its output tensor lives or while a downstream
 * node that consumes it lives, and is freed (its saved tensors released) once backward has passed it.
 */
import { addInPlace, binary } from '../kernels/elementwise.js';
import { keep, tidy } from './scope.js';
import { Tensor } from './tensor.js';

/** Returns one gradient per input (null where an input needs none), each with that input's shape. */
export type BackwardRule = (gradOutput: Tensor, saved: readonly Tensor[]) => (Tensor | null)[];

let gradEnabled = true;

/**
 * Op-graph traffic: the bytes the unfused graph of differentiable ops moves if each op reads each operand
 * once and writes each result once, the floor a step's kernels are compared with ("minimum traffic"; fused
 * kernels that keep intermediates on chip can go below it, kernels that re-read operands go above).
 * - forward: every op that passes through `recordOp` (recorded or not): its inputs plus its output;
 * - backward: every node `backward` runs: its output gradient, its saved tensors and the input gradients it
 *   returns, plus, where a tensor's gradient arrives twice, the sum (two read, one written).
 * Bytes are logical tensor sizes (f32: 4 bytes an element). Optimiser updates are not ops: a caller adds them.
 */
export interface OpTraffic {
  forwardBytes: number;
  backwardBytes: number;
  /** Ops seen in the forward pass. */
  ops: number;
  /** Nodes run by backward. */
  backwardNodes: number;
}

let opTraffic: OpTraffic | null = null;

/** Starts the op-graph traffic meter (see `OpTraffic`); off by default, and free when off. */
export function startOpTraffic(): void {
  opTraffic = { forwardBytes: 0, backwardBytes: 0, ops: 0, backwardNodes: 0 };
}

/** Stops the meter and returns what it measured since `startOpTraffic` (zeros when it was not started). */
export function stopOpTraffic(): OpTraffic {
  const t = opTraffic ?? { forwardBytes: 0, backwardBytes: 0, ops: 0, backwardNodes: 0 };
  opTraffic = null;
  return t;
}

const tensorBytes = (ts: readonly (Tensor | null)[]): number => {
  let n = 0;
  for (const t of ts) if (t) n += t.size * (t.dtype === 'f16' ? 2 : 4);
  return n;
};

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording any op (inference, optimiser updates). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/** Runs fn with op recording on, even inside noGrad or backward (activation checkpointing recomputes this way). */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = enabled;
  try {
    const r = fn();
    if (r instanceof Promise) {
      // The mode holds until the promise settles: async inference under noGrad behaves as sync.
      return r.finally(() => { gradEnabled = prev; }) as T;
    }
    gradEnabled = prev;
    return r;
  } catch (e) {
    gradEnabled = prev;
    throw e;
  }
}

export class GraphNode {
  private refs = 1;
  released = false;
  readonly inputNodes: (GraphNode | null)[];
  /**
   * Set while `saved` holds stand-ins for tensors dropped after the forward pass (activation checkpointing,
   * checkpoint.ts): backward calls it before the rule, and it refills `saved` by recomputing.
   */
  recompute: (() => void) | null = null;

  constructor(
    readonly op: string,
    readonly inputs: readonly Tensor[],
    public saved: readonly Tensor[],
    readonly rule: BackwardRule,
  ) {
    this.inputNodes = inputs.map((t) => (t.requiresGrad ? t.node : null));
    for (const n of this.inputNodes) n?.addRef();
  }

  addRef(): void {
    this.refs++;
  }

  /** Called when the output tensor is disposed. */
  outputDisposed(): void {
    this.deref();
  }

  deref(): void {
    if (--this.refs === 0) this.release();
  }

  /** Frees the saved tensors: after this the node cannot run backward again. Idempotent. */
  freeSaved(): void {
    if (this.released) return;
    this.released = true;
    for (const s of this.saved) s.dispose();
  }

  /** Frees saved tensors and lets upstream nodes go (once nothing references this node). */
  private release(): void {
    this.freeSaved();
    for (const n of this.inputNodes) n?.deref();
  }
}

/**
 * Records an op if any input requires a gradient and grad mode is on; returns `out` either way.
 * `saved` tensors are retained (as views) for the backward rule, so callers may dispose their originals.
 */
export function recordOp(op: string, inputs: readonly Tensor[], out: Tensor, saved: readonly Tensor[], rule: BackwardRule): Tensor {
  if (opTraffic) {
    opTraffic.ops++;
    opTraffic.forwardBytes += tensorBytes(inputs) + tensorBytes([out]);
  }
  if (!gradEnabled || !inputs.some((t) => t.requiresGrad)) return out;
  const views = saved.map((t) => keep(t.shareAs(t.shape)));
  out.node = new GraphNode(op, inputs, views, rule);
  nodeWatcher?.(out.node);
  out.requiresGrad = true;
  return out;
}

let nodeWatcher: ((node: GraphNode) => void) | null = null;

/** Runs fn, handing `watch` every node recorded meanwhile, in recording order (activation checkpointing). */
export function watchRecordedNodes<T>(watch: (node: GraphNode) => void, fn: () => T): T {
  if (nodeWatcher) throw new Error('watchRecordedNodes: already watching; checkpointed segments cannot nest');
  nodeWatcher = watch;
  try {
    return fn();
  } finally {
    nodeWatcher = null;
  }
}

function accumulate(into: Tensor | undefined | null, g: Tensor): Tensor {
  if (!into) return g;
  if (opTraffic) opTraffic.backwardBytes += 3 * tensorBytes([g]);
  // In place when nothing else sees the accumulator's storage (no view of it is alive).
  if (into.storage.refCount === 1 && into.storage !== g.storage && sameShape(into.shape, g.shape)) {
    addInPlace(into.gpu, into.buffer, g.buffer, g.size, g.dtype);
    g.dispose();
    return into;
  }
  const sum = keep(Tensor.empty(into.shape, into.gpu, into.dtype));
  binary(into.gpu, 'add', into.buffer, into.shape, g.buffer, g.shape, sum.buffer, g.dtype);
  into.dispose();
  g.dispose();
  return sum;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Reverse-mode sweep from `root`. Leaves' `.grad` accumulate across calls, as in PyTorch. */
export function backward(root: Tensor, gradOutput?: Tensor): void {
  if (!root.requiresGrad) {
    throw new Error(`backward: tensor [${root.shape.join(', ')}] does not require grad (no input of its graph has requiresGrad)`);
  }
  if (!gradOutput && root.size !== 1) {
    throw new RangeError(`backward: a gradient is needed for non-scalar tensor [${root.shape.join(', ')}]`);
  }
  if (gradOutput && !sameShape(gradOutput.shape, root.shape)) {
    throw new RangeError(`backward: gradient shape [${gradOutput.shape.join(', ')}] differs from tensor shape [${root.shape.join(', ')}]`);
  }
  if (gradOutput && gradOutput.dtype !== root.dtype) {
    throw new TypeError(`backward: gradient dtype ${gradOutput.dtype} differs from the tensor's ${root.dtype}`);
  }
  noGrad(() => {
    const seed = keep(gradOutput ? gradOutput.shareAs(root.shape) : Tensor.ones(root.shape, { dtype: root.dtype }));
    if (!root.node) {
      root.grad = keep(accumulate(root.grad, seed));
      return;
    }
    if (root.node.released) {
      throw new Error(`backward: the graph of op '${root.node.op}' was already freed by an earlier backward()`);
    }
    const order = topologicalOrder(root.node);
    // Pin every node of the sweep so that freeing a processed node cannot cascade into one not yet run.
    for (const node of order) node.addRef();
    const grads = new Map<GraphNode, Tensor>([[root.node, seed]]);
    for (const node of order) {
      const g = grads.get(node);
      grads.delete(node);
      if (!g) {
        node.freeSaved();
        node.deref();
        continue;
      }
      if (node.released) throw new Error(`backward: the graph of op '${node.op}' was already freed`);
      node.recompute?.();
      const inputGrads = tidy(() => node.rule(g, node.saved));
      if (inputGrads.length !== node.inputs.length) {
        throw new Error(`backward rule of '${node.op}' returned ${inputGrads.length} gradients for ${node.inputs.length} inputs`);
      }
      if (opTraffic) {
        opTraffic.backwardNodes++;
        opTraffic.backwardBytes += tensorBytes([g]) + tensorBytes(node.saved) + tensorBytes(inputGrads);
      }
      g.dispose();
      node.inputs.forEach((input, i) => {
        const gi = inputGrads[i];
        if (!gi) return;
        keep(gi);
        if (!input.requiresGrad) {
          gi.dispose();
          return;
        }
        if (!sameShape(gi.shape, input.shape)) {
          throw new Error(`backward rule of '${node.op}': gradient [${gi.shape.join(', ')}] for input ${i} of shape [${input.shape.join(', ')}]`);
        }
        // A gradient has its tensor's dtype (mixed precision: f16 activations have f16 gradients).
        if (gi.dtype !== input.dtype) {
          throw new Error(`backward rule of '${node.op}': ${gi.dtype} gradient for input ${i}, a ${input.dtype} tensor`);
        }
        const up = node.inputNodes[i];
        if (up) grads.set(up, accumulate(grads.get(up), gi));
        else if (input.isDisposed) gi.dispose();
        else input.grad = accumulate(input.grad, gi);
      });
      node.freeSaved();
      node.deref();
    }
  });
}

/** Nodes reachable from root, each after every node that consumes it. */
function topologicalOrder(root: GraphNode): GraphNode[] {
  const post: GraphNode[] = [];
  const seen = new Set<GraphNode>([root]);
  const stack: [GraphNode, number][] = [[root, 0]];
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [node, i] = top;
    if (i < node.inputNodes.length) {
      top[1]++;
      const next = node.inputNodes[i];
      if (next && !seen.has(next) && !next.released) {
        seen.add(next);
        stack.push([next, 0]);
      }
    } else {
      post.push(node);
      stack.pop();
    }
  }
  return post.reverse();
}
