/** The Train tab: settings, the run (pause/resume), the live plot, and handing the model to the Segment tab or a file. */
import { phantomSpacing } from '../../../src/session/recipes.js';
import { parseWebModelInfo, type WebModelInfo } from '../core/model-info.js';
import { CropWorkers } from '../core/crop-workers.js';
import { checkTrainSettings, defaultTrainSettings, TrainingRun, type TrainSettings } from '../core/training.js';
import { byId, downloadBytes, errorText, percent, seconds, setStatus, textRow } from './dom.js';
import { hooks } from './hooks.js';
import { LossDicePlot } from './plot.js';
import type { DHW } from '../../../src/common/shape.js';
import { supportsF16 } from '../../../src/kernels/runtime/precision.js';

const VOLUMES: DHW[] = [[16, 32, 32], [32, 32, 32], [32, 64, 64]];

export class TrainTab {
  private run: TrainingRun | null = null;
  /** Web Workers making the phantoms and cutting the crops, started with the first run and kept for the next. */
  private workers: CropWorkers | null = null;
  private running = false;
  private pauseRequested = false;
  private gpuReady = false;
  private readonly plot: LossDicePlot;
  private readonly el = {
    form: byId<HTMLFormElement>('train-form'), start: byId<HTMLButtonElement>('train-start'), pause: byId<HTMLButtonElement>('train-pause'),
    progress: byId<HTMLProgressElement>('train-progress'), status: byId('train-status'), dice: byId<HTMLTableElement>('train-dice'),
    use: byId<HTMLButtonElement>('train-use'), download: byId<HTMLButtonElement>('train-download'),
  };

  constructor(private readonly onUseModel: (bytes: Uint8Array, name: string, info: WebModelInfo) => void) {
    this.plot = new LossDicePlot(byId<HTMLCanvasElement>('plot'));
    const defaults = defaultTrainSettings();
    const volumeSelect = this.el.form.elements.namedItem('volume') as HTMLSelectElement;
    const volumes = [defaults.volume, ...VOLUMES.filter((v) => v.join('x') !== defaults.volume.join('x'))];
    for (const v of volumes) {
      const o = document.createElement('option');
      o.value = v.join('x');
      o.textContent = v.join('×');
      o.title = `voxels of ${phantomSpacing(v).map((s) => s.toFixed(1)).join('×')} mm`;
      volumeSelect.append(o);
    }
    this.field('seed').value = String(defaults.seed);
    this.field('steps').value = String(defaults.steps);
    this.field('width').value = String(defaults.width);
    this.field('casesPerTask').value = String(defaults.casesPerTask);
    this.field('lr').value = String(defaults.lr);
    this.el.start.addEventListener('click', () => void this.start());
    this.el.pause.addEventListener('click', () => {
      if (this.running) {
        this.pauseRequested = true;
        this.el.pause.disabled = true;
        setStatus(this.el.status, 'pausing after this step…');
      } else {
        void this.loop();
      }
    });
    this.el.use.addEventListener('click', () => void this.useModel());
    this.el.download.addEventListener('click', () => void this.download());
    this.plot.reset(defaults.steps);
    void this.showGuide();
    this.refresh();
  }

  /**
   * What the default model needed for its Dice (from models/default.json), so nobody takes a 30-step model that
   * segments nothing for what the page can do.
   */
  private async showGuide(): Promise<void> {
    const el = byId('train-guide');
    try {
      const url = `${import.meta.env.BASE_URL}models/default.json`;
      const response = await fetch(url);
      if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
      const info = parseWebModelInfo(await response.json(), url);
      const organs = Object.entries(info.dice ?? {}).filter(([, d]) => d.organ !== undefined).map(([k, d]) => `${k.replace('_', ' ')} ${percent(d.organ)}`);
      el.textContent = info.steps
        ? `How long to train: the default model took ${info.steps} steps (${info.title}) for organ Dice ${organs.join(', ')} on held-out phantoms; `
          + 'a run of a few dozen steps usually segments nothing yet. The time left is estimated from the steps measured so far.'
        : `How long to train: the default model (${info.title}) has no step count recorded.`;
    } catch (e) {
      el.textContent = `How long to train: the default model's record is not available (${errorText(e)}).`;
    }
  }

  private field(name: string): HTMLInputElement {
    return this.el.form.elements.namedItem(name) as HTMLInputElement;
  }

  setGpuReady(ready: boolean): void {
    this.gpuReady = ready;
    // Mixed precision needs shader-f16 (most GPUs have it; SwiftShader, Chrome's CPU fallback, does not).
    const f16 = this.precisionSelect().querySelector<HTMLOptionElement>('option[value="f16"]');
    if (ready && f16 && hooks.gpu && !supportsF16(hooks.gpu)) {
      f16.disabled = true;
      f16.title = `this adapter (${hooks.adapter ?? hooks.gpu.name}) lacks WebGPU's shader-f16, which f16 storage needs`;
      this.precisionSelect().value = 'f32';
    }
    this.refresh();
  }

  private precisionSelect(): HTMLSelectElement {
    return this.el.form.elements.namedItem('precision') as HTMLSelectElement;
  }

  private settings(): TrainSettings {
    const s = defaultTrainSettings();
    s.seed = Number(this.field('seed').value);
    s.steps = Number(this.field('steps').value);
    s.width = Number(this.field('width').value);
    s.casesPerTask = Number(this.field('casesPerTask').value);
    s.lr = Number(this.field('lr').value);
    s.precision = this.precisionSelect().value === 'f16' ? 'f16' : 'f32';
    const volume = (this.el.form.elements.namedItem('volume') as HTMLSelectElement).value.split('x').map(Number);
    s.volume = [volume[0], volume[1], volume[2]];
    return s;
  }

  private refresh(): void {
    const run = this.run;
    this.el.start.disabled = !this.gpuReady || this.running;
    this.el.start.textContent = run ? 'New run' : 'Start';
    this.el.pause.disabled = !run || run.done || (this.running && this.pauseRequested);
    this.el.pause.textContent = this.running ? 'Pause' : 'Resume';
    const haveSteps = run !== null && run.step > 0 && !this.running;
    this.el.use.disabled = !haveSteps;
    this.el.download.disabled = !haveSteps;
    for (const el of this.el.form.elements) (el as HTMLInputElement).disabled = this.running;
    hooks.train.running = this.running;
  }

  private async start(): Promise<void> {
    const settings = this.settings();
    const problem = checkTrainSettings(settings);
    if (problem) {
      setStatus(this.el.status, problem, true);
      return;
    }
    this.run?.dispose();
    this.run = null;
    hooks.train = { records: [], done: false, running: false, dice: [] };
    this.el.dice.hidden = true;
    this.plot.reset(settings.steps);
    this.running = true;
    this.refresh();
    try {
      this.workers ??= new CropWorkers();
      const workers = this.workers;
      this.run = await TrainingRun.create(settings, (p) => {
        this.el.progress.value = p.total ? p.done / p.total : 0;
        setStatus(this.el.status, p.phase === 'compiling kernels'
          ? `compiling the GPU kernels of a training step: ${p.done} of ${p.total}`
          : `making ${p.total} phantoms (${settings.volume.join('×')}) in ${workers.count} worker${workers.count > 1 ? 's' : ''}: ${p.done} of ${p.total}`);
      }, { workers });
      hooks.train.workers = workers.count;
      hooks.train.compileSeconds = this.run.compileSeconds;
      setStatus(this.el.status, `TGNet width ${settings.width} (${this.run.model.parameterCount().toLocaleString('en-US')} parameters), ${this.run.trainCases} training phantoms: the first step…`);
      this.el.progress.value = 0;
    } catch (e) {
      this.running = false;
      setStatus(this.el.status, `cannot start: ${errorText(e)}`, true);
      this.refresh();
      return;
    }
    this.running = false;
    await this.loop();
  }

  /** Runs steps until the end or a pause; validation Dice every ~1/15 of the run and at the end. */
  private async loop(): Promise<void> {
    const run = this.run;
    if (!run || this.running || run.done) return;
    this.running = true;
    this.pauseRequested = false;
    this.refresh();
    const total = run.settings.steps;
    const valEvery = Math.max(10, Math.round(total / 15));
    let recent: number[] = [];
    try {
      while (!run.done && !this.pauseRequested) {
        const r = await run.trainStep();
        hooks.train.records.push(r);
        this.plot.addLoss(r.step, r.loss);
        recent = [...recent.slice(-19), r.seconds];
        const perStep = recent.reduce((a, b) => a + b, 0) / recent.length;
        this.el.progress.value = r.step / total;
        setStatus(this.el.status, `step ${r.step} of ${total}: loss ${r.loss.toFixed(4)}, lr ${r.lr.toExponential(2)}, ${seconds(perStep)} per step, ${seconds(perStep * (total - r.step))} left`);
        if (r.step % valEvery === 0 || run.done) await this.validate(run);
      }
      hooks.train.done = run.done;
      if (run.done) {
        const last = hooks.train.records.at(-1);
        setStatus(this.el.status, `done: ${total} steps, last loss ${last?.loss.toFixed(4)}. Use this model to segment with it, or download the checkpoint.`);
      } else {
        setStatus(this.el.status, `paused at step ${run.step} of ${total}`);
      }
    } catch (e) {
      setStatus(this.el.status, `training stopped: ${errorText(e)}`, true);
    } finally {
      this.running = false;
      this.pauseRequested = false;
      this.refresh();
    }
  }

  private async validate(run: TrainingRun): Promise<void> {
    const d = await run.validate();
    const point = { step: run.step, organ: d.organ, tumour: d.tumour };
    hooks.train.dice.push(point);
    this.plot.addDice(point);
    const body = this.el.dice.tBodies[0];
    body.replaceChildren(...Object.entries(d.perTask).map(([key, v]) => textRow([key.replace('_', ' '), percent(v.organ), percent(v.tumour)])));
    const caption = this.el.dice.tHead?.rows[0].cells[0];
    if (caption) caption.textContent = `held-out Dice, step ${run.step}`;
    this.el.dice.hidden = false;
  }

  private info(run: TrainingRun): WebModelInfo {
    const s = run.settings;
    return {
      file: `tgnet-web-${s.variant}-w${s.width}-step${run.step}.safetensors`,
      title: `TGNet trained in this tab (${run.step} of ${s.steps} steps, seed ${s.seed})`,
      volume: [...s.volume], spacing: run.spacing, steps: run.step,
    };
  }

  private async useModel(): Promise<void> {
    const run = this.run;
    if (!run || this.running) return;
    try {
      const info = this.info(run);
      this.onUseModel(await run.checkpointBytes(), info.file, info);
    } catch (e) {
      setStatus(this.el.status, `cannot hand the model over: ${errorText(e)}`, true);
    }
  }

  private async download(): Promise<void> {
    const run = this.run;
    if (!run || this.running) return;
    try {
      downloadBytes(await run.checkpointBytes(), this.info(run).file);
      const s = run.spacing;
      setStatus(this.el.status, `saved ${this.info(run).file}; segment with it from a shell: npx tgnet predict --model ${this.info(run).file} --input CT.nii.gz --task liver --out mask.nii.gz --spacing ${s[2]} ${s[1]} ${s[0]}`);
    } catch (e) {
      setStatus(this.el.status, `cannot save the checkpoint: ${errorText(e)}`, true);
    }
  }
}
