/**
 * Finding a WebGPU device the kernels can use, and saying plainly what is missing when there is none: no
 * navigator.gpu (browser, flag or insecure context), no adapter (blocklisted GPU, hardware acceleration off),
 * or an adapter below the limits the kernels are written for (WebGPU's core defaults; compatibility-mode
 * adapters offer less).
 */
import { initGpu, isSoftwareAdapter, type Gpu } from '../../../src/kernels/runtime/gpu.js';

export class GpuUnavailable extends Error {
  constructor(readonly title: string, readonly details: string[]) {
    super(`${title}: ${details.join(' ')}`);
    this.name = 'GpuUnavailable';
  }
}

/** Limits the kernels need (WebGPU's core defaults): a storage buffer per binding 1..8, 256-lane workgroups. */
export const REQUIRED_LIMITS: Record<string, number> = {
  maxStorageBuffersPerShaderStage: 8,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupStorageSize: 16384,
};

const BROWSERS = [
  'Chrome or Edge 113+ on Windows, macOS and ChromeOS; Chrome 121+ on Android',
  'Chrome on Linux with chrome://flags/#enable-unsafe-webgpu and #enable-vulkan turned on (or the command-line flags --enable-unsafe-webgpu --enable-features=Vulkan)',
  'Firefox 141+ on Windows; Safari 26 on macOS and iOS',
  'no GPU at all (a VM, CI): Chromium with --enable-unsafe-webgpu --enable-features=Vulkan --use-webgpu-adapter=swiftshader runs WebGPU on the CPU (slowly)',
];

export async function startGpu(): Promise<Gpu> {
  const nav = navigator as Navigator & { gpu?: GPU };
  if (!window.isSecureContext) {
    throw new GpuUnavailable('WebGPU needs a secure context', [
      `This page was opened from ${location.origin}, which is neither https nor localhost, so the browser hides WebGPU.`,
      'Open it over https, or from http://localhost / http://127.0.0.1 (npm run web serves it there).',
    ]);
  }
  if (!nav.gpu) {
    throw new GpuUnavailable('This browser does not offer WebGPU (navigator.gpu is missing)', [
      'The segmentation and training run as WebGPU compute shaders, so they need a browser with WebGPU:',
      ...BROWSERS,
    ]);
  }
  let adapter: GPUAdapter | null;
  try {
    adapter = await nav.gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    adapter = null;
    console.warn('requestAdapter failed', e);
  }
  if (!adapter) {
    throw new GpuUnavailable('WebGPU is there but no GPU adapter was offered', [
      'The browser may block this GPU or driver, or hardware acceleration may be turned off (chrome://gpu says which).',
      ...BROWSERS,
    ]);
  }
  const limits = adapter.limits as unknown as Record<string, number>;
  const short = Object.entries(REQUIRED_LIMITS).filter(([name, need]) => !(limits[name] >= need));
  if (short.length > 0) {
    throw new GpuUnavailable('This GPU adapter is below the limits the kernels need', [
      ...short.map(([name, need]) => `${name} is ${limits[name]}; the kernels need at least ${need}.`),
      'Such limits are typical of compatibility-mode (OpenGL ES / D3D11) adapters; a browser with core WebGPU on Vulkan, Metal or D3D12 has them.',
    ]);
  }
  try {
    return await initGpu();
  } catch (e) {
    throw new GpuUnavailable('The GPU adapter refused to create a device', [(e as Error).message]);
  }
}

/** One line naming the adapter, and whether it is a CPU implementation. */
export function describeAdapter(gpu: Gpu): string {
  const a = gpu.adapter;
  const name = [a.vendor, a.architecture, a.device, a.description].filter((s) => s && s.length > 0).join(' ') || 'unnamed adapter';
  return `${name}${isSoftwareAdapter(gpu) ? ' (software: the WGSL runs on the CPU)' : ''}`;
}
