/**
 * The DICOM reader against series pydicom wrote (scripts/make_dicom_fixtures.py: expected HU, shape and affine
 * computed there with numpy) and against Debian's dcm2niix on the same files (its committed output, and a fresh
 * run when dcm2niix is installed): every voxel compared at the same world position.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { parseDodnetList, parseMsdDataset } from '../../src/data/datasets.js';
import { listDicomSeries, readDicomSeries, unzipDicomFiles, type DicomFileBytes } from '../../src/data/dicom.js';
import { listDicomInput, readCtInput, readDicomInput } from '../../src/data/dicom-file.js';
import { readNiftiFile } from '../../src/data/nifti-file.js';
import type { NiftiVolume } from '../../src/data/nifti.js';

const ROOT = join(import.meta.dirname, '..', 'golden', 'dicom');

interface Expected {
  modality: string;
  shape: number[];
  spacing: number[];
  affine: number[];
  hu: number[];
}
const EXPECTED = JSON.parse(readFileSync(join(ROOT, 'expected.json'), 'utf8')) as Record<string, Record<string, Expected> | string>;
const expectedOf = (folder: string) => EXPECTED[folder] as Record<string, Expected>;

function folderFiles(folder: string): DicomFileBytes[] {
  const dir = join(ROOT, folder);
  return readdirSync(dir).sort().map((f) => ({ name: join(dir, f), bytes: new Uint8Array(readFileSync(join(dir, f))) }));
}

function checkAgainstExpected(v: NiftiVolume, e: Expected): void {
  expect(v.shape).toEqual(e.shape);
  v.spacing.forEach((s, i) => expect(s).toBeCloseTo(e.spacing[i], 4));
  v.affine.forEach((a, i) => expect(a).toBeCloseTo(e.affine[i], 3));
  expect(Array.from(v.data)).toEqual(e.hu);
}

function invert4(m: readonly number[]): number[] {
  // 3x3 block inverse (the last row is 0 0 0 1).
  const [a, b, c, d, e, f, g, h, i] = [m[0], m[1], m[2], m[4], m[5], m[6], m[8], m[9], m[10]];
  const det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  const r = [(e * i - f * h), -(b * i - c * h), (b * f - c * e), -(d * i - f * g), (a * i - c * g), -(a * f - c * d), (d * h - e * g), -(a * h - b * g), (a * e - b * d)].map((x) => x / det);
  const t = [m[3], m[7], m[11]];
  const ti = [0, 1, 2].map((row) => -(r[3 * row] * t[0] + r[3 * row + 1] * t[1] + r[3 * row + 2] * t[2]));
  return [r[0], r[1], r[2], ti[0], r[3], r[4], r[5], ti[1], r[6], r[7], r[8], ti[2], 0, 0, 0, 1];
}

/** Every voxel of `other` found at the same world position in `ours` (grids equal up to axis flips). */
function sameInWorld(ours: NiftiVolume, other: NiftiVolume): { compared: number; maxDiff: number; offGrid: number } {
  const inv = invert4(ours.affine);
  const [X, Y, Z] = other.shape;
  let compared = 0, maxDiff = 0, offGrid = 0;
  for (let k = 0; k < Z; k++) {
    for (let j = 0; j < Y; j++) {
      for (let i = 0; i < X; i++) {
        const a = other.affine;
        const w = [0, 1, 2].map((r) => a[4 * r] * i + a[4 * r + 1] * j + a[4 * r + 2] * k + a[4 * r + 3]);
        const idx = [0, 1, 2].map((r) => inv[4 * r] * w[0] + inv[4 * r + 1] * w[1] + inv[4 * r + 2] * w[2] + inv[4 * r + 3]);
        const r = idx.map(Math.round);
        if (idx.some((x, q) => Math.abs(x - r[q]) > 1e-2) || r.some((x, q) => x < 0 || x >= ours.shape[q])) {
          offGrid++;
          continue;
        }
        const mine = ours.data[r[0] + ours.shape[0] * (r[1] + ours.shape[1] * r[2])];
        maxDiff = Math.max(maxDiff, Math.abs(mine - other.data[i + X * (j + Y * k)]));
        compared++;
      }
    }
  }
  return { compared, maxDiff, offGrid };
}

describe('DICOM series written by pydicom', () => {
  it('axial: slices ordered by position, not by (shuffled) file name or by InstanceNumber; rows and columns kept apart; HU via RescaleIntercept', () => {
    const [uid, e] = Object.entries(expectedOf('axial'))[0];
    const v = readDicomSeries(folderFiles('axial'));
    expect(v.series.uid).toBe(uid);
    expect(v.series.modality).toBe('CT');
    checkAgainstExpected(v, e);
  });

  it('InstanceNumber shuffled as well: still the order of positions', async () => {
    const [, e] = Object.entries(expectedOf('shuffled_numbers'))[0];
    checkAgainstExpected(await readDicomInput(join(ROOT, 'shuffled_numbers')), e);
  });

  it('two series in one folder: listed, refused without a choice, chosen by UID, unique prefix or number', async () => {
    const dir = join(ROOT, 'two_series');
    const { series, lines } = await listDicomInput(dir);
    expect(series.map((s) => s.slices)).toEqual([8, 6]);
    expect(lines[0]).toMatch(/^1\. .*: CT "coronal", 8 images of 18x10$/);
    await expect(readDicomInput(dir)).rejects.toThrow(/holds 2 DICOM series; expected one, or a choice by SeriesInstanceUID[\s\S]*1\. [\d.]+: CT "coronal"[\s\S]*2\. [\d.]+: CT "axial 3 mm"/);
    for (const [uid, e] of Object.entries(expectedOf('two_series'))) {
      // The coronal one is implicit VR with RescaleSlope 2 and signed pixels; the axial one explicit VR.
      checkAgainstExpected(await readDicomInput(dir, { series: uid }), e);
    }
    const [coronalUid, coronal] = Object.entries(expectedOf('two_series'))[0];
    expect((await readDicomInput(dir, { series: '1' })).series.uid).toBe(series[0].uid);
    checkAgainstExpected(await readDicomInput(dir, { series: series[0].uid === coronalUid ? '1' : '2' }), coronal);
    await expect(readDicomInput(dir, { series: '1.2.826' })).rejects.toThrow(/series "1\.2\.826" matches 2 series; expected a SeriesInstanceUID/);
    await expect(readDicomInput(dir, { series: '9.9' })).rejects.toThrow(/matches no series/);
  });

  it('a missing slice is refused with the two files on either side of the gap', async () => {
    await expect(readDicomInput(join(ROOT, 'missing_slice'))).rejects.toThrow(/1 slice missing: \S+\.dcm and \S+\.dcm are 4\.000 mm apart along the slice normal, the other neighbours 2\.000 mm/);
  });

  it('an MR series is read and says it is MR (the CLI and the page refuse or warn on it)', async () => {
    const v = await readDicomInput(join(ROOT, 'mr'));
    expect(v.series.modality).toBe('MR');
    checkAgainstExpected(v, Object.values(expectedOf('mr'))[0]);
  });

  it('gantry tilt: refused with the angle, or kept as a sheared affine with allowTilt', async () => {
    const dir = join(ROOT, 'tilt');
    await expect(readDicomInput(dir)).rejects.toThrow(/gantry tilt: the slices step 15\.00 degrees off their normal \(GantryDetectorTilt \(0018,1120\) 15 degrees\)/);
    const v = await readDicomInput(dir, { allowTilt: true });
    expect(v.gantryTiltDegrees).toBe(15);
    expect(v.notes.join()).toMatch(/gantry tilt of 15\.00 degrees/);
    checkAgainstExpected(v, Object.values(expectedOf('tilt'))[0]);
  });

  it('a zip of the folder, a single file standing for its series, and stray files skipped', async () => {
    const files = folderFiles('two_series');
    const zip = zipSync(Object.fromEntries([...files.map((f) => [`export/${f.name.split('/').pop()}`, f.bytes]), ['export/README.txt', new TextEncoder().encode('hello')], ['__MACOSX/x', new Uint8Array(3)]]));
    const unzipped = unzipDicomFiles(zip, 'study.zip');
    expect(unzipped.length).toBe(files.length + 1);
    const [uid, e] = Object.entries(expectedOf('two_series'))[1];
    const v = readDicomSeries(unzipped, { series: uid, name: 'study.zip' });
    checkAgainstExpected(v, e);
    expect(v.notes).toEqual(['skipped study.zip:export/README.txt (not a DICOM Part 10 file)']);
    // One file of the folder: its own series, not the other one.
    const one = files.find((f) => listDicomSeries([f])[0].uid === uid);
    const { volume, dicom } = await readCtInput(one?.name ?? '');
    expect(dicom?.series.uid).toBe(uid);
    checkAgainstExpected(volume, e);
  });

  it('refuses a compressed transfer syntax, pixel data cut short, no images, a broken file, each by name', () => {
    const files = folderFiles('axial');
    const rle = files.map((f) => ({ ...f, bytes: relabelTransferSyntax(f.bytes, '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.5') }));
    expect(() => readDicomSeries(rle)).toThrow(/uses transfer syntax 1\.2\.840\.10008\.1\.2\.5 \(RLE lossless\); expected uncompressed pixels.*Decompress first/);
    expect(() => readDicomSeries([{ name: 'notes.txt', bytes: new Uint8Array(300) }], { name: 'inbox' })).toThrow(/inbox: no DICOM image among 1 file; skipped notes\.txt \(not a DICOM Part 10 file\)/);
    const broken = files[0].bytes.slice(0, 400);
    expect(() => readDicomSeries([{ name: 'cut.dcm', bytes: broken }])).toThrow(/cut\.dcm: /);
    const short = files.map((f, i) => (i === 3 ? { ...f, bytes: f.bytes.slice(0, f.bytes.length - 100) } : f));
    expect(() => readDicomSeries(short)).toThrow(/(pixel data|not a readable DICOM file)/);
  });
});

/** Same-length swap of the transfer syntax UID in the meta header (pixels stay raw: the reader must refuse first). */
function relabelTransferSyntax(bytes: Uint8Array, from: string, to: string): Uint8Array {
  const text = new TextDecoder('latin1').decode(bytes.subarray(0, 400));
  const at = text.indexOf(from);
  if (at < 0 || from.length !== to.length) throw new Error('transfer syntax not found');
  const out = bytes.slice();
  out.set(new TextEncoder().encode(to), at);
  return out;
}

describe('the same series through Debian dcm2niix', () => {
  const compare = async (d2nRoot: string) => {
    const rows: string[] = [];
    for (const folder of ['axial', 'shuffled_numbers', 'two_series', 'mr']) {
      for (const uid of Object.keys(expectedOf(folder))) {
        const theirs = await readNiftiFile(join(d2nRoot, folder, `${uid}.nii`));
        const ours = await readDicomInput(join(ROOT, folder), { series: uid });
        const r = sameInWorld(ours, theirs);
        rows.push(`${folder} ${uid.slice(-6)}: ${r.compared} voxels, max |HU diff| ${r.maxDiff}, off grid ${r.offGrid}`);
        expect(theirs.shape.reduce((a, b) => a * b)).toBe(ours.data.length);
        expect(r).toEqual({ compared: ours.data.length, maxDiff: 0, offGrid: 0 });
      }
    }
    return rows;
  };

  it('the committed dcm2niix output: every voxel at the same world position has the same HU', async () => {
    await compare(join(ROOT, 'dcm2niix'));
  });

  it('a missing slice: dcm2niix writes nine slices at an even 2 mm, a geometry that is off (the reason the reader refuses)', async () => {
    // 16 mm long, where the series spans 18 mm with a 4 mm gap.
    const [gapUid] = Object.keys(expectedOf('missing_slice'));
    const gap = await readNiftiFile(join(ROOT, 'dcm2niix', 'missing_slice', `${gapUid}.nii`));
    expect(gap.shape[2]).toBe(9);
    expect(gap.spacing[2]).toBeCloseTo(2, 4);
  });

  it('gantry tilt: dcm2niix keeps the shear in its plain output as allowTilt does, voxel for voxel at the same world positions', async () => {
    const [tiltUid] = Object.keys(expectedOf('tilt'));
    const theirs = await readNiftiFile(join(ROOT, 'dcm2niix', 'tilt', `${tiltUid}.nii`));
    const ours = await readDicomInput(join(ROOT, 'tilt'), { allowTilt: true });
    // The slice step has a y part of 2 mm x tan 15 degrees.
    expect(Math.abs(ours.affine[6])).toBeCloseTo(2 * Math.tan((15 * Math.PI) / 180), 3);
    expect(sameInWorld(ours, theirs)).toEqual({ compared: ours.data.length, maxDiff: 0, offGrid: 0 });
  });

  const hasDcm2niix = spawnSync('dcm2niix', ['-h'], { stdio: 'ignore' }).error === undefined;
  it.skipIf(!hasDcm2niix)('a fresh dcm2niix run agrees too (dcm2niix installed)', async () => {
    const out = mkdtempSync(join(tmpdir(), 'tgnet-dcm2niix-'));
    try {
      for (const folder of ['axial', 'shuffled_numbers', 'two_series', 'mr']) {
        mkdirSync(join(out, folder));
        execFileSync('dcm2niix', ['-z', 'n', '-b', 'n', '-f', '%j', '-o', join(out, folder), join(ROOT, folder)], { stdio: 'ignore' });
      }
      await compare(out);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

describe('dataset files naming DICOM series', () => {
  it('an image may be a folder written with a trailing slash or a .zip; a label stays NIfTI', () => {
    const cases = parseMsdDataset({ training: [
      { image: './imagesTr/liver_0/', label: './labelsTr/liver_0.nii.gz' },
      { image: './imagesTr/liver_1.zip', label: './labelsTr/liver_1.nii.gz' },
    ] }, '/data/Task03_Liver');
    expect(cases.map((c) => [c.id, c.image])).toEqual([['Task03_Liver/liver_0', '/data/Task03_Liver/imagesTr/liver_0/'], ['Task03_Liver/liver_1', '/data/Task03_Liver/imagesTr/liver_1.zip']]);
    expect(() => parseMsdDataset({ training: [{ image: './imagesTr/liver_0', label: './labelsTr/liver_0.nii.gz' }] }, '/data/Task03_Liver'))
      .toThrow(/field training\[0\]\.image "\.\/imagesTr\/liver_0" does not name a \.nii or \.nii\.gz file \(nor a DICOM series: a folder written with a trailing \/, or a \.zip\)/);
    expect(() => parseMsdDataset({ training: [{ image: './imagesTr/liver_0/', label: './labelsTr/liver_0/' }] }, '/data/Task03_Liver'))
      .toThrow(/field training\[0\]\.label "\.\/labelsTr\/liver_0\/" does not name a \.nii or \.nii\.gz file;/);
    expect(parseDodnetList('0Liver/imagesTr/liver_3/ 0Liver/labelsTr/liver_3.nii.gz\n', '/d').map((c) => c.id)).toEqual(['0Liver/liver_3']);
  });
});
