/**
 * Synthetic abdominal-CT phantoms with a full structure map, for tests and for training runs that
 * need no downloads. Values are Hounsfield units: air -1000 outside the body, subcutaneous fat,
 * mottled visceral fat and soft tissue, a spine with cortical bone, aorta and IVC, lungs in the upper
 * slices, and the seven task structures (liver with hepatic vessels, kidneys, pancreas, spleen, colon)
 * as smooth irregular blobs and tubes with their own intensity and texture; tumours are lesions
 * inside their organ.
 *
 * One physical world at any grid: the anatomy is defined in normalised body coordinates, u in [-1, 1] across x
 * (u = -1 is the patient's right, as in a radiological display), v in [-1, 1] across y (anterior to posterior),
 * s in [0, 2] along z (inferior to superior), and one unit is PHANTOM_FIELD_MM / 2 = 180 mm along every axis.
 * The grid samples that world at its spacing around the centre (u = v = 0, s = 1): a grid of n voxels of
 * 360 / n mm covers exactly [-1, 1] (the demo's phantoms, 16x32x32 at 22.5 x 11.25 x 11.25 mm); a finer spacing
 * at the same n sees a smaller field (a zoomed-in crop), a coarser one more air around the body. Without a
 * spacing the grid covers the whole field (spacing 360 / n per axis). Lesions and thin tubes keep a radius of
 * at least about one voxel, so at coarse grids they are somewhat larger than at fine ones.
 * Arrays are NIfTI-ordered [x, y, z], x fastest.
 */
import { Random, hashSeed } from './random.js';
import { taskById, type TaskKey } from './tasks.js';
import type { XYZ, DHW } from '../common/shape.js';

/** Values of the structure map. */
/**
 * Generator version: bumped whenever the same options start giving other bytes, so that caches of synthesised
 * collections (the demo's) are rebuilt instead of silently reused. 2: lesions sized per axis.
 */
export const PHANTOM_GENERATOR_VERSION = 3;

/**
 * The physical size of the phantom world along each axis, mm: 2 normalised units, about an adult abdomen's
 * width. Version 3 made it physical (before, the anatomy filled any grid and the spacing was metadata).
 */
export const PHANTOM_FIELD_MM = 360;

/** Voxel size [x, y, z] mm at which a grid [D, H, W] covers the whole phantom field (rounded to 0.001 mm). */
export function phantomFieldSpacing(size: DHW): XYZ {
  const [d, h, w] = size;
  const mm = (n: number) => Math.round((PHANTOM_FIELD_MM / n) * 1000) / 1000;
  return [mm(w), mm(h), mm(d)];
}

/** Grid [D, H, W] that covers the phantom field at voxel size [x, y, z] mm (at least 4 voxels per axis). */
export function phantomFieldSize(spacing: XYZ): DHW {
  spacing.forEach((s, i) => {
    if (!(s > 0 && Number.isFinite(s))) throw new Error(`phantomFieldSize: spacing[${i}] ([x, y, z] mm) is ${s}; expected a positive number of mm`);
  });
  const n = (mm: number) => Math.max(4, Math.round(PHANTOM_FIELD_MM / mm));
  return [n(spacing[2]), n(spacing[1]), n(spacing[0])];
}

export const Structure = {
  air: 0,
  softTissue: 1,
  fat: 2,
  bone: 3,
  liver: 4,
  liverTumour: 5,
  hepaticVessel: 6,
  kidney: 7,
  kidneyTumour: 8,
  pancreas: 9,
  pancreasTumour: 10,
  spleen: 11,
  colon: 12,
  colonTumour: 13,
  lung: 14,
  lungTumour: 15,
  vessel: 16,
} as const;
export type StructureId = (typeof Structure)[keyof typeof Structure];

/** Which tumours to place. A task's dataset always has its own tumour; others appear at random, unlabelled. */
export type TumourKind = 'liver' | 'kidney' | 'pancreas' | 'colon' | 'lung';

export interface PhantomOptions {
  /** [D, H, W] = [z, y, x] voxels. */
  size: DHW;
  seed: number;
  /** Voxel size [x, y, z] mm; default the spacing at which the grid covers the whole field (phantomFieldSpacing). */
  spacing?: XYZ;
  /**
   * Scale the world to the grid: the anatomy fills the volume whatever `spacing` says, so the body is as large as
   * size x spacing (version 2's behaviour). For tests that want a whole body in a few voxels that still claim
   * CT-like voxel sizes (cheap to resample to 1.5 x 0.8 x 0.8 mm); never for data meant to look like one world.
   */
  fitToGrid?: boolean;
  /** Tumours that must be present; default none forced. */
  requireTumours?: readonly TumourKind[];
  /** Probability of each tumour kind that is not required (default 0.35). */
  otherTumourProbability?: number;
}

export interface Phantom {
  /** Hounsfield units, rounded to integers, [x, y, z]. */
  hu: Int16Array;
  /** Structure ids (see `Structure`), [x, y, z]. */
  structures: Uint8Array;
  shape: XYZ;
  spacing: XYZ;
  affine: number[];
}

/** Smooth random field on [0, 1]^3: a small lattice of random values, trilinearly interpolated with smoothstep. */
class LatticeNoise {
  private readonly values: Float32Array;
  constructor(
    rng: Random,
    private readonly n: number,
  ) {
    this.values = new Float32Array(n * n * n);
    for (let i = 0; i < this.values.length; i++) this.values[i] = rng.uniform(-1, 1);
  }

  /** Value in about [-1, 1] at (a, b, c), each clamped to [0, 1]. */
  sample(a: number, b: number, c: number): number {
    const n = this.n;
    const fa = Math.min(Math.max(a, 0), 1) * (n - 1);
    const fb = Math.min(Math.max(b, 0), 1) * (n - 1);
    const fc = Math.min(Math.max(c, 0), 1) * (n - 1);
    const ia = Math.min(n - 2, Math.floor(fa));
    const ib = Math.min(n - 2, Math.floor(fb));
    const ic = Math.min(n - 2, Math.floor(fc));
    let ta = fa - ia;
    let tb = fb - ib;
    let tc = fc - ic;
    ta = ta * ta * (3 - 2 * ta);
    tb = tb * tb * (3 - 2 * tb);
    tc = tc * tc * (3 - 2 * tc);
    const v = this.values;
    const i000 = (ic * n + ib) * n + ia;
    const i010 = i000 + n;
    const i001 = i000 + n * n;
    const i011 = i001 + n;
    const x00 = v[i000] + (v[i000 + 1] - v[i000]) * ta;
    const x10 = v[i010] + (v[i010 + 1] - v[i010]) * ta;
    const x01 = v[i001] + (v[i001 + 1] - v[i001]) * ta;
    const x11 = v[i011] + (v[i011 + 1] - v[i011]) * ta;
    const y0 = x00 + (x10 - x00) * tb;
    const y1 = x01 + (x11 - x01) * tb;
    return y0 + (y1 - y0) * tc;
  }
}

/** A point or extent in the phantom's normalised [x, y, z] coordinates (the field is [-1, 1] on each axis). */
type PointXYZ = [number, number, number];

interface Canvas {
  nx: number;
  ny: number;
  nz: number;
  /** Normalised coordinates of voxel centres per axis. */
  u: Float32Array;
  v: Float32Array;
  s: Float32Array;
  /** Normalised coordinate of each axis' outer voxel edge at index 0, and the grid's extent: u in [uMin, uMin + uSpan]. */
  uMin: number;
  uSpan: number;
  vMin: number;
  vSpan: number;
  sMin: number;
  sSpan: number;
  hu: Float32Array;
  structures: Uint8Array;
  rng: Random;
}

/** Extent in normalised units of n voxels of `mm`; exactly 2 when they cover the field, so such grids keep version 2's bytes. */
function spanOf(n: number, mm: number): number {
  const span = (n * mm) / (PHANTOM_FIELD_MM / 2);
  return Math.abs(span - 2) < 1e-9 ? 2 : span;
}

function makeCanvas(nx: number, ny: number, nz: number, spacing: XYZ, rng: Random): Canvas {
  const u = new Float32Array(nx);
  const v = new Float32Array(ny);
  const s = new Float32Array(nz);
  const [uSpan, vSpan, sSpan] = [spanOf(nx, spacing[0]), spanOf(ny, spacing[1]), spanOf(nz, spacing[2])];
  // Centred on the body: u = v = 0, s = 1. With a span of 2 these are version 2's expressions, operation for operation.
  const uMin = -uSpan / 2, vMin = -vSpan / 2, sMin = 1 - sSpan / 2;
  for (let x = 0; x < nx; x++) u[x] = ((x + 0.5) / nx) * uSpan + uMin;
  for (let y = 0; y < ny; y++) v[y] = ((y + 0.5) / ny) * vSpan + vMin;
  for (let z = 0; z < nz; z++) s[z] = ((z + 0.5) / nz) * sSpan + sMin;
  return { nx, ny, nz, u, v, s, uMin, uSpan, vMin, vSpan, sMin, sSpan, hu: new Float32Array(nx * ny * nz), structures: new Uint8Array(nx * ny * nz), rng };
}

/** Voxel index range covering [lo, hi] in normalised coordinates along one axis. */
function indexRange(lo: number, hi: number, n: number, min: number, span: number): [number, number] {
  const a = Math.max(0, Math.floor(((lo - min) / span) * n - 0.5));
  const b = Math.min(n - 1, Math.ceil(((hi - min) / span) * n - 0.5));
  return [a, b];
}

interface Blob {
  centre: PointXYZ;
  radii: PointXYZ;
  /** Relative radius perturbation amplitude (0.1-0.3 gives organ-like irregularity). */
  irregularity: number;
  shapeNoise: LatticeNoise;
}

function makeBlob(rng: Random, centre: PointXYZ, radii: PointXYZ, irregularity: number, jitter = 0.04, radiusJitter = 0.12): Blob {
  return {
    centre: centre.map((c) => c + rng.uniform(-jitter, jitter)) as PointXYZ,
    radii: radii.map((r) => r * rng.uniform(1 - radiusJitter, 1 + radiusJitter)) as PointXYZ,
    irregularity,
    shapeNoise: new LatticeNoise(rng, 5),
  };
}

/**
 * Calls `paint(index, t)` for each voxel inside the blob, t = normalised radius (0 at the centre,
 * 1 at the perturbed surface).
 */
function forBlob(cv: Canvas, blob: Blob, paint: (index: number, t: number) => void): void {
  const [cu, cvv, cs] = blob.centre;
  const [ru, rv, rs] = blob.radii;
  const grow = 1 + blob.irregularity;
  const [x0, x1] = indexRange(cu - ru * grow, cu + ru * grow, cv.nx, cv.uMin, cv.uSpan);
  const [y0, y1] = indexRange(cvv - rv * grow, cvv + rv * grow, cv.ny, cv.vMin, cv.vSpan);
  const [z0, z1] = indexRange(cs - rs * grow, cs + rs * grow, cv.nz, cv.sMin, cv.sSpan);
  const inv = 1 / (2 * grow);
  for (let z = z0; z <= z1; z++) {
    const dz = (cv.s[z] - cs) / rs;
    for (let y = y0; y <= y1; y++) {
      const dy = (cv.v[y] - cvv) / rv;
      const row = (z * cv.ny + y) * cv.nx;
      for (let x = x0; x <= x1; x++) {
        const dx = (cv.u[x] - cu) / ru;
        const d2 = dx * dx + dy * dy + dz * dz;
        if (d2 > grow * grow) continue;
        const limit = 1 + blob.irregularity * blob.shapeNoise.sample(dx * inv + 0.5, dy * inv + 0.5, dz * inv + 0.5);
        if (d2 < limit * limit) paint(row + x, Math.sqrt(d2) / limit);
      }
    }
  }
}

/** Calls `paint(index, t)` for voxels within `radius` of the polyline, t = distance / radius. */
function forTube(cv: Canvas, points: readonly PointXYZ[], radius: number, paint: (index: number, t: number) => void, radiusAt?: (segment: number, along: number) => number): void {
  for (let k = 0; k + 1 < points.length; k++) {
    const a = points[k];
    const b = points[k + 1];
    const rMax = radiusAt ? Math.max(radiusAt(k, 0), radiusAt(k, 1)) : radius;
    const [x0, x1] = indexRange(Math.min(a[0], b[0]) - rMax, Math.max(a[0], b[0]) + rMax, cv.nx, cv.uMin, cv.uSpan);
    const [y0, y1] = indexRange(Math.min(a[1], b[1]) - rMax, Math.max(a[1], b[1]) + rMax, cv.ny, cv.vMin, cv.vSpan);
    const [z0, z1] = indexRange(Math.min(a[2], b[2]) - rMax, Math.max(a[2], b[2]) + rMax, cv.nz, cv.sMin, cv.sSpan);
    const ab: PointXYZ = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    const len2 = ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2] || 1;
    for (let z = z0; z <= z1; z++) {
      const pz = cv.s[z] - a[2];
      for (let y = y0; y <= y1; y++) {
        const py = cv.v[y] - a[1];
        const row = (z * cv.ny + y) * cv.nx;
        for (let x = x0; x <= x1; x++) {
          const px = cv.u[x] - a[0];
          let along = (px * ab[0] + py * ab[1] + pz * ab[2]) / len2;
          along = along < 0 ? 0 : along > 1 ? 1 : along;
          const qx = px - along * ab[0];
          const qy = py - along * ab[1];
          const qz = pz - along * ab[2];
          const r = radiusAt ? radiusAt(k, along) : radius;
          const d = Math.sqrt(qx * qx + qy * qy + qz * qz);
          if (d < r) paint(row + x, d / r);
        }
      }
    }
  }
}

/** A random voxel of `id` near `hint` (rejection sampling in a box around it); undefined if none found. */
function randomVoxelOf(cv: Canvas, id: number, hint: Blob): PointXYZ | undefined {
  const { rng } = cv;
  for (let tries = 0; tries < 400; tries++) {
    const u = hint.centre[0] + rng.uniform(-1, 1) * hint.radii[0];
    const v = hint.centre[1] + rng.uniform(-1, 1) * hint.radii[1];
    const s = hint.centre[2] + rng.uniform(-1, 1) * hint.radii[2];
    const x = Math.floor(((u - cv.uMin) / cv.uSpan) * cv.nx);
    const y = Math.floor(((v - cv.vMin) / cv.vSpan) * cv.ny);
    const z = Math.floor(((s - cv.sMin) / cv.sSpan) * cv.nz);
    if (x < 0 || y < 0 || z < 0 || x >= cv.nx || y >= cv.ny || z >= cv.nz) continue;
    if (cv.structures[(z * cv.ny + y) * cv.nx + x] === id) return [cv.u[x], cv.v[y], cv.s[z]];
  }
  // Small or oddly placed organ: fall back to a full scan.
  let count = 0;
  for (let i = 0; i < cv.structures.length; i++) if (cv.structures[i] === id) count++;
  if (count === 0) return undefined;
  let k = rng.int(0, count - 1);
  for (let i = 0; i < cv.structures.length; i++) {
    if (cv.structures[i] === id && k-- === 0) {
      const x = i % cv.nx;
      const y = Math.floor(i / cv.nx) % cv.ny;
      const z = Math.floor(i / (cv.nx * cv.ny));
      return [cv.u[x], cv.v[y], cv.s[z]];
    }
  }
  return undefined;
}

/** Smallest radius (normalised units) that still spans about `voxels` voxels along every axis. */
function minRadius(cv: Canvas, voxels: number): number {
  return Math.max((cv.uSpan * voxels) / cv.nx, (cv.vSpan * voxels) / cv.ny, (cv.sSpan * voxels) / cv.nz);
}

/** The body's outline: the semi-axes of its ellipse and where the subcutaneous fat ends, shared by the ribs. */
interface Body {
  a: number;
  b: number;
  fatFraction: number;
}

/** Where the vertebral bodies are, shared by the great vessels. */
interface Spine {
  u: number;
  v: number;
  r: number;
}

/** The anatomy the tumours grow in. */
interface Organs {
  lungs: Blob[];
  colonPath: PointXYZ[];
  liver: Blob;
  kidneys: Blob[];
  pancreasPath: PointXYZ[];
}

/** Texture of an organ: `base` HU plus `amplitude` times the noise at the voxel. */
function organTexture(cv: Canvas, noise: LatticeNoise, base: number, amplitude: number): (i: number) => number {
  const { nx, ny, u, v, s } = cv;
  return (i) => {
    const x = i % nx;
    const y = Math.floor(i / nx) % ny;
    const z = Math.floor(i / (nx * ny));
    return base + amplitude * noise.sample((u[x] + 1) / 2, (v[y] + 1) / 2, s[z] / 2);
  };
}

/** What a solid organ may grow over: fat, soft tissue, bowel and lung, never bone or vessels. */
const softOrBowel = (id: number) => id === Structure.fat || id === Structure.softTissue || id === Structure.colon || id === Structure.lung;

/** Body outline and fat layer: ellipses whose size drifts slowly along z; muscle wall and a mottle of visceral fat inside. */
function paintBody(cv: Canvas): Body {
  const { hu, structures: S, u, v, s, nx, ny, nz, rng } = cv;
  const bodyA = rng.uniform(0.84, 0.93);
  const bodyB = rng.uniform(0.62, 0.72);
  const fatFraction = rng.uniform(0.8, 0.9);
  const outline = new LatticeNoise(rng, 4);
  const viscera = new LatticeNoise(rng, 13);
  const muscle = new LatticeNoise(rng, 6);
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      const row = (z * ny + y) * nx;
      for (let x = 0; x < nx; x++) {
        const i = row + x;
        const a = bodyA * (1 + 0.04 * outline.sample(0.5, 0.5, s[z] / 2));
        const b = bodyB * (1 + 0.05 * outline.sample(0.2, 0.8, s[z] / 2));
        const du = u[x] / a;
        const dv = (v[y] - 0.03) / b;
        const r2 = du * du + dv * dv;
        if (r2 >= 1) {
          hu[i] = -1000;
          S[i] = Structure.air;
          continue;
        }
        const angle = 1 + 0.06 * outline.sample((du + 1) / 2, (dv + 1) / 2, s[z] / 2);
        if (r2 > fatFraction * fatFraction * angle * angle) {
          hu[i] = -105;
          S[i] = Structure.fat;
          continue;
        }
        // Inner abdominal wall and paraspinal muscles are muscle; the rest is a mottle of
        // visceral fat and bowel loops.
        const wall = r2 > fatFraction * fatFraction * angle * angle * 0.82;
        const paraspinal = ((u[x] - 0.0) / 0.34) ** 2 + ((v[y] - 0.55) / 0.16) ** 2 < 1;
        if (wall || paraspinal) {
          hu[i] = 50 + 8 * muscle.sample((u[x] + 1) / 2, (v[y] + 1) / 2, s[z] / 2);
          S[i] = Structure.softTissue;
        } else {
          const m = viscera.sample((u[x] + 1) / 2, (v[y] + 1) / 2, s[z] / 2);
          const t = Math.min(1, Math.max(0, 0.5 + 1.4 * m));
          const isFat = t < 0.62;
          hu[i] = isFat ? -105 + 30 * t : 15 + 25 * t;
          S[i] = isFat ? Structure.fat : Structure.softTissue;
        }
      }
    }
  }
  return { a: bodyA, b: bodyB, fatFraction };
}

/** Spine: vertebral bodies with cortical rim and discs, spinal canal, posterior elements. */
function paintSpine(cv: Canvas): Spine {
  const { hu, structures: S, u, v, s, nx, ny, nz, rng } = cv;
  const spineU = rng.uniform(-0.03, 0.03);
  const spineV = rng.uniform(0.36, 0.42);
  const spineR = rng.uniform(0.11, 0.14);
  const vertebraPeriod = rng.uniform(0.28, 0.34);
  const vertebraPhase = rng.uniform(0, 1);
  for (let z = 0; z < nz; z++) {
    const phase = (s[z] / vertebraPeriod + vertebraPhase) % 1;
    const disc = phase < 0.16;
    for (let y = 0; y < ny; y++) {
      const row = (z * ny + y) * nx;
      for (let x = 0; x < nx; x++) {
        const i = row + x;
        const du = u[x] - spineU;
        const dv = v[y] - spineV;
        const rBody = Math.sqrt(du * du + dv * dv * 1.2) / spineR;
        const canal = Math.hypot(du, v[y] - (spineV + spineR * 1.35)) < spineR * 0.42;
        const posterior = Math.abs(du) < spineR * 0.25 && v[y] > spineV + spineR * 1.7 && v[y] < spineV + spineR * 2.8;
        const lamina = Math.abs(du) < spineR * 0.9 && Math.abs(v[y] - (spineV + spineR * 1.85)) < spineR * 0.18;
        if (rBody < 1) {
          S[i] = disc ? Structure.softTissue : Structure.bone;
          hu[i] = disc ? 85 : rBody > 0.85 ? 750 : 210;
        } else if (canal) {
          S[i] = Structure.softTissue;
          hu[i] = 15;
        } else if ((posterior || lamina) && !disc) {
          S[i] = Structure.bone;
          hu[i] = 650;
        }
      }
    }
  }
  return { u: spineU, v: spineV, r: spineR };
}

/** Ribs: small bony cross-sections just inside the abdominal wall in the upper slices. */
function paintRibs(cv: Canvas, body: Body): void {
  const { hu, structures: S, u, v, s, nx, ny, nz, rng } = cv;
  const ribPhase = rng.uniform(0, 1);
  const ribs: PointXYZ[] = [];
  for (const side of [-1, 1]) {
    for (let k = 0; k < 7; k++) {
      const angle = -0.35 + k * 0.42 + rng.uniform(-0.05, 0.05); // from posterior (0) round to anterior
      ribs.push([side * Math.sin(angle + 0.6), Math.cos(angle + 0.6), k]);
    }
  }
  for (const [ru, rv, k] of ribs) {
    const cu = ru * body.a * body.fatFraction * 0.93;
    const cvv = 0.03 + rv * body.b * body.fatFraction * 0.9;
    for (let z = 0; z < nz; z++) {
      if (s[z] < 0.95 + 0.04 * k) continue;
      if ((s[z] / 0.2 + ribPhase + k * 0.13) % 1 > 0.55) continue;
      const [x0, x1] = indexRange(cu - 0.04, cu + 0.04, nx, cv.uMin, cv.uSpan);
      const [y0, y1] = indexRange(cvv - 0.04, cvv + 0.04, ny, cv.vMin, cv.vSpan);
      for (let y = y0; y <= y1; y++) {
        for (let x = x0; x <= x1; x++) {
          const d = Math.hypot((u[x] - cu) / 0.034, (v[y] - cvv) / 0.026);
          const i = (z * ny + y) * nx + x;
          if (d < 1 && S[i] !== Structure.air) {
            S[i] = Structure.bone;
            hu[i] = d > 0.6 ? 700 : 300;
          }
        }
      }
    }
  }
}

/** Small bowel loops: wandering soft-tissue tubes with fluid inside, in the lower abdomen. */
function paintSmallBowel(cv: Canvas): void {
  const { hu, structures: S, rng } = cv;
  const loops = rng.int(6, 10);
  for (let k = 0; k < loops; k++) {
    const points: PointXYZ[] = [[rng.uniform(-0.45, 0.45), rng.uniform(-0.45, 0.15), rng.uniform(0.15, 0.85)]];
    for (let j = 0; j < 4; j++) {
      const p = points[points.length - 1];
      points.push([p[0] + rng.uniform(-0.2, 0.2), p[1] + rng.uniform(-0.15, 0.15), p[2] + rng.uniform(-0.15, 0.15)]);
    }
    const r = rng.uniform(0.04, 0.06);
    forTube(cv, points, r, (i, t) => {
      if (S[i] === Structure.fat || S[i] === Structure.softTissue) {
        S[i] = Structure.softTissue;
        hu[i] = t > 0.6 ? 45 : 8;
      }
    });
  }
}

/** Great vessels: aorta to the left of the spine, IVC to the right, both contrast-enhanced. */
function paintGreatVessels(cv: Canvas, spine: Spine): void {
  const { hu, structures: S, rng } = cv;
  const aortaR = rng.uniform(0.045, 0.06);
  forTube(cv, [[spine.u + 0.09, spine.v - spine.r - aortaR - 0.01, 0], [spine.u + 0.08, spine.v - spine.r - aortaR, 2]], aortaR, (i) => {
    S[i] = Structure.vessel;
    hu[i] = 170;
  });
  forTube(cv, [[spine.u - 0.13, spine.v - spine.r - 0.04, 0], [spine.u - 0.14, spine.v - spine.r - 0.03, 2]], aortaR * 0.9, (i) => {
    S[i] = Structure.vessel;
    hu[i] = 115;
  });
}

/** Lungs: upper slices only, air-filled parenchyma with faint vessel texture. */
function paintLungs(cv: Canvas): Blob[] {
  const { hu, structures: S, rng } = cv;
  const lungTexture = new LatticeNoise(rng, 12);
  const texture = organTexture(cv, lungTexture, -850, 60);
  const lungBlobs = [-1, 1].map((side) => makeBlob(rng, [side * 0.42, 0.1, 2.05], [0.34, 0.5, 0.5], 0.12, 0.03));
  for (const lung of lungBlobs) {
    forBlob(cv, lung, (i) => {
      if (S[i] === Structure.fat || S[i] === Structure.softTissue) {
        S[i] = Structure.lung;
        hu[i] = texture(i);
      }
    });
  }
  return lungBlobs;
}

/** Colon: a tube framing the abdomen (ascending, transverse, descending, sigmoid); gas or stool inside. */
function paintColon(cv: Canvas): PointXYZ[] {
  const { hu, structures: S, rng } = cv;
  const colonPath: PointXYZ[] = (
    [
      [-0.58, 0.05, 0.12],
      [-0.62, 0.0, 0.75],
      [-0.5, -0.3, 1.02],
      [0.0, -0.42, 0.98],
      [0.52, -0.28, 1.12],
      [0.62, 0.05, 0.8],
      [0.55, 0.0, 0.3],
      [0.2, -0.15, 0.08],
    ] as PointXYZ[]
  ).map((p) => [p[0] + rng.uniform(-0.04, 0.04), p[1] + rng.uniform(-0.04, 0.04), p[2] + rng.uniform(-0.05, 0.05)] as PointXYZ);
  const colonR = rng.uniform(0.075, 0.095);
  const content = organTexture(cv, new LatticeNoise(rng, 10), 0, 1);
  forTube(cv, colonPath, colonR, (i, t) => {
    if (S[i] === Structure.air || S[i] === Structure.bone || S[i] === Structure.vessel) return;
    S[i] = Structure.colon;
    if (t > 0.72) {
      hu[i] = 45;
    } else {
      const c = content(i);
      hu[i] = c > 0.1 ? -900 : -150 + 200 * c; // gas pockets and mottled stool
    }
  });
  return colonPath;
}

/** A solid organ: `blob` painted with `texture` wherever it may grow (softOrBowel). */
function paintSolidOrgan(cv: Canvas, blob: Blob, id: number, texture: (i: number) => number): void {
  const { hu, structures: S } = cv;
  forBlob(cv, blob, (i) => {
    if (softOrBowel(S[i])) {
      S[i] = id;
      hu[i] = texture(i);
    }
  });
}

/** Liver: large blob on the patient's right, its dome reaching into the lung bases. */
function paintLiver(cv: Canvas): Blob {
  const { rng } = cv;
  const liver = makeBlob(rng, [-0.4, -0.02, 1.35], [0.42, 0.46, 0.42], 0.2);
  paintSolidOrgan(cv, liver, Structure.liver, organTexture(cv, new LatticeNoise(rng, 8), rng.uniform(95, 110), 6));
  return liver;
}

/** Hepatic vessels: branching tubes from the hilum, only inside the liver. */
function paintHepaticVessels(cv: Canvas, liver: Blob): void {
  const { hu, structures: S, rng } = cv;
  const hilum: PointXYZ = [liver.centre[0] + 0.12, liver.centre[1] + 0.1, liver.centre[2] - 0.05];
  const branches = rng.int(4, 6);
  const vesselR = Math.max(rng.uniform(0.022, 0.03), minRadius(cv, 0.75));
  for (let b = 0; b < branches; b++) {
    const theta = rng.uniform(0, 2 * Math.PI);
    const phi = rng.uniform(-0.9, 0.9);
    const len = rng.uniform(0.25, 0.4);
    const dir: PointXYZ = [Math.cos(theta) * Math.cos(phi) - 0.4, Math.sin(theta) * Math.cos(phi), Math.sin(phi)];
    const mid: PointXYZ = [hilum[0] + dir[0] * len * 0.5 + rng.uniform(-0.05, 0.05), hilum[1] + dir[1] * len * 0.5 + rng.uniform(-0.05, 0.05), hilum[2] + dir[2] * len * 0.5];
    const end: PointXYZ = [hilum[0] + dir[0] * len, hilum[1] + dir[1] * len, hilum[2] + dir[2] * len];
    forTube(cv, [hilum, mid, end], vesselR, (i) => {
      if (S[i] === Structure.liver) {
        S[i] = Structure.hepaticVessel;
        hu[i] = 175;
      }
    }, (k, along) => vesselR * (1.3 - 0.5 * ((k + along) / 2)));
  }
}

/** Spleen: posterior left upper quadrant. */
function paintSpleen(cv: Canvas): void {
  const { rng } = cv;
  const spleen = makeBlob(rng, [0.55, 0.28, 1.32], [0.15, 0.2, 0.22], 0.15);
  paintSolidOrgan(cv, spleen, Structure.spleen, organTexture(cv, new LatticeNoise(rng, 6), rng.uniform(110, 125), 5));
}

/** Kidneys: bean-ish blobs beside the spine, enhancing cortex and darker sinus. */
function paintKidneys(cv: Canvas): Blob[] {
  const { hu, structures: S, rng } = cv;
  const kidneys = [-1, 1].map((side) => makeBlob(rng, [side * 0.36, 0.36, side < 0 ? 0.82 : 0.9], [0.11, 0.13, 0.24], 0.12, 0.03));
  for (const kidney of kidneys) {
    forBlob(cv, kidney, (i, t) => {
      if (softOrBowel(S[i])) {
        S[i] = Structure.kidney;
        hu[i] = t > 0.55 ? 185 : t > 0.3 ? 125 : -10;
      }
    });
  }
  return kidneys;
}

/** Pancreas: a lobulated tube from the head (near the duodenum, patient's right) to the tail at the spleen. */
function paintPancreas(cv: Canvas): PointXYZ[] {
  const { hu, structures: S, rng } = cv;
  const pancreasPath: PointXYZ[] = [
    [-0.2 + rng.uniform(-0.03, 0.03), 0.05 + rng.uniform(-0.03, 0.03), 0.95],
    [0.02, 0.1 + rng.uniform(-0.03, 0.03), 1.02 + rng.uniform(-0.04, 0.04)],
    [0.25, 0.16 + rng.uniform(-0.03, 0.03), 1.1],
    [0.42 + rng.uniform(-0.03, 0.03), 0.22, 1.18],
  ];
  const pancreasR = rng.uniform(0.045, 0.055);
  const lobules = organTexture(cv, new LatticeNoise(rng, 14), 80, 25);
  forTube(cv, pancreasPath, pancreasR, (i) => {
    if (softOrBowel(S[i])) {
      S[i] = Structure.pancreas;
      hu[i] = lobules(i);
    }
  }, (k, along) => Math.max(pancreasR * (1.35 - 0.15 * (k + along)), minRadius(cv, 0.75)));
  return pancreasPath;
}

/** Lesions of `radius` (normalised units) grown from random voxels of `organIds[0]` near `hint`, only inside the organ. */
function placeLesions(cv: Canvas, organIds: readonly number[], hint: Blob, id: number, radius: [number, number], huFn: (t: number) => number, count: number): void {
  const { hu, structures: S, rng } = cv;
  // At least 1.5 voxels along each axis, so a lesion stays visible on a coarse grid; per axis, because one
  // radius from the coarsest axis (22 mm slices on the demo's 16-slice phantoms) blew every lesion up to a
  // 34 mm-radius ball, larger in-plane than the kidney it grows from.
  const minR: PointXYZ = [(2 * 1.5) / cv.nx, (2 * 1.5) / cv.ny, (2 * 1.5) / cv.nz];
  for (let n = 0; n < count; n++) {
    const centre = randomVoxelOf(cv, organIds[0], hint);
    if (!centre) continue;
    const r = rng.uniform(radius[0], radius[1]);
    const lesion = makeBlob(rng, centre, [Math.max(minR[0], r), Math.max(minR[1], r), Math.max(minR[2], r)], 0.15, 0, 0.1);
    forBlob(cv, lesion, (i, t) => {
      if (organIds.includes(S[i])) {
        S[i] = id;
        hu[i] = huFn(t);
      }
    });
  }
}

/** Tumours: the required ones always, others at random; each grows only inside its organ. */
function paintTumours(cv: Canvas, organs: Organs, options: PhantomOptions): void {
  const { rng } = cv;
  const required = new Set(options.requireTumours ?? []);
  const otherP = options.otherTumourProbability ?? 0.35;
  const wants = (kind: TumourKind) => required.has(kind) || rng.chance(otherP);
  if (wants('liver')) {
    placeLesions(cv, [Structure.liver, Structure.hepaticVessel], organs.liver, Structure.liverTumour, [0.05, 0.11], (t) => (t > 0.8 ? 70 : 35), rng.int(1, 3));
  }
  if (wants('kidney')) {
    const kidney = rng.pick(organs.kidneys);
    placeLesions(cv, [Structure.kidney, Structure.fat, Structure.softTissue], kidney, Structure.kidneyTumour, [0.05, 0.08], (t) => 70 + 40 * t, 1);
  }
  if (wants('pancreas')) {
    const hint = makeBlob(rng, organs.pancreasPath[1], [0.3, 0.12, 0.2], 0);
    placeLesions(cv, [Structure.pancreas], hint, Structure.pancreasTumour, [0.035, 0.055], () => 40, 1);
  }
  if (wants('colon')) {
    const path = organs.colonPath;
    const k = rng.int(0, path.length - 2);
    const mid: PointXYZ = [(path[k][0] + path[k + 1][0]) / 2, (path[k][1] + path[k + 1][1]) / 2, (path[k][2] + path[k + 1][2]) / 2];
    const hint = makeBlob(rng, mid, [0.25, 0.25, 0.3], 0, 0);
    placeLesions(cv, [Structure.colon], hint, Structure.colonTumour, [0.05, 0.075], () => 55, 1);
  }
  if (wants('lung')) {
    placeLesions(cv, [Structure.lung], rng.pick(organs.lungs), Structure.lungTumour, [0.03, 0.05], () => 25, rng.int(1, 2));
  }
}

/** Scanner noise (approximately Gaussian, sigma ~ 12 HU, half in air), then integer HU in the CT range. */
function scannerNoise(cv: Canvas): Int16Array {
  const { hu, structures: S, rng } = cv;
  const huOut = new Int16Array(hu.length);
  for (let i = 0; i < hu.length; i++) {
    const noise = (rng.next() + rng.next() + rng.next() - 1.5) * 2 * 12;
    const value = S[i] === Structure.air ? hu[i] + noise * 0.5 : hu[i] + noise;
    huOut[i] = Math.max(-1024, Math.min(3071, Math.round(value)));
  }
  return huOut;
}

/**
 * A phantom abdomen: each structure painted in turn over the last (the order, and each painter's random draws,
 * fix the bytes of a seed), then scanner noise.
 */
export function generatePhantom(options: PhantomOptions): Phantom {
  const [nz, ny, nx] = options.size;
  for (const [i, n] of options.size.entries()) {
    if (!Number.isInteger(n) || n < 4 || n > 4096) throw new Error(`generatePhantom: size[${i}] ([D, H, W]) is ${n}; expected an integer in [4, 4096]`);
  }
  const rng = new Random(options.seed);
  const spacing: XYZ = options.spacing ?? phantomFieldSpacing(options.size);
  spacing.forEach((mm, i) => {
    if (!(mm > 0 && Number.isFinite(mm))) throw new Error(`generatePhantom: spacing[${i}] ([x, y, z] mm) is ${mm}; expected a positive number of mm`);
  });
  const cv = makeCanvas(nx, ny, nz, options.fitToGrid ? phantomFieldSpacing(options.size) : spacing, rng);
  const body = paintBody(cv);
  const spine = paintSpine(cv);
  paintRibs(cv, body);
  paintSmallBowel(cv);
  paintGreatVessels(cv, spine);
  const lungs = paintLungs(cv);
  const colonPath = paintColon(cv);
  const liver = paintLiver(cv);
  paintHepaticVessels(cv, liver);
  paintSpleen(cv);
  const kidneys = paintKidneys(cv);
  const pancreasPath = paintPancreas(cv);
  paintTumours(cv, { lungs, colonPath, liver, kidneys, pancreasPath }, options);
  const hu = scannerNoise(cv);
  // RAS affine of a typical axial CT converted from DICOM (LPS): x and y indices run towards the
  // patient's left and back, z towards the head; origin at the volume centre.
  const [sx, sy, sz] = spacing;
  const affine = [-sx, 0, 0, (sx * (nx - 1)) / 2, 0, -sy, 0, (sy * (ny - 1)) / 2, 0, 0, sz, (-sz * (nz - 1)) / 2, 0, 0, 0, 1];
  return { hu, structures: cv.structures, shape: [nx, ny, nz], spacing, affine };
}

/**
 * The label volume a task's dataset would hold for this phantom: only that task's structures, in
 * its dataset's label values (see tasks.ts); everything else is 0 although it is in the image.
 */
export function phantomTaskLabel(phantom: Phantom, task: number | TaskKey): Uint8Array {
  const key = typeof task === 'number' ? taskById(task).key : task;
  const S = phantom.structures;
  const out = new Uint8Array(S.length);
  const map = new Uint8Array(256);
  switch (key) {
    case 'liver':
      map[Structure.liver] = 1;
      map[Structure.hepaticVessel] = 1; // vessels are part of the liver in LiTS/MSD
      map[Structure.liverTumour] = 2;
      break;
    case 'kidney':
      map[Structure.kidney] = 1;
      map[Structure.kidneyTumour] = 2;
      break;
    case 'hepatic_vessel':
      map[Structure.hepaticVessel] = 1;
      map[Structure.liverTumour] = 2;
      break;
    case 'pancreas':
      map[Structure.pancreas] = 1;
      map[Structure.pancreasTumour] = 2;
      break;
    case 'colon':
      map[Structure.colonTumour] = 1;
      break;
    case 'lung':
      map[Structure.lungTumour] = 1;
      break;
    case 'spleen':
      map[Structure.spleen] = 1;
      break;
  }
  for (let i = 0; i < S.length; i++) out[i] = map[S[i]];
  return out;
}

/** The tumour kind a task's dataset must show (none for spleen). */
export function tumourOfTask(task: number | TaskKey): TumourKind | undefined {
  const key = typeof task === 'number' ? taskById(task).key : task;
  switch (key) {
    case 'liver':
    case 'hepatic_vessel':
      return 'liver';
    case 'kidney':
      return 'kidney';
    case 'pancreas':
      return 'pancreas';
    case 'colon':
      return 'colon';
    case 'lung':
      return 'lung';
    case 'spleen':
      return undefined;
  }
}

/** Seed of case `index` of task `task` in a dataset made with `seed`. */
export function phantomCaseSeed(seed: number, task: number, index: number): number {
  return hashSeed(hashSeed(seed) ^ Math.imul(task + 1, 0x27d4eb2d) ^ Math.imul(index + 1, 0x165667b1));
}
