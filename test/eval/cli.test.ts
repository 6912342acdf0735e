/** tgnet predict and tgnet evaluate end to end on a synthetic phantom with a freshly initialised tiny model. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { evaluateCommand, parseEvaluateArgs } from '../../src/cli/evaluate.js';
import { parsePredictArgs, predictCommand } from '../../src/cli/predict.js';
import { readNiftiFile } from '../../src/data/nifti-file.js';
import { synthesizeDatasets } from '../../src/data/synth.js';
import { labelComponents, tumourMaxDroppedVoxelsFor } from '../../src/eval/postprocess.js';
import type { EvaluationReportJson } from '../../src/eval/report.js';
import { writeSafetensors, type SafeTensorInput } from '../../src/nn/safetensors.js';
import { TGNet } from '../../src/tgnet/model.js';
import { useGpu } from '../helpers/gpu.js';
import { dhwFromXyz } from '../../src/common/shape.js';

/** A whole phantom body in a few voxels that claim CT-like sizes, so resampling to 1.5 x 0.8 x 0.8 mm stays cheap. */
const SMALL_BODY = { spacing: [0.8, 0.8, 2.5] as [number, number, number], fitToGrid: true };

useGpu();
const dir = mkdtempSync(join(tmpdir(), 'tgnet-eval-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function writeCheckpoint(path: string): Promise<void> {
  const model = TGNet.create({ variant: 'tgnet', width: 2, seed: 11 });
  const tensors = new Map<string, SafeTensorInput>();
  for (const [name, p] of model.namedParameters()) tensors.set(`model.${name}`, { shape: p.shape, data: await p.toArray() });
  // A fresh model's logits sit near 0 (organ about +0.019, tumour -0.035, nearly constant): shift the
  // head's final biases (controller outputs 160 and 161) to the middle of that spread, so both channels have
  // foreground in many pieces and the post-processing has work to do.
  const bias = tensors.get('model.controller.bias')!.data as Float32Array;
  bias[160] -= 0.019;
  bias[161] += 0.035;
  model.dispose();
  // The crop in the metadata is overridden by --crop below.
  writeFileSync(path, writeSafetensors(tensors, { variant: 'tgnet', width: '2', numTasks: '7', crop: '[64, 192, 192]' }));
}

describe('tgnet predict / evaluate', () => {
  it('writes a uint8 label map on the input grid, then evaluates it against the truth and against itself', async () => {
    const [kidney] = await synthesizeDatasets({ outDir: join(dir, 'data'), cases: 1, size: [8, 24, 24], seed: 2, tasks: [1], ...SMALL_BODY });
    const image = join(kidney.root, kidney.cases[0].image);
    const ckpt = join(dir, 'tiny.safetensors');
    await writeCheckpoint(ckpt);
    const predDir = join(dir, 'pred');
    const out = join(predDir, 'kidney_000.nii.gz');
    const lines: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((s: string) => { lines.push(s); });

    await predictCommand(['--model', ckpt, '--input', image, '--task', 'kidney', '--out', out, '--crop', '16', '16', '16', '--batch', '4']);
    expect(lines.at(-1)).toMatch(/^wrote .*kidney_000\.nii\.gz: organ \d+ voxels, tumour \d+ voxels; \d+ tiles on a \d+x\d+x\d+ grid/);
    const input = await readNiftiFile(image);
    const pred = await readNiftiFile(out);
    expect(pred.header!.datatypeName).toBe('uint8');
    expect(pred.shape).toEqual(input.shape);
    pred.affine.forEach((v, i) => expect(v).toBeCloseTo(input.affine[i], 4));
    expect([...pred.data].every((v) => v === 0 || v === 1 || v === 2)).toBe(true);
    expect(pred.data.some((v) => v === 1)).toBe(true);
    // Post-processing held: at most two organ components (kidney), no tumour piece of 48 mm3 or less
    // (DoDNet's 50 voxels of 1.5 x 0.8 x 0.8 mm, counted on this grid).
    const shape = dhwFromXyz(pred.shape);
    const tumour = labelComponents(Uint8Array.from(pred.data, (v) => (v === 2 ? 1 : 0)), shape);
    const dropped = tumourMaxDroppedVoxelsFor(pred.spacing);
    expect(dropped).toBeGreaterThan(0);
    expect([...tumour.sizes].every((s) => s > dropped)).toBe(true);
    // Organ (at most 2 pieces) and tumour together cannot form more pieces than 2 + the tumour's.
    expect(labelComponents(Uint8Array.from(pred.data, (v) => (v >= 1 ? 1 : 0)), shape).count).toBeLessThanOrEqual(2 + tumour.count);

    // Against the dataset folder (labelsTr/ found, files matched by name).
    lines.length = 0;
    const json = join(dir, 'report.json');
    await evaluateCommand(['--pred', predDir, '--truth', kidney.root, '--task', '1', '--json', json]);
    const report = JSON.parse(readFileSync(json, 'utf8')) as EvaluationReportJson;
    expect(report.cases.map((c) => c.case)).toEqual(['kidney_000.nii.gz']);
    const c = report.cases[0];
    expect(c.organ!.dice).toBeGreaterThan(0);
    expect(c.organ!.dice).toBeLessThan(1);
    expect(c.organ!.truthVoxels).toBeGreaterThan(0);
    expect(c.organ!.predVoxels).toBe(pred.data.filter((v) => v >= 1).length);
    expect(c.organ!.hd95Mm).toBeGreaterThan(0);
    expect(c.organ!.hd95Voxels).toBeGreaterThan(0);
    expect(report.tasks[0].taskKey).toBe('kidney');
    expect(lines.join('\n')).toMatch(/kidney_000\.nii\.gz\s+kidney/);

    // Against itself: perfect scores.
    await evaluateCommand(['--pred', out, '--truth', out, '--task', 'kidney', '--json', json, '--quiet']);
    const self = JSON.parse(readFileSync(json, 'utf8')) as EvaluationReportJson;
    expect(self.cases[0].organ).toMatchObject({ dice: 1, hd95Mm: 0, hd95Voxels: 0 });
    expect(self.cases[0].tumour!.dice).toBe(1);
    expect(self.cases[0].tumour!.hd95Mm).toBe(0);
    vi.restoreAllMocks();
  });

  it('names missing files, bad flags and unmatched cases', async () => {
    expect(() => parsePredictArgs(['--model', 'm', '--input', 'i', '--task', 'brain', '--out', 'o.nii.gz'])).toThrow(/--task is "brain"; expected one of 0\/liver/);
    expect(() => parsePredictArgs(['--model', 'm', '--input', 'i', '--task', 'liver', '--out', 'o.png'])).toThrow(/--out is "o.png"; expected a .nii or .nii.gz/);
    expect(() => parsePredictArgs(['--model', 'm', '--input', 'i', '--task', '0', '--out', 'o.nii', '--crop', '16', '20', '16'])).toThrow(/--crop H is "20"; expected a positive multiple of 16/);
    expect(() => parsePredictArgs(['--input', 'i', '--task', '0', '--out', 'o.nii'])).toThrow(/--model FILE is required/);
    expect(parsePredictArgs(['--model', 'm', '--input', 'i', '--task', 'Task03_Liver', '--out', 'o.nii', '--native-spacing', '--flips']))
      .toMatchObject({ task: 0, spacingZYX: null, flips: true, overlap: 0.5, batch: 1 });
    await expect(predictCommand(['--model', join(dir, 'nope.safetensors'), '--input', join(dir, 'nope.nii.gz'), '--task', '0', '--out', join(dir, 'x.nii.gz'), '--quiet']))
      .rejects.toThrow(/nope\.nii\.gz: cannot read NIfTI file/);
    expect(() => parseEvaluateArgs(['--pred', 'p', '--truth', 't'])).toThrow(/--task TASK is required/);
    await expect(evaluateCommand(['--pred', join(dir, 'missing'), '--truth', dir, '--task', '0'])).rejects.toThrow(/--pred .*missing cannot be read/);
    const lone = join(dir, 'lone');
    await mkdir(lone, { recursive: true });
    await copyFile(join(dir, 'pred', 'kidney_000.nii.gz'), join(lone, 'other.nii.gz'));
    await expect(evaluateCommand(['--pred', lone, '--truth', join(dir, 'pred'), '--task', '1'])).rejects.toThrow(/prediction .*other\.nii\.gz has no ground truth .*pred\/other\.nii\.gz/);
  });
});
