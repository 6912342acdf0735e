/** Voxel-wise gating (the Table 2 spatial skip attention) with its gradient. */
import { spatialGate as gateKernel, spatialGateBackward } from '../../kernels/spatial-gate.js';
import { recordOp } from '../tape.js';
import { cast } from './elementwise.js';
import { Tensor } from '../tensor.js';

/** x[n, c, ...] * gate[n, 0, ...]: one weight per voxel and sample, shared by the channels; all three in x's dtype. */
export function spatialGate(x: Tensor, gate: Tensor): Tensor {
  const want = [x.shape[0], 1, ...x.shape.slice(2)];
  if (x.rank < 3 || gate.rank !== x.rank || gate.shape.some((d, i) => d !== want[i])) {
    throw new RangeError(`spatialGate: gate [${gate.shape.join(', ')}] must be [${want.join(', ')}] for x [${x.shape.join(', ')}]`);
  }
  // The gate is volume-shaped, so it takes the activations' dtype (an f32 gate on f16 features is converted).
  const dtype = x.dtype;
  if (gate.dtype !== dtype) gate = cast(gate, dtype);
  const out = Tensor.empty(x.shape, x.gpu, dtype);
  gateKernel(x.gpu, x.buffer, x.shape, gate.buffer, out.buffer, { dtype });
  return recordOp('spatialGate', [x, gate], out, [x, gate], (g, [sx, sg]) => {
    const dx = Tensor.empty(x.shape, g.gpu, dtype);
    const dg = Tensor.empty(gate.shape, g.gpu, dtype);
    spatialGateBackward(g.gpu, g.buffer, sx.buffer, x.shape, sg.buffer, dx.buffer, dg.buffer, { dtype });
    return [x.requiresGrad ? dx : (dx.dispose(), null), gate.requiresGrad ? dg : (dg.dispose(), null)];
  });
}
