#!/usr/bin/env node
// Writes PNG slices of a synthetic phantom (axial at a few heights, one coronal) with the structure
// outlines of one task, to eyeball that the phantom looks like abdominal CT.
// Usage: npm run build && node scripts/phantom-slices.mjs [OUT_DIR] [--size D H W] [--seed S]
import { mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';

const dataModule = process.env.TGNET_DATA_MODULE ?? new URL('../dist/src/data/index.js', import.meta.url).href;
const { generatePhantom, Structure } = await import(dataModule);

const args = process.argv.slice(2);
let outDir = 'phantom-slices';
let size = [64, 192, 192];
let seed = 1;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--size') size = [Number(args[++i]), Number(args[++i]), Number(args[++i])];
  else if (args[i] === '--seed') seed = Number(args[++i]);
  else outDir = args[i];
}

// --- minimal PNG encoder (8-bit RGB, no filtering) --------------------------------------------
const crcTable = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  Buffer.from(data).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}
function encodePng(width, height, rgb) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0; // filter type: none
    Buffer.from(rgb.buffer, rgb.byteOffset + y * width * 3, width * 3).copy(raw, y * (width * 3 + 1) + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}
function writeAtomic(path, bytes) {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
}

// --- rendering ---------------------------------------------------------------------------------
const phantom = generatePhantom({ size, seed, requireTumours: ['liver', 'kidney', 'pancreas', 'colon', 'lung'] });
const [nx, ny, nz] = phantom.shape;
const [sx, , sz] = phantom.spacing;
const level = 40;
const width = 400; // soft-tissue window
const grey = (hu) => Math.max(0, Math.min(255, Math.round(((hu - (level - width / 2)) / width) * 255)));
const outlineColour = {
  [Structure.liver]: [230, 120, 40], [Structure.liverTumour]: [255, 40, 40], [Structure.hepaticVessel]: [255, 220, 0],
  [Structure.kidney]: [60, 200, 60], [Structure.kidneyTumour]: [255, 40, 40], [Structure.pancreas]: [200, 60, 220],
  [Structure.pancreasTumour]: [255, 40, 40], [Structure.spleen]: [60, 140, 255], [Structure.colonTumour]: [255, 40, 40],
  [Structure.lungTumour]: [255, 40, 40],
};

/** Renders a 2D slice given an index function (col, row) -> voxel index; outlines on the right half of a side-by-side image. */
function render(cols, rows, indexAt, rowScale) {
  const outRows = Math.round(rows * rowScale);
  const w = cols * 2;
  const rgb = new Uint8Array(w * outRows * 3);
  for (let r = 0; r < outRows; r++) {
    const srcRow = Math.min(rows - 1, Math.floor(r / rowScale));
    for (let c = 0; c < cols; c++) {
      const i = indexAt(c, srcRow);
      const g = grey(phantom.hu[i]);
      for (const [offset, outlined] of [[0, false], [cols, true]]) {
        const o = (r * w + c + offset) * 3;
        let colour = [g, g, g];
        if (outlined) {
          const sId = phantom.structures[i];
          const col = outlineColour[sId];
          const edge = col && [[1, 0], [-1, 0], [0, 1], [0, -1]].some(([dc, dr]) => {
            const c2 = c + dc;
            const r2 = srcRow + dr;
            return c2 < 0 || r2 < 0 || c2 >= cols || r2 >= rows || phantom.structures[indexAt(c2, r2)] !== sId;
          });
          if (edge) colour = col;
        }
        rgb.set(colour, o);
      }
    }
  }
  return encodePng(w, outRows, rgb);
}

mkdirSync(outDir, { recursive: true });
const written = [];
for (const frac of [0.35, 0.55, 0.8]) {
  const z = Math.min(nz - 1, Math.floor(frac * nz));
  const file = join(outDir, `axial-z${z}.png`);
  writeAtomic(file, render(nx, ny, (c, r) => (z * ny + r) * nx + c, 1));
  written.push(file);
}
// Coronal: rows run from head (top) to feet; rows stretched by the slice/in-plane spacing ratio.
const y = Math.floor(ny * 0.45);
const coronal = join(outDir, `coronal-y${y}.png`);
writeAtomic(coronal, render(nx, nz, (c, r) => ((nz - 1 - r) * ny + y) * nx + c, Math.min(4, sz / sx)));
written.push(coronal);
console.log(`phantom ${size.join('x')} seed ${seed}, spacing ${phantom.spacing.join(' x ')} mm: ${written.join(', ')}`);
