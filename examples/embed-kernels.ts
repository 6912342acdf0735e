/**
 * Using tgnet's kernels inside another WebGPU project: the caller owns the device and the buffers; tgnet
 * adopts the device and launches its WGSL kernels on those buffers, without its Tensor or autograd.
 *
 *   npm run build && node dist/examples/embed-kernels.js
 */
import { pathToFileURL } from 'node:url';
import { conv3dForward, conv3dOutputShape, initGpu } from '../src/kernels/index.js';

export async function embedKernels(device: GPUDevice): Promise<Float32Array> {
  // The caller's buffers: a 1x1x4x4x4 volume of ones and a 2x1x3x3x3 kernel of ones.
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const xShape = [1, 1, 4, 4, 4];
  const wShape = [2, 1, 3, 3, 3];
  const yShape = conv3dOutputShape(xShape, wShape, { padding: 1 });
  const x = device.createBuffer({ size: 64 * 4, usage });
  const w = device.createBuffer({ size: 54 * 4, usage });
  const y = device.createBuffer({ size: yShape.reduce((a, b) => a * b, 1) * 4, usage });
  device.queue.writeBuffer(x, 0, new Float32Array(64).fill(1));
  device.queue.writeBuffer(w, 0, new Float32Array(54).fill(1));

  const gpu = await initGpu({ device, makeCurrent: false });
  conv3dForward(gpu, x, w, null, y, { x: xShape, w: wShape, padding: 1 });
  const out = new Float32Array(await gpu.read(y, y.size));
  gpu.destroy(); // releases tgnet's own buffers; the caller's device and buffers stay alive
  for (const b of [x, w, y]) b.destroy();
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { create, globals } = await import('webgpu');
  Object.assign(globalThis, globals);
  const navigatorGpu = create([]);
  const adapter = await navigatorGpu.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter: run scripts/setup-gpu.sh');
  const device = await adapter.requestDevice();
  const y = await embedKernels(device);
  // Corner voxels see 8 ones, edge 12, face 18, interior 27.
  console.log(`conv3d on caller-owned buffers: first row ${[...y.slice(0, 4)].join(', ')}; centre ${y[21]}`);
  device.destroy();
}
