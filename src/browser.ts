/**
 * The browser entry: everything of tgnet that runs in a page, i.e. the package's main entry (GPU runtime,
 * autograd, nn, the model and its training loop, evaluation) and the in-memory data layer (NIfTI bytes, tasks,
 * preprocessing, crops and augmentation, the batch sampler, phantoms). The file-based data modules (nifti-file,
 * datasets, preprocess-cache, case-store, synth) stay out. `npm run build:lib` bundles it as one ES module,
 * dist/browser/tgnet.js; test/browser/bundle.browser-test.ts fails when a Node built-in becomes reachable from it.
 */
export * from './index.js';
export * from './data/nifti.js';
export * from './data/dicom.js';
export { TASKS, UNLABELLED, taskById, taskByKey, taskFromName, labelToTarget, type TaskKey, type TaskInfo } from './data/tasks.js';
export * from './data/preprocess.js';
export * from './data/augment.js';
export * from './data/sampler.js';
export * from './data/random.js';
export * from './data/phantom.js';
