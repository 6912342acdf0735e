/**
 * Debian's Chromium driven by playwright-core, with WebGPU on SwiftShader (docs/browser.md): works headless on a
 * machine without a GPU. The background-networking flags keep Chromium from dialling out (the network is closed).
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.TGNET_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-angle=swiftshader', '--use-webgpu-adapter=swiftshader',
  // A CPU adapter on a busy machine can spend longer on one submission than the GPU watchdog allows, which would
  // count as a lost device.
  '--disable-gpu-watchdog',
];

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: the browser tests drive Debian's Chromium (apt-get install -y chromium), or set TGNET_CHROMIUM to another Chromium binary`);
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}
