import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { NUM_TASKS, TASKS, UNLABELLED, labelToTarget, taskById, taskFromName } from '../../src/data/tasks.js';

/** LABELLED of the PyTorch twin (bench/torch/tgnet_torch.py): task -> (organ annotated, tumour annotated). */
const LABELLED: Record<number, [number, number]> = { 0: [1, 1], 1: [1, 1], 2: [1, 1], 3: [1, 1], 4: [0, 1], 5: [0, 1], 6: [1, 0] };

describe('task table', () => {
  it('has the seven tasks in DoDNet order with their dataset names', () => {
    expect(NUM_TASKS).toBe(7);
    expect(TASKS.map((t) => t.key)).toEqual(['liver', 'kidney', 'hepatic_vessel', 'pancreas', 'colon', 'lung', 'spleen']);
    expect(TASKS.map((t) => t.datasetName)).toEqual(['Task03_Liver', 'KiTS19', 'Task08_HepaticVessel', 'Task07_Pancreas', 'Task10_Colon', 'Task06_Lung', 'Task09_Spleen']);
    TASKS.forEach((t, i) => expect(t.id).toBe(i));
  });

  it('annotation flags equal the reference LABELLED table', () => {
    for (const t of TASKS) expect([Number(t.organLabelled), Number(t.tumourLabelled)]).toEqual(LABELLED[t.id]);
  });

  it('the hard-coded LABELLED copy matches the PyTorch twin\'s', () => {
    const text = readFileSync(new URL('../../bench/torch/tgnet_torch.py', import.meta.url), 'utf8');
    const m = /LABELLED = \{([^}]*)\}/.exec(text);
    expect(m).not.toBeNull();
    const parsed: Record<number, [number, number]> = {};
    for (const [, k, a, b] of (m?.[1] ?? '').matchAll(/(\d+): \((\d), (\d)\)/g)) parsed[Number(k)] = [Number(a), Number(b)];
    expect(parsed).toEqual(LABELLED);
  });

  it('recognises folder and dataset names', () => {
    expect(taskFromName('0Liver')?.id).toBe(0);
    expect(taskFromName('Task03_Liver')?.id).toBe(0);
    expect(taskFromName('KiTS19')?.id).toBe(1);
    expect(taskFromName('1Kidney')?.id).toBe(1);
    expect(taskFromName('Task08_HepaticVessel')?.id).toBe(2);
    expect(taskFromName('HepaticVessel')?.id).toBe(2);
    expect(taskFromName('Task007_Pancreas')?.id).toBe(3);
    expect(taskFromName('4Colon')?.id).toBe(4);
    expect(taskFromName('Task06_Lung')?.id).toBe(5);
    expect(taskFromName('6Spleen')?.id).toBe(6);
    expect(taskFromName('imagesTr')).toBeUndefined();
    expect(() => taskById(7)).toThrow(/task id is 7; expected an integer in \[0, 6\]/);
  });
});

describe('labelToTarget', () => {
  const label = new Uint8Array([0, 1, 2, 0, 2]);
  const expected: Record<number, [number[], number[]]> = {
    0: [[0, 1, 1, 0, 1], [0, 0, 1, 0, 1]],
    1: [[0, 1, 1, 0, 1], [0, 0, 1, 0, 1]],
    2: [[0, 1, 0, 0, 0], [0, 0, 1, 0, 1]], // hepatic vessel: organ = vessel (==1) only
    3: [[0, 1, 1, 0, 1], [0, 0, 1, 0, 1]],
    4: [[-1, -1, -1, -1, -1], [0, 1, 0, 0, 0]], // colon: tumour = label 1
    5: [[-1, -1, -1, -1, -1], [0, 1, 0, 0, 0]],
    6: [[0, 1, 0, 0, 0], [-1, -1, -1, -1, -1]], // spleen: organ = label 1
  };
  for (const t of TASKS) {
    it(`task ${t.id} ${t.key}: channels as DoDNet's id2trainId, unannotated channel = -1 exactly where LABELLED is 0`, () => {
      const target = labelToTarget(label, t.id);
      expect(Array.from(target.subarray(0, 5))).toEqual(expected[t.id][0]);
      expect(Array.from(target.subarray(5))).toEqual(expected[t.id][1]);
      const [organ, tumour] = LABELLED[t.id];
      expect(target[0] === UNLABELLED).toBe(organ === 0);
      expect(target[5] === UNLABELLED).toBe(tumour === 0);
      // Float labels (after resampling) give the same answer.
      expect(labelToTarget(Float32Array.from(label), t)).toEqual(target);
    });
  }

  it('writes into a provided buffer and checks its length', () => {
    const out = new Float32Array(10).fill(9);
    expect(labelToTarget(label, 0, out)).toBe(out);
    expect(out[2]).toBe(1);
    expect(() => labelToTarget(label, 0, new Float32Array(9))).toThrow(/out has length 9; expected 10/);
  });
});
