import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  TUNING_FORMAT_VERSION, adapterKey, conv3dCandidates, conv3dShapeKey, defaultConv3dChoice, disableConv3dTuning,
  enableConv3dTuning, memoryTuningStore, recordConv3dShapes, tuneConv3d, tunedConv3dOptions,
  type Conv3dCandidate, type Conv3dPass, type TuningFile,
} from '../../src/kernels/conv3d/autotune.js';
import { checkTile } from '../../src/kernels/conv3d/tiles.js';
import { withTunedConv3dOptions } from '../../src/kernels/conv3d/tuned-options.js';
import {
  conv3dBackwardData, conv3dBackwardWeight, conv3dForward, conv3dOutputShape, type Conv3dOptions, type Conv3dShape,
} from '../../src/kernels/conv3d/index.js';
import { unary } from '../../src/kernels/elementwise.js';
import { isSoftwareAdapter, type Gpu } from '../../src/kernels/runtime/gpu.js';
import { download, expectClose, randomArray, upload, useGpu } from '../helpers/gpu.js';

const gpu = useGpu();
const SHAPE: Conv3dShape = { x: [2, 4, 5, 6, 6], w: [4, 4, 3, 3, 3], stride: 1, padding: 1 };
const size = (a: readonly number[]) => a.reduce((p, v) => p * v, 1);

const dirs: string[] = [];
async function tempFile(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tgnet-tune-'));
  dirs.push(dir);
  return join(dir, 'sub', 'conv3d-tuning.json');
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** Two cheap candidates: the default and one other valid configuration (a different direct blocking or GEMM tile). */
function twoCandidates(g: Gpu): Conv3dCandidate[] {
  const all = conv3dCandidates(g, SHAPE, 'forward');
  const other = all.find((c) => (isSoftwareAdapter(g) ? c.options.direct && c.options.directBlocking?.vw === 8 : !c.options.direct && c.label !== all[0].label));
  return [all[0], other ?? all[1]];
}

function quietWarnings(): { warn: (m: string) => void; messages: string[] } {
  const messages: string[] = [];
  return { warn: (m) => messages.push(m), messages };
}

describe('conv3d autotuner', () => {
  it('lists candidates: the default first, GEMM tiles within the device limits, direct blockings on software adapters', () => {
    const g = gpu();
    for (const pass of ['forward', 'data', 'weight'] as Conv3dPass[]) {
      const list = conv3dCandidates(g, SHAPE, pass);
      expect(list[0].options).toEqual(defaultConv3dChoice(g));
      const tiles = list.filter((c) => c.options.tile).map((c) => c.options.tile!);
      expect(tiles.length).toBeGreaterThan(0);
      for (const t of tiles) expect(() => checkTile(g, t, 'test')).not.toThrow();
      const direct = list.filter((c) => c.options.directBlocking);
      if (isSoftwareAdapter(g)) {
        expect(direct.length).toBeGreaterThan(3);
        expect(direct.some((c) => c.options.directBlocking!.ct === 4 && c.options.directBlocking!.vw === 8)).toBe(false);
      } else {
        expect(direct).toEqual([]);
      }
    }
  });

  it('tunes a tiny shape, writes the cache file under the adapter key, and a second look-up uses it without timing', async () => {
    const g = gpu();
    const file = await tempFile();
    const candidates = twoCandidates(g);
    const r = await tuneConv3d(g, SHAPE, 'forward', { file, candidates, repetitions: 2 });
    expect(r.cached).toBe(false);
    expect(r.candidates.map((c) => c.label)).toEqual(candidates.map((c) => c.label));
    for (const c of r.candidates) expect(c.ms).toBeGreaterThan(0);
    // The best is timed again beside the default and kept only when faster.
    expect(r.entry.ms).toBeGreaterThan(0);
    expect(r.entry.ms).toBeLessThanOrEqual(r.entry.defaultMs);
    expect(candidates.map((c) => c.options)).toContainEqual(r.entry.options);

    const stored = JSON.parse(await readFile(file, 'utf8')) as TuningFile;
    expect(stored.version).toBe(TUNING_FORMAT_VERSION);
    const forAdapter = stored.adapters[adapterKey(g)];
    expect(forAdapter.adapter).toEqual(g.adapter);
    const key = conv3dShapeKey(SHAPE, 'forward');
    expect(key).toBe('forward x2,4,5,6,6 w4,4,3 s1 p1');
    expect(forAdapter.shapes[key].options).toEqual(r.entry.options);
    // Written by rename: no temporary file is left beside it.
    expect(await readdir(join(file, '..'))).toEqual(['conv3d-tuning.json']);

    const dispatches = g.dispatchCount;
    const again = await tuneConv3d(g, SHAPE, 'forward', { file });
    expect(again.cached).toBe(true);
    expect(again.candidates).toEqual([]);
    expect(again.entry).toEqual(forAdapter.shapes[key]);
    expect(g.dispatchCount).toBe(dispatches);

    // Off by default; enabled, the launchers' synchronous look-up has the stored choice.
    expect(tunedConv3dOptions(g, SHAPE, 'forward')).toBeNull();
    expect(await enableConv3dTuning(g, { file })).toBe(1);
    try {
      expect(tunedConv3dOptions(g, SHAPE, 'forward')).toEqual(r.entry.options);
      expect(tunedConv3dOptions(g, SHAPE, 'data')).toBeNull();
    } finally {
      disableConv3dTuning(g);
    }
    expect(tunedConv3dOptions(g, SHAPE, 'forward')).toBeNull();
  });

  it('ignores a corrupt file or one of another version with a warning, and never overwrites a newer one', async () => {
    const g = gpu();
    const store = memoryTuningStore('{"format": "tgnet-conv3d-tuning", "versi');
    const w1 = quietWarnings();
    expect(await enableConv3dTuning(g, { store, warn: w1.warn })).toBe(0);
    disableConv3dTuning(g);
    expect(w1.messages.join('\n')).toMatch(/memory is not JSON \(.*\); ignoring it/);

    const file = await tempFile();
    const newer = {
      format: 'tgnet-conv3d-tuning', version: TUNING_FORMAT_VERSION + 1,
      adapters: { [adapterKey(g)]: { shapes: { [conv3dShapeKey(SHAPE, 'forward')]: { options: { direct: false } } } } },
    };
    await tuneConv3d(g, SHAPE, 'forward', { file, candidates: twoCandidates(g).slice(0, 1), repetitions: 1, warn: () => undefined });
    const text = JSON.stringify(newer);
    await writeFile(file, text);
    const w2 = quietWarnings();
    expect(await enableConv3dTuning(g, { file, warn: w2.warn })).toBe(0);
    disableConv3dTuning(g);
    expect(w2.messages.join('\n')).toMatch(new RegExp(`format version ${TUNING_FORMAT_VERSION + 1}, this tgnet reads version ${TUNING_FORMAT_VERSION}; ignoring it`));
    const w3 = quietWarnings();
    const r = await tuneConv3d(g, SHAPE, 'forward', { file, candidates: twoCandidates(g).slice(0, 1), repetitions: 1, warn: w3.warn });
    expect(r.cached).toBe(false);
    expect(w3.messages.join('\n')).toMatch(/newer format; the choice for forward .* is kept in memory only/);
    expect(await readFile(file, 'utf8')).toBe(text);

    const older = memoryTuningStore(JSON.stringify({ ...newer, version: 0 }));
    const w4 = quietWarnings();
    const r2 = await tuneConv3d(g, SHAPE, 'forward', { store: older, candidates: twoCandidates(g).slice(0, 1), repetitions: 1, warn: w4.warn });
    expect(w4.messages.join('\n')).toMatch(new RegExp(`replacing memory \\(.*format version 0.*\\) with a version ${TUNING_FORMAT_VERSION} file`));
    // An older file is replaced by the current format.
    const replaced = JSON.parse(older.text!) as TuningFile;
    expect(replaced.version).toBe(TUNING_FORMAT_VERSION);
    expect(replaced.adapters[adapterKey(g)].shapes[r2.key].choice).toBe(r2.entry.choice);
  });

  it('rejects a candidate whose output is wrong and reports it', async () => {
    const g = gpu();
    const store = memoryTuningStore();
    const out = conv3dOutputShape(SHAPE.x, SHAPE.w, SHAPE);
    const [reference] = twoCandidates(g);
    const wrong: Conv3dCandidate = {
      label: 'wrong', options: { direct: false },
      launch: (gg, io, shape, o) => {
        conv3dForward(gg, io.x, io.w, null, io.out, shape, o);
        unary(gg, 'fill', null, io.out, size(out), 0.5);
      },
    };
    const failing: Conv3dCandidate = { label: 'failing', options: { direct: false, tile: { bm: 3, bn: 5, bk: 8, tm: 2, tn: 2 } } };
    const r = await tuneConv3d(g, SHAPE, 'forward', { store, candidates: [reference, wrong, failing], repetitions: 1 });
    expect(r.candidates[1].ms).toBeNull();
    expect(r.candidates[1].rejected).toMatch(/output differs from the default's: max \|diff\| /);
    expect(r.candidates[2].ms).toBeNull();
    expect(r.candidates[2].rejected).toMatch(/failed: .*tile .* is invalid here/);
    expect(r.entry.options).toEqual(reference.options);
  });

  it('launchers use the tuned choice only when enabled and not overridden, with the same result as the default', async () => {
    const g = gpu();
    const software = isSoftwareAdapter(g);
    // A non-default but valid choice per pass.
    const choice: Conv3dOptions = software ? { direct: true, directBlocking: { ct: 1, vw: 8 } } : { direct: false, tile: { bm: 16, bn: 32, bk: 8, tm: 2, tn: 2 } };
    const wChoice: Conv3dOptions = { ...choice, splitK: 3 };
    const file = {
      format: 'tgnet-conv3d-tuning', version: TUNING_FORMAT_VERSION,
      adapters: {
        [adapterKey(g)]: {
          adapter: g.adapter,
          shapes: Object.fromEntries([
            ['forward', choice], ['data', choice], ['weight', wChoice],
          ].map(([pass, options]) => [conv3dShapeKey(SHAPE, pass as Conv3dPass), { options, choice: 'x', ms: 1, defaultMs: 1, timing: 'gpu', tunedAt: '' }])),
        },
      },
    };
    const nx = size(SHAPE.x);
    const nw = size(SHAPE.w);
    const ny = size(conv3dOutputShape(SHAPE.x, SHAPE.w, SHAPE));
    const x = upload(g, randomArray(nx, 1));
    const w = upload(g, randomArray(nw, 2, -0.3, 0.3));
    const gy = upload(g, randomArray(ny, 3));
    const outs = [ny, nx, nw, ny, nx, nw].map((n) => upload(g, new Float32Array(n)));
    const runAll = (o: [GPUBuffer, GPUBuffer, GPUBuffer], options?: Conv3dOptions) => {
      conv3dForward(g, x, w, null, o[0], SHAPE, options);
      conv3dBackwardData(g, gy, w, o[1], SHAPE, options);
      conv3dBackwardWeight(g, x, gy, o[2], SHAPE, options);
    };
    expect(await enableConv3dTuning(g, { store: memoryTuningStore(JSON.stringify(file)) })).toBe(3);
    try {
      expect(withTunedConv3dOptions(g, SHAPE, 'weight', {})).toEqual(wChoice);
      expect(withTunedConv3dOptions(g, SHAPE, 'forward', { maxBindingBytes: 1 << 20 })).toEqual({ ...choice, maxBindingBytes: 1 << 20 });
      // A caller's own choice wins.
      expect(withTunedConv3dOptions(g, SHAPE, 'forward', { direct: !software })).toEqual({ direct: !software });
      const shapes = recordConv3dShapes(() => runAll([outs[0], outs[1], outs[2]]));
      expect(shapes.map((s) => conv3dShapeKey(s.shape, s.pass))).toEqual(['forward', 'data', 'weight'].map((p) => conv3dShapeKey(SHAPE, p as Conv3dPass)));
    } finally {
      disableConv3dTuning(g);
    }
    runAll([outs[3], outs[4], outs[5]], defaultConv3dChoice(g));
    for (let i = 0; i < 3; i++) {
      const n = [ny, nx, nw][i];
      const tunedOut = await download(g, outs[i], n);
      const defaultOut = await download(g, outs[i + 3], n);
      expect(tunedOut.some((v) => v !== 0)).toBe(true);
      expectClose(tunedOut, defaultOut, 1e-4, 1e-4);
    }
    // The launchers really consult the look-up: an invalid tuned tile makes them throw.
    const bad = { ...file, adapters: { [adapterKey(g)]: { adapter: g.adapter, shapes: { [conv3dShapeKey(SHAPE, 'forward')]: { options: { direct: false, tile: { bm: 3, bn: 5, bk: 8, tm: 2, tn: 2 } } } } } } };
    await enableConv3dTuning(g, { store: memoryTuningStore(JSON.stringify(bad)) });
    try {
      expect(() => conv3dForward(g, x, w, null, outs[0], SHAPE)).toThrow(/conv3d forward: tile .* is invalid here/);
    } finally {
      disableConv3dTuning(g);
    }
    conv3dForward(g, x, w, null, outs[0], SHAPE);
    for (const b of [x, w, gy, ...outs]) g.pool.release(b);
  });
});
