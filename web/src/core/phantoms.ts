/**
 * Phantom CT cases made in the page with the data layer's generator, preprocessed as `tgnet demo` preprocesses
 * its phantom collection (slice axis last, resampled to the phantoms' own spacing, i.e. unchanged, HU window
 * [-325, 325] / 325), so the page and Node train on the same arrays for the same seed.
 */
import type { NiftiVolume } from '../../../src/data/nifti.js';
import { generatePhantom, phantomCaseSeed, phantomTaskLabel, tumourOfTask } from '../../../src/data/phantom.js';
import { preprocessVolumes } from '../../../src/data/preprocess.js';
import type { TrainingCase } from '../../../src/data/sampler.js';
import { taskById } from '../../../src/data/tasks.js';
import type { DHW, XYZ } from '../../../src/common/shape.js';

export interface PhantomCase {
  id: string;
  task: number;
  /** The CT in HU as a NIfTI volume (what a file would hold). */
  ct: NiftiVolume;
  /** The task's dataset label (only that task's structures), same grid. */
  label: NiftiVolume;
}

/** Case `index` of task `task` in a phantom collection made with `seed`, as `tgnet synth` / the demo draw it. */
export function phantomCase(task: number, index: number, seed: number, volume: DHW, spacing: XYZ): PhantomCase {
  const info = taskById(task);
  const tumour = tumourOfTask(task);
  const p = generatePhantom({ size: [...volume], seed: phantomCaseSeed(seed, task, index), spacing, requireTumours: tumour ? [tumour] : [] });
  const geometry = { shape: p.shape, spacing: p.spacing, affine: p.affine };
  return {
    id: `${info.filePrefix}_${String(index).padStart(3, '0')}`,
    task,
    ct: { ...geometry, data: Float32Array.from(p.hu) },
    label: { ...geometry, data: Float32Array.from(phantomTaskLabel(p, task)) },
  };
}

/** A phantom case as the trainer sees it: windowed image and dataset label on the training grid. */
export function trainingCase(c: PhantomCase, spacing: XYZ): TrainingCase {
  const p = preprocessVolumes(c.ct, c.label, c.id, { targetSpacingZYX: [spacing[2], spacing[1], spacing[0]] });
  return { id: c.id, task: c.task, image: p.image, label: p.label, shape: p.shape };
}
