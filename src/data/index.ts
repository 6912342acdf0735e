/**
 * The data layer: NIfTI, dataset layouts, preprocessing, crops/augmentation, synthetic phantoms.
 * Browser-safe modules: nifti, dicom, tasks, preprocess, augment, sampler, random, phantom. The file-based
 * ones (nifti-file, dicom-file, datasets, preprocess-cache, case-cache, case-store, crop-reader, synth) use node:fs, and crop-workers
 * node:worker_threads; browser code should import the browser-safe modules directly rather than this index.
 */
export * from './random.js';
export * from './nifti.js';
export * from './nifti-file.js';
export * from './dicom.js';
export * from './dicom-file.js';
export * from './tasks.js';
export * from './datasets.js';
export * from './preprocess.js';
export * from './preprocess-cache.js';
export * from './case-store.js';
export * from './case-cache.js';
export * from './crop-reader.js';
export * from './crop-workers.js';
export * from './augment.js';
export * from './sampler.js';
export * from './phantom.js';
export * from './synth.js';
