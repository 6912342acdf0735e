/** The Train tab's live plot: training loss per step (left axis) and held-out Dice (right axis, 0-100 %). */

export interface DicePoint {
  step: number;
  organ: number;
  tumour: number;
}

const COLOURS = { loss: '#1f6feb', organ: '#2fbf71', tumour: '#e5484d', grid: '#e6e9ef', axis: '#5d6878', text: '#1c2430' };

function niceStep(range: number, ticks: number): number {
  const raw = range / Math.max(1, ticks);
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m >= 5 ? 10 : m >= 2 ? 5 : m >= 1 ? 2 : 1) * p;
}

export class LossDicePlot {
  private losses: { step: number; loss: number }[] = [];
  private dice: DicePoint[] = [];
  private totalSteps = 1;

  constructor(private readonly canvas: HTMLCanvasElement) {
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  reset(totalSteps: number): void {
    this.losses = [];
    this.dice = [];
    this.totalSteps = Math.max(1, totalSteps);
    this.draw();
  }

  addLoss(step: number, loss: number): void {
    this.losses.push({ step, loss });
    this.draw();
  }

  addDice(point: DicePoint): void {
    this.dice.push(point);
    this.draw();
  }

  draw(): void {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (w === 0 || h === 0) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext('2d');
    if (!g) return;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    g.font = '12px system-ui, sans-serif';
    const pad = { left: 56, right: 56, top: 40, bottom: 40 };
    const pw = w - pad.left - pad.right;
    const ph = h - pad.top - pad.bottom;
    if (pw < 50 || ph < 50) return;

    const maxLoss = Math.max(1e-6, ...this.losses.map((p) => p.loss));
    const lossTop = maxLoss * 1.05;
    const x = (step: number) => pad.left + (step / this.totalSteps) * pw;
    const yLoss = (v: number) => pad.top + ph * (1 - v / lossTop);
    const yDice = (v: number) => pad.top + ph * (1 - v);

    // Grid and axes.
    g.strokeStyle = COLOURS.grid;
    g.fillStyle = COLOURS.axis;
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    const lossTick = niceStep(lossTop, 5);
    for (let v = 0; v <= lossTop + 1e-12; v += lossTick) {
      const y = yLoss(v);
      g.beginPath();
      g.moveTo(pad.left, y);
      g.lineTo(pad.left + pw, y);
      g.stroke();
      g.fillText(v.toFixed(lossTick < 0.1 ? 2 : 1), pad.left - 6, y);
    }
    g.textAlign = 'left';
    for (let v = 0; v <= 1.0001; v += 0.25) g.fillText(`${Math.round(v * 100)}%`, pad.left + pw + 6, yDice(v));
    g.textAlign = 'center';
    g.textBaseline = 'top';
    const stepTick = niceStep(this.totalSteps, 6);
    for (let s = 0; s <= this.totalSteps; s += stepTick) g.fillText(String(s), x(s), pad.top + ph + 6);
    g.fillText('step', pad.left + pw / 2, pad.top + ph + 22);
    g.strokeStyle = COLOURS.axis;
    g.strokeRect(pad.left, pad.top, pw, ph);

    // Loss: the raw steps faint, a running mean over ~1/50 of the run on top.
    if (this.losses.length > 0) {
      g.strokeStyle = 'rgba(31,111,235,0.25)';
      g.beginPath();
      this.losses.forEach((p, i) => (i === 0 ? g.moveTo(x(p.step), yLoss(p.loss)) : g.lineTo(x(p.step), yLoss(p.loss))));
      g.stroke();
      const window = Math.max(1, Math.round(this.totalSteps / 50));
      g.strokeStyle = COLOURS.loss;
      g.lineWidth = 2;
      g.beginPath();
      let sum = 0;
      this.losses.forEach((p, i) => {
        sum += p.loss;
        if (i >= window) sum -= this.losses[i - window].loss;
        const y = yLoss(sum / Math.min(i + 1, window));
        if (i === 0) g.moveTo(x(p.step), y);
        else g.lineTo(x(p.step), y);
      });
      g.stroke();
    }
    // Dice: points joined per channel (organs last, on top where both are 0 early on).
    for (const channel of ['tumour', 'organ'] as const) {
      const pts = this.dice.filter((p) => Number.isFinite(p[channel]));
      if (pts.length === 0) continue;
      g.strokeStyle = COLOURS[channel];
      g.fillStyle = COLOURS[channel];
      g.lineWidth = 2;
      g.beginPath();
      pts.forEach((p, i) => (i === 0 ? g.moveTo(x(p.step), yDice(p[channel])) : g.lineTo(x(p.step), yDice(p[channel]))));
      g.stroke();
      for (const p of pts) {
        g.beginPath();
        g.arc(x(p.step), yDice(p[channel]), 3, 0, 2 * Math.PI);
        g.fill();
      }
    }

    // Legend.
    g.textAlign = 'left';
    g.textBaseline = 'middle';
    let lx = pad.left;
    for (const [label, colour] of [['training loss (Dice + BCE)', COLOURS.loss], ['held-out Dice: organs', COLOURS.organ], ['tumours', COLOURS.tumour]] as const) {
      g.fillStyle = colour;
      g.fillRect(lx, 16, 14, 4);
      g.fillStyle = COLOURS.text;
      g.fillText(label, lx + 20, 18);
      lx += g.measureText(label).width + 44;
    }
    if (this.losses.length === 0) {
      g.fillStyle = COLOURS.axis;
      g.textAlign = 'center';
      g.fillText('press Start: the loss and the held-out Dice appear here as the model learns', pad.left + pw / 2, pad.top + ph / 2);
    }
  }
}
