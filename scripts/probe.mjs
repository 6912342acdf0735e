import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const gpu = create([]);
const a = await gpu.requestAdapter();
console.log(a && a.info, a && Object.fromEntries(Object.entries(Object.getOwnPropertyDescriptors(Object.getPrototypeOf(a.limits))).map(([k])=>[k,a.limits[k]])), a && [...a.features]);
const d = await a.requestDevice();
d.destroy();
