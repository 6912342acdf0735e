// pretest/prebench hook: checks that Dawn finds a WebGPU adapter; when none is found and we may install
// (root on Debian/Ubuntu), runs scripts/setup-gpu.sh, otherwise prints the command and fails.
// With --swiftshader (pretest:swiftshader): checks for SwiftShader itself (Debian's chromium ships it), installing
// chromium when it is missing and we may, so the kernel tests can run on it whatever else is installed.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const setup = join(here, 'setup-gpu.sh');
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';

function probe(icd) {
  const code = `
    import { create, globals } from 'webgpu';
    Object.assign(globalThis, globals);
    const gpu = create([]);
    const a = await gpu.requestAdapter();
    if (!a) process.exit(3);
    console.log(a.info.description || a.info.vendor || 'adapter');
    process.exit(0);`;
  try {
    const env = { ...process.env };
    if (icd) env.VK_ICD_FILENAMES = icd;
    else if (!env.VK_ICD_FILENAMES && !existsSync('/usr/share/vulkan/icd.d/lvp_icd.json') && existsSync(SWIFTSHADER)) {
      env.VK_ICD_FILENAMES = SWIFTSHADER;
    }
    return execFileSync(process.execPath, ['--input-type=module', '-e', code], { env, stdio: ['ignore', 'pipe', 'ignore'], cwd: join(here, '..') })
      .toString().trim();
  } catch {
    return null;
  }
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (process.argv.includes('--swiftshader')) {
  if (!existsSync(SWIFTSHADER) && process.platform === 'linux' && isRoot && existsSync('/usr/bin/apt-get')) {
    console.log('ensure-gpu: SwiftShader not found; installing Debian\'s chromium, which ships it');
    execFileSync('bash', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium libvulkan1 >/dev/null'], { stdio: 'inherit' });
  }
  const found = existsSync(SWIFTSHADER) ? probe(SWIFTSHADER) : null;
  if (!found) {
    console.error(`ensure-gpu: SwiftShader (${SWIFTSHADER}) is not usable; install it with: sudo apt-get install chromium`);
    process.exit(1);
  }
  console.log(`ensure-gpu: WebGPU adapter: ${found}`);
  process.exit(0);
}

let name = probe();
if (!name) {
  if (process.platform === 'linux' && isRoot && existsSync('/usr/bin/apt-get')) {
    console.log('ensure-gpu: no WebGPU adapter found; installing a software Vulkan driver (scripts/setup-gpu.sh)');
    execFileSync('bash', [setup], { stdio: 'inherit' });
    name = probe();
  } else {
    console.error(`ensure-gpu: no WebGPU adapter found. Install a software Vulkan driver with:\n  sudo bash ${setup}`);
    process.exit(1);
  }
}
if (!name) {
  console.error('ensure-gpu: still no WebGPU adapter after installing a driver; see scripts/setup-gpu.sh');
  process.exit(1);
}
console.log(`ensure-gpu: WebGPU adapter: ${name}`);
