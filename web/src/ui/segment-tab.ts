/** The Segment tab: weights, task, a CT (file, drop or phantom), sliding-window inference, overlays, scores, download. */
import { DEMO_CONFIGS, phantomSpacing } from '../../../src/session/recipes.js';
import { describeDicomSeries, isDicomPart10, isZip, listDicomSeries, readDicomSeries, unzipDicomFiles, type DicomFileBytes } from '../../../src/data/dicom.js';
import { readNifti, readNiftiHeader, type NiftiVolume } from '../../../src/data/nifti.js';
import { TASKS, taskById } from '../../../src/data/tasks.js';
import type { CtSegmentation } from '../../../src/eval/pipeline.js';
import type { SlidingWindowProgress } from '../../../src/eval/sliding-window.js';
import { parseWebModelInfo, zyx, type WebModelInfo } from '../core/model-info.js';
import { phantomCase } from '../core/phantoms.js';
import { ctWarnings } from '../core/ct-check.js';
import {
  loadWeights, maskNiftiBytes, scoreStructures, segmentVolume, SegmentationCancelled, tileShapeOf, type LoadedWeights,
} from '../core/segmentation.js';
import { byId, downloadBytes, errorText, fileBytes, percent, seconds, setStatus, textRow } from './dom.js';
import { hooks } from './hooks.js';
import { Viewer } from './viewer.js';
import type { XYZ } from '../../../src/common/shape.js';

interface LoadedCt {
  name: string;
  volume: NiftiVolume;
  label: NiftiVolume | null;
  labelName: string | null;
  /** DICOM Modality (0008,0060) when the CT came from DICOM. */
  modality?: string;
}

const fmtMl = (ml: number | null) => (ml === null ? '–' : ml >= 10 ? `${ml.toFixed(0)} mL` : `${ml.toFixed(1)} mL`);
const fmtShape = (s: readonly number[]) => s.join('×');
const fmtMm = (s: readonly number[]) => s.map((v) => (Math.round(v * 100) / 100).toString()).join('×');
/**
 * The page writes every shape and voxel size z×y×x, as tiles and grids are: NIfTI's x, y, z order (shapes and
 * spacings as files store them) is reversed here, at the display.
 */
const zyxShape = (xyz: readonly number[]) => `${fmtShape([...xyz].reverse())} (z×y×x)`;
const zyxMm = (xyz: readonly number[]) => `${fmtMm([...xyz].reverse())} mm (z×y×x)`;

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
    opacity: byId<HTMLInputElement>('overlay-opacity'), dicomFolder: byId<HTMLInputElement>('dicom-folder'),
    seriesPick: byId('series-pick'), seriesSelect: byId<HTMLSelectElement>('series-select'), seriesLoad: byId<HTMLButtonElement>('series-load'),
    framePick: byId('frame-pick'), frameIndex: byId<HTMLInputElement>('frame-index'), frameText: byId('frame-text'), frameLoad: byId<HTMLButtonElement>('frame-load'),
    warning: byId('ct-warning'), warningText: byId('ct-warning-text'), warningAccept: byId<HTMLInputElement>('ct-warning-accept'),
  };
  /** A DICOM input of several series, waiting for the choice (and a label file dropped with it). */
  private pendingDicom: { files: DicomFileBytes[]; name: string; label: File | null } | null = null;
  /** A 4-D NIfTI, waiting for the choice of a frame. */
  private pendingFrames: { name: string; bytes: Uint8Array } | null = null;
  private warnings: string[] = [];

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
    this.el.dicomFolder.addEventListener('change', () => void this.onCtFiles([...(this.el.dicomFolder.files ?? [])], 'ct'));
    this.el.seriesLoad.addEventListener('click', () => void this.loadPendingSeries());
    this.el.frameLoad.addEventListener('click', () => this.loadPendingFrame());
    this.el.warningAccept.addEventListener('change', () => this.refresh());
    this.el.resample.addEventListener('change', () => this.updateWarnings());
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
      if (this.running) {
        setStatus(this.el.status, 'a segmentation is running: cancel it or wait, then drop the files again', true);
        return;
      }
      const entries = [...(e.dataTransfer?.items ?? [])].map((item) => item.webkitGetAsEntry?.() ?? null);
      const dropped = [...(e.dataTransfer?.files ?? [])];
      void (async () => {
        // A dropped folder (a DICOM series as the file manager shows it) arrives as an entry to walk, not as files.
        const files = entries.some((en) => en?.isDirectory) ? await filesOfEntries(entries) : dropped;
        await this.onDropped(files);
      })();
    });
    this.refresh();
  }

  private async onDropped(files: File[]): Promise<void> {
    // Weights (a tgnet checkpoint, or DoDNet's .pth) may be dropped beside or instead of the CT.
    const weights = files.filter((f) => WEIGHTS_FILE.test(f.name));
    const cts = files.filter((f) => !WEIGHTS_FILE.test(f.name));
    if (weights.length > 1) this.fail('cannot use the dropped weights', new Error(`${weights.length} weight files dropped; expected one`));
    else if (weights.length === 1) await this.loadWeightsFile(weights[0]);
    if (cts.length > 0) await this.onCtFiles(cts, 'auto');
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
    const trained = info ? `; trained at ${zyxMm(info.spacing)} voxels` : '';
    this.el.modelLine.classList.remove('error');
    this.el.modelLine.textContent = `TGNet ${c.variant}, width ${c.width} (${next.parameters.toLocaleString('en-US')} parameters): ${info?.title ?? name}; tile ${fmtShape(tileShapeOf(c))} (z×y×x)${trained}`;
    this.showModelDice(info);
    this.el.resample.checked = info !== null;
    this.el.resample.disabled = info === null;
    this.el.resampleText.textContent = info
      ? `resample to the model's voxel size (${zyxMm(info.spacing)})`
      : 'resample (unknown for these weights: the input grid is used)';
    // The last run's masks and scores were this model's or another's: gone either way once the model changes.
    this.clearResult();
    this.updateWarnings();
  }

  /** Drops the last run's masks, scores and status; the CT stays on screen without an overlay. */
  private clearResult(): void {
    const had = this.result !== null;
    this.result = null;
    this.el.scores.hidden = true;
    this.el.scores.tBodies[0].replaceChildren();
    this.el.progress.value = 0;
    if (had) this.busy('');
    if (had && this.ct) void this.viewer.show(this.ct.volume, null).catch((e) => this.fail('the viewer cannot show this volume', e));
    this.refresh();
  }

  private updateWarnings(): void {
    const info = this.weights?.info ?? null;
    this.warnings = this.ct ? ctWarnings(this.ct.volume, this.ct.modality, info?.spacing ?? null, this.el.resample.checked && info !== null) : [];
    const appeared = this.el.warning.hidden && this.warnings.length > 0;
    this.el.warning.hidden = this.warnings.length === 0;
    this.el.warningText.textContent = this.warnings.length ? `This may not be a CT the model can read: ${this.warnings.join('; ')}.` : '';
    // On a small screen the warning sits below the fold, beside the Segment button it disables: bring it into view.
    if (appeared) this.el.warning.scrollIntoView?.({ block: 'nearest' });
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
    this.el.dicomFolder.value = '';
    if (this.running) return;
    this.el.seriesPick.hidden = true;
    this.el.framePick.hidden = true;
    this.pendingDicom = null;
    this.pendingFrames = null;
    try {
      const nifti = files.filter((f) => /\.nii(\.gz)?$/i.test(f.name));
      const others = files.filter((f) => !nifti.includes(f));
      if (others.length > 0) {
        if (role === 'label') throw new Error(`${others[0].name} is not a .nii or .nii.gz file; expected the label map as NIfTI`);
        if (nifti.length > 1) throw new Error(`${nifti.length} NIfTI files with a DICOM series; expected at most its label file`);
        await this.onDicomFiles(others, nifti[0] ?? null);
        return;
      }
      const read = [];
      for (const f of files) {
        const bytes = await fileBytes(f);
        const header = readNiftiHeader(bytes, f.name);
        if (header.volumeCount > 1) {
          if (role === 'label' || files.length > 1) throw new Error(`${f.name} holds ${header.volumeCount} 3-D frames; load it alone and pick one`);
          this.pendingFrames = { name: f.name, bytes };
          this.el.frameText.textContent = `${f.name} holds ${header.volumeCount} 3-D frames (dim ${header.dim.slice(1, header.dim[0] + 1).join('×')}); which one (0 to ${header.volumeCount - 1})?`;
          this.el.frameIndex.max = String(header.volumeCount - 1);
          this.el.frameIndex.value = '0';
          this.el.framePick.hidden = false;
          this.busy(`${f.name}: pick a frame`);
          this.clearResult();
          return;
        }
        read.push({ name: f.name, volume: readNifti(bytes, f.name) });
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
      // A failed load leaves the previous CT in place, but not the previous run's results beside a message about another file.
      this.clearResult();
      this.fail('cannot read the file', e);
    }
  }

  /** DICOM files (or zips of them), with an optional label file; several series wait for a choice. */
  private async onDicomFiles(files: File[], label: File | null): Promise<void> {
    const dicom: DicomFileBytes[] = [];
    for (const f of files) {
      const bytes = await fileBytes(f);
      const name = f.webkitRelativePath || f.name;
      if (isZip(bytes)) dicom.push(...unzipDicomFiles(bytes, name));
      else dicom.push({ name, bytes });
    }
    if (!dicom.some((d) => isDicomPart10(d.bytes))) {
      throw new Error(`${files.slice(0, 3).map((f) => f.name).join(', ')}${files.length > 3 ? ', …' : ''}: neither NIfTI (.nii, .nii.gz) nor DICOM (files, a folder or a .zip of a series)`);
    }
    const name = files.length === 1 ? files[0].name : (files[0].webkitRelativePath.split('/')[0] || `${files.length} files`);
    const series = listDicomSeries(dicom);
    if (series.length > 1) {
      this.pendingDicom = { files: dicom, name, label };
      this.el.seriesSelect.replaceChildren(...series.map((info, i) => {
        const o = document.createElement('option');
        o.value = info.uid;
        o.textContent = describeDicomSeries(info, i);
        return o;
      }));
      this.el.seriesPick.hidden = false;
      this.busy(`${name} holds ${series.length} DICOM series: pick one`);
      this.clearResult();
      return;
    }
    await this.loadDicom(dicom, name, undefined, label);
  }

  private async loadDicom(files: DicomFileBytes[], name: string, series: string | undefined, label: File | null): Promise<void> {
    const v = readDicomSeries(files, { series, name });
    const what = v.series.description ? `"${v.series.description}"` : v.series.uid;
    this.setCt({ name: `${name}: DICOM ${v.series.modality || 'series'} ${what}`, volume: v, label: null, labelName: null, modality: v.series.modality });
    if (v.notes.length) this.busy(v.notes.join('; '));
    if (label) {
      const bytes = await fileBytes(label);
      this.setLabel(readNifti(bytes, label.name), label.name);
    }
  }

  private async loadPendingSeries(): Promise<void> {
    const p = this.pendingDicom;
    if (!p || this.running) return;
    try {
      await this.loadDicom(p.files, p.name, this.el.seriesSelect.value, p.label);
      this.pendingDicom = null;
      this.el.seriesPick.hidden = true;
    } catch (e) {
      this.fail('cannot read the series', e);
    }
  }

  private loadPendingFrame(): void {
    const p = this.pendingFrames;
    if (!p || this.running) return;
    try {
      const frame = Number(this.el.frameIndex.value);
      const volume = readNifti(p.bytes, p.name, { volumeIndex: frame });
      this.setCt({ name: `${p.name} frame ${frame}`, volume, label: null, labelName: null });
      this.pendingFrames = null;
      this.el.framePick.hidden = true;
    } catch (e) {
      this.fail('cannot read the frame', e);
    }
  }

  private setCt(ct: LoadedCt): void {
    this.ct = ct;
    this.result = null;
    this.el.scores.hidden = true;
    this.el.progress.value = 0;
    this.el.warningAccept.checked = false;
    this.busy('');
    void this.viewer.show(ct.volume, null).catch((e) => this.fail('the viewer cannot show this volume', e));
    this.updateWarnings();
  }

  private setLabel(label: NiftiVolume, name: string): void {
    if (!this.ct) return;
    if (label.shape.some((n, i) => n !== this.ct!.volume.shape[i])) {
      throw new Error(`${name} has shape ${zyxShape(label.shape)} but the CT ${zyxShape(this.ct.volume.shape)}; expected the label of this CT`);
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
    const spacing: XYZ = this.weights?.info?.spacing ?? phantomSpacing(volume);
    const c = phantomCase(task, 0, seed, volume, spacing);
    this.setCt({ name: `phantom ${taskById(task).key} seed ${seed}`, volume: c.ct, label: c.label, labelName: `its ${taskById(task).datasetName} label` });
  }

  private refresh(): void {
    const accepted = this.warnings.length === 0 || this.el.warningAccept.checked;
    const ready = this.gpuReady && this.weights !== null && this.ct !== null && !this.running && accepted;
    this.el.run.disabled = !ready;
    this.el.cancel.disabled = !this.running;
    this.el.download.disabled = this.result === null || this.running;
    // Nothing that changes the inputs while a run reads them: the page would name one CT and show another.
    for (const b of [this.el.weightsDefault, this.el.phantom, this.el.weightsFile, this.el.ctFile, this.el.dicomFolder, this.el.labelFile,
      this.el.task, this.el.flips, this.el.phantomSeed, this.el.seriesLoad, this.el.frameLoad, this.el.warningAccept, this.el.seriesSelect, this.el.frameIndex]) {
      b.disabled = this.running;
    }
    this.el.resample.disabled = this.running || !this.weights?.info;
    if (this.ct) {
      const v = this.ct.volume;
      const label = this.ct.label ? `; label: ${this.ct.labelName}` : '; no label file (Dice needs one)';
      this.el.ctLine.textContent = `${this.ct.name}: ${zyxShape(v.shape)} voxels of ${zyxMm(v.spacing)}${label}`;
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
      } else if (e instanceof RangeError && /allocat|buffer|memory/i.test(e.message)) {
        const n = ct.volume.data.length;
        this.fail('segmentation failed', new Error(`this tab could not get the memory for a ${zyxShape(ct.volume.shape)} volume (${(n / 1e6).toFixed(0)} M voxels, about ${((n * 10) / 1024 ** 3).toFixed(1)} GB with its working copies): ${e.message}; crop or downsample the CT, or use tgnet predict`));
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

/** The files under dropped folder entries (and dropped files beside them), recursively. */
async function filesOfEntries(entries: readonly (FileSystemEntry | null)[]): Promise<File[]> {
  const out: File[] = [];
  const walk = async (entry: FileSystemEntry): Promise<void> => {
    if (entry.isFile) {
      out.push(await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject)));
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      // readEntries returns a batch at a time (100 in Chromium) until an empty one.
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
        if (batch.length === 0) break;
        for (const e of batch) if (!e.name.startsWith('.')) await walk(e);
      }
    }
  };
  for (const e of entries) if (e) await walk(e);
  return out;
}
