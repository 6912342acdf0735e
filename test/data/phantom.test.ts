import { describe, it, expect } from 'vitest';
import { Structure, generatePhantom, phantomCaseSeed, phantomTaskLabel, tumourOfTask } from '../../src/data/phantom.js';
import { TASKS } from '../../src/data/tasks.js';

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
    // Anisotropic spacing within the documented ranges.
    expect(p.spacing[0]).toBe(p.spacing[1]);
    expect(p.spacing[0]).toBeGreaterThanOrEqual(0.7);
    expect(p.spacing[0]).toBeLessThanOrEqual(1);
    expect([2, 2.5, 3]).toContain(p.spacing[2]);
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
