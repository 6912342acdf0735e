/**
 * gradcheck for functions of Tensors: the analytic vector-Jacobian product from backward() against central
 * differences of <fn(x), v>. The GPU computes in f32, so differences use a relative step and tolerances
 * suited to f32; the float64 checks of each kernel's backward live with the CPU twins
 * (src/kernels/reference/gradcheck.ts).
 */
import { rngUniform } from './random.js';
import { noGrad } from './tape.js';
import { Tensor } from './tensor.js';
import { tidy } from './scope.js';

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-2: f32 round-off dominates below that). */
  eps?: number;
  atol?: number;
  rtol?: number;
  seed?: number;
  /** Check at most this many elements per input (spread evenly), to keep big inputs cheap. */
  maxElements?: number;
}

export interface GradcheckResult {
  ok: boolean;
  /** Worst |analytic - numeric| / (atol + rtol |numeric|) over all checked elements (<= 1 passes). */
  worst: number;
  failures: string[];
}

/** Checks the gradients of `fn` at `inputs` (host arrays with shapes). */
export async function gradcheck(
  fn: (...xs: Tensor[]) => Tensor,
  inputs: { data: Float32Array; shape: number[] }[],
  options: GradcheckOptions = {},
): Promise<GradcheckResult> {
  const { eps = 1e-2, atol = 1e-2, rtol = 1e-2, seed = 1, maxElements = 64 } = options;
  const probe = tidy(() => noGrad(() => fn(...inputs.map((i) => Tensor.fromArray(i.data, i.shape)))).keep());
  const cotangent = rngUniform(probe.size, seed, -1, 1);
  const outShape = [...probe.shape];
  probe.dispose();

  const analytic = await tidy(async () => {
    const xs = inputs.map((i) => Tensor.fromArray(i.data, i.shape, { requiresGrad: true }));
    const y = fn(...xs);
    y.backward(Tensor.fromArray(cotangent, outShape));
    return Promise.all(xs.map((x) => (x.grad ? x.grad.toArray() : new Float32Array(x.size))));
  });

  const objective = async (xsData: Float32Array[]): Promise<number> => {
    const y = await tidy(() => noGrad(() => fn(...xsData.map((d, i) => Tensor.fromArray(d, inputs[i].shape))).toArray()));
    let s = 0;
    for (let i = 0; i < y.length; i++) s += y[i] * cotangent[i];
    return s;
  };

  const failures: string[] = [];
  let worst = 0;
  const data = inputs.map((i) => Float32Array.from(i.data));
  for (let k = 0; k < data.length; k++) {
    const n = data[k].length;
    const stride = Math.max(1, Math.floor(n / maxElements));
    for (let j = 0; j < n; j += stride) {
      const v = data[k][j];
      const h = eps * Math.max(1, Math.abs(v));
      data[k][j] = v + h;
      const up = await objective(data);
      data[k][j] = v - h;
      const down = await objective(data);
      data[k][j] = v;
      const numeric = (up - down) / (2 * h);
      const err = Math.abs(analytic[k][j] - numeric) / (atol + rtol * Math.abs(numeric));
      if (!(err <= worst)) worst = err;
      if (!(err <= 1)) failures.push(`input ${k} element ${j}: analytic ${analytic[k][j]}, numeric ${numeric}`);
    }
  }
  return { ok: failures.length === 0, worst, failures };
}
