/**
 * Whether a volume looks like a CT the model can read, before anything runs (the Segment tab shows the reasons and
 * runs only when the user accepts them). Pure: no DOM, so Node tests call it too.
 */
import type { NiftiVolume } from '../../../src/data/nifti.js';
import type { XYZ } from '../../../src/common/shape.js';

const fmtShape = (s: readonly number[]) => s.join('×');
const fmtMm = (s: readonly number[]) => s.map((v) => (Math.round(v * 100) / 100).toString()).join('×');

/** Volumes are [x, y, z] in memory; the warnings write sizes slices first (z×y×x), as tiles and the CLI's --spacing are. */
const zyxOf = <T>(s: readonly T[]): T[] => [s[2], s[1], s[0]];

/** Voxels a tab can be expected to hold with their working copies (a 512x512x1000 CT; 32-bit and phone browsers hold less). */
const TAB_VOXEL_BUDGET = 512 * 512 * 1000;

/**
 * Why this volume may not be a CT the model can read (empty when it looks like one): the DICOM modality, else the
 * values (HU has air at about -1000 and little below -1024 or above 3071) and the size (a few voxels, or voxels far
 * from the model's when it is not resampled).
 */
export function ctWarnings(v: NiftiVolume, modality: string | undefined, modelSpacing: XYZ | null, resampled: boolean): string[] {
  const out: string[] = [];
  if (modality !== undefined && modality !== 'CT') out.push(`the DICOM series is ${modality || 'of no stated modality'}, not CT: the model knows CT values in HU only`);
  let min = Infinity, max = -Infinity, outside = 0, air = 0;
  const step = Math.max(1, Math.floor(v.data.length / 500_000));
  let n = 0;
  for (let i = 0; i < v.data.length; i += step) {
    const x = v.data[i];
    if (x < min) min = x;
    if (x > max) max = x;
    if (x < -1100 || x > 3100) outside++;
    if (x < -900) air++;
    n++;
  }
  if (modality === undefined || modality === 'CT') {
    if (outside / n > 0.01) out.push(`${((100 * outside) / n).toFixed(0)} % of the values lie outside [-1100, 3100] (range ${min.toFixed(0)} to ${max.toFixed(0)}): not HU`);
    else if (air / n < 0.001 && min > -500) out.push(`no air (nothing near -1000 HU; the lowest value is ${min.toFixed(0)}): not a CT in HU, or cut inside the body`);
  }
  const extent = v.shape.map((s, i) => s * v.spacing[i]);
  if (v.shape.some((s) => s < 8) || extent.some((e) => e < 40)) {
    out.push(`a ${fmtShape(zyxOf(v.shape))} volume of ${fmtShape(zyxOf(extent.map((e) => Math.round(e))))} mm (z×y×x) is too small for a body`);
  }
  // The tab holds the volume as float32 plus its resampled copy, masks and the viewer's copy: about 10 bytes a voxel.
  const voxels = v.shape[0] * v.shape[1] * v.shape[2];
  if (voxels > TAB_VOXEL_BUDGET) {
    out.push(`${(voxels / 1e6).toFixed(0)} M voxels need about ${((voxels * 10) / 1024 ** 3).toFixed(1)} GB in this tab, more than most tabs get (about ${(TAB_VOXEL_BUDGET / 1e6).toFixed(0)} M voxels fit): it may run out of memory; crop or downsample it first`);
  }
  if (modelSpacing && !resampled) {
    const ratio = Math.max(...v.spacing.map((s, i) => Math.max(s / modelSpacing[i], modelSpacing[i] / s)));
    if (ratio > 2.5) out.push(`its voxels (${fmtMm(zyxOf(v.spacing))} mm) are ${ratio.toFixed(1)}x off the model's (${fmtMm(zyxOf(modelSpacing))} mm) and resampling is off`);
  }
  return out;
}
