/** tgnet/autograd: Tensor, the tape, memory scopes, gradcheck and the differentiable ops. */
export { Tensor, Storage, liveTensorCount, type DType, type TensorOptions } from './tensor.js';
export { noGrad, enableGrad, isGradEnabled, recordOp, type BackwardRule, GraphNode } from './tape.js';
export { checkpoint } from './activation-checkpoint.js';
export { tidy, keep, scopeDepth } from './scope.js';
export { gradcheck, type GradcheckOptions, type GradcheckResult } from './gradcheck.js';
export { mulberry32, rngNormal, rngUniform } from './random.js';
export { add, sub, mul, div, neg, relu, sigmoid, exp, log, sqrt, square, pow, reduceGradTo, cast, asF32 } from './ops/elementwise.js';
export { sum, mean, max } from './ops/reduce.js';
export { permute, transpose, concat, slice } from './ops/shape.js';
export { matmul } from './ops/matmul.js';
export { conv3d, weightStandardize, type Conv3dArgs } from './ops/conv.js';
export { groupNorm, groupNormRelu } from './ops/norm.js';
export { normReluConv3d, type NormArgs } from './ops/norm-relu-conv.js';
export { globalAvgPool, channelGate, upsampleTrilinear2x } from './ops/volume.js';
export { spatialGate } from './ops/spatial-gate.js';
export { dynamicHead, partialLabelLoss, taskConcat } from './ops/head.js';
