/**
 * A child of the compile benchmark (compile.ts): compiles shaders from a JSON list, one at a time from index
 * `start`, on the adapter its environment selects (VK_ICD_FILENAMES) with the shader cache its environment
 * gives (a fresh MESA_SHADER_CACHE_DIR: cold), and prints one JSON line per shader. The parent kills it when a
 * compile runs past the limit or grows past the memory cap, and starts another from the next shader.
 *
 * A compile is timed to the end of its first dispatch (`Gpu.primePipeline`): lavapipe compiles a pipeline when
 * it is first dispatched, SwiftShader when it is created; both are inside that span.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { initGpu } from '../src/kernels/runtime/gpu.js';

export interface ShaderEntry {
  key: string;
  code: string;
  /** Where it was found: 'training step', 'inference', 'kernel tests'. */
  sources: string[];
}

/** Prefix of the lines the parent reads (Dawn prints its warnings to stdout too). */
export const MARK = '@compile ';

async function main(): Promise<void> {
  const [file, startText] = process.argv.slice(2);
  const shaders = JSON.parse(readFileSync(file, 'utf8')) as ShaderEntry[];
  const gpu = await initGpu();
  const device = gpu.device;
  process.stdout.write(`${MARK}${JSON.stringify({ adapter: gpu.name })}\n`);
  for (let i = Number(startText); i < shaders.length; i++) {
    const s = shaders[i];
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code: s.code, label: s.key });
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: s.key });
    // The runtime's own priming: one workgroup on stand-in buffers, waited for without spinning a core, so the CPU
    // time measured is the driver's compile.
    await gpu.primePipeline(pipeline, s.code);
    const error = await device.popErrorScope();
    const ms = performance.now() - t0;
    // CPU time of this process (the driver compiles in its threads): what the compile costs whatever the load.
    const cpu = process.cpuUsage(cpu0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    process.stdout.write(`${MARK}${JSON.stringify({ i, ms, cpuMs, ...(error ? { error: error.message.split('\n')[0] } : {}) })}\n`);
  }
  gpu.destroy();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().then(() => process.exit(0), (e: unknown) => {
    console.error(`compile-worker: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  });
}
