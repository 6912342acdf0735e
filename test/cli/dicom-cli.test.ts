/**
 * tgnet predict and evaluate on DICOM series pydicom wrote (test/golden/dicom, scripts/make_dicom_fixtures.py):
 * the mask of a DICOM folder equals the mask of dcm2niix's NIfTI of the same series at every world position,
 * the mask lands in the series' geometry, several series need --series, a non-CT series needs --allow-non-ct,
 * and an MSD dataset whose images are DICOM folders evaluates.
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { evaluateCommand } from '../../src/cli/evaluate.js';
import { predictCommand } from '../../src/cli/predict.js';
import { readDicomInput } from '../../src/data/dicom-file.js';
import { readNiftiFile } from '../../src/data/nifti-file.js';
import { writeSafetensors, type SafeTensorInput } from '../../src/nn/safetensors.js';
import { TGNet } from '../../src/tgnet/model.js';
import { useGpu } from '../helpers/gpu.js';

useGpu();
const ROOT = join(import.meta.dirname, '..', 'golden', 'dicom');
const dir = mkdtempSync(join(tmpdir(), 'tgnet-dicom-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const expected = JSON.parse(readFileSync(join(ROOT, 'expected.json'), 'utf8')) as Record<string, Record<string, unknown>>;
const uidsOf = (folder: string) => Object.keys(expected[folder]);

async function tinyCheckpoint(path: string, tumourBias: number): Promise<void> {
  const model = TGNet.create({ variant: 'tgnet', width: 2, seed: 5 });
  const tensors = new Map<string, SafeTensorInput>();
  for (const [name, p] of model.namedParameters()) tensors.set(`model.${name}`, { shape: p.shape, data: await p.toArray() });
  // A fresh model's tumour logit is nearly constant (and positive on these series): shifted to the middle of its
  // spread on the test series (the search below), so the mask has tumour and the rest to compare.
  (tensors.get('model.controller.bias')!.data as Float32Array)[161] += tumourBias;
  model.dispose();
  writeFileSync(path, writeSafetensors(tensors, { variant: 'tgnet', width: '2', numTasks: '7', crop: '[16, 16, 16]' }));
}

describe('tgnet predict / evaluate on DICOM', () => {
  const ckpt = join(dir, 'tiny.safetensors');
  const common = ['--task', 'liver', '--native-spacing', '--no-postprocess', '--quiet'];

  it('a DICOM folder segments as dcm2niix\'s NIfTI of the same series does, and the mask lands in the series geometry', async () => {
    const [uid] = uidsOf('axial');
    const fromDicom = join(dir, 'dicom.nii.gz');
    // A bias that splits the series' voxels into tumour and the rest, by bisection.
    let lo = -1, hi = 1;
    for (let step = 0; step < 30; step++) {
      const mid = (lo + hi) / 2;
      await tinyCheckpoint(ckpt, mid);
      await predictCommand(['--model', ckpt, '--input', join(ROOT, 'axial'), '--out', fromDicom, '--flips', ...common]);
      const m = (await readNiftiFile(fromDicom)).data;
      const fraction = m.reduce((s, v) => s + (v === 2 ? 1 : 0), 0) / m.length;
      if (fraction > 0.3 && fraction < 0.7) break;
      if (fraction >= 0.7) hi = mid; else lo = mid;
    }
    const fromNifti = join(dir, 'nifti.nii.gz');
    const lines: string[] = [];
    const spy = vi.spyOn(console, 'log').mockImplementation((s: string) => { lines.push(s); });
    // --flips: the 8-mirror average makes the network's answer mirror the input's mirroring (dcm2niix flips rows).
    await predictCommand(['--model', ckpt, '--input', join(ROOT, 'axial'), '--out', fromDicom, '--flips', ...common.filter((a) => a !== '--quiet')]);
    spy.mockRestore();
    expect(lines[0]).toMatch(new RegExp(`^DICOM series ${uid.replace(/\./g, '\\.')}: CT "axial 2\\.5 mm", 12 images of 20x16: 20x16x12 voxels \\(x y z\\) of 0\\.8 x 0\\.7 x 2\\.5 mm$`));
    await predictCommand(['--model', ckpt, '--input', join(ROOT, 'dcm2niix', 'axial', `${uid}.nii`), '--out', fromNifti, '--flips', ...common]);
    const series = await readDicomInput(join(ROOT, 'axial'));
    const a = await readNiftiFile(fromDicom);
    const b = await readNiftiFile(fromNifti);
    expect(a.shape).toEqual(series.shape);
    a.affine.forEach((v, i) => expect(v).toBeCloseTo(series.affine[i], 4));
    // dcm2niix stores rows bottom-up (j flipped): compare at the same world position, not the same index.
    const [X, Y, Z] = a.shape;
    let same = 0, tumour = 0;
    const jFlipped = Math.sign(a.affine[5]) !== Math.sign(b.affine[5]);
    for (let k = 0; k < Z; k++) for (let j = 0; j < Y; j++) for (let i = 0; i < X; i++) {
      const va = a.data[i + X * (j + Y * k)];
      const vb = b.data[i + X * ((jFlipped ? Y - 1 - j : j) + Y * k)];
      if (va === vb) same++;
      if (va === 2) tumour++;
    }
    expect(jFlipped).toBe(true);
    expect(tumour / (X * Y * Z)).toBeGreaterThan(0.3);
    expect(tumour / (X * Y * Z)).toBeLessThan(0.7);
    // The rows (16, one tile) are mirrored and nothing else: with the mirror average the same up to rounding at the threshold.
    expect(same / (X * Y * Z)).toBeGreaterThan(0.995);
  });

  it('two series: the error lists them; --series by number or UID; a zip works; an MR series needs --allow-non-ct', async () => {
    const two = join(ROOT, 'two_series');
    await expect(predictCommand(['--model', ckpt, '--input', two, '--out', join(dir, 'x.nii.gz'), ...common]))
      .rejects.toThrow(/holds 2 DICOM series; expected one, or a choice by SeriesInstanceUID \(--series UID, or its number\):\n {2}1\. [\d.]+: CT "coronal", 8 images of 18x10\n {2}2\. [\d.]+: CT "axial 3 mm", 6 images of 12x14/);
    const [coronal, axial] = uidsOf('two_series');
    const out2 = join(dir, 'two-2.nii.gz');
    await predictCommand(['--model', ckpt, '--input', two, '--series', '2', '--out', out2, ...common]);
    expect((await readNiftiFile(out2)).shape).toEqual([12, 14, 6]);
    const zip = join(dir, 'two.zip');
    writeFileSync(zip, zipSync(Object.fromEntries(readdirSync(two).map((f) => [`study/${f}`, new Uint8Array(readFileSync(join(two, f)))]))));
    const outZip = join(dir, 'two-zip.nii.gz');
    await predictCommand(['--model', ckpt, '--input', zip, '--series', coronal, '--out', outZip, ...common]);
    const coronalMask = await readNiftiFile(outZip);
    expect(coronalMask.shape).toEqual([18, 10, 8]);
    // Coronal: the slice normal is y, so the mask's affine says so (rows run down z, slices along -y in RAS).
    const series = await readDicomInput(two, { series: coronal });
    coronalMask.affine.forEach((v, i) => expect(v).toBeCloseTo(series.affine[i], 4));
    expect(axial).not.toBe(coronal);
    await expect(predictCommand(['--model', ckpt, '--input', join(ROOT, 'mr'), '--out', join(dir, 'mr.nii.gz'), ...common]))
      .rejects.toThrow(/has Modality "MR"; expected CT \(the model reads HU\)\. Pass --allow-non-ct to segment it anyway/);
    await predictCommand(['--model', ckpt, '--input', join(ROOT, 'mr'), '--out', join(dir, 'mr.nii.gz'), '--allow-non-ct', ...common]);
    await expect(predictCommand(['--model', ckpt, '--input', join(ROOT, 'missing_slice'), '--out', join(dir, 'gap.nii.gz'), ...common]))
      .rejects.toThrow(/1 slice missing/);
    await expect(predictCommand(['--model', ckpt, '--input', join(ROOT, 'tilt'), '--out', join(dir, 'tilt.nii.gz'), ...common]))
      .rejects.toThrow(/gantry tilt: the slices step 15\.00 degrees off their normal/);
    const tiltOut = join(dir, 'tilt.nii.gz');
    await predictCommand(['--model', ckpt, '--input', join(ROOT, 'tilt'), '--out', tiltOut, '--allow-tilt', ...common]);
    const tilted = await readDicomInput(join(ROOT, 'tilt'), { allowTilt: true });
    (await readNiftiFile(tiltOut)).affine.forEach((v, i) => expect(v).toBeCloseTo(tilted.affine[i], 4));
    await expect(predictCommand(['--model', ckpt, '--input', join(ROOT, 'dcm2niix', 'mr', `${uidsOf('mr')[0]}.nii`), '--series', '1', '--out', join(dir, 'y.nii.gz'), ...common]))
      .rejects.toThrow(/--series 1 given for a NIfTI file/);
  });

  it('evaluate --model on an MSD dataset whose images are DICOM folders (and a zip)', async () => {
    const data = join(dir, 'Task03_Liver');
    mkdirSync(join(data, 'imagesTr'), { recursive: true });
    mkdirSync(join(data, 'labelsTr'), { recursive: true });
    cpSync(join(ROOT, 'axial'), join(data, 'imagesTr', 'liver_0'), { recursive: true });
    const shuffled = join(ROOT, 'shuffled_numbers');
    writeFileSync(join(data, 'imagesTr', 'liver_1.zip'), zipSync(Object.fromEntries(readdirSync(shuffled).map((f) => [f, new Uint8Array(readFileSync(join(shuffled, f)))]))));
    // Labels: the masks predict wrote, in each series' geometry.
    await predictCommand(['--model', ckpt, '--input', join(data, 'imagesTr', 'liver_0'), '--out', join(data, 'labelsTr', 'liver_0.nii.gz'), ...common]);
    await predictCommand(['--model', ckpt, '--input', join(data, 'imagesTr', 'liver_1.zip'), '--out', join(data, 'labelsTr', 'liver_1.nii.gz'), ...common]);
    writeFileSync(join(data, 'dataset.json'), JSON.stringify({
      name: 'Liver', training: [{ image: './imagesTr/liver_0/', label: './labelsTr/liver_0.nii.gz' }, { image: './imagesTr/liver_1.zip', label: './labelsTr/liver_1.nii.gz' }],
    }));
    const json = join(dir, 'report.json');
    await evaluateCommand(['--model', ckpt, '--data', data, '--spacing', 'native', '--tile', '16', '16', '16', '--quiet', '--json', json]);
    const report = JSON.parse(readFileSync(json, 'utf8')) as { models: { cases: { name: string; organ: { dice: number } }[] }[] };
    const text = JSON.stringify(report);
    // The label is the model's own mask before post-processing; evaluate post-processes, so near 1, not exactly.
    expect(text).toMatch(/liver_0/);
    expect(text).toMatch(/liver_1/);
  });
});
