#!/usr/bin/env node
// Makes the web page's default model from a `tgnet demo` run folder: the checkpoint's model tensors alone (the
// optimiser state would triple the download), with the architecture metadata `tgnet predict` reads, and a JSON
// beside it with the phantom volume and voxel size the run trained at, its held-out Dice and where it came from.
// Usage: npm run web:model -- RUN_DIR [--out web/public/models] [--name NAME]
//   (builds dist/ first; or: npm run build && node scripts/make-web-model.mjs RUN_DIR)
// Writes OUT/NAME.safetensors and OUT/default.json (the page loads default.json), and removes any other
// .safetensors in OUT so a renamed model does not leave the old one behind.
import { mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync, existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';

const dist = new URL('../dist/src/', import.meta.url);
const { readSafetensorsFile, writeSafetensors } = await import(new URL('nn/safetensors.js', dist).href);
const { phantomSpacing } = await import(new URL('session/recipes.js', dist).href);

const usage = 'usage: node scripts/make-web-model.mjs RUN_DIR [--out web/public/models] [--name NAME]';
const args = process.argv.slice(2);
let runDir = null;
let outDir = 'web/public/models';
let name = null;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--out') outDir = args[++i];
  else if (args[i] === '--name') name = args[++i];
  else if (args[i] === '--help' || args[i] === '-h') { console.log(usage); process.exit(0); }
  else if (runDir === null && !args[i].startsWith('--')) runDir = args[i];
  else { console.error(`make-web-model: unknown argument ${JSON.stringify(args[i])}\n${usage}`); process.exit(2); }
}
if (!runDir || outDir === undefined || name === undefined) { console.error(usage); process.exit(2); }

function readJson(path) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    console.error(`make-web-model: cannot read ${path} (${e.message}); expected a tgnet demo run folder`);
    process.exit(1);
  }
}

const checkpointPath = join(runDir, 'checkpoint.safetensors');
if (!existsSync(checkpointPath)) {
  console.error(`make-web-model: ${checkpointPath} not found; expected a finished tgnet demo run folder (runs/demo-<time>/)`);
  process.exit(1);
}
const config = readJson(join(runDir, 'config.json'));
const summary = existsSync(join(runDir, 'summary.json')) ? readJson(join(runDir, 'summary.json')) : null;
const file = readSafetensorsFile(new Uint8Array(readFileSync(checkpointPath)), { source: checkpointPath });
const meta = file.metadata;

const model = new Map([...file.tensors].filter(([k]) => k.startsWith('model.')));
if (model.size === 0) {
  console.error(`make-web-model: ${checkpointPath} holds no 'model.*' tensors; expected a tgnet checkpoint`);
  process.exit(1);
}
const volume = config.volume;
if (!Array.isArray(volume) || volume.length !== 3) {
  console.error(`make-web-model: ${join(runDir, 'config.json')} has volume ${JSON.stringify(volume)}; expected [D, H, W]`);
  process.exit(1);
}
const variant = meta.variant ?? config.variant;
const width = Number(meta.width ?? config.width);
name ??= `demo-${variant}-w${width}-${volume.join('x')}`;

// Architecture and provenance only: without its optimiser state this is no longer a resumable training
// checkpoint, so the format marker that promises one is left out.
const keep = ['variant', 'width', 'numTasks', 'crop', 'taskGuidedBlocks', 'step', 'totalSteps', 'seed', 'optimizer', 'lr0', 'batchSize'];
const metadata = Object.fromEntries(keep.filter((k) => meta[k] !== undefined).map((k) => [k, meta[k]]));
metadata.source = `tgnet demo ${basename(resolve(runDir))} (model tensors only)`;
const bytes = writeSafetensors(model, metadata);

const dice = {};
if (summary) {
  for (const [task, row] of Object.entries(summary)) {
    if (!row || typeof row !== 'object' || !('cases' in row)) continue;
    dice[task] = {};
    if (row.organ && typeof row.organ.dice === 'number') dice[task].organ = Math.round(row.organ.dice * 1000) / 1000;
    if (row.tumour && typeof row.tumour.dice === 'number') dice[task].tumour = Math.round(row.tumour.dice * 1000) / 1000;
  }
}
const info = {
  file: `${name}.safetensors`,
  title: `trained by tgnet demo on ${volume.join('x')} phantoms for ${meta.step ?? config.steps} steps`,
  volume,
  spacing: phantomSpacing(volume),
  steps: Number(meta.step ?? config.steps),
  dice,
  source: basename(resolve(runDir)),
};

mkdirSync(outDir, { recursive: true });
const write = (path, data) => {
  const temp = `${path}.tmp-${process.pid}`;
  writeFileSync(temp, data);
  renameSync(temp, path);
};
write(join(outDir, info.file), bytes);
write(join(outDir, 'default.json'), `${JSON.stringify(info, null, 2)}\n`);
for (const f of readdirSync(outDir)) {
  if (f.endsWith('.safetensors') && f !== info.file) unlinkSync(join(outDir, f));
}
console.log(`make-web-model: ${join(outDir, info.file)} (${(bytes.byteLength / 1e6).toFixed(2)} MB, ${model.size} tensors) and ${join(outDir, 'default.json')} from ${checkpointPath}`);
