/**
 * Writes synthetic partially labelled datasets in MSD layout (Node only): one folder per task
 * (`Task03_Liver`, `KiTS19`, ...) with imagesTr/*.nii.gz (int16 HU), labelsTr/*.nii.gz (uint8) and
 * dataset.json. Every image contains all organs; each dataset labels only its own task's structures.
 */
import { join } from 'node:path';
import type { Shape3 } from './nifti.js';
import { writeNiftiFile } from './nifti-file.js';
import { generatePhantom, phantomCaseSeed, phantomTaskLabel, tumourOfTask } from './phantom.js';
import { TASKS, taskById } from './tasks.js';
import { writeFileAtomic } from './fs-util.js';

export interface SynthesizeOptions {
  outDir: string;
  /** Cases per task. */
  cases: number;
  /** [D, H, W] */
  size: [number, number, number];
  seed: number;
  /** Voxel size [x, y, z] mm of every case; default drawn per case (see PhantomOptions.spacing). */
  spacing?: Shape3;
  /** Task ids to write; default all seven. */
  tasks?: readonly number[];
  onProgress?: (progress: { task: number; datasetName: string; caseIndex: number; casesPerTask: number; seconds: number }) => void;
}

export interface SynthesizedDataset {
  task: number;
  root: string;
  cases: { image: string; label: string }[];
}

export async function synthesizeDatasets(options: SynthesizeOptions): Promise<SynthesizedDataset[]> {
  const { outDir, cases, size, seed } = options;
  if (!Number.isInteger(cases) || cases < 1) throw new Error(`synthesize: cases is ${cases}; expected a positive integer`);
  const taskIds = options.tasks ?? TASKS.map((t) => t.id);
  const results: SynthesizedDataset[] = [];
  for (const taskId of taskIds) {
    const task = taskById(taskId);
    const root = join(outDir, task.datasetName);
    const training: { image: string; label: string }[] = [];
    for (let i = 0; i < cases; i++) {
      const t0 = performance.now();
      const tumour = tumourOfTask(task.id);
      const phantom = generatePhantom({ size, seed: phantomCaseSeed(seed, task.id, i), spacing: options.spacing, requireTumours: tumour ? [tumour] : [] });
      const label = phantomTaskLabel(phantom, task.id);
      const file = `${task.filePrefix}_${String(i).padStart(3, '0')}.nii.gz`;
      const geometry = { shape: phantom.shape, spacing: phantom.spacing, affine: phantom.affine };
      await writeNiftiFile(join(root, 'imagesTr', file), { ...geometry, data: Float32Array.from(phantom.hu) }, { datatype: 'int16', description: `tgnet phantom ${task.key} ${i}` });
      await writeNiftiFile(join(root, 'labelsTr', file), { ...geometry, data: Float32Array.from(label) }, { datatype: 'uint8', description: `tgnet phantom ${task.key} ${i} label` });
      training.push({ image: `./imagesTr/${file}`, label: `./labelsTr/${file}` });
      options.onProgress?.({ task: task.id, datasetName: task.datasetName, caseIndex: i, casesPerTask: cases, seconds: (performance.now() - t0) / 1000 });
    }
    const datasetJson = {
      name: task.datasetName.replace(/^Task\d+_/, ''),
      description: `Synthetic ${task.key} phantoms (tgnet): all organs present, only ${task.key} structures labelled`,
      reference: 'tgnet synthetic phantom generator',
      licence: 'MIT',
      release: '1.0',
      tensorImageSize: '3D',
      modality: { '0': 'CT' },
      labels: task.labels,
      numTraining: cases,
      numTest: 0,
      training,
      test: [] as string[],
      tgnet: { task: task.id, seed, size },
    };
    await writeFileAtomic(join(root, 'dataset.json'), JSON.stringify(datasetJson, null, 2) + '\n');
    results.push({ task: task.id, root, cases: training });
  }
  return results;
}
