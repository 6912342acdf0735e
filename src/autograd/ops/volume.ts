/** Volume ops of TGNet with their gradients: global average pooling, channel gating, trilinear x2 upsampling. */
import { channelGate as gateKernel, channelGateBackward } from '../../kernels/channel-gate.js';
import { globalAvgPool as gapKernel, globalAvgPoolBackward } from '../../kernels/global-avg-pool.js';
import { upsampleTrilinear2x as upKernel, upsampleTrilinear2xBackward, upsampleTrilinear2xShape } from '../../kernels/upsample.js';
import { recordOp } from '../tape.js';
import { Tensor } from '../tensor.js';

/** [N, C, ...spatial] -> [N, C], the mean over the spatial axes. */
export function globalAvgPool(x: Tensor): Tensor {
  if (x.rank < 3) throw new RangeError(`globalAvgPool: input [${x.shape.join(', ')}] needs spatial axes ([N, C, ...])`);
  const out = Tensor.empty([x.shape[0], x.shape[1]], x.gpu);
  gapKernel(x.gpu, x.buffer, x.shape, out.buffer);
  return recordOp('globalAvgPool', [x], out, [], (g) => {
    const dx = Tensor.empty(x.shape, g.gpu);
    globalAvgPoolBackward(g.gpu, g.buffer, x.shape, dx.buffer);
    return [dx];
  });
}

/** x[n, c, ...] * g[n, c]. */
export function channelGate(x: Tensor, gate: Tensor): Tensor {
  if (gate.rank !== 2 || gate.shape[0] !== x.shape[0] || gate.shape[1] !== x.shape[1]) {
    throw new RangeError(`channelGate: gate [${gate.shape.join(', ')}] must be [N, C] = [${x.shape[0]}, ${x.shape[1]}] for x [${x.shape.join(', ')}]`);
  }
  const out = Tensor.empty(x.shape, x.gpu);
  gateKernel(x.gpu, x.buffer, x.shape, gate.buffer, out.buffer);
  return recordOp('channelGate', [x, gate], out, [x, gate], (g, [sx, sg]) => {
    const dx = Tensor.empty(x.shape, g.gpu);
    const dg = Tensor.empty(gate.shape, g.gpu);
    channelGateBackward(g.gpu, g.buffer, sx.buffer, x.shape, sg.buffer, dx.buffer, dg.buffer);
    return [x.requiresGrad ? dx : (dx.dispose(), null), gate.requiresGrad ? dg : (dg.dispose(), null)];
  });
}

/** F.interpolate(x, scale_factor=2, mode='trilinear', align_corners=False). */
export function upsampleTrilinear2x(x: Tensor): Tensor {
  const out = Tensor.empty(upsampleTrilinear2xShape(x.shape), x.gpu);
  upKernel(x.gpu, x.buffer, x.shape, out.buffer);
  return recordOp('upsampleTrilinear2x', [x], out, [], (g) => {
    const dx = Tensor.empty(x.shape, g.gpu);
    upsampleTrilinear2xBackward(g.gpu, g.buffer, x.shape, dx.buffer);
    return [dx];
  });
}
