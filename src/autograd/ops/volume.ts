/** Volume ops of TGNet with their gradients: global average pooling, channel gating, trilinear x2 upsampling. */
import { channelGate as gateKernel, channelGateBackward } from '../../kernels/channel-gate.js';
import { globalAvgPool as gapKernel, globalAvgPoolBackward } from '../../kernels/global-avg-pool.js';
import { upsampleTrilinear2x as upKernel, upsampleTrilinear2xBackward, upsampleTrilinear2xShape } from '../../kernels/upsample.js';
import { recordOp } from '../tape.js';
import { asF32 } from './elementwise.js';
import { Tensor } from '../tensor.js';

/**
 * [N, C, ...spatial] -> [N, C], the mean over the spatial axes. Under mixed precision x (and its gradient) is f16;
 * the pooled vector is f32 (a sum in f32 over the whole volume, small).
 */
export function globalAvgPool(x: Tensor): Tensor {
  if (x.rank < 3) throw new RangeError(`globalAvgPool: input [${x.shape.join(', ')}] needs spatial axes ([N, C, ...])`);
  const dtype = x.dtype;
  const out = Tensor.empty([x.shape[0], x.shape[1]], x.gpu);
  gapKernel(x.gpu, x.buffer, x.shape, out.buffer, { dtype });
  return recordOp('globalAvgPool', [x], out, [], (g) => {
    const dx = Tensor.empty(x.shape, g.gpu, dtype);
    globalAvgPoolBackward(g.gpu, g.buffer, x.shape, dx.buffer, { dtype });
    return [dx];
  });
}

/** x[n, c, ...] * g[n, c]: x and the result in x's dtype, the gate f32. */
export function channelGate(x: Tensor, gate: Tensor): Tensor {
  if (gate.rank !== 2 || gate.shape[0] !== x.shape[0] || gate.shape[1] !== x.shape[1]) {
    throw new RangeError(`channelGate: gate [${gate.shape.join(', ')}] must be [N, C] = [${x.shape[0]}, ${x.shape[1]}] for x [${x.shape.join(', ')}]`);
  }
  gate = asF32(gate);
  const dtype = x.dtype;
  const out = Tensor.empty(x.shape, x.gpu, dtype);
  gateKernel(x.gpu, x.buffer, x.shape, gate.buffer, out.buffer, { dtype });
  return recordOp('channelGate', [x, gate], out, [x, gate], (g, [sx, sg]) => {
    const dx = Tensor.empty(x.shape, g.gpu, dtype);
    const dg = Tensor.empty(gate.shape, g.gpu);
    channelGateBackward(g.gpu, g.buffer, sx.buffer, x.shape, sg.buffer, dx.buffer, dg.buffer, { dtype });
    return [x.requiresGrad ? dx : (dx.dispose(), null), gate.requiresGrad ? dg : (dg.dispose(), null)];
  });
}

/** F.interpolate(x, scale_factor=2, mode='trilinear', align_corners=False). */
export function upsampleTrilinear2x(x: Tensor): Tensor {
  const dtype = x.dtype;
  const out = Tensor.empty(upsampleTrilinear2xShape(x.shape), x.gpu, dtype);
  upKernel(x.gpu, x.buffer, x.shape, out.buffer, { dtype });
  return recordOp('upsampleTrilinear2x', [x], out, [], (g) => {
    const dx = Tensor.empty(x.shape, g.gpu, dtype);
    upsampleTrilinear2xBackward(g.gpu, g.buffer, x.shape, dx.buffer, { dtype });
    return [dx];
  });
}
