/** `tgnet info`: the adapter, its limits and features. */
import { initGpu } from '../kernels/runtime/gpu.js';

export async function infoCommand(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) throw new Error('usage: tgnet info [--json]');
  const json = argv.includes('--json');
  const gpu = await initGpu();
  try {
    const report = {
      adapter: gpu.adapter,
      name: gpu.name,
      limits: gpu.limits,
      features: [...gpu.features].sort(),
    };
    if (json) {
      console.log(JSON.stringify(report, null, 2));
      return;
    }
    console.log(`adapter      ${gpu.name}`);
    if (gpu.adapter.vendor) console.log(`vendor       ${gpu.adapter.vendor}${gpu.adapter.architecture ? ` (${gpu.adapter.architecture})` : ''}`);
    console.log('limits');
    for (const [k, v] of Object.entries(gpu.limits)) console.log(`  ${k.padEnd(36)} ${v.toLocaleString('en-US')}`);
    console.log(`features     ${report.features.join(', ')}`);
  } finally {
    gpu.destroy();
  }
}
