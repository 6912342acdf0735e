/**
 * The seven partially labelled tasks of DoDNet/TGNet (MOTS) and how each dataset's label values map
 * onto the network's two output channels (organ, tumour).
 *
 * Label values follow the source datasets: MSD Task03_Liver (1 liver, 2 tumour), KiTS19 (1 kidney,
 * 2 tumour), MSD Task08_HepaticVessel (1 vessel, 2 tumour), Task07_Pancreas (1 pancreas, 2 tumour),
 * Task10_Colon (1 tumour), Task06_Lung (1 nodule), Task09_Spleen (1 spleen).
 */

export type TaskKey = 'liver' | 'kidney' | 'hepatic_vessel' | 'pancreas' | 'colon' | 'lung' | 'spleen';

export interface TaskInfo {
  /** Task id 0..6, the index into the task one-hot. */
  id: number;
  key: TaskKey;
  /** Dataset folder name in MSD layout (KiTS19 is not part of MSD; DoDNet used it for the kidney task). */
  datasetName: string;
  /** DoDNet's folder name in its list files, e.g. `0Liver`. */
  dodnetFolder: string;
  /** MSD file-name prefix, e.g. `liver` for `liver_0.nii.gz`. */
  filePrefix: string;
  /** What the organ and tumour channels mean for this task ("" when not annotated). */
  organName: string;
  tumourName: string;
  /** Whether the dataset annotates the organ channel / the tumour channel (the LABELLED table). */
  organLabelled: boolean;
  tumourLabelled: boolean;
  /** The dataset.json "labels" entry of the source dataset. */
  labels: Record<string, string>;
}

export const TASKS: readonly TaskInfo[] = [
  {
    id: 0, key: 'liver', datasetName: 'Task03_Liver', dodnetFolder: '0Liver', filePrefix: 'liver',
    organName: 'liver', tumourName: 'liver tumour', organLabelled: true, tumourLabelled: true,
    labels: { '0': 'background', '1': 'liver', '2': 'cancer' },
  },
  {
    id: 1, key: 'kidney', datasetName: 'KiTS19', dodnetFolder: '1Kidney', filePrefix: 'kidney',
    organName: 'kidney', tumourName: 'kidney tumour', organLabelled: true, tumourLabelled: true,
    labels: { '0': 'background', '1': 'kidney', '2': 'tumor' },
  },
  {
    id: 2, key: 'hepatic_vessel', datasetName: 'Task08_HepaticVessel', dodnetFolder: '2HepaticVessel', filePrefix: 'hepaticvessel',
    organName: 'hepatic vessel', tumourName: 'liver tumour', organLabelled: true, tumourLabelled: true,
    labels: { '0': 'background', '1': 'Vessel', '2': 'Tumour' },
  },
  {
    id: 3, key: 'pancreas', datasetName: 'Task07_Pancreas', dodnetFolder: '3Pancreas', filePrefix: 'pancreas',
    organName: 'pancreas', tumourName: 'pancreas tumour', organLabelled: true, tumourLabelled: true,
    labels: { '0': 'background', '1': 'pancreas', '2': 'cancer' },
  },
  {
    id: 4, key: 'colon', datasetName: 'Task10_Colon', dodnetFolder: '4Colon', filePrefix: 'colon',
    organName: '', tumourName: 'colon cancer', organLabelled: false, tumourLabelled: true,
    labels: { '0': 'background', '1': 'colon cancer primaries' },
  },
  {
    id: 5, key: 'lung', datasetName: 'Task06_Lung', dodnetFolder: '5Lung', filePrefix: 'lung',
    organName: '', tumourName: 'lung nodule', organLabelled: false, tumourLabelled: true,
    labels: { '0': 'background', '1': 'cancer' },
  },
  {
    id: 6, key: 'spleen', datasetName: 'Task09_Spleen', dodnetFolder: '6Spleen', filePrefix: 'spleen',
    organName: 'spleen', tumourName: '', organLabelled: true, tumourLabelled: false,
    labels: { '0': 'background', '1': 'spleen' },
  },
];

export const NUM_TASKS = TASKS.length;

/** Fill value of a channel the task does not annotate; the loss skips such channels. */
export const UNLABELLED = -1;

export function taskById(id: number): TaskInfo {
  const task = Number.isInteger(id) ? TASKS[id] : undefined;
  if (!task) throw new Error(`task id is ${id}; expected an integer in [0, ${NUM_TASKS - 1}]`);
  return task;
}

export function taskByKey(key: string): TaskInfo {
  const task = TASKS.find((t) => t.key === key);
  if (!task) throw new Error(`task key is ${JSON.stringify(key)}; expected one of ${TASKS.map((t) => t.key).join(', ')}`);
  return task;
}

/**
 * Recognises a task from a folder or dataset name: DoDNet's `0Liver`, MSD's `Task03_Liver`, `KiTS19`,
 * or the plain key (`hepatic_vessel`, `HepaticVessel`). Returns undefined if nothing matches.
 */
export function taskFromName(name: string): TaskInfo | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[^a-z0-9]/g, '');
  const n = norm(name);
  for (const t of TASKS) {
    if (n === norm(t.dodnetFolder) || n === norm(t.datasetName) || n === norm(t.key) || n === norm(t.filePrefix)) return t;
  }
  if (n.includes('kits')) return TASKS[1];
  // MSD style with another task number or suffix, e.g. `Task003_Liver` (nnU-Net) or `Dataset003_Liver`.
  const m = /^(?:task|dataset)\d+(.*)$/.exec(n);
  if (m) return TASKS.find((t) => norm(t.key) === m[1] || norm(t.filePrefix) === m[1]);
  return undefined;
}

/**
 * Maps one label volume to the network's two-channel target [2, ...label.shape]: channel 0 organ,
 * channel 1 tumour, each 0/1, or -1 everywhere when the task does not annotate it (DoDNet's id2trainId).
 */
export function labelToTarget(label: Float32Array | Uint8Array, task: number | TaskInfo, out?: Float32Array): Float32Array {
  const info = typeof task === 'number' ? taskById(task) : task;
  const n = label.length;
  const target = out ?? new Float32Array(2 * n);
  if (target.length !== 2 * n) throw new Error(`labelToTarget: out has length ${target.length}; expected ${2 * n} (2 channels x ${n} voxels)`);
  const organ = target.subarray(0, n);
  const tumour = target.subarray(n, 2 * n);
  switch (info.key) {
    case 'liver':
    case 'kidney':
    case 'pancreas':
      for (let i = 0; i < n; i++) {
        const l = label[i];
        organ[i] = l >= 1 ? 1 : 0;
        tumour[i] = l === 2 ? 1 : 0;
      }
      break;
    case 'hepatic_vessel':
      for (let i = 0; i < n; i++) {
        const l = label[i];
        organ[i] = l === 1 ? 1 : 0;
        tumour[i] = l === 2 ? 1 : 0;
      }
      break;
    case 'colon':
    case 'lung':
      organ.fill(UNLABELLED);
      for (let i = 0; i < n; i++) tumour[i] = label[i] === 1 ? 1 : 0;
      break;
    case 'spleen':
      for (let i = 0; i < n; i++) organ[i] = label[i] === 1 ? 1 : 0;
      tumour.fill(UNLABELLED);
      break;
  }
  return target;
}
