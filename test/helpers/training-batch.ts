/** A learnable training batch for trainer tests. */
import type { TrainingBatch } from '../../src/tgnet/train.js';
import { randomArray } from './gpu.js';

export const BATCH_CROP = [16, 16, 16] as const;
const VOXELS = BATCH_CROP[0] * BATCH_CROP[1] * BATCH_CROP[2];

/**
 * The organ is where the image is bright (a sphere), the tumour a brighter cube inside it. Sample 0 is liver (both
 * channels annotated), sample 1 colon (organ channel unannotated: -1).
 */
export function makeBatch(seed: number): TrainingBatch {
  const image = randomArray(2 * VOXELS, seed, -0.3, 0.3);
  const target = new Float32Array(2 * 2 * VOXELS);
  for (let n = 0; n < 2; n++) {
    for (let z = 0; z < 16; z++) {
      for (let y = 0; y < 16; y++) {
        for (let x = 0; x < 16; x++) {
          const v = (z * 16 + y) * 16 + x;
          const organ = (z - 8) ** 2 + (y - 7 - n) ** 2 + (x - 8) ** 2 < 25;
          const tumour = organ && Math.abs(z - 8) < 2 && Math.abs(y - 7) < 2 && Math.abs(x - 9) < 2;
          if (organ) image[n * VOXELS + v] += 0.7;
          if (tumour) image[n * VOXELS + v] += 0.5;
          target[(2 * n) * VOXELS + v] = organ ? 1 : 0;
          target[(2 * n + 1) * VOXELS + v] = tumour ? 1 : 0;
        }
      }
    }
  }
  target.fill(-1, 2 * VOXELS, 3 * VOXELS);
  return { image, target, taskIds: [0, 4], shape: [2, ...BATCH_CROP] };
}
