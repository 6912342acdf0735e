/**
 * The GPU runtime: one device, its buffer pool, a pipeline cache and a command batcher.
 *
 * Every kernel launcher goes through `Gpu.dispatch`, which records into one open compute pass; nothing is
 * submitted until a readback, `flush()` or a full uniform arena, so a training step costs a handful of
 * submissions instead of one per op.
 */
import { BindGroupCache } from './bind-groups.js';
import { BufferPool, type PoolStats } from './buffer-pool.js';
import { DispatchCounter, type DispatchCost } from './dispatch-counter.js';
import { TimestampProfiler, type KernelTiming } from './timestamp-profiler.js';

export interface InitGpuOptions {
  /** Adopt a device the caller owns (embedding). The caller keeps ownership: `destroy()` will not destroy it. */
  device?: GPUDevice;
  powerPreference?: GPUPowerPreference;
  /** Extra Dawn flags for Node (`create(flags)`), e.g. `backend=vulkan`. */
  dawnFlags?: string[];
  /** Make this the process-wide current GPU returned by `getGpu()` (default true). */
  makeCurrent?: boolean;
}

export interface GpuLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupSizeX: number;
  maxComputeWorkgroupSizeY: number;
  maxComputeWorkgroupSizeZ: number;
  maxComputeWorkgroupsPerDimension: number;
  maxStorageBuffersPerShaderStage: number;
  minStorageBufferOffsetAlignment: number;
  minUniformBufferOffsetAlignment: number;
  maxUniformBufferBindingSize: number;
}

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
}

/** A storage binding: a whole buffer or a window of it (offset a multiple of minStorageBufferOffsetAlignment). */
export type Binding = GPUBuffer | { buffer: GPUBuffer; offset?: number; size?: number };

export interface DispatchSpec {
  pipeline: GPUComputePipeline;
  /** Storage buffers in binding order 1..n (binding 0 is the params uniform when `params` is given). */
  bindings: Binding[];
  /** Uniform parameters, bound at @binding(0); at most 256 bytes. */
  params?: ArrayBufferView | ArrayBuffer;
  /** Workgroup grid. A number is a linear count that is folded into x/y/z when it exceeds the per-dimension limit. */
  workgroups: number | [number, number?, number?];
  /** Kernel name for errors and profiles. */
  label: string;
  /**
   * Floating-point operations of this dispatch (a multiply-add counts 2), for the cost counter
   * (`startCounting`); launchers of the compute-bound kernels (conv3d, matmul) give it, others count 0.
   */
  flops?: number;
  /** Bytes this dispatch reads and writes, for the cost counter, where the bindings would misstate them. */
  traffic?: { read: number; written: number };
  /** Access of each storage binding in binding order (`kernelSignature`'s `bind` gives it), for the cost counter. */
  access?: readonly BindingAccess[];
}

export type BindingAccess = 'read' | 'read_write';

const LIMIT_NAMES: (keyof GpuLimits)[] = [
  'maxBufferSize', 'maxStorageBufferBindingSize', 'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ', 'maxComputeWorkgroupsPerDimension', 'maxStorageBuffersPerShaderStage',
  'minStorageBufferOffsetAlignment', 'minUniformBufferOffsetAlignment', 'maxUniformBufferBindingSize',
];

const PARAM_SLOT_MAX = 256;
/**
 * Dispatches per submission before an automatic flush: the GPU starts on early work while the host records
 * the rest, and Dawn's per-pass bookkeeping stays small (one pass of thousands of dispatches was 100x slower
 * on lavapipe than the same work in submissions of a few hundred).
 */
const DISPATCHES_PER_SUBMIT = 256;
const ARENA_BYTES = 1 << 20;
const BUFFER_USAGE = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80, QUERY_RESOLVE: 0x200 };
/** A module's bindings as its WGSL declares them (for priming a pipeline with stand-in buffers). */
const BINDING_DECLARATION = /@binding\((\d+)\)\s*var<(uniform|storage)/g;

export const INSTALL_HINT =
  'No WebGPU adapter was found. On a Linux machine without a GPU, install a software Vulkan driver: ' +
  'run `sudo bash node_modules/tgnet/scripts/setup-gpu.sh` (or `bash scripts/setup-gpu.sh` in a tgnet checkout), ' +
  'which installs Mesa lavapipe (or SwiftShader via `apt-get install -y chromium libvulkan1`, then ' +
  'VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json).';

let current: Gpu | null = null;

/** Node (Dawn's binding): waits may sleep the thread, and validation errors arrive inside the failing call. */
const inNode = typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string';
/**
 * Dawn's Node binding polls for finished GPU work from a setImmediate loop for as long as one of its promises
 * (mapAsync, onSubmittedWorkDone) is pending, so an awaiting main thread spins a whole core. On a 2-core
 * machine with a software adapter that core is taken from the driver's threads (a TGNet step ran up to 1.9x
 * slower). In Node a wait therefore sleeps the thread between event-loop turns (Atomics.wait is allowed on
 * Node's main thread, not in browsers, whose WebGPU does not poll), and Dawn's poll runs once per turn.
 */
const sleepCell = typeof SharedArrayBuffer === 'function' && inNode ? new Int32Array(new SharedArrayBuffer(4)) : null;
/** Longest sleep between polls (ms): bounds the latency a wait adds. */
const MAX_POLL_SLEEP_MS = 1;

/**
 * The error thrown when a pipeline fails to compile or validate: the key, then each WGSL diagnostic
 * (`:line:col error: message`, as Dawn and getCompilationInfo give them) with its source line and a caret;
 * messages without a location (pipeline validation) are quoted as they are.
 */
export function pipelineErrorMessage(key: string, code: string, messages: readonly string[]): string {
  const lines = code.split('\n');
  const parts: string[] = [];
  for (const message of messages) {
    const found = [...message.matchAll(/:(\d+):(\d+) (error|warning): ([^\n]*)/g)].filter((m) => m[3] === 'error');
    if (!found.length) {
      parts.push(message.trim());
      continue;
    }
    for (const m of found) {
      const line = Number(m[1]);
      const col = Number(m[2]);
      const source = lines[line - 1] ?? '';
      const gutter = String(line).padStart(5);
      parts.push(`WGSL line ${line}:${col}: ${m[4]}\n${gutter} | ${source}\n${' '.repeat(gutter.length)} | ${' '.repeat(Math.max(0, col - 1))}^`);
    }
  }
  // Dawn reports the pipeline of a module that failed to compile as invalid too: the compile error says it all.
  const compiled = parts.filter((t) => !/is invalid due to a previous error/.test(t));
  return `pipeline '${key}': ${(compiled.length ? compiled : parts).join('\n')}`;
}

/** A module's compile errors, each `:line:column error: message` as `pipelineErrorMessage` takes them. */
async function compileErrors(module: GPUShaderModule): Promise<string[]> {
  // Some implementations lack getCompilationInfo; their errors arrive through the error scope alone.
  const info = typeof module.getCompilationInfo === 'function' ? await module.getCompilationInfo() : null;
  return (info?.messages ?? []).filter((m) => m.type === 'error').map((m) => `:${m.lineNum}:${m.linePos} error: ${m.message}`);
}

/** A pipeline as it was created: its cache key, its WGSL, and the milliseconds its creation held the calling thread. */
export interface PipelineRecord {
  key: string;
  code: string;
  ms: number;
  adapter: string;
}

/** A pipeline that a discovery run asked for (see `Gpu.discoverPipelines`), not yet compiled. */
export interface PipelineRequest {
  key: string;
  code: string;
  access?: readonly BindingAccess[];
}

const pipelineObservers = new Set<(record: PipelineRecord) => void>();

/**
 * Calls `observer` for each pipeline any runtime creates from now on (the compile benchmark and the test suite's
 * pipeline log use it); returns the function that stops observing.
 */
export function observePipelines(observer: (record: PipelineRecord) => void): () => void {
  pipelineObservers.add(observer);
  return () => { pipelineObservers.delete(observer); };
}

// Returned by `pipeline` during a discovery run, where nothing is dispatched.
const DISCOVERY_PLACEHOLDER = Object.freeze({ label: 'pipeline discovery placeholder' }) as unknown as GPUComputePipeline;

/**
 * A test of the adapter's name (its description when it has one), vendor and architecture, remembered per runtime:
 * launchers ask on every dispatch.
 */
function adapterTest(pattern: RegExp): (gpu: Gpu) => boolean {
  const answers = new WeakMap<Gpu, boolean>();
  return (gpu) => {
    let answer = answers.get(gpu);
    if (answer === undefined) {
      answer = pattern.test(`${gpu.name} ${gpu.adapter.vendor} ${gpu.adapter.architecture}`);
      answers.set(gpu, answer);
    }
    return answer;
  };
}

/** Software Vulkan drivers (lavapipe, SwiftShader) compile slowly and run at CPU speed: kernels use fewer, smaller pipelines there. */
export const isSoftwareAdapter = adapterTest(/llvmpipe|lavapipe|swiftshader|software/i);

/**
 * SwiftShader (Chromium's software Vulkan): its JIT (Reactor) keeps values in registers only within a basic block and
 * runs a workgroup's barrier as a switch between coroutines, so kernels there prefer straight-line code and fewer,
 * longer workgroups, where lavapipe's LLVM prefers skipped work and short loops (see the kernels that ask).
 */
export const isSwiftShader = adapterTest(/swiftshader/i);

/** The GPU made current by `initGpu`. Throws when none was initialised. */
export function getGpu(): Gpu {
  if (!current) throw new Error('No GPU initialised: call `await initGpu()` first');
  return current;
}

export function hasGpu(): boolean {
  return current !== null;
}

/** Creates (or adopts) a WebGPU device with the adapter's largest limits, for Node (Dawn) or a browser. */
export async function initGpu(options: InitGpuOptions = {}): Promise<Gpu> {
  let gpu: Gpu;
  if (options.device) {
    gpu = new Gpu(options.device, null, null, false);
  } else {
    const { gpu: navigatorGpu, keepAlive } = await findNavigatorGpu(options.dawnFlags ?? []);
    const adapter = await navigatorGpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
    if (!adapter) throw new Error(INSTALL_HINT);
    const requiredLimits: Record<string, number> = {};
    // The adapter's values are its best: largest for max* limits, smallest alignments for min* ones.
    for (const name of LIMIT_NAMES) {
      const v = (adapter.limits as unknown as Record<string, number>)[name];
      if (typeof v === 'number') requiredLimits[name] = v;
    }
    const wanted: GPUFeatureName[] = ['timestamp-query', 'shader-f16', 'subgroups'];
    const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
    const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
    gpu = new Gpu(device, adapter, keepAlive, true);
  }
  if (options.makeCurrent ?? true) current = gpu;
  return gpu;
}

async function findNavigatorGpu(flags: string[]): Promise<{ gpu: GPU; keepAlive: unknown }> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return { gpu: nav.gpu, keepAlive: null };
  // Node: Dawn's binding. The module name is a variable so that browser bundlers leave it alone.
  const moduleName = 'webgpu';
  let mod: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  try {
    mod = await import(/* @vite-ignore */ moduleName);
  } catch (e) {
    throw new Error(`WebGPU is not available: no navigator.gpu and the Node package 'webgpu' failed to load (${String(e)})`);
  }
  Object.assign(globalThis, mod.globals);
  await preferSoftwareDriverWhenAlone();
  const instance = mod.create(flags);
  // Dropping the instance while its device lives crashes Dawn, so the Gpu object holds it.
  return { gpu: instance, keepAlive: instance };
}

/**
 * The Vulkan loader finds Mesa's lavapipe by itself, but SwiftShader (from Debian's chromium) sits outside
 * the loader's search path: point the loader at it when it is the only software driver installed.
 */
async function preferSoftwareDriverWhenAlone(): Promise<void> {
  const env = (globalThis as { process?: { env: Record<string, string | undefined>; platform?: string } }).process;
  if (!env || env.platform !== 'linux' || env.env.VK_ICD_FILENAMES || env.env.VK_DRIVER_FILES) return;
  const fsName = 'node:fs';
  const fs = (await import(/* @vite-ignore */ fsName)) as { existsSync(p: string): boolean };
  const swiftshader = '/usr/lib/chromium/vk_swiftshader_icd.json';
  const hasOther = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d'].some((d) =>
    fs.existsSync(`${d}/lvp_icd.json`) || fs.existsSync(`${d}/nvidia_icd.json`));
  if (!hasOther && fs.existsSync(swiftshader)) env.env.VK_ICD_FILENAMES = swiftshader;
}

export class Gpu {
  readonly limits: GpuLimits;
  readonly features: ReadonlySet<string>;
  readonly adapter: AdapterDescription;
  /**
   * The subgroup size when the device has the 'subgroups' feature and the adapter reports one fixed size (lavapipe:
   * 8, the SIMD width; SwiftShader: 4), else null. Kernels that broadcast lane values by constant lane index need it.
   */
  readonly subgroupSize: number | null;
  readonly pool: BufferPool;
  /** Dispatches recorded since creation (a cheap counter for overhead tests and benches). */
  dispatchCount = 0;
  submitCount = 0;

  private readonly pipelines = new Map<string, GPUComputePipeline>();
  /** Buffers bound when priming pipelines (see `primePipeline`), by binding slot (-1: the uniforms). */
  private readonly standIns = new Map<number, GPUBuffer>();
  /** The pipelines asked for by the discovery run in progress (see `discoverPipelines`), else null. */
  private discovered: Map<string, PipelineRequest> | null = null;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private readonly arena: GPUBuffer;
  private readonly arenaData = new Uint8Array(ARENA_BYTES);
  private arenaCursor = 0;
  private batchDispatches = 0;
  private readonly paramSlot: number;
  private lostReason: string | null = null;
  private readonly lost: Promise<never>;
  private readonly errors: string[] = [];
  private destroyed = false;
  /** Per-dispatch timestamps while profiling (see `startProfiling`), else null. */
  private profiler: TimestampProfiler | null = null;
  /** Kept between profiling sessions: its query set is made once. */
  private timestampProfiler: TimestampProfiler | null = null;
  /** The cost counter while counting (see `startCounting`), else null. */
  private counter: DispatchCounter | null = null;
  /** Binding access of each pipeline built through a kernel signature, for dispatches that do not pass `access`. */
  private readonly pipelineAccess = new WeakMap<GPUComputePipeline, readonly BindingAccess[]>();
  /** The bind groups dispatches reuse. */
  private readonly bindGroups: BindGroupCache;

  constructor(
    readonly device: GPUDevice,
    adapter: GPUAdapter | null,
    // Held only to keep Dawn's instance alive for the device's lifetime.
    private readonly keepAlive: unknown,
    private readonly ownsDevice: boolean,
  ) {
    const lim = device.limits as unknown as Record<string, number>;
    const limits = {} as GpuLimits;
    for (const name of LIMIT_NAMES) limits[name] = lim[name];
    this.limits = limits;
    this.features = new Set([...device.features].map(String));
    const info = adapter?.info ?? (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
    this.adapter = {
      vendor: info?.vendor ?? '', architecture: info?.architecture ?? '',
      device: info?.device ?? '', description: info?.description ?? '',
    };
    const sizes = info as (GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number }) | undefined;
    this.subgroupSize = this.features.has('subgroups') && sizes?.subgroupMinSize && sizes.subgroupMinSize === sizes.subgroupMaxSize
      ? sizes.subgroupMinSize : null;
    this.pool = new BufferPool(device, limits.maxBufferSize);
    this.bindGroups = new BindGroupCache(device);
    this.paramSlot = Math.max(PARAM_SLOT_MAX, limits.minUniformBufferOffsetAlignment);
    this.arena = device.createBuffer({
      size: ARENA_BYTES, usage: BUFFER_USAGE.UNIFORM | BUFFER_USAGE.COPY_DST, label: 'params arena',
    });
    this.lost = device.lost.then((info) => {
      this.lostReason = `${info.reason}: ${info.message}`;
      throw new Error(`GPU device lost (${this.lostReason})`);
    });
    this.lost.catch(() => undefined);
    device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      this.errors.push(ev.error.message);
    };
  }

  /** A name for the adapter, e.g. "NVIDIA H100 80GB HBM3" or "llvmpipe (LLVM 19.1.7, 256 bits)". */
  get name(): string {
    return this.adapter.description || this.adapter.device || this.adapter.vendor || 'unknown adapter';
  }

  /**
   * Pipelines are cached by key: a kernel name plus everything its WGSL is specialised on. A WGSL compile or
   * pipeline validation error throws here, at creation, naming the key, the line:column and the source line
   * (see `createPipeline`); the broken pipeline is not cached.
   */
  pipeline(key: string, makeCode: () => string, access?: readonly BindingAccess[]): GPUComputePipeline {
    let p = this.pipelines.get(key);
    if (!p) {
      if (this.discovered) {
        if (!this.discovered.has(key)) this.discovered.set(key, { key, code: makeCode(), access });
        return DISCOVERY_PLACEHOLDER;
      }
      const t0 = performance.now();
      const code = makeCode();
      p = this.createPipeline(key, code);
      this.adoptPipeline(key, code, p, t0, access);
    }
    return p;
  }

  /**
   * Dispatches one workgroup of `pipeline` with zeroed uniforms (every size 0: kernels read nothing and loop
   * zero times) on stand-in storage buffers, and waits for it: a driver that compiles at first dispatch
   * (lavapipe) compiles it now. `code` is its WGSL, which names the bindings.
   */
  async primePipeline(pipeline: GPUComputePipeline, code: string): Promise<void> {
    const entries: GPUBindGroupEntry[] = [];
    for (const m of code.matchAll(BINDING_DECLARATION)) {
      const binding = Number(m[1]);
      const buffer = m[2] === 'uniform' ? this.standIn(-1, BUFFER_USAGE.UNIFORM) : this.standIn(binding, BUFFER_USAGE.STORAGE);
      entries.push({ binding, resource: { buffer } });
    }
    const encoder = this.device.createCommandEncoder({ label: 'pipeline priming' });
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }));
    pass.dispatchWorkgroups(1);
    pass.end();
    this.device.queue.submit([encoder.finish()]);
    await this.settle(this.device.queue.onSubmittedWorkDone());
  }

  /** A zeroed buffer per binding slot (distinct, so that writable bindings never alias), made once. */
  private standIn(slot: number, usage: number): GPUBuffer {
    let b = this.standIns.get(slot);
    if (!b) {
      b = this.device.createBuffer({ size: PARAM_SLOT_MAX * 16, usage, label: `stand-in ${slot}` });
      this.standIns.set(slot, b);
    }
    return b;
  }

  /** Caches a compiled pipeline and tells the observers (`observePipelines`) how long it took since `t0`. */
  private adoptPipeline(key: string, code: string, p: GPUComputePipeline, t0: number, access?: readonly BindingAccess[]): void {
    this.pipelines.set(key, p);
    if (access) this.pipelineAccess.set(p, access);
    if (pipelineObservers.size) {
      const record = { key, code, ms: performance.now() - t0, adapter: this.name };
      for (const observe of pipelineObservers) observe(record);
    }
  }

  /**
   * Runs `work` without executing anything on the device and returns the pipelines it asked for that are not
   * compiled yet: while it runs, dispatches, copies and uploads are dropped and reads return zeros, so `work`
   * must not decide what to launch from values it reads back, and must not change state it keeps (a throwaway
   * optimiser, not the real one). Used to compile a model's pipelines before its first step
   * (`compilePipelines`).
   */
  async discoverPipelines(work: () => unknown): Promise<PipelineRequest[]> {
    if (this.discovered) throw new Error('discoverPipelines: a discovery run is already in progress');
    this.checkUsable('discoverPipelines');
    this.flush();
    this.discovered = new Map();
    try {
      await work();
      return [...this.discovered.values()];
    } finally {
      this.discovered = null;
    }
  }

  /**
   * Compiles pipelines with createComputePipelineAsync, `concurrency` at a time, so that a browser's main
   * thread never waits on a compile and a driver that compiles on several threads can; `onProgress` is
   * called after each. A WGSL or validation error throws, naming the key and the shader line.
   */
  async compilePipelines(
    requests: readonly PipelineRequest[],
    options: { concurrency?: number; onProgress?: (done: number, total: number, key: string) => void } = {},
  ): Promise<void> {
    const todo = requests.filter((r) => !this.pipelines.has(r.key));
    const concurrency = Math.max(1, options.concurrency ?? 4);
    // lavapipe (llvmpipe) compiles a pipeline when it is first dispatched, whatever the creation API: there each is
    // run once on stand-in buffers, so that the compile happens here, counted, and not in the first step.
    const compilesAtFirstDispatch = /llvmpipe|lavapipe/i.test(this.name);
    let next = 0;
    let done = 0;
    const worker = async () => {
      while (next < todo.length) {
        const r = todo[next++];
        this.checkUsable(`pipeline '${r.key}'`);
        const t0 = performance.now();
        // The scope is pushed and popped with no await between, so concurrent workers cannot take each other's errors.
        this.device.pushErrorScope('validation');
        const module = this.device.createShaderModule({ code: r.code, label: r.key });
        const moduleError = this.device.popErrorScope();
        let pipeline: GPUComputePipeline | null = null;
        let failure: unknown = await moduleError;
        if (!failure) {
          try {
            pipeline = await this.device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: r.key });
          } catch (e) {
            failure = e;
          }
        }
        if (!pipeline) {
          const errors = await compileErrors(module);
          throw new Error(pipelineErrorMessage(r.key, r.code, errors.length ? errors : [String((failure as { message?: unknown } | null)?.message ?? failure)]));
        }
        if (!this.pipelines.has(r.key)) {
          if (compilesAtFirstDispatch) await this.primePipeline(pipeline, r.code);
          this.adoptPipeline(r.key, r.code, pipeline, t0, r.access);
        }
        options.onProgress?.(++done, todo.length, r.key);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, todo.length) }, worker));
  }

  /**
   * Dawn's Node binding delivers a validation error to `onuncapturederror` inside the call that caused it, so
   * creating the module and pipeline outside an error scope and looking at the errors recorded meanwhile lets
   * `pipeline` stay synchronous and still throw at creation. Where errors arrive later (browsers), creation
   * runs inside a validation error scope and the module's compilation info is asked for; what they report is
   * thrown, formatted the same way, by the next `read` or `sync`.
   */
  private createPipeline(key: string, code: string): GPUComputePipeline {
    this.checkUsable(`pipeline '${key}'`);
    const create = () => {
      const module = this.device.createShaderModule({ code, label: key });
      const pipeline = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: key });
      return { module, pipeline };
    };
    if (inNode) {
      const before = this.errors.length;
      const { pipeline } = create();
      if (this.errors.length > before) throw new Error(pipelineErrorMessage(key, code, this.errors.splice(before)));
      return pipeline;
    }
    this.device.pushErrorScope('validation');
    const { module, pipeline } = create();
    const scope = this.device.popErrorScope();
    void Promise.all([scope, compileErrors(module)]).then(([error, errors]) => {
      if (error || errors.length) this.errors.push(pipelineErrorMessage(key, code, errors.length ? errors : [error?.message ?? '']));
    }, (e: unknown) => { this.errors.push(`pipeline '${key}': ${String(e)}`); });
    return pipeline;
  }

  get pipelineCount(): number {
    return this.pipelines.size;
  }

  /** Records one compute dispatch into the open batch. */
  dispatch(spec: DispatchSpec): void {
    this.checkUsable(spec.label);
    if (this.discovered) return;
    let paramsOffset = 0;
    let paramsBytes = 0;
    if (spec.params) {
      const bytes = spec.params instanceof ArrayBuffer
        ? new Uint8Array(spec.params)
        : new Uint8Array(spec.params.buffer, spec.params.byteOffset, spec.params.byteLength);
      if (bytes.byteLength > PARAM_SLOT_MAX) {
        throw new RangeError(`${spec.label}: params of ${bytes.byteLength} bytes exceed the ${PARAM_SLOT_MAX}-byte slot`);
      }
      if (this.arenaCursor + this.paramSlot > ARENA_BYTES) this.flush();
      paramsOffset = this.arenaCursor;
      paramsBytes = bytes.byteLength;
      this.arenaData.set(bytes, paramsOffset);
      this.arenaCursor += this.paramSlot;
    }
    const maxBinding = this.limits.maxStorageBufferBindingSize;
    const windows = spec.bindings.map((b, i) => {
      const res = 'buffer' in b ? b : { buffer: b };
      const offset = res.offset ?? 0;
      const size = res.size ?? res.buffer.size - offset;
      if (size > maxBinding) {
        throw new RangeError(
          `${spec.label}: binding ${i + 1} is ${size} bytes, larger than this device's maxStorageBufferBindingSize of ${maxBinding} bytes`,
        );
      }
      return { buffer: res.buffer, offset, size };
    });
    if (spec.params) windows.unshift({ buffer: this.arena, offset: paramsOffset, size: Math.max(16, Math.ceil(paramsBytes / 16) * 16) });
    const bindGroup = this.bindGroups.bindGroup(spec.pipeline, windows, spec.params ? 0 : 1, spec.label);
    const [x, y, z] = this.grid(spec.workgroups, spec.label);
    if (x * y * z === 0) return;
    const pass = this.openPass(spec.label);
    pass.setPipeline(spec.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    if (this.profiler) this.closePass();
    if (this.counter) this.countDispatch(this.counter, spec);
    this.dispatchCount++;
    if (++this.batchDispatches >= DISPATCHES_PER_SUBMIT) this.flush();
  }

  /** Folds a linear workgroup count into a grid within maxComputeWorkgroupsPerDimension. */
  grid(workgroups: DispatchSpec['workgroups'], label: string): [number, number, number] {
    const max = this.limits.maxComputeWorkgroupsPerDimension;
    if (typeof workgroups === 'number') {
      if (workgroups <= max) return [workgroups, 1, 1];
      const y = Math.ceil(workgroups / max);
      if (y <= max) return [max, y, 1];
      const z = Math.ceil(y / max);
      if (z > max) throw new RangeError(`${label}: ${workgroups} workgroups exceed ${max}^3`);
      return [max, max, z];
    }
    const [x, y = 1, z = 1] = workgroups;
    if (x > max || y > max || z > max) {
      throw new RangeError(`${label}: workgroup grid [${x}, ${y}, ${z}] exceeds maxComputeWorkgroupsPerDimension ${max}`);
    }
    return [x, y, z];
  }

  /**
   * Counts what every dispatch recorded from now on costs, until `stopCounting`: dispatches, submissions,
   * bytes read and written, FLOPs, in total and per kernel label. Off by default; when off a dispatch pays
   * one boolean test.
   *
   * What a dispatch's bytes mean: its unique footprint, i.e. the size of each storage binding it is given,
   * counted once per dispatch: a `read` binding as bytes read, a `read_write` binding as bytes written (an
   * accumulating store that also reads it counts once, as written). A tiled kernel that re-reads an operand
   * tile through its cache counts it once; a kernel that reads only part of a binding counts all of it. A
   * window counts its size (plus up to one offset alignment of slack before its start); a whole pooled buffer
   * counts the bytes asked of the pool (the tensor's logical size), not its size class. `spec.traffic`
   * overrides the derived figure. Access comes from `spec.access` or from the kernel signature the pipeline
   * was built with; a binding of unknown access counts as read. FLOPs are what the launcher states
   * (`spec.flops`; 0 when it states none). Uniform parameters are not counted.
   */
  startCounting(): void {
    this.counter = new DispatchCounter(this.submitCount);
  }

  /** Stops counting and returns the cost of the dispatches recorded since `startCounting` (see there). */
  stopCounting(): DispatchCost {
    const counter = this.counter ?? new DispatchCounter(this.submitCount);
    this.counter = null;
    return counter.finish(this.submitCount);
  }

  get isCounting(): boolean {
    return this.counter !== null;
  }

  /** A dispatch's bytes for the counter: `spec.traffic`, else each binding's bytes by its access. */
  private countDispatch(counter: DispatchCounter, spec: DispatchSpec): void {
    let read = 0;
    let written = 0;
    if (spec.traffic) {
      read = spec.traffic.read;
      written = spec.traffic.written;
    } else {
      const access = spec.access ?? this.pipelineAccess.get(spec.pipeline);
      for (let i = 0; i < spec.bindings.length; i++) {
        const bytes = this.bindingBytes(spec.bindings[i]);
        if (access?.[i] === 'read_write') written += bytes;
        else read += bytes;
      }
    }
    counter.dispatch(spec.label, read, written, spec.flops ?? 0);
  }

  /** Bytes a binding covers: a window's size, or the logical size of a (pooled) buffer from its offset on. */
  private bindingBytes(b: Binding): number {
    if ('buffer' in b) {
      if (b.size !== undefined) return b.size;
      return Math.max(0, (this.pool.requestedBytes(b.buffer) ?? b.buffer.size) - (b.offset ?? 0));
    }
    return this.pool.requestedBytes(b) ?? b.size;
  }

  /** Records a buffer-to-buffer copy in stream order (byte counts and offsets multiples of 4). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.checkUsable('copy');
    if (bytes === 0 || this.discovered) return;
    this.counter?.copy(bytes);
    this.closePass();
    this.openEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /** Uploads host data. It is ordered after everything already recorded (the batch is flushed first). */
  write(buffer: GPUBuffer, data: ArrayBufferView, offset = 0): void {
    this.checkUsable('write');
    if (this.discovered) return;
    // queue.writeBuffer runs before the next submit, so recorded-but-unsubmitted work must go first.
    if (this.encoder) this.flush();
    this.device.queue.writeBuffer(buffer, offset, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Submits the open batch. */
  flush(): void {
    if (!this.encoder) return;
    this.closePass();
    const timings = this.profiler?.resolve(this.encoder) ?? null;
    if (this.arenaCursor > 0) {
      this.device.queue.writeBuffer(this.arena, 0, this.arenaData.buffer, 0, this.arenaCursor);
      this.arenaCursor = 0;
    }
    this.device.queue.submit([this.encoder.finish()]);
    this.submitCount++;
    this.encoder = null;
    this.batchDispatches = 0;
    if (timings) this.profiler?.submitted(timings, (work) => this.settle(work));
  }

  /** Copies `bytes` bytes from `buffer` back to the host. Fails cleanly when the device is lost. */
  async read(buffer: GPUBuffer, bytes = buffer.size, offset = 0): Promise<ArrayBuffer> {
    this.checkUsable('read');
    if (this.discovered) return new ArrayBuffer(bytes);
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.device.createBuffer({ size: Math.max(size, 4), usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST });
    try {
      this.closePass();
      if (size > 0) this.openEncoder().copyBufferToBuffer(buffer, offset, staging, 0, size);
      else this.openEncoder();
      this.flush();
      await this.settle(staging.mapAsync(1 /* GPUMapMode.READ */));
      this.throwPendingErrors('read');
      return staging.getMappedRange(0, size).slice(0, bytes);
    } finally {
      if (!this.lostReason) staging.destroy();
    }
  }

  /** Waits for all submitted work (flushing first); throws validation errors raised meanwhile. */
  async sync(): Promise<void> {
    this.checkUsable('sync');
    if (this.discovered) return;
    this.flush();
    await this.settle(this.device.queue.onSubmittedWorkDone());
    this.throwPendingErrors('sync');
  }

  /** Turns per-dispatch GPU timestamps on; returns false when the adapter lacks 'timestamp-query'. */
  startProfiling(): boolean {
    if (!this.features.has('timestamp-query')) return false;
    this.flush();
    this.timestampProfiler ??= new TimestampProfiler(this.device);
    this.profiler = this.timestampProfiler;
    return true;
  }

  /** Stops profiling and returns the timings of every dispatch since `startProfiling`. */
  async stopProfiling(): Promise<KernelTiming[]> {
    this.flush();
    const profiler = this.profiler;
    this.profiler = null;
    return profiler ? profiler.timings() : [];
  }

  /**
   * Bind groups made and reused since the device was created: a training step that allocates and submits as the
   * step before reuses all of its own (see bind-groups.ts).
   */
  bindGroupStats(): { made: number; reused: number } {
    return { made: this.bindGroups.made, reused: this.bindGroups.reused };
  }

  poolStats(): PoolStats {
    return this.pool.getStats();
  }

  /** Releases pooled memory and, when this runtime created the device, destroys it. */
  destroy(): void {
    if (this.destroyed) return;
    try {
      this.flush();
    } catch {
      // a lost device cannot flush; destruction goes on
    }
    this.destroyed = true;
    this.pool.destroyAll();
    this.bindGroups.clear();
    for (const b of this.standIns.values()) b.destroy();
    this.arena.destroy();
    this.timestampProfiler?.destroy();
    if (this.ownsDevice) this.device.destroy();
    if (current === this) current = null;
    void this.keepAlive;
  }

  get isLost(): boolean {
    return this.lostReason !== null;
  }

  private openEncoder(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private openPass(label: string): GPUComputePassEncoder {
    if (this.pass) return this.pass;
    const enc = this.openEncoder();
    if (this.profiler) {
      const pass = this.profiler.beginPass(enc, label);
      if (!pass) {
        this.flush();
        return this.openPass(label);
      }
      this.pass = pass;
    } else {
      this.pass = enc.beginComputePass();
    }
    return this.pass;
  }

  private closePass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  /** Waits for a Dawn promise (or the device's loss) without spinning a core, see `sleepCell`. */
  private async settle<T>(work: Promise<T>): Promise<T> {
    const raced = Promise.race([work, this.lost]);
    if (!sleepCell) return raced;
    let done = false;
    raced.then(() => { done = true; }, () => { done = true; });
    const t0 = performance.now();
    while (!done) {
      // Short sleeps first (small reads finish in microseconds), then up to 1/8 of the time waited so far.
      Atomics.wait(sleepCell, 0, 0, Math.min(MAX_POLL_SLEEP_MS, Math.max(0.02, (performance.now() - t0) / 8)));
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return raced;
  }

  private checkUsable(what: string): void {
    if (this.destroyed) throw new Error(`${what}: the GPU runtime was destroyed`);
    if (this.lostReason) throw new Error(`${what}: GPU device lost (${this.lostReason})`);
  }

  private throwPendingErrors(what: string): void {
    if (this.errors.length) {
      const msgs = this.errors.splice(0);
      throw new Error(`${what}: WebGPU reported ${msgs.length} error(s): ${msgs.join(' | ')}`);
    }
  }
}
