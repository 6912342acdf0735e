/**
 * Bind groups reused across dispatches.
 *
 * Why: a training step records ~500 dispatches, and creating a bind group for each was a third of the host's time
 * per step in Dawn's Node binding (13-16 ms of 41-52 ms at widths 4-8 on lavapipe). A bind group is fixed by the
 * pipeline and the buffer windows it binds, the uniform's slot of the parameter arena included. Those repeat from
 * one training step to the next: the buffer pool hands the same buffers to the same tensors (buffer-pool.ts), and
 * the arena fills from its start after each submission, which a step makes at the same dispatches every time (its
 * batch upload submits first). So the bind groups of a step are kept and found again by that key.
 *
 * The uniform's offset stays in the bind group, not a dynamic offset: with dynamic offsets (explicit layouts) the
 * reuse was the same, but the demo's training spent 4-7 s more in the kernel per 600 steps on lavapipe and trained
 * ~8 % slower (bench/RESULTS.md).
 */

/** A bound buffer window: binding `firstBinding + i` of the group. */
export interface BoundWindow {
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

/** Bind groups kept at most; past this the cache starts over (a step needs ~500; kernel tests make thousands once). */
const MAX_CACHED_BIND_GROUPS = 4096;

export class BindGroupCache {
  private readonly ids = new WeakMap<object, number>();
  private readonly groups = new Map<string, GPUBindGroup>();
  private nextId = 1;
  /** Bind groups found in the cache and made, since creation. */
  reused = 0;
  made = 0;

  constructor(private readonly device: GPUDevice) {}

  /** The bind group of `pipeline`'s layout with `windows` at bindings `firstBinding`, `firstBinding + 1`, ... */
  bindGroup(pipeline: GPUComputePipeline, windows: readonly BoundWindow[], firstBinding: number, label: string): GPUBindGroup {
    let key = `${this.idOf(pipeline)}@${firstBinding}`;
    for (const w of windows) key += `|${this.idOf(w.buffer)}:${w.offset}:${w.size}`;
    let group = this.groups.get(key);
    if (group) {
      this.reused++;
      return group;
    }
    this.made++;
    if (this.groups.size >= MAX_CACHED_BIND_GROUPS) this.groups.clear();
    group = this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: windows.map((w, i) => ({ binding: firstBinding + i, resource: { buffer: w.buffer, offset: w.offset, size: w.size } })),
      label,
    });
    this.groups.set(key, group);
    return group;
  }

  /** Forgets every bind group (they hold their buffers). */
  clear(): void {
    this.groups.clear();
  }

  private idOf(o: object): number {
    let id = this.ids.get(o);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(o, id);
    }
    return id;
  }
}
