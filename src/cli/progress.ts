/**
 * Progress of long work (training steps): on a terminal one status line redrawn in place; when stdout is a pipe
 * or a CI log, plain lines every N steps or every few seconds and never a carriage return, so logs stay readable.
 * Clock and stream are injectable, so tests need neither a terminal nor real time.
 */

export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  /** Terminal width; the TTY line is cut to fit so it never wraps (a wrapped line cannot be redrawn with \r). */
  columns?: number;
}

export interface ProgressOptions {
  total: number;
  /** Prefix of every line, e.g. 'train'. */
  label?: string;
  /** What is counted, for the rate (default 'step': "2.5 step/s"; 'kernel' for compiles). */
  unit?: string;
  stream?: ProgressStream;
  /** Milliseconds, monotonic (default performance.now). */
  now?: () => number;
  /** EMA weight of the newest loss (default 0.05). */
  emaAlpha?: number;
  /** Non-TTY: print every this many steps (default total / 20, at least 1)... */
  everySteps?: number;
  /** ...or when this many ms have passed since the last line (default 5000). */
  everyMs?: number;
  /** TTY: redraw at most this often (default 100 ms); the last step is always drawn. */
  redrawMs?: number;
  /** Force TTY or line mode; default stream.isTTY. */
  tty?: boolean;
}

export interface ProgressFields {
  loss?: number;
  lr?: number;
  /** Extra fields shown after the standard ones, e.g. { 'val Dice': 0.71 }. */
  extra?: Readonly<Record<string, string | number>>;
}

/** h:mm:ss of a duration in seconds ('-:--:--' when unknown). */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '-:--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}:${String(m).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

const fmtNumber = (v: number): string => {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : Number(v.toPrecision(4)).toString();
};

export class ProgressReporter {
  private readonly total: number;
  private readonly label: string;
  private readonly unit: string;
  private readonly stream: ProgressStream;
  private readonly now: () => number;
  private readonly alpha: number;
  private readonly everySteps: number;
  private readonly everyMs: number;
  private readonly redrawMs: number;
  readonly tty: boolean;
  private lossEma = Number.NaN;
  private lossWeight = 0;
  private first: { step: number; time: number } | undefined;
  private lastPrinted: { step: number; time: number } | undefined;
  private lastLine = '';
  private lineShown = false;
  private step = 0;
  private fields: ProgressFields = {};

  constructor(options: ProgressOptions) {
    const { total } = options;
    if (!Number.isInteger(total) || total < 1) throw new Error(`ProgressReporter: total is ${total}; expected a positive integer number of steps`);
    this.total = total;
    this.label = options.label ?? '';
    this.unit = options.unit ?? 'step';
    this.stream = options.stream ?? process.stdout;
    this.now = options.now ?? (() => performance.now());
    this.alpha = options.emaAlpha ?? 0.05;
    if (!(this.alpha > 0 && this.alpha <= 1)) throw new Error(`ProgressReporter: emaAlpha is ${this.alpha}; expected a number in (0, 1]`);
    this.everySteps = options.everySteps ?? Math.max(1, Math.round(total / 20));
    if (!Number.isInteger(this.everySteps) || this.everySteps < 1) throw new Error(`ProgressReporter: everySteps is ${this.everySteps}; expected a positive integer`);
    this.everyMs = options.everyMs ?? 5000;
    this.redrawMs = options.redrawMs ?? 100;
    this.tty = options.tty ?? this.stream.isTTY === true;
  }

  /** Smoothed loss so far (bias-corrected EMA; NaN before the first finite loss). */
  get smoothedLoss(): number {
    return this.lossWeight ? this.lossEma / this.lossWeight : Number.NaN;
  }

  /** Records that `step` (1-based, of total) is done, with its loss, learning rate and extra fields. */
  update(step: number, fields: ProgressFields = {}): void {
    if (!Number.isInteger(step) || step < 0 || step > this.total) throw new Error(`ProgressReporter: step is ${step}; expected an integer in [0, ${this.total}]`);
    const time = this.now();
    this.first ??= { step, time };
    this.step = step;
    if (fields.loss !== undefined && Number.isFinite(fields.loss)) {
      this.lossEma = (1 - this.alpha) * (this.lossWeight ? this.lossEma : 0) + this.alpha * fields.loss;
      this.lossWeight = (1 - this.alpha) * this.lossWeight + this.alpha;
    }
    this.fields = { ...this.fields, ...fields, extra: { ...this.fields.extra, ...fields.extra } };
    const last = step === this.total;
    if (this.tty) {
      if (last || !this.lastPrinted || time - this.lastPrinted.time >= this.redrawMs) this.draw(time);
    } else if (!this.lastPrinted || last || step - this.lastPrinted.step >= this.everySteps || time - this.lastPrinted.time >= this.everyMs) {
      this.draw(time);
    }
  }

  /** Prints a message on its own line without garbling the status line (which is redrawn below it). */
  log(message: string): void {
    if (this.tty && this.lineShown) {
      this.stream.write(`\r\x1b[2K${message}\n${this.lastLine}`);
    } else {
      this.stream.write(`${message}\n`);
    }
  }

  /** Ends the status line (TTY) so later output starts on a fresh line; prints the final state if not yet shown. */
  finish(message?: string): void {
    const time = this.now();
    if (!this.lastPrinted || this.lastPrinted.step !== this.step) this.draw(time);
    if (this.tty && this.lineShown) this.stream.write('\n');
    this.lineShown = false;
    if (message !== undefined) this.stream.write(`${message}\n`);
  }

  /** The status text for the current state at `time` (ms). */
  statusLine(time = this.now()): string {
    const parts: string[] = [];
    if (this.label) parts.push(this.label);
    const width = String(this.total).length;
    parts.push(`${String(this.step).padStart(width)}/${this.total} (${String(Math.floor((100 * this.step) / this.total)).padStart(3)}%)`);
    if (this.fields.loss !== undefined) parts.push(`loss ${fmtNumber(this.fields.loss)} (ema ${fmtNumber(this.smoothedLoss)})`);
    if (this.fields.lr !== undefined) parts.push(`lr ${this.fields.lr.toExponential(2)}`);
    const rate = this.first && time > this.first.time ? ((this.step - this.first.step) * 1000) / (time - this.first.time) : Number.NaN;
    if (Number.isFinite(rate) && rate > 0) {
      parts.push(rate >= 1 ? `${rate.toFixed(2)} ${this.unit}/s` : `${(1 / rate).toFixed(1)} s/${this.unit}`);
      parts.push(`ETA ${formatDuration((this.total - this.step) / rate)}`);
    } else {
      parts.push(`ETA ${formatDuration(Number.NaN)}`);
    }
    for (const [k, v] of Object.entries(this.fields.extra ?? {})) parts.push(`${k} ${typeof v === 'number' ? fmtNumber(v) : v}`);
    return parts.join('  ');
  }

  private draw(time: number): void {
    let line = this.statusLine(time);
    this.lastPrinted = { step: this.step, time };
    if (this.tty) {
      const columns = this.stream.columns;
      if (columns && columns > 1 && line.length > columns - 1) line = `${line.slice(0, columns - 2)}…`;
      this.lastLine = line;
      this.lineShown = true;
      this.stream.write(`\r\x1b[2K${line}`);
    } else {
      this.stream.write(`${line}\n`);
    }
  }
}
