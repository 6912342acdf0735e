/**
 * Activation checkpointing: trade compute for memory by dropping what a segment's ops save for backward after
 * the forward pass and recomputing it when backward first needs it.
 */
import { keep, tidy } from './scope.js';
import { enableGrad, type GraphNode, isGradEnabled, watchRecordedNodes } from './tape.js';
import { Tensor } from './tensor.js';

function checkResult(result: unknown, when: string): Tensor {
  if (result instanceof Tensor) return result;
  const what = result instanceof Promise ? 'a Promise (fn must be synchronous)'
    : Array.isArray(result) ? `an array of ${result.length}` : result === null ? 'null' : typeof result;
  throw new TypeError(`checkpoint: fn must return a single Tensor ${when}, got ${what}`);
}

/**
 * fn(...inputs), holding through the forward pass only the segment's inputs and result instead of the
 * tensors fn's ops save for backward (torch.utils.checkpoint with use_reentrant=False).
 *
 * fn's ops are recorded as usual, so the graph, and with it the order in which backward sums the gradients of
 * a tensor used inside and outside the segment, is the one of fn(...inputs): gradients are bit-identical to
 * the un-checkpointed ones. (The reentrant flavour, one node whose backward runs a nested backward, sums the
 * segment's share of an input's gradient before adding the outside share, which differs in the last bits.)
 * Right after fn returns, the tensors its nodes saved are freed and each node keeps views of the inputs
 * instead; when backward reaches the first of them, fn runs again with recording on and its nodes' saved
 * tensors move, one by one in recording order, into the original nodes, which backward then frees as usual.
 * Parameters fn reads from its closure get their gradients as without checkpointing, also when no input
 * requires grad.
 *
 * fn must be pure and synchronous: same inputs, same ops in the same order and the same values on both runs.
 * tgnet's ops are deterministic (there is no dropout or other random op), so the recomputation is
 * bit-identical and no RNG state needs restoring; a caller adding randomness inside fn would have to replay
 * its seed. Segments cannot nest. Under noGrad this is simply fn(...inputs).
 */
export function checkpoint(fn: (...inputs: Tensor[]) => Tensor, inputs: readonly Tensor[]): Tensor {
  if (typeof fn !== 'function') throw new TypeError(`checkpoint: fn must be a function, got ${typeof fn}`);
  if (!Array.isArray(inputs)) throw new TypeError(`checkpoint: inputs must be an array of Tensors, got ${typeof inputs}`);
  inputs.forEach((t, i) => {
    if (!(t instanceof Tensor)) throw new TypeError(`checkpoint: input ${i} must be a Tensor, got ${t === null ? 'null' : typeof t}`);
    if (t.isDisposed) throw new Error(`checkpoint: input ${i} [${t.shape.join(', ')}] was already disposed`);
  });
  if (!isGradEnabled()) return checkResult(fn(...inputs), 'under noGrad');

  const nodes: GraphNode[] = [];
  const out = tidy(() => watchRecordedNodes((n) => nodes.push(n), () => checkResult(fn(...inputs), 'in the forward pass')));
  const needsGrad = inputs.map((t) => t.requiresGrad);
  const recompute = (stashed: readonly Tensor[]): void => {
    const fresh: GraphNode[] = [];
    tidy(() => {
      const views = stashed.map((t, i) => {
        const view = t.shareAs(t.shape);
        view.requiresGrad = needsGrad[i];
        return view;
      });
      enableGrad(() => watchRecordedNodes((n) => fresh.push(n), () => checkResult(fn(...views), 'when recomputed in backward')));
      const differs = fresh.length !== nodes.length ? `${fresh.length} ops instead of ${nodes.length}`
        : fresh.findIndex((n, k) => n.op !== nodes[k].op);
      if (differs !== -1) {
        const what = typeof differs === 'string' ? differs : `op ${differs} is '${fresh[differs].op}' instead of '${nodes[differs].op}'`;
        throw new Error(`checkpoint: fn recorded ${what} when recomputed in backward; fn must be deterministic`);
      }
      fresh.forEach((again, k) => {
        const node = nodes[k];
        node.recompute = null;
        // A node freed meanwhile (its output dropped, or passed by backward without a gradient) needs nothing.
        if (node.released) return;
        for (const s of node.saved) s.dispose();
        node.saved = again.saved;
        again.saved = [];
      });
    });
  };
  for (const node of nodes) {
    for (const s of node.saved) s.dispose();
    const stash = inputs.map((t) => keep(t.shareAs(t.shape)));
    node.saved = stash;
    node.recompute = () => recompute(stash);
  }
  return out;
}
