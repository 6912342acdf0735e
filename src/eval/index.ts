/**
 * tgnet/eval: sliding-window inference with test-time flips, connected-component post-processing, Dice and
 * HD95 (medpy semantics), per-case / per-task reports, and checkpoint loading. Browser-safe: nothing here
 * touches the file system (the CLI's predict/evaluate commands read and write files).
 */
export * from './sliding-window.js';
export * from './postprocess.js';
export * from './metrics.js';
export * from './report.js';
export * from './evaluate.js';
export * from './load-model.js';
export * from './pipeline.js';
export * from './paper-table.js';
export * from './png.js';
export * from './slices.js';
export * from './curves-svg.js';
export * from './report-html.js';
export * from './warm-up.js';
