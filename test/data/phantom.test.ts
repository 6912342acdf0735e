import { describe, it, expect } from 'vitest';
import { createHash } from 'node:crypto';
import { Structure, generatePhantom, phantomCaseSeed, phantomFieldSize, phantomFieldSpacing, phantomTaskLabel, tumourOfTask } from '../../src/data/phantom.js';
import { TASKS, taskByKey } from '../../src/data/tasks.js';
import { caseGrid } from '../../src/data/synth.js';
import { parseSynthArgs } from '../../src/cli/synth.js';

const SIZE: [number, number, number] = [24, 48, 48];

function count(a: Uint8Array, v: number): number {
  let n = 0;
  for (const x of a) if (x === v) n++;
  return n;
}

function meanHu(p: { hu: Int16Array; structures: Uint8Array }, id: number): number {
  let sum = 0;
  let n = 0;
  p.structures.forEach((s, i) => {
    if (s === id) {
      sum += p.hu[i];
      n++;
    }
  });
  return sum / n;
}

describe('phantom generator', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = generatePhantom({ size: SIZE, seed: 7 });
    const b = generatePhantom({ size: SIZE, seed: 7 });
    const c = generatePhantom({ size: SIZE, seed: 8 });
    expect(a.hu).toEqual(b.hu);
    expect(a.structures).toEqual(b.structures);
    expect(a.spacing).toEqual(b.spacing);
    expect(a.hu).not.toEqual(c.hu);
    expect(a.shape).toEqual([48, 48, 24]);
  });

  it('has every organ, with CT-like intensities', () => {
    const p = generatePhantom({ size: SIZE, seed: 1, requireTumours: ['liver', 'kidney', 'pancreas', 'colon', 'lung'] });
    for (const id of Object.values(Structure)) expect(count(p.structures, id), `structure ${id}`).toBeGreaterThan(0);
    expect(meanHu(p, Structure.air)).toBeLessThan(-950);
    expect(meanHu(p, Structure.lung)).toBeLessThan(-700);
    expect(meanHu(p, Structure.fat)).toBeGreaterThan(-130);
    expect(meanHu(p, Structure.fat)).toBeLessThan(-60);
    expect(meanHu(p, Structure.bone)).toBeGreaterThan(250);
    expect(meanHu(p, Structure.liver)).toBeGreaterThan(80);
    expect(meanHu(p, Structure.liverTumour)).toBeLessThan(meanHu(p, Structure.liver) - 20);
    expect(meanHu(p, Structure.kidney)).toBeGreaterThan(100);
    // The lungs are in the upper (superior, high z) slices only.
    const [nx, ny, nz] = p.shape;
    let lowestLungSlice = nz;
    p.structures.forEach((s, i) => {
      if (s === Structure.lung) lowestLungSlice = Math.min(lowestLungSlice, Math.floor(i / (nx * ny)));
    });
    expect(lowestLungSlice).toBeGreaterThan(nz * 0.6);
    // Without a spacing the grid covers the 360 mm world: 360 / n mm per voxel.
    expect(p.spacing).toEqual([7.5, 7.5, 15]);
  });

  it('is one physical world: the demo\'s grid keeps version 2\'s bytes, a finer grid sees the same anatomy, a finer spacing a smaller field', () => {
    // SHA-256 (first 16 hex digits) of hu and structures from version 2 of the generator at the demo's grids:
    // the demo's phantoms (and its table) do not change with version 3.
    const hash = (p: { hu: Int16Array; structures: Uint8Array }) => createHash('sha256').update(new Uint8Array(p.hu.buffer)).update(p.structures).digest('hex').slice(0, 16);
    expect(hash(generatePhantom({ size: [16, 32, 32], seed: phantomCaseSeed(0, 0, 0), spacing: phantomFieldSpacing([16, 32, 32]), requireTumours: ['liver'] }))).toBe('34265cc21430b12c');
    expect(hash(generatePhantom({ size: [16, 32, 32], seed: 12345, spacing: [11.25, 11.25, 22.5], requireTumours: ['liver'] }))).toBe('128d58f0bce8b7f3');
    expect(hash(generatePhantom({ size: [32, 64, 64], seed: phantomCaseSeed(1, 3, 2), requireTumours: ['liver'] }))).toBe('2bffc8c0c73ad07f');
    expect(phantomFieldSize([11.25, 11.25, 22.5])).toEqual([16, 32, 32]);
    expect(phantomFieldSpacing([16, 32, 32])).toEqual([11.25, 11.25, 22.5]);

    // The same seed at twice the resolution: each organ's volume in mm3 within 15 % (lesions keep a minimum
    // radius in voxels, so tumours are left out), the body the same size.
    const coarse = generatePhantom({ size: [16, 32, 32], seed: 3 });
    const fine = generatePhantom({ size: [32, 64, 64], seed: 3 });
    const mm3 = (p: typeof coarse, id: number) => count(p.structures, id) * p.spacing[0] * p.spacing[1] * p.spacing[2];
    for (const id of [Structure.liver, Structure.kidney, Structure.spleen, Structure.fat, Structure.air]) {
      expect(mm3(fine, id) / mm3(coarse, id), `structure ${id}`).toBeGreaterThan(0.85);
      expect(mm3(fine, id) / mm3(coarse, id), `structure ${id}`).toBeLessThan(1.15);
    }
    // Half the spacing at the same grid: the central half of the world, so no air at all along the middle row.
    const zoomed = generatePhantom({ size: [16, 32, 32], seed: 3, spacing: [5.625, 5.625, 11.25] });
    const [nx, ny] = zoomed.shape;
    const row = (8 * ny + ny / 2) * nx;
    expect([...zoomed.structures.subarray(row, row + nx)].filter((v) => v === Structure.air)).toEqual([]);
    expect([...coarse.structures.subarray(row, row + nx)].filter((v) => v === Structure.air).length).toBeGreaterThan(0);
    expect(() => generatePhantom({ size: [16, 32, 32], seed: 0, spacing: [1, 0, 1] })).toThrow(/spacing\[1\] \(\[x, y, z\] mm\) is 0; expected a positive number of mm/);
  });

  for (const task of TASKS) {
    it(`task ${task.key}: labels cover only its own structures while the other organs are in the image`, () => {
      const tumour = tumourOfTask(task.id);
      const p = generatePhantom({ size: SIZE, seed: phantomCaseSeed(3, task.id, 0), requireTumours: tumour ? [tumour] : [], otherTumourProbability: 1 });
      const label = phantomTaskLabel(p, task.id);
      const own: Record<string, Record<number, number>> = {
        liver: { [Structure.liver]: 1, [Structure.hepaticVessel]: 1, [Structure.liverTumour]: 2 },
        kidney: { [Structure.kidney]: 1, [Structure.kidneyTumour]: 2 },
        hepatic_vessel: { [Structure.hepaticVessel]: 1, [Structure.liverTumour]: 2 },
        pancreas: { [Structure.pancreas]: 1, [Structure.pancreasTumour]: 2 },
        colon: { [Structure.colonTumour]: 1 },
        lung: { [Structure.lungTumour]: 1 },
        spleen: { [Structure.spleen]: 1 },
      };
      const mapping = own[task.key];
      p.structures.forEach((s, i) => {
        const want = mapping[s] ?? 0;
        if (label[i] !== want) throw new Error(`voxel ${i}: structure ${s} labelled ${label[i]}, expected ${want}`);
      });
      // Each annotated label value is present; everything else is unlabelled but present in the image.
      for (const value of new Set(Object.values(mapping))) expect(count(label, value)).toBeGreaterThan(0);
      for (const organ of [Structure.liver, Structure.kidney, Structure.pancreas, Structure.spleen, Structure.colon, Structure.lung]) {
        expect(count(p.structures, organ)).toBeGreaterThan(0);
      }
      const unlabelled = [Structure.liver, Structure.kidney, Structure.pancreas, Structure.spleen].filter((s) => mapping[s] === undefined);
      for (const s of unlabelled) {
        const i = p.structures.indexOf(s);
        expect(label[i]).toBe(0);
      }
    });
  }

  it('generates 32x64x64 well under a second', () => {
    const t0 = performance.now();
    generatePhantom({ size: [32, 64, 64], seed: 5, requireTumours: ['liver'] });
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('rejects bad sizes', () => {
    expect(() => generatePhantom({ size: [2, 64, 64], seed: 0 })).toThrow(/size\[0\] \(\[D, H, W\]\) is 2; expected an integer in \[4, 4096\]/);
  });
});

describe('tgnet synth grids', () => {
  it('--size sets the grid and the spacing follows, --spacing the other way round, --like msd draws MSD-like CT grids', () => {
    expect(caseGrid({ size: [16, 32, 32], seed: 0 }, 0, 0)).toEqual({ size: [16, 32, 32], spacing: [11.25, 11.25, 22.5] });
    expect(caseGrid({ spacing: [0.8, 0.8, 2.5], seed: 0 }, 0, 0)).toEqual({ size: [144, 450, 450], spacing: [0.8, 0.8, 2.5] });
    expect(caseGrid({ size: [8, 16, 16], spacing: [1, 1, 2], seed: 0 }, 0, 0)).toEqual({ size: [8, 16, 16], spacing: [1, 1, 2] });
    for (const key of ['liver', 'pancreas', 'lung'] as const) {
      for (let i = 0; i < 4; i++) {
        const g = caseGrid({ like: 'msd', seed: 1 }, taskByKey(key).id, i);
        expect(g.size.slice(1)).toEqual([512, 512]);
        expect(g.spacing[0]).toBe(g.spacing[1]);
        expect(g.spacing[0]).toBeGreaterThanOrEqual(0.6);
        expect(g.spacing[0]).toBeLessThanOrEqual(1);
        expect(g.size[0]).toBe(Math.round(360 / g.spacing[2]));
        if (key === 'pancreas') expect(g.spacing[2]).toBe(2.5);
      }
    }
    expect(parseSynthArgs(['--out', 'x', '--spacing', '2.5', '0.8', '0.8']).spacing).toEqual([2.5, 0.8, 0.8]);
    expect(() => parseSynthArgs(['--out', 'x', '--like', 'msd', '--size', '8', '16', '16'])).toThrow(/--like msd draws its own grids; expected it without --size and --spacing/);
    expect(() => parseSynthArgs(['--out', 'x', '--like', 'kits'])).toThrow(/--like is "kits"; expected/);
  });
});
