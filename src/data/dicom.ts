/**
 * DICOM CT series to a NIfTI-style volume, from files in memory (browser-safe: dicom-parser, fflate and typed
 * arrays). The Part 10 parsing is dicom-parser's; this module only turns parsed slices into one volume.
 *
 * Geometry follows the standard, not file names or InstanceNumber: slices are ordered by ImagePositionPatient
 * projected on the slice normal (ImageOrientationPatient's row x column direction), voxel i runs along the row
 * direction (columns, PixelSpacing[1] apart), j along the column direction (rows, PixelSpacing[0] apart), k
 * along the normal. The affine is DICOM's LPS with x and y negated (NIfTI's RAS+), the third column the mean
 * step between the first and last slice. Values are HU: stored value x RescaleSlope + RescaleIntercept.
 *
 * Refused, each with an error naming the file or series and what was expected: compressed transfer syntaxes
 * (JPEG, JPEG 2000, RLE, ...), multi-frame (enhanced) objects, colour images, slices that disagree on size,
 * orientation or spacing, two slices at one position, a gap in the positions (a missing slice) or uneven
 * spacing, and gantry tilt (positions that step off the normal) unless `allowTilt` keeps the sheared affine.
 * A folder holding several series needs `series` (a SeriesInstanceUID, a unique prefix of one, or its number
 * in the listing); the error lists them.
 */
import dicomParser, { type DataSet } from 'dicom-parser';
import { inflateSync, unzipSync } from 'fflate';
import type { NiftiVolume } from './nifti.js';
import type { XYZ } from '../common/shape.js';

/** One file as bytes; `name` labels errors (a path, or a name inside a zip). */
export interface DicomFileBytes {
  name: string;
  bytes: Uint8Array;
}

/** What the listing says of one series. */
export interface DicomSeriesInfo {
  /** SeriesInstanceUID (0020,000E). */
  uid: string;
  /** Modality (0008,0060): CT, MR, PT, ... */
  modality: string;
  /** SeriesDescription (0008,103E), '' when absent. */
  description: string;
  /** SeriesNumber (0020,0011), when present. */
  seriesNumber?: number;
  /** Image files of this series. */
  slices: number;
  rows: number;
  columns: number;
}

export interface DicomVolume extends NiftiVolume {
  series: DicomSeriesInfo;
  /** GantryDetectorTilt (0018,1120) in degrees, 0 when absent. */
  gantryTiltDegrees: number;
  /** Things the caller may want to show: files skipped, a tilt kept as a sheared affine. */
  notes: string[];
}

export interface ReadDicomOptions {
  /** SeriesInstanceUID (or a unique prefix of one, or its 1-based number in listDicomSeries' order). */
  series?: string;
  /** Keep a gantry-tilted series with its sheared affine instead of refusing it. */
  allowTilt?: boolean;
  /** Labels errors: the folder or zip the files came from. */
  name?: string;
}

const TRANSFER_SYNTAXES: Record<string, { name: string; littleEndian: boolean } | undefined> = {
  '1.2.840.10008.1.2': { name: 'implicit VR little endian', littleEndian: true },
  '1.2.840.10008.1.2.1': { name: 'explicit VR little endian', littleEndian: true },
  '1.2.840.10008.1.2.1.99': { name: 'deflated explicit VR little endian', littleEndian: true },
  '1.2.840.10008.1.2.2': { name: 'explicit VR big endian', littleEndian: false },
};

const COMPRESSED_NAMES: Record<string, string> = {
  '1.2.840.10008.1.2.4.50': 'JPEG baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG extended',
  '1.2.840.10008.1.2.4.57': 'JPEG lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS near-lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.5': 'RLE lossless',
};

/** DICOMDIR's SOP class: an index of a medium, not an image. */
const MEDIA_DIRECTORY = '1.2.840.10008.1.3.10';

/** What a zip may inflate to: past this no browser or Node heap holds the series anyway. */
const MAX_ZIP_BYTES = 4 * 1024 ** 3;

/** True for a zip archive (local file header signature). */
export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}

/** The files of a zip (folders, dot files and macOS's __MACOSX copies left out), named `zip:path` for errors. */
export function unzipDicomFiles(bytes: Uint8Array, name: string): DicomFileBytes[] {
  let total = 0;
  let entries: Record<string, Uint8Array>;
  const base = (path: string) => path.slice(path.lastIndexOf('/') + 1);
  try {
    entries = unzipSync(bytes, {
      filter: (f) => {
        const keep = !f.name.endsWith('/') && !f.name.startsWith('__MACOSX/') && !base(f.name).startsWith('.');
        if (keep) {
          total += f.originalSize;
          if (total > MAX_ZIP_BYTES) throw new Error(`inflates to more than ${MAX_ZIP_BYTES / 1024 ** 3} GiB; expected one CT series`);
        }
        return keep;
      },
    });
  } catch (e) {
    throw new Error(`${name}: not a readable zip (${(e as Error).message})`);
  }
  return Object.keys(entries).sort().map((k) => ({ name: `${name}:${k}`, bytes: entries[k] }));
}

/** True for a DICOM Part 10 file: the 128-byte preamble then "DICM". */
export function isDicomPart10(bytes: Uint8Array): boolean {
  return bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d;
}

interface Slice {
  file: string;
  ds: DataSet;
  uid: string;
  modality: string;
  description: string;
  seriesNumber?: number;
  rows: number;
  columns: number;
  position: [number, number, number];
  orientation: number[];
  pixelSpacing: [number, number];
  transferSyntax: string;
}

interface Parsed {
  slices: Slice[];
  skipped: string[];
}

function inflater(bytes: Uint8Array, position: number): Uint8Array {
  const inflated = inflateSync(bytes.subarray(position));
  const whole = new Uint8Array(position + inflated.length);
  whole.set(bytes.subarray(0, position));
  whole.set(inflated, position);
  return whole;
}

function numbers(ds: DataSet, tag: string, count: number): number[] | undefined {
  if (!ds.elements[tag]) return undefined;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const v = ds.floatString(tag, i);
    if (v === undefined || !Number.isFinite(v)) return undefined;
    out.push(v);
  }
  return out;
}

function parseFiles(files: readonly DicomFileBytes[]): Parsed {
  const slices: Slice[] = [];
  const skipped: string[] = [];
  for (const f of files) {
    if (!isDicomPart10(f.bytes)) {
      skipped.push(`${f.name} (not a DICOM Part 10 file)`);
      continue;
    }
    let ds: DataSet;
    try {
      // The typings say the inflater returns nothing; dicom-parser uses its result as the inflated stream.
      ds = dicomParser.parseDicom(f.bytes, { inflater: inflater as (a: Uint8Array, p: number) => void });
    } catch (e) {
      const err = e as { exception?: unknown; message?: string };
      const why = err.exception !== undefined ? String(err.exception) : err.message ?? String(e);
      throw new Error(`${f.name}: not a readable DICOM file (${why})`);
    }
    const sopClass = ds.string('x00020002') ?? ds.string('x00080016') ?? '';
    if (sopClass === MEDIA_DIRECTORY) {
      skipped.push(`${f.name} (a DICOMDIR index)`);
      continue;
    }
    if (!ds.elements.x7fe00010) {
      skipped.push(`${f.name} (no pixel data: SOP class ${sopClass || 'unknown'})`);
      continue;
    }
    const uid = ds.string('x0020000e');
    if (!uid) throw new Error(`${f.name}: SeriesInstanceUID (0020,000E) is missing; expected every image to name its series`);
    const position = numbers(ds, 'x00200032', 3);
    const orientation = numbers(ds, 'x00200037', 6);
    const pixelSpacing = numbers(ds, 'x00280030', 2);
    const rows = ds.uint16('x00280010') ?? 0;
    const columns = ds.uint16('x00280011') ?? 0;
    const missing = [
      !position && 'ImagePositionPatient (0020,0032)', !orientation && 'ImageOrientationPatient (0020,0037)',
      !pixelSpacing && 'PixelSpacing (0028,0030)', !rows && 'Rows (0028,0010)', !columns && 'Columns (0028,0011)',
    ].filter(Boolean);
    if (missing.length || !position || !orientation || !pixelSpacing) {
      throw new Error(`${f.name}: ${missing.join(', ')} missing or not numbers; expected the image plane module of a CT slice (a secondary capture or a screenshot has no 3-D geometry)`);
    }
    if (!(pixelSpacing[0] > 0 && pixelSpacing[1] > 0)) {
      throw new Error(`${f.name}: PixelSpacing (0028,0030) is ${pixelSpacing.join('\\')}; expected two positive sizes in mm`);
    }
    slices.push({
      file: f.name, ds, uid, rows, columns, transferSyntax: ds.string('x00020010') ?? '1.2.840.10008.1.2',
      modality: ds.string('x00080060') ?? '', description: ds.string('x0008103e') ?? '', seriesNumber: ds.intString('x00200011'),
      position: position as [number, number, number], orientation, pixelSpacing: pixelSpacing as [number, number],
    });
  }
  return { slices, skipped };
}

function groupSeries(slices: readonly Slice[]): Map<string, Slice[]> {
  const groups = new Map<string, Slice[]>();
  for (const s of slices) {
    const g = groups.get(s.uid);
    if (g) g.push(s); else groups.set(s.uid, [s]);
  }
  return groups;
}

function infoOf(group: readonly Slice[]): DicomSeriesInfo {
  const s = group[0];
  return { uid: s.uid, modality: s.modality, description: s.description, seriesNumber: s.seriesNumber, slices: group.length, rows: s.rows, columns: s.columns };
}

/** One line per series, as the errors and `tgnet predict` list them. */
export function describeDicomSeries(info: DicomSeriesInfo, index?: number): string {
  const number = index === undefined ? '' : `${index + 1}. `;
  const desc = info.description ? ` "${info.description}"` : '';
  return `${number}${info.uid}: ${info.modality || 'no modality'}${desc}, ${info.slices} image${info.slices === 1 ? '' : 's'} of ${info.columns}x${info.rows}`;
}

function sortedInfos(groups: Map<string, Slice[]>): DicomSeriesInfo[] {
  // Series number first (the order a viewer lists them), then UID, so numbers in the listing are stable.
  return [...groups.values()].map(infoOf).sort((a, b) => (a.seriesNumber ?? Infinity) - (b.seriesNumber ?? Infinity) || (a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0));
}

/** The series among `files`, in a stable order (SeriesNumber, then UID). Files that are not images are left out. */
export function listDicomSeries(files: readonly DicomFileBytes[]): DicomSeriesInfo[] {
  return sortedInfos(groupSeries(parseFiles(files).slices));
}

function pickSeries(groups: Map<string, Slice[]>, wanted: string | undefined, name: string): Slice[] {
  const infos = sortedInfos(groups);
  const listing = infos.map((info, i) => `  ${describeDicomSeries(info, i)}`).join('\n');
  if (wanted === undefined) {
    if (infos.length === 1) return groups.get(infos[0].uid) as Slice[];
    throw new Error(`${name}: holds ${infos.length} DICOM series; expected one, or a choice by SeriesInstanceUID (--series UID, or its number):\n${listing}`);
  }
  const w = wanted.trim();
  let hit = infos.filter((i) => i.uid === w);
  // A small number is the listing's (every UID starts with a digit, so as a prefix it would say nothing).
  if (hit.length === 0 && /^\d+$/.test(w) && Number(w) >= 1 && Number(w) <= infos.length) hit = [infos[Number(w) - 1]];
  if (hit.length === 0) hit = infos.filter((i) => i.uid.startsWith(w));
  if (hit.length !== 1) {
    throw new Error(`${name}: series ${JSON.stringify(wanted)} ${hit.length ? `matches ${hit.length} series` : 'matches no series'}; expected a SeriesInstanceUID (or a unique prefix, or a number) of:\n${listing}`);
  }
  return groups.get(hit[0].uid) as Slice[];
}

const dot = (a: readonly number[], b: readonly number[]) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a: readonly number[], b: readonly number[]) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const norm = (a: readonly number[]) => Math.hypot(a[0], a[1], a[2]);

/**
 * Reads one CT series from DICOM files (a folder's or a zip's content) as a volume in NIfTI order: shape
 * [columns, rows, slices], HU as float32, the RAS+ affine. Files that are not images (DICOMDIR, reports,
 * stray text files) are skipped and named in `notes`.
 */
export function readDicomSeries(files: readonly DicomFileBytes[], options: ReadDicomOptions = {}): DicomVolume {
  const name = options.name ?? 'DICOM input';
  const { slices, skipped } = parseFiles(files);
  if (slices.length === 0) {
    const why = skipped.length ? `; skipped ${skipped.slice(0, 5).join(', ')}${skipped.length > 5 ? `, and ${skipped.length - 5} more` : ''}` : '';
    throw new Error(`${name}: no DICOM image among ${files.length} file${files.length === 1 ? '' : 's'}${why}; expected the files of a CT series (.dcm, or DICOM files without an extension)`);
  }
  const group = pickSeries(groupSeries(slices), options.series, name);
  const info = infoOf(group);
  const label = `${name}: series ${info.uid}${info.description ? ` ("${info.description}")` : ''}`;
  const first = group[0];
  for (const s of group) {
    if (s.rows !== first.rows || s.columns !== first.columns) {
      throw new Error(`${label}: ${s.file} is ${s.columns}x${s.rows} pixels, ${first.file} ${first.columns}x${first.rows}; expected one image size in a series`);
    }
    if (s.orientation.some((v, i) => Math.abs(v - first.orientation[i]) > 1e-4)) {
      throw new Error(`${label}: ${s.file} has ImageOrientationPatient ${s.orientation.join('\\')}, ${first.file} ${first.orientation.join('\\')}; expected one orientation in a series (a localizer mixed in?)`);
    }
    if (s.pixelSpacing.some((v, i) => Math.abs(v - first.pixelSpacing[i]) > 1e-4)) {
      throw new Error(`${label}: ${s.file} has PixelSpacing ${s.pixelSpacing.join('\\')}, ${first.file} ${first.pixelSpacing.join('\\')}; expected one pixel size in a series`);
    }
  }
  const rowDir = first.orientation.slice(0, 3);
  const colDir = first.orientation.slice(3, 6);
  if (Math.abs(norm(rowDir) - 1) > 1e-3 || Math.abs(norm(colDir) - 1) > 1e-3 || Math.abs(dot(rowDir, colDir)) > 1e-3) {
    throw new Error(`${label}: ImageOrientationPatient ${first.orientation.join('\\')} is not two orthogonal unit vectors; expected row and column direction cosines`);
  }
  const normal = cross(rowDir, colDir);
  const order = group.map((s) => ({ s, d: dot(s.position, normal) })).sort((a, b) => a.d - b.d);
  const notes = skipped.map((s) => `skipped ${s}`);

  // Spacing between neighbours: equal, or the volume would be wrong in a way no viewer shows.
  const n = order.length;
  const steps: number[] = [];
  for (let k = 1; k < n; k++) {
    const step = order[k].d - order[k - 1].d;
    if (step < 1e-3) {
      throw new Error(`${label}: ${order[k - 1].s.file} and ${order[k].s.file} are both at ${order[k].d.toFixed(3)} mm along the slice normal; expected one image per position (several echoes, phases or acquisitions in one series are not a CT volume)`);
    }
    steps.push(step);
  }
  if (n >= 3) {
    const median = [...steps].sort((a, b) => a - b)[Math.floor(steps.length / 2)];
    for (let k = 0; k < steps.length; k++) {
      if (Math.abs(steps[k] - median) > Math.max(0.01 * median, 1e-3)) {
        const a = order[k], b = order[k + 1];
        const missingCount = Math.round(steps[k] / median) - 1;
        const what = missingCount >= 1 && Math.abs(steps[k] - (missingCount + 1) * median) < 0.05 * median
          ? `${missingCount} slice${missingCount === 1 ? '' : 's'} missing` : 'uneven slice spacing';
        throw new Error(
          `${label}: ${what}: ${a.s.file} and ${b.s.file} are ${steps[k].toFixed(3)} mm apart along the slice normal, the other neighbours ${median.toFixed(3)} mm; ` +
            'expected evenly spaced slices (find the missing files, or convert with dcm2niix, whose _Eq_1.nii fills gaps by interpolation)',
        );
      }
    }
  }

  const sliceVec = n > 1
    ? [0, 1, 2].map((i) => (order[n - 1].s.position[i] - order[0].s.position[i]) / (n - 1))
    : normal.map((v) => v * (first.ds.floatString('x00180050') ?? 1));
  const tiltDegrees = ds0Tilt(first.ds);
  const offNormal = n > 1 ? Math.acos(Math.min(1, Math.abs(dot(sliceVec, normal)) / norm(sliceVec))) * 180 / Math.PI : 0;
  if (offNormal > 0.05) {
    const stated = tiltDegrees ? `GantryDetectorTilt (0018,1120) ${tiltDegrees} degrees` : 'no GantryDetectorTilt (0018,1120) stated';
    if (!options.allowTilt) {
      throw new Error(
        `${label}: gantry tilt: the slices step ${offNormal.toFixed(2)} degrees off their normal (${stated}); expected slices stacked along their normal. ` +
          'Resample it first (dcm2niix writes _Tilt_1.nii without the tilt), or read it with allowTilt to keep the sheared geometry',
      );
    }
    notes.push(`gantry tilt of ${offNormal.toFixed(2)} degrees (${stated}) kept as a sheared affine`);
  }

  const [rowSpacing, colSpacing] = first.pixelSpacing;
  const lps = [
    [rowDir[0] * colSpacing, colDir[0] * rowSpacing, sliceVec[0], order[0].s.position[0]],
    [rowDir[1] * colSpacing, colDir[1] * rowSpacing, sliceVec[1], order[0].s.position[1]],
    [rowDir[2] * colSpacing, colDir[2] * rowSpacing, sliceVec[2], order[0].s.position[2]],
  ];
  // LPS to RAS+: x and y change sign.
  const affine = [...lps[0].map((v) => -v), ...lps[1].map((v) => -v), ...lps[2], 0, 0, 0, 1].map((v) => v + 0);
  const spacing: XYZ = [colSpacing, rowSpacing, norm(sliceVec)];
  const shape: XYZ = [first.columns, first.rows, n];
  const plane = first.columns * first.rows;
  const data = new Float32Array(plane * n);
  order.forEach(({ s }, k) => decodeSlice(s, data.subarray(k * plane, (k + 1) * plane), label));
  return { data, shape, spacing, affine, series: info, gantryTiltDegrees: tiltDegrees, notes };
}

function ds0Tilt(ds: DataSet): number {
  const t = ds.floatString('x00181120');
  return t !== undefined && Number.isFinite(t) ? t : 0;
}

/** One slice's pixels (columns fastest, as stored) into `out`, in HU. */
function decodeSlice(s: Slice, out: Float32Array, label: string): void {
  const ds = s.ds;
  const ts = TRANSFER_SYNTAXES[s.transferSyntax];
  if (!ts) {
    const known = COMPRESSED_NAMES[s.transferSyntax];
    throw new Error(
      `${label}: ${s.file} uses transfer syntax ${s.transferSyntax}${known ? ` (${known})` : ''}; expected uncompressed pixels ` +
        `(${Object.entries(TRANSFER_SYNTAXES).map(([uid, t]) => `${uid} ${t?.name}`).join(', ')}). Decompress first, e.g. gdcmconv --raw or dcmdjpeg, or convert with dcm2niix`,
    );
  }
  const frames = ds.intString('x00280008') ?? 1;
  if (frames !== 1) throw new Error(`${label}: ${s.file} holds ${frames} frames (NumberOfFrames); expected one image per file (enhanced multi-frame CT: convert it with dcm2niix first)`);
  const samples = ds.uint16('x00280002') ?? 1;
  if (samples !== 1) throw new Error(`${label}: ${s.file} has SamplesPerPixel ${samples} (${ds.string('x00280004') ?? 'colour'}); expected 1 (a greyscale CT slice)`);
  const bits = ds.uint16('x00280100') ?? 0;
  const stored = ds.uint16('x00280101') ?? bits;
  const signed = (ds.uint16('x00280103') ?? 0) === 1;
  if (![8, 16, 32].includes(bits)) throw new Error(`${label}: ${s.file} has BitsAllocated ${bits}; expected 8, 16 or 32`);
  const slope = ds.floatString('x00281053') ?? 1;
  const intercept = ds.floatString('x00281052') ?? 0;
  if (!Number.isFinite(slope) || slope === 0 || !Number.isFinite(intercept)) {
    throw new Error(`${label}: ${s.file} has RescaleSlope ${slope} and RescaleIntercept ${intercept}; expected finite numbers, the slope non-zero`);
  }
  const el = ds.elements.x7fe00010;
  const count = s.rows * s.columns;
  const bytesPer = bits / 8;
  if (el.encapsulatedPixelData) throw new Error(`${label}: ${s.file} has encapsulated (compressed) pixel data under transfer syntax ${s.transferSyntax}; expected native pixels`);
  if (el.length < count * bytesPer) {
    throw new Error(`${label}: ${s.file} has ${el.length} bytes of pixel data; expected ${count * bytesPer} for ${s.columns}x${s.rows} pixels of ${bits} bits (truncated file?)`);
  }
  const buf = ds.byteArray;
  const view = new DataView(buf.buffer, buf.byteOffset + el.dataOffset, count * bytesPer);
  const le = ts.littleEndian;
  // Signed values stored in fewer bits than allocated carry their sign at bit `stored - 1`.
  const shift = signed && stored < 32 ? 32 - stored : 0;
  for (let i = 0; i < count; i++) {
    let v: number;
    if (bits === 16) v = signed ? view.getInt16(2 * i, le) : view.getUint16(2 * i, le);
    else if (bits === 8) v = signed ? view.getInt8(i) : view.getUint8(i);
    else v = signed ? view.getInt32(4 * i, le) : view.getUint32(4 * i, le);
    if (shift) v = (v << shift) >> shift;
    out[i] = v * slope + intercept;
  }
}
