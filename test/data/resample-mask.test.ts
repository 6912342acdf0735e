/** resampleLinearToMask: the mask resampleToShape's float32 values give, thresholded, without that float32 volume. */
import { describe, expect, it } from 'vitest';
import { resampleLinearToMask, resampleToShape } from '../../src/data/preprocess.js';
import { Random } from '../../src/data/random.js';
import type { XYZ } from '../../src/common/shape.js';

describe('resampleLinearToMask', () => {
  it('equals thresholding resampleToShape(linear), up, down and with the slice count kept', () => {
    const rng = new Random(18);
    const cases: [XYZ, XYZ][] = [[[5, 6, 4], [17, 13, 9]], [[16, 12, 10], [7, 5, 10]], [[8, 8, 3], [8, 8, 11]], [[4, 4, 4], [4, 4, 4]]];
    for (const [shape, out] of cases) {
      const data = Float32Array.from({ length: shape[0] * shape[1] * shape[2] }, () => rng.next());
      for (const threshold of [0.5, 0.25]) {
        const want = Uint8Array.from(resampleToShape(data, shape, out, 'linear'), (v) => (v > threshold ? 1 : 0));
        expect(resampleLinearToMask(data, shape, out, threshold), `${shape} -> ${out} at ${threshold}`).toEqual(want);
      }
    }
    expect(() => resampleLinearToMask(new Float32Array(3), [2, 2, 2], [4, 4, 4], 0.5)).toThrow(/data length is 3; expected 8 for shape 2x2x2/);
  });
});
