/**
 * A vitest setup file: with TGNET_PIPELINE_LOG=FILE, every pipeline the tests create is appended to FILE as a
 * JSON line { key, code } (the compile benchmark, bench/compile.ts, compiles them cold on each adapter).
 */
import { appendFileSync } from 'node:fs';
import { observePipelines } from '../../src/kernels/runtime/gpu.js';

const log = process.env.TGNET_PIPELINE_LOG;
if (log) observePipelines(({ key, code }) => appendFileSync(log, `${JSON.stringify({ key, code })}\n`));
