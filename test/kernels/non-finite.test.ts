import { describe, expect, it } from 'vitest';
import { flagNonFinite } from '../../src/kernels/non-finite.js';
import { randomArray, upload, useGpu, withBindingLimit } from '../helpers/gpu.js';

const gpu = useGpu();

async function flagged(g: ReturnType<typeof gpu>, values: Float32Array): Promise<boolean> {
  const xb = upload(g, values);
  const flag = g.pool.acquire(4, 'flag');
  g.write(flag, new Uint32Array([0]));
  flagNonFinite(g, xb, values.length, flag);
  return new Uint32Array(await g.read(flag, 4))[0] !== 0;
}

describe('flagNonFinite (the mixed-precision overflow check)', () => {
  it('stays clear on finite values, large and subnormal ones included', async () => {
    const x = randomArray(5000, 1, -1e30, 1e30);
    x[7] = 3.4028234663852886e38;
    x[8] = -1.4e-45;
    x[9] = -0;
    expect(await flagged(gpu(), x)).toBe(false);
  });

  for (const [name, v] of [['+Infinity', Infinity], ['-Infinity', -Infinity], ['NaN', NaN]] as const) {
    for (const at of [0, 2999, 4999]) {
      it(`finds ${name} at element ${at} of 5000`, async () => {
        const x = randomArray(5000, 2);
        x[at] = v;
        expect(await flagged(gpu(), x)).toBe(true);
      });
    }
  }

  it('checks every binding window of a buffer larger than one binding', async () => {
    const g = withBindingLimit(gpu(), 4096);
    const x = randomArray(5000, 3);
    expect(await flagged(g, x)).toBe(false);
    x[4990] = NaN;
    expect(await flagged(g, x)).toBe(true);
  });

  it('never clears a flag already set (several buffers into one flag)', async () => {
    const g = gpu();
    const flag = g.pool.acquire(4, 'flag');
    g.write(flag, new Uint32Array([1]));
    flagNonFinite(g, upload(g, randomArray(10, 4)), 10, flag);
    expect(new Uint32Array(await g.read(flag, 4))[0]).toBe(1);
  });
});
