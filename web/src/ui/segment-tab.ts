/** The Segment tab: weights, task, a CT (file, drop or phantom), sliding-window inference, overlays, scores, download. */
import { DEMO_CONFIGS, phantomSpacing } from '../../../src/cli/demo-config.js';
import { readNifti, type NiftiVolume, type Shape3 } from '../../../src/data/nifti.js';
import { TASKS, taskById } from '../../../src/data/tasks.js';
import type { CtSegmentation } from '../../../src/eval/pipeline.js';
import type { SlidingWindowProgress } from '../../../src/eval/sliding-window.js';
import { parseWebModelInfo, zyx, type WebModelInfo } from '../core/model-info.js';
import { phantomCase } from '../core/phantoms.js';
import {
  loadWeights, maskNiftiBytes, scoreStructures, segmentVolume, SegmentationCancelled, tileShapeOf, type LoadedWeights,
} from '../core/segmentation.js';
import { byId, downloadBytes, errorText, fileBytes, percent, seconds, setStatus, textRow } from './dom.js';
import { hooks } from './hooks.js';
import { Viewer } from './viewer.js';

interface LoadedCt {
  name: string;
  volume: NiftiVolume;
  label: NiftiVolume | null;
  labelName: string | null;
}

const fmtMl = (ml: number | null) => (ml === null ? '–' : ml >= 10 ? `${ml.toFixed(0)} mL` : `${ml.toFixed(1)} mL`);
const fmtShape = (s: readonly number[]) => s.join('×');
const fmtMm = (s: readonly number[]) => s.map((v) => (Math.round(v * 100) / 100).toString()).join('×');

/** Weight files the tab takes: tgnet checkpoints and PyTorch ones (tgnet export's, DoDNet's train.py's). */
const WEIGHTS_FILE = /\.(safetensors|pth|pt)$/i;

/**
 * Time left at the pace measured so far (passes cost the same, tile for tile), so a width-32 DoDNet on a software
 * adapter says how long it will take after its first tile instead of guessing before it.
 */
function remaining(p: SlidingWindowProgress): string {
  if (p.done < 1 || p.done >= p.total) return '';
  return `; about ${seconds((p.seconds / p.done) * (p.total - p.done))} left at this pace`;
}

/** A label file: few distinct small non-negative integers. */
function looksLikeLabel(v: NiftiVolume): boolean {
  const seen = new Set<number>();
  for (let i = 0; i < v.data.length; i += Math.max(1, Math.floor(v.data.length / 200_000))) {
    const x = v.data[i];
    if (!Number.isInteger(x) || x < 0 || x > 255) return false;
    seen.add(x);
    if (seen.size > 16) return false;
  }
  return true;
}

export class SegmentTab {
  private weights: LoadedWeights | null = null;
  private ct: LoadedCt | null = null;
  private result: { seg: CtSegmentation; task: number; ct: LoadedCt } | null = null;
  private running = false;
  private cancelRequested = false;
  private gpuReady = false;
  private readonly viewer: Viewer;
  private readonly el = {
    modelLine: byId('model-line'), weightsFile: byId<HTMLInputElement>('weights-file'), weightsDefault: byId<HTMLButtonElement>('weights-default'),
    task: byId<HTMLSelectElement>('task'), dropZone: byId('drop-zone'), ctFile: byId<HTMLInputElement>('ct-file'),
    labelFile: byId<HTMLInputElement>('label-file'), phantom: byId<HTMLButtonElement>('phantom'), phantomSeed: byId<HTMLInputElement>('phantom-seed'),
    ctLine: byId('ct-line'), resample: byId<HTMLInputElement>('resample'), resampleText: byId('resample-text'), flips: byId<HTMLInputElement>('flips'),
    run: byId<HTMLButtonElement>('segment-run'), cancel: byId<HTMLButtonElement>('segment-cancel'), progress: byId<HTMLProgressElement>('segment-progress'),
    status: byId('segment-status'), scores: byId<HTMLTableElement>('scores'), download: byId<HTMLButtonElement>('download-mask'),
    opacity: byId<HTMLInputElement>('overlay-opacity'),
  };

  constructor() {
    this.viewer = new Viewer(byId<HTMLCanvasElement>('viewer'));
    for (const t of TASKS) {
      const o = document.createElement('option');
      o.value = String(t.id);
      o.textContent = `${t.key.replace('_', ' ')} (${t.datasetName}): ${[t.organLabelled ? t.organName : '', t.tumourLabelled ? t.tumourName : ''].filter(Boolean).join(' + ')}`;
      this.el.task.append(o);
    }
    this.el.weightsDefault.addEventListener('click', () => void this.loadDefaultModel());
    this.el.weightsFile.addEventListener('change', () => void this.onWeightsFile());
    this.el.ctFile.addEventListener('change', () => void this.onCtFiles([...(this.el.ctFile.files ?? [])], 'ct'));
    this.el.labelFile.addEventListener('change', () => void this.onCtFiles([...(this.el.labelFile.files ?? [])], 'label'));
    this.el.phantom.addEventListener('click', () => void this.makePhantom());
    this.el.run.addEventListener('click', () => void this.segment());
    this.el.cancel.addEventListener('click', () => {
      this.cancelRequested = true;
      setStatus(this.el.status, 'cancelling after the current tile…');
    });
    this.el.download.addEventListener('click', () => this.downloadMask());
    this.el.opacity.addEventListener('input', () => this.viewer.setOverlayOpacity(Number(this.el.opacity.value)));
    this.el.task.addEventListener('change', () => {
      // A phantom's label belongs to the task it was made for; the scores would compare the wrong structures.
      if (this.ct?.name.startsWith('phantom ')) void this.makePhantom();
      else this.refresh();
    });
    const dz = this.el.dropZone;
    // Drops anywhere on the tab count, not only on the zone: a CT dropped on the viewer should not open as a download.
    const tab = byId('segment');
    tab.addEventListener('dragover', (e) => {
      e.preventDefault();
      dz.classList.add('over');
    });
    tab.addEventListener('dragleave', (e) => {
      if (e.target === tab || e.target === dz) dz.classList.remove('over');
    });
    tab.addEventListener('drop', (e) => {
      e.preventDefault();
      dz.classList.remove('over');
      const files = [...(e.dataTransfer?.files ?? [])];
      // Weights (a tgnet checkpoint, or DoDNet's .pth) may be dropped beside or instead of the CT.
      const weights = files.filter((f) => WEIGHTS_FILE.test(f.name));
      const cts = files.filter((f) => !WEIGHTS_FILE.test(f.name));
      void (async () => {
        if (weights.length > 1) this.fail('cannot use the dropped weights', new Error(`${weights.length} weight files dropped; expected one`));
        else if (weights.length === 1) await this.loadWeightsFile(weights[0]);
        if (cts.length > 0) await this.onCtFiles(cts, 'auto');
      })();
    });
    this.refresh();
  }

  setGpuReady(ready: boolean): void {
    this.gpuReady = ready;
    this.refresh();
  }

  private busy(text: string): void {
    setStatus(this.el.status, text);
  }

  private fail(what: string, e: unknown): void {
    console.error(what, e);
    setStatus(this.el.status, `${what}: ${errorText(e)}`, true);
  }

  async loadDefaultModel(): Promise<void> {
    try {
      this.el.modelLine.textContent = 'loading the default model…';
      const base = import.meta.env.BASE_URL;
      const jsonUrl = `${base}models/default.json`;
      const response = await fetch(jsonUrl);
      if (!response.ok) throw new Error(`${jsonUrl}: HTTP ${response.status}`);
      const info = parseWebModelInfo(await response.json(), jsonUrl);
      const fileUrl = `${base}models/${info.file}`;
      const weightsResponse = await fetch(fileUrl);
      if (!weightsResponse.ok) throw new Error(`${fileUrl}: HTTP ${weightsResponse.status}`);
      this.useWeights(new Uint8Array(await weightsResponse.arrayBuffer()), info.file, info);
    } catch (e) {
      this.el.modelLine.textContent = `no default model: ${errorText(e)}`;
      this.el.modelLine.classList.add('error');
    }
  }

  /** Makes these weights the current model (from a file, the default, or the Train tab). */
  useWeights(bytes: Uint8Array, name: string, given: WebModelInfo | null): void {
    const next = loadWeights(bytes, name, given);
    // DoDNet's own weights come with what is known about them (its voxel size) even when given none.
    const info = next.info;
    this.weights?.model.dispose();
    this.weights = next;
    const c = next.config;
    const trained = info ? `; trained at ${fmtMm(info.spacing)} mm voxels` : '';
    this.el.modelLine.classList.remove('error');
    this.el.modelLine.textContent = `TGNet ${c.variant}, width ${c.width} (${next.parameters.toLocaleString('en-US')} parameters): ${info?.title ?? name}; tile ${fmtShape(tileShapeOf(c))} (z×y×x)${trained}`;
    this.showModelDice(info);
    this.el.resample.checked = info !== null;
    this.el.resample.disabled = info === null;
    this.el.resampleText.textContent = info
      ? `resample to the model's voxel size (${fmtMm(info.spacing)} mm)`
      : 'resample (unknown for these weights: the input grid is used)';
    this.result = null;
    this.refresh();
  }

  private showModelDice(info: WebModelInfo | null): void {
    const rows = Object.entries(info?.dice ?? {});
    byId('model-dice-title').textContent = rows.length > 0
      ? `The model's Dice on held-out phantoms${info?.source ? ` (${info.source})` : ''}`
      : 'No held-out scores recorded for these weights';
    byId<HTMLTableElement>('model-dice').tBodies[0].replaceChildren(...rows.map(([key, d]) => textRow([key.replace('_', ' '), percent(d.organ), percent(d.tumour)])));
  }

  private async onWeightsFile(): Promise<void> {
    const file = this.el.weightsFile.files?.[0];
    this.el.weightsFile.value = '';
    if (file) await this.loadWeightsFile(file);
  }

  private async loadWeightsFile(file: File): Promise<void> {
    try {
      this.el.modelLine.textContent = `reading ${file.name}…`;
      this.useWeights(await fileBytes(file), file.name, null);
      this.busy(`loaded ${file.name}`);
    } catch (e) {
      this.fail(`cannot use ${file.name}`, e);
    }
  }

  private async onCtFiles(files: File[], role: 'ct' | 'label' | 'auto'): Promise<void> {
    this.el.ctFile.value = '';
    this.el.labelFile.value = '';
    try {
      const read = [];
      for (const f of files) {
        if (!/\.nii(\.gz)?$/i.test(f.name)) throw new Error(`${f.name} is not a .nii or .nii.gz file`);
        read.push({ name: f.name, volume: readNifti(await fileBytes(f), f.name) });
      }
      if (role === 'label') {
        if (!this.ct) throw new Error('load the CT first, then its label file');
        this.setLabel(read[0].volume, read[0].name);
      } else if (role === 'ct' || read.length === 1) {
        const only = read[0];
        if (role === 'auto' && this.ct && looksLikeLabel(only.volume) && !looksLikeLabel(this.ct.volume)) this.setLabel(only.volume, only.name);
        else this.setCt({ name: only.name, volume: only.volume, label: null, labelName: null });
      } else {
        if (read.length > 2) throw new Error(`${read.length} files dropped; expected a CT and, optionally, its label file`);
        const labelIndex = read.findIndex((r) => looksLikeLabel(r.volume) || /label|seg|mask/i.test(r.name));
        if (labelIndex < 0) throw new Error(`neither ${read[0].name} nor ${read[1].name} looks like a label file (small integer values)`);
        const ct = read[1 - labelIndex];
        this.setCt({ name: ct.name, volume: ct.volume, label: null, labelName: null });
        this.setLabel(read[labelIndex].volume, read[labelIndex].name);
      }
    } catch (e) {
      this.fail('cannot read the file', e);
    }
  }

  private setCt(ct: LoadedCt): void {
    this.ct = ct;
    this.result = null;
    this.el.scores.hidden = true;
    this.el.progress.value = 0;
    this.busy('');
    void this.viewer.show(ct.volume, null).catch((e) => this.fail('the viewer cannot show this volume', e));
    this.refresh();
  }

  private setLabel(label: NiftiVolume, name: string): void {
    if (!this.ct) return;
    if (label.shape.some((n, i) => n !== this.ct!.volume.shape[i])) {
      throw new Error(`${name} has shape ${fmtShape(label.shape)} but the CT ${fmtShape(this.ct.volume.shape)}; expected the label of this CT`);
    }
    this.ct.label = label;
    this.ct.labelName = name;
    this.refresh();
  }

  private async makePhantom(): Promise<void> {
    const seed = Number(this.el.phantomSeed.value);
    if (!Number.isSafeInteger(seed) || seed < 0) {
      setStatus(this.el.status, `phantom seed ${this.el.phantomSeed.value}: expected a non-negative integer`, true);
      return;
    }
    const task = Number(this.el.task.value);
    const volume = this.weights?.info?.volume ?? DEMO_CONFIGS.software.volume;
    const spacing: Shape3 = this.weights?.info?.spacing ?? phantomSpacing(volume);
    const c = phantomCase(task, 0, seed, volume, spacing);
    this.setCt({ name: `phantom ${taskById(task).key} seed ${seed}`, volume: c.ct, label: c.label, labelName: `its ${taskById(task).datasetName} label` });
  }

  private refresh(): void {
    const ready = this.gpuReady && this.weights !== null && this.ct !== null && !this.running;
    this.el.run.disabled = !ready;
    this.el.cancel.disabled = !this.running;
    this.el.download.disabled = this.result === null || this.running;
    for (const b of [this.el.weightsDefault, this.el.phantom]) b.disabled = this.running;
    if (this.ct) {
      const v = this.ct.volume;
      const label = this.ct.label ? `; label: ${this.ct.labelName}` : '; no label file (Dice needs one)';
      this.el.ctLine.textContent = `${this.ct.name}: ${fmtShape(v.shape)} voxels (x×y×z) of ${fmtMm(v.spacing)} mm${label}`;
    }
  }

  async segment(): Promise<void> {
    const weights = this.weights;
    const ct = this.ct;
    if (!weights || !ct || this.running) return;
    const task = Number(this.el.task.value);
    this.running = true;
    this.cancelRequested = false;
    this.result = null;
    this.el.scores.hidden = true;
    this.el.progress.value = 0;
    this.refresh();
    this.busy('preparing the volume (resampling, HU window)…');
    const spacingZYX = this.el.resample.checked && weights.info ? zyx(weights.info.spacing) : null;
    try {
      // Lets the status paint before the synchronous resampling.
      await new Promise((r) => setTimeout(r, 0));
      const seg = await segmentVolume(weights, {
        volume: ct.volume, task, spacingZYX, flips: this.el.flips.checked,
        cancelled: () => this.cancelRequested,
        onCompileProgress: (done, total) => {
          this.el.progress.value = done / total;
          this.busy(`compiling the model's GPU kernels: ${done} of ${total}`);
        },
        onProgress: (p) => {
          this.el.progress.value = p.done / p.total;
          this.busy(p.done === p.total ? 'post-processing…' : `tile pass ${p.done} of ${p.total} (${seconds(p.seconds)}${remaining(p)})`);
        },
      });
      this.result = { seg, task, ct };
      const count = (m: Uint8Array) => m.reduce((s, v) => s + v, 0);
      hooks.segment = {
        runs: (hooks.segment?.runs ?? 0) + 1, seconds: seg.seconds, tiles: seg.tiles, organVoxels: count(seg.organ), tumourVoxels: count(seg.tumour),
      };
      this.el.progress.value = 1;
      this.busy(`${taskById(task).key}: ${seg.tiles} tile${seg.tiles === 1 ? '' : 's'} on a ${fmtShape(seg.inferenceShape)} (z×y×x) grid in ${seconds(seg.seconds)}`);
      this.showScores(scoreStructures(ct.volume, seg, task, ct.label));
      await this.viewer.show(ct.volume, seg.labelMap);
    } catch (e) {
      if (e instanceof SegmentationCancelled) {
        this.busy('cancelled');
        this.el.progress.value = 0;
      } else {
        this.fail('segmentation failed', e);
      }
    } finally {
      this.running = false;
      this.refresh();
    }
  }

  private showScores(rows: ReturnType<typeof scoreStructures>): void {
    const body = this.el.scores.tBodies[0];
    body.replaceChildren(...rows.map((r) => {
      const tr = textRow([r.structure, fmtMl(r.predictedMl), fmtMl(r.truthMl), percent(r.dice), r.hd95Mm === null ? '–' : `${r.hd95Mm.toFixed(1)} mm`]);
      tr.dataset.channel = r.channel;
      return tr;
    }));
    this.el.scores.hidden = rows.length === 0;
  }

  private downloadMask(): void {
    if (!this.result) return;
    const { seg, task, ct } = this.result;
    const stem = ct.name.replace(/\.nii(\.gz)?$/i, '').replace(/[^A-Za-z0-9._-]+/g, '_');
    downloadBytes(maskNiftiBytes(ct.volume, seg.labelMap, task), `${stem}_${taskById(task).key}_mask.nii.gz`);
  }
}
