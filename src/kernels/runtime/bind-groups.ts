/**
 * Explicit pipeline layouts read from a kernel's WGSL, and bind groups reused across dispatches.
 *
 * Why: a training step records ~500 dispatches, and creating a bind group for each was a third of the host's time
 * per step in Dawn's Node binding (16-21 ms at widths 4-8 on lavapipe). Every dispatch binds its uniforms at its own
 * offset of one parameter arena, so with 'auto' layouts no two dispatches share a bind group. Declaring the uniform
 * binding with a dynamic offset takes the offset out of the bind group: what remains is the pipeline's layout and
 * the storage buffers (and their windows), which repeat from step to step because the buffer pool hands the same
 * buffers to the same tensors.
 */

/** `@group(0) @binding(N) var<uniform>` or `var<storage[, read | read_write]>`, as kernel signatures declare them. */
const DECLARATION = /@group\(0\)\s*@binding\((\d+)\)\s*var<(uniform|storage)(?:\s*,\s*(read_write|read))?\s*>/g;

/**
 * One binding of a layout: 'u' (uniform, dynamic offset), 'r' (read-only storage), 'w' (read-write storage) or, at
 * binding 0 only, '-' (a kernel without uniforms: its storage starts at binding 1).
 */
type SlotKind = 'u' | 'r' | 'w' | '-';

/** Bind groups kept at most; past this the cache starts over (a step needs ~500; kernel tests make thousands once). */
const MAX_CACHED_BIND_GROUPS = 4096;

/**
 * The layout a module's declarations describe, as one letter per binding 0..n ('u', 'r', 'w'; '-' for an absent
 * binding 0), or null when its bindings are not numbered 0..n-1 (or 1..n-1) in group 0 with at most one uniform, at
 * binding 0 (such a module keeps an 'auto' layout).
 */
export function layoutSlots(code: string): string | null {
  const slots: SlotKind[] = [];
  for (const m of code.matchAll(DECLARATION)) {
    const binding = Number(m[1]);
    if (slots[binding] !== undefined) return null;
    slots[binding] = m[2] === 'uniform' ? 'u' : m[3] === 'read_write' ? 'w' : 'r';
  }
  if (!slots.length) return null;
  if (slots[0] === undefined && slots.length > 1) slots[0] = '-';
  for (let i = 0; i < slots.length; i++) {
    if (slots[i] === undefined) return null;
    if (slots[i] === 'u' && i !== 0) return null;
  }
  return slots.join('');
}

interface PipelineBinding {
  layout: GPUBindGroupLayout;
  /** Binding 0 is the uniform arena, bound with a dynamic offset. */
  uniform: boolean;
  id: number;
}

/** Explicit layouts by their slots, the layout each pipeline was made with, and the bind groups made so far. */
export class BindGroupCache {
  private readonly layouts = new Map<string, { bindGroup: GPUBindGroupLayout; pipeline: GPUPipelineLayout; id: number }>();
  private readonly pipelines = new WeakMap<GPUComputePipeline, PipelineBinding>();
  private readonly ids = new WeakMap<GPUBuffer, number>();
  private readonly groups = new Map<string, GPUBindGroup>();
  private nextId = 1;
  hits = 0;
  misses = 0;

  constructor(private readonly device: GPUDevice) {}

  /** The pipeline layout for `code`'s declarations, or 'auto' when they do not fit the kernel convention. */
  pipelineLayout(code: string): GPUPipelineLayout | 'auto' {
    const slots = layoutSlots(code);
    if (slots === null) return 'auto';
    let entry = this.layouts.get(slots);
    if (!entry) {
      const bindGroup = this.device.createBindGroupLayout({
        label: `layout ${slots}`,
        entries: [...slots].flatMap((kind, binding): GPUBindGroupLayoutEntry[] => kind === '-' ? [] : [{
          binding,
          visibility: 4 /* GPUShaderStage.COMPUTE */,
          buffer: kind === 'u' ? { type: 'uniform', hasDynamicOffset: true } : { type: kind === 'w' ? 'storage' : 'read-only-storage' },
        }]),
      });
      const pipeline = this.device.createPipelineLayout({ label: `layout ${slots}`, bindGroupLayouts: [bindGroup] });
      entry = { bindGroup, pipeline, id: this.layouts.size + 1 };
      this.layouts.set(slots, entry);
    }
    return entry.pipeline;
  }

  /** Records that `pipeline` was made from `code` with `pipelineLayout(code)`. */
  adopt(pipeline: GPUComputePipeline, code: string): void {
    const slots = layoutSlots(code);
    const entry = slots === null ? undefined : this.layouts.get(slots);
    if (entry) this.pipelines.set(pipeline, { layout: entry.bindGroup, uniform: slots![0] === 'u', id: entry.id });
  }

  /** Whether dispatches of `pipeline` bind the arena with a dynamic offset (it has an explicit layout with uniforms). */
  layoutOf(pipeline: GPUComputePipeline): PipelineBinding | undefined {
    return this.pipelines.get(pipeline);
  }

  /**
   * The bind group of `binding`'s layout over `arena` (its first `uniformBytes`, moved by the dispatch's dynamic
   * offset) and the storage `entries` (bindings 1..n), made on first use.
   */
  bindGroup(binding: PipelineBinding, arena: GPUBuffer, uniformBytes: number, entries: readonly { buffer: GPUBuffer; offset: number; size: number }[]): GPUBindGroup {
    let key = String(binding.id);
    for (const e of entries) key += `|${this.idOf(e.buffer)}:${e.offset}:${e.size}`;
    let group = this.groups.get(key);
    if (group) {
      this.hits++;
      return group;
    }
    this.misses++;
    if (this.groups.size >= MAX_CACHED_BIND_GROUPS) this.groups.clear();
    const resources: GPUBindGroupEntry[] = binding.uniform ? [{ binding: 0, resource: { buffer: arena, offset: 0, size: uniformBytes } }] : [];
    entries.forEach((e, i) => resources.push({ binding: i + 1, resource: { buffer: e.buffer, offset: e.offset, size: e.size } }));
    group = this.device.createBindGroup({ layout: binding.layout, entries: resources });
    this.groups.set(key, group);
    return group;
  }

  /** Forgets every bind group (they hold their buffers: called when buffers are destroyed). */
  clear(): void {
    this.groups.clear();
  }

  private idOf(buffer: GPUBuffer): number {
    let id = this.ids.get(buffer);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(buffer, id);
    }
    return id;
  }
}
