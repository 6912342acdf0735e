/**
 * A training run's folder, `runs/<name>/`: config.json, log.jsonl (one JSON object per logged step, appended
 * and flushed as it goes, so a killed run keeps its log), curves.svg redrawn from the log, and the other
 * artefacts written atomically (temporary file, fsync, rename) so a crash never leaves half of one.
 */
import { mkdir, open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../common/node-files.js';
import { trainingCurvesSvg, type CurvePoint } from '../eval/curves-svg.js';

/** A line of log.jsonl: a training step's loss, a validation round, or both. */
export interface RunLogRecord {
  step: number;
  loss?: number;
  lr?: number;
  stepsPerSecond?: number;
  elapsedSeconds?: number;
  /** Mixed precision: the loss scale after this step and the steps skipped for an overflow so far. */
  lossScale?: number;
  skippedSteps?: number;
  /** Validation Dice (fraction): mean over task channels, organ and tumour means, and per task. */
  val?: { mean: number; organ: number; tumour: number; perTask: Record<string, { organ?: number; tumour?: number }> };
}

export class RunFolder {
  private log: FileHandle | null = null;
  private readonly records: RunLogRecord[] = [];

  private constructor(readonly dir: string) {}

  /**
   * Creates the folder (and parents). With `resumeFromStep`, the log.jsonl records up to that step are kept and
   * re-read; later ones (logged after the checkpoint by a run that was then killed) are dropped, since the resumed
   * run logs those steps again.
   */
  static async open(dir: string, options: { resumeFromStep?: number } = {}): Promise<RunFolder> {
    await mkdir(dir, { recursive: true });
    const folder = new RunFolder(dir);
    const logPath = join(dir, 'log.jsonl');
    const resumeStep = options.resumeFromStep;
    if (resumeStep !== undefined) {
      const text = await readFile(logPath, 'utf8').catch(() => '');
      const lines = text.split('\n');
      for (const [i, line] of lines.entries()) {
        if (line.trim() === '') continue;
        let record: RunLogRecord;
        try {
          record = JSON.parse(line) as RunLogRecord;
        } catch {
          // A run killed mid-line leaves a partial last line; anything else is a damaged log.
          if (i < lines.length - 2) throw new Error(`${logPath}: line ${i + 1} is not JSON; expected one JSON object per line`);
          continue;
        }
        if (record.step <= resumeStep) folder.records.push(record);
      }
      await writeFileAtomic(logPath, folder.records.map((r) => `${JSON.stringify(r)}\n`).join(''));
    }
    folder.log = await open(logPath, resumeStep !== undefined ? 'a' : 'w');
    return folder;
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  /** Records logged so far (including those of an earlier, resumed run). */
  get logRecords(): readonly RunLogRecord[] {
    return this.records;
  }

  async appendLog(record: RunLogRecord): Promise<void> {
    if (!this.log) throw new Error(`RunFolder ${this.dir}: the log is closed`);
    this.records.push(record);
    await this.log.write(`${JSON.stringify(record)}\n`);
    await this.log.datasync();
  }

  async writeJson(name: string, value: unknown): Promise<string> {
    return this.writeText(name, `${JSON.stringify(value, null, 2)}\n`);
  }

  async writeText(name: string, text: string | Uint8Array): Promise<string> {
    const p = this.path(name);
    await writeFileAtomic(p, text);
    return p;
  }

  /** curves.svg from the log: training loss and validation Dice (mean and per task) over steps. */
  async writeCurves(title: string): Promise<string> {
    const loss: CurvePoint[] = [];
    const valDice: CurvePoint[] = [];
    const perTask: Record<string, CurvePoint[]> = {};
    for (const r of this.records) {
      if (r.loss !== undefined) loss.push({ step: r.step, value: r.loss });
      if (r.val) {
        valDice.push({ step: r.step, value: r.val.mean });
        for (const [task, v] of Object.entries(r.val.perTask)) {
          const values = [v.organ, v.tumour].filter((x): x is number => x !== undefined && Number.isFinite(x));
          if (values.length) (perTask[task] ??= []).push({ step: r.step, value: values.reduce((a, b) => a + b, 0) / values.length });
        }
      }
    }
    return this.writeText('curves.svg', trainingCurvesSvg({ loss, valDice, valDicePerTask: perTask, title }));
  }

  async close(): Promise<void> {
    await this.log?.close();
    this.log = null;
  }
}
