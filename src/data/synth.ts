/**
 * Writes synthetic partially labelled datasets in MSD layout (Node only): one folder per task
 * (`Task03_Liver`, `KiTS19`, ...) with imagesTr/*.nii.gz (int16 HU), labelsTr/*.nii.gz (uint8) and
 * dataset.json. Every image contains all organs; each dataset labels only its own task's structures.
 */
import { join } from 'node:path';
import { writeNiftiFile } from './nifti-file.js';
import { generatePhantom, phantomCaseSeed, phantomFieldSize, phantomFieldSpacing, phantomTaskLabel, PHANTOM_GENERATOR_VERSION, tumourOfTask } from './phantom.js';
import { Random } from './random.js';
import { TASKS, taskById } from './tasks.js';
import { writeFileAtomic } from '../common/node-files.js';
import type { XYZ, DHW } from '../common/shape.js';

export interface SynthesizeOptions {
  outDir: string;
  /** Cases per task. */
  cases: number;
  /**
   * Grid [D, H, W]. Without `spacing` the spacing follows (the grid covers the 360 mm phantom world); with it,
   * both as given (a field of size x spacing mm around the body's centre). Ignored with `like`.
   */
  size?: DHW;
  seed: number;
  /** Voxel size [x, y, z] mm of every case; without `size` the grid follows (see phantomFieldSize). */
  spacing?: XYZ;
  /**
   * 'msd': grids like the Medical Segmentation Decathlon's CT: 512 x 512 in-plane at 0.6-1.0 mm (drawn per case),
   * the task's typical slice thickness, slices to cover the body's length; int16 storage as always.
   */
  like?: 'msd';
  /** See PhantomOptions.fitToGrid: a whole body in `size` voxels that claim `spacing` (for tests). */
  fitToGrid?: boolean;
  /** Task ids to write; default all seven. */
  tasks?: readonly number[];
  onProgress?: (progress: { task: number; datasetName: string; caseIndex: number; casesPerTask: number; seconds: number }) => void;
}

export interface SynthesizedDataset {
  task: number;
  root: string;
  cases: { image: string; label: string }[];
}

/**
 * MSD CT slice thicknesses (mm) seen per task, the common ones repeated so they are drawn more often: liver
 * (LiTS) 0.7-5, KiTS19 mostly 3-5, hepatic vessel and spleen mostly 5 (some 1.5-2.5), pancreas 2.5, colon 5
 * (some 1.25-2.5), lung mostly 1.25-2.5.
 */
const MSD_SLICE_MM: Record<string, readonly number[]> = {
  liver: [0.7, 1, 1.5, 2.5, 5, 5], kidney: [3, 5, 5], hepatic_vessel: [1.5, 2.5, 5, 5], pancreas: [2.5],
  colon: [1.25, 2.5, 5, 5], lung: [1.25, 2.5, 2.5], spleen: [1.5, 2.5, 5, 5],
};

/** The grid of one case: the same for all cases unless `like` draws one per case. */
export function caseGrid(options: Pick<SynthesizeOptions, 'size' | 'spacing' | 'like' | 'seed'>, task: number, index: number): { size: DHW; spacing: XYZ } {
  if (options.like === 'msd') {
    const rng = new Random(phantomCaseSeed(options.seed, task, index) ^ 0x6d5d);
    const inPlane = Math.round(rng.uniform(0.6, 1.0) * 1000) / 1000;
    const slice = rng.pick(MSD_SLICE_MM[taskById(task).key] ?? [2.5]);
    const spacing: XYZ = [inPlane, inPlane, slice];
    // 512 x 512 as scanners store it (the field is 307-512 mm: the body's 360 mm fills or overfills it, as in real CT).
    return { size: [phantomFieldSize(spacing)[0], 512, 512], spacing };
  }
  if (options.size && options.spacing) return { size: options.size, spacing: options.spacing };
  if (options.size) return { size: options.size, spacing: phantomFieldSpacing(options.size) };
  if (options.spacing) return { size: phantomFieldSize(options.spacing), spacing: options.spacing };
  throw new Error('synthesize: neither size, spacing nor like given');
}

export async function synthesizeDatasets(options: SynthesizeOptions): Promise<SynthesizedDataset[]> {
  const { outDir, cases, seed } = options;
  if (!Number.isInteger(cases) || cases < 1) throw new Error(`synthesize: cases is ${cases}; expected a positive integer`);
  if (!options.like && !options.size && !options.spacing) throw new Error('synthesize: neither size, spacing nor like given; expected a grid [D, H, W], a voxel size [x, y, z] mm, or like: \'msd\'');
  const taskIds = options.tasks ?? TASKS.map((t) => t.id);
  const results: SynthesizedDataset[] = [];
  for (const taskId of taskIds) {
    const task = taskById(taskId);
    const root = join(outDir, task.datasetName);
    const training: { image: string; label: string }[] = [];
    for (let i = 0; i < cases; i++) {
      const t0 = performance.now();
      const tumour = tumourOfTask(task.id);
      const grid = caseGrid(options, task.id, i);
      const phantom = generatePhantom({ size: grid.size, seed: phantomCaseSeed(seed, task.id, i), spacing: grid.spacing, fitToGrid: options.fitToGrid, requireTumours: tumour ? [tumour] : [] });
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
      tgnet: { task: task.id, seed, generatorVersion: PHANTOM_GENERATOR_VERSION, ...(options.like ? { like: options.like } : { size: caseGrid(options, task.id, 0).size, spacing: caseGrid(options, task.id, 0).spacing }) },
    };
    await writeFileAtomic(join(root, 'dataset.json'), JSON.stringify(datasetJson, null, 2) + '\n');
    results.push({ task: task.id, root, cases: training });
  }
  return results;
}
