import { describe, expect, it } from 'vitest';
import { formatDuration, ProgressReporter, type ProgressStream } from '../../src/cli/progress.js';

function fakeStream(isTTY: boolean, columns?: number): ProgressStream & { text: string } {
  const s = { text: '', isTTY, columns, write(chunk: string) { s.text += chunk; return true; } };
  return s;
}

function clock(): { now: () => number; set: (ms: number) => void } {
  let t = 0;
  return { now: () => t, set: (ms: number) => { t = ms; } };
}

describe('formatDuration', () => {
  it('writes h:mm:ss', () => {
    expect(formatDuration(0)).toBe('0:00:00');
    expect(formatDuration(3723.4)).toBe('1:02:03');
    expect(formatDuration(Number.NaN)).toBe('-:--:--');
  });
});

describe('ProgressReporter on a terminal', () => {
  it('redraws one line in place with loss EMA, lr, rate, ETA and extra fields', () => {
    const stream = fakeStream(true);
    const c = clock();
    const p = new ProgressReporter({ total: 100, label: 'train', stream, now: c.now, emaAlpha: 0.5 });
    p.update(1, { loss: 2, lr: 0.01 });
    c.set(10_000);
    p.update(11, { loss: 1, extra: { 'val Dice': 0.71234 } });
    expect(stream.text).not.toContain('\n');
    const frames = stream.text.split('\r\x1b[2K').filter(Boolean);
    expect(frames).toHaveLength(2);
    // 10 steps in 10 s: 1 step/s, 89 steps left.
    expect(frames[1]).toBe('train   11/100 ( 11%)  loss 1 (ema 1.333)  lr 1.00e-2  1.00 step/s  ETA 0:01:29  val Dice 0.7123');
    p.finish('done');
    expect(stream.text.endsWith('\ndone\n')).toBe(true);
  });

  it('names what it counts in the rate (compiles: kernels a second)', () => {
    const stream = fakeStream(true);
    const c = clock();
    const p = new ProgressReporter({ total: 40, label: 'compiling kernels', unit: 'kernel', stream, now: c.now });
    p.update(1);
    c.set(2_000);
    p.update(5);
    c.set(12_000);
    p.update(6);
    const frames = stream.text.split('\r\x1b[2K').filter(Boolean);
    expect(frames[1]).toBe('compiling kernels   5/40 ( 12%)  2.00 kernel/s  ETA 0:00:18');
    expect(frames[2]).toContain('2.4 s/kernel');
  });

  it('throttles redraws but always draws the last step, and fits the terminal width', () => {
    const stream = fakeStream(true, 30);
    const c = clock();
    const p = new ProgressReporter({ total: 3, stream, now: c.now, redrawMs: 100 });
    p.update(1);
    c.set(50);
    p.update(2);
    c.set(60);
    p.update(3);
    const frames = stream.text.split('\r\x1b[2K').filter(Boolean);
    expect(frames).toHaveLength(2);
    expect(frames[1].startsWith('3/3 (100%)')).toBe(true);
    expect(frames.every((f) => f.length <= 29)).toBe(true);
    expect(frames[1].endsWith('…')).toBe(true);
  });

  it('prints a log message above the status line and redraws it', () => {
    const stream = fakeStream(true);
    const p = new ProgressReporter({ total: 10, stream, now: () => 0 });
    p.update(1, { loss: 0.5 });
    stream.text = '';
    p.log('eval: Dice 0.8');
    expect(stream.text).toBe(`\r\x1b[2Keval: Dice 0.8\n${p.statusLine(0)}`);
  });
});

describe('ProgressReporter in a pipe', () => {
  it('prints plain lines every N steps or after everyMs, the last step always, never \\r', () => {
    const stream = fakeStream(false);
    const c = clock();
    const p = new ProgressReporter({ total: 50, stream, now: c.now, everySteps: 10, everyMs: 5000 });
    for (let s = 1; s <= 50; s++) {
      c.set(s * 100);
      if (s === 23) c.set(20_000); // a slow step: a line by time
      else if (s > 23) c.set(20_000 + (s - 23) * 100);
      p.update(s, { loss: 1 / s });
    }
    p.finish();
    expect(stream.text).not.toContain('\r');
    const steps = stream.text.trim().split('\n').map((l) => Number(/^\s*(\d+)\/50/.exec(l)?.[1]));
    expect(steps).toEqual([1, 11, 21, 23, 33, 43, 50]);
  });

  it('defaults to a line every total/20 steps when stdout is not a TTY', () => {
    const stream = fakeStream(false);
    const p = new ProgressReporter({ total: 200, stream, now: () => 0 });
    expect(p.tty).toBe(false);
    for (let s = 1; s <= 200; s++) p.update(s);
    expect(stream.text.trim().split('\n')).toHaveLength(21);
  });

  it('rejects a bad total and an out-of-range step', () => {
    expect(() => new ProgressReporter({ total: 0, stream: fakeStream(false) })).toThrow(/total is 0/);
    const p = new ProgressReporter({ total: 5, stream: fakeStream(false) });
    expect(() => p.update(6)).toThrow(/step is 6; expected an integer in \[0, 5\]/);
  });
});
