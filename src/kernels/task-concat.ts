/**
 * Concatenation of a feature vector with the task one-hot (TGNet's gate and controller inputs):
 * [N, C] features and task ids (N integers in [0, T)) -> [N, C + T] = [features, one_hot(task, T)].
 * The number of tasks T is the caller's (the model's task table). The task ids travel in the uniform
 * parameters (60 rows per dispatch), so no upload or flush is needed.
 * Backward: the gradient of the features is the [N, C] slice of the output gradient (the one-hot is constant).
 * These are small per-sample tensors, f32 under mixed precision; `dtype` (of all of them) allows f16 as well.
 */
import type { Gpu } from './runtime/gpu.js';
import { cachedSignature, kernelSignature, readOnly, readWrite } from './runtime/kernel-signature.js';
import { requireDType, type DType } from './runtime/precision.js';
import { checkBuffer, checkShape, linearMain, linearWorkgroupSize } from './runtime/wgsl.js';

const ROWS_PER_DISPATCH = 60;

/** Rows row0 .. row0 + rows - 1 of [N, c + t]; ids[r / 4][r % 4] is row r's task. */
const forwardSignature = (dtype: DType) => cachedSignature(`taskConcat:${dtype}`, () => kernelSignature('taskConcat', {
  uniforms: { rows: 'u32', row0: 'u32', c: 'u32', t: 'u32', ids: { array: 'vec4u', length: ROWS_PER_DISPATCH / 4 } },
  storage: { fs: readOnly(dtype), outs: readWrite(dtype) },
}));

const backwardSignature = (dtype: DType) => cachedSignature(`taskConcatBackward:${dtype}`, () => kernelSignature('taskConcatBackward', {
  uniforms: { n: 'u32', c: 'u32', t: 'u32' },
  storage: { gs: readOnly(dtype), dfs: readWrite(dtype) },
}));

function dims(shape: readonly number[], numTasks: number, op: string): { N: number; C: number; T: number } {
  checkShape(shape, op);
  if (shape.length !== 2) throw new RangeError(`${op}: expected a features shape [N, C], got [${shape.join(', ')}]`);
  if (!Number.isInteger(numTasks) || numTasks < 1) throw new RangeError(`${op}: numTasks must be a positive integer, got ${numTasks}`);
  return { N: shape[0], C: shape[1], T: numTasks };
}

/** Throws unless taskIds holds N integers in [0, numTasks). */
export function checkTaskIds(taskIds: readonly number[], N: number, numTasks: number, op = 'taskConcat'): void {
  if (!Array.isArray(taskIds) || taskIds.length !== N) {
    throw new RangeError(`${op}: expected ${N} task ids (one per sample), got ${Array.isArray(taskIds) ? taskIds.length : String(taskIds)}`);
  }
  taskIds.forEach((t, i) => {
    if (!Number.isInteger(t) || t < 0 || t >= numTasks) {
      throw new RangeError(`${op}: task id ${t} at position ${i} is out of range; expected an integer in [0, ${numTasks - 1}]`);
    }
  });
}

/** out [N, C + T] = [features, one_hot(taskIds, T)], both of `dtype`. */
export function taskConcat(
  gpu: Gpu, features: GPUBuffer, shape: readonly number[], taskIds: readonly number[], out: GPUBuffer, numTasks: number,
  dtype: DType = 'f32',
): void {
  const op = 'taskConcat';
  requireDType(gpu, dtype, op);
  const { N, C, T } = dims(shape, numTasks, op);
  checkTaskIds(taskIds, N, T, op);
  checkBuffer(features, N * C, `${op} features`, dtype);
  checkBuffer(out, N * (C + T), `${op} output`, dtype);
  const wg = linearWorkgroupSize(gpu);
  const FORWARD = forwardSignature(dtype);
  const pipeline = FORWARD.pipeline(gpu, `task-concat:${dtype}:${wg}`, () => `
${linearMain(wg)}
  let width = p.c + p.t;
  if (gid >= p.rows * width) { return; }
  let r = gid / width;
  let j = gid - r * width;
  let n = p.row0 + r;
  var v = 0.0;
  if (j < p.c) {
    v = f32(fs[n * p.c + j]);
  } else if (j - p.c == p.ids[r / 4u][r % 4u]) {
    v = 1.0;
  }
  outs[n * width + j] = ${dtype}(v);
}`);
  for (let row0 = 0; row0 < N; row0 += ROWS_PER_DISPATCH) {
    const rows = Math.min(ROWS_PER_DISPATCH, N - row0);
    const ids = Array.from({ length: ROWS_PER_DISPATCH }, (_, i) => (i < rows ? taskIds[row0 + i] : 0));
    gpu.dispatch({
      pipeline, label: op, workgroups: Math.ceil((rows * (C + T)) / wg),
      ...FORWARD.bind({ rows, row0, c: C, t: T, ids }, { fs: features, outs: out }),
    });
  }
}

/** dfeatures [N, C] = dout[:, :C] (dout is [N, C + T]), both of `dtype`. */
export function taskConcatBackward(
  gpu: Gpu, dout: GPUBuffer, shape: readonly number[], dfeatures: GPUBuffer, numTasks: number, dtype: DType = 'f32',
): void {
  const op = 'taskConcatBackward';
  requireDType(gpu, dtype, op);
  const { N, C, T } = dims(shape, numTasks, op);
  checkBuffer(dout, N * (C + T), `${op} output gradient`, dtype);
  checkBuffer(dfeatures, N * C, `${op} features gradient`, dtype);
  const wg = linearWorkgroupSize(gpu);
  const BACKWARD = backwardSignature(dtype);
  const pipeline = BACKWARD.pipeline(gpu, `task-concat-bwd:${dtype}:${wg}`, () => `
${linearMain(wg)}
  if (gid >= p.n * p.c) { return; }
  let r = gid / p.c;
  dfs[gid] = gs[r * (p.c + p.t) + gid - r * p.c];
}`);
  gpu.dispatch({
    pipeline, label: op, workgroups: Math.ceil((N * C) / wg),
    ...BACKWARD.bind({ n: N, c: C, t: T }, { gs: dout, dfs: dfeatures }),
  });
}
