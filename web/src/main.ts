/**
 * The page: a Segment and a Train tab over one WebGPU device. The device is found first; when there is none the
 * page says what is missing and which browsers or flags work. A lost device is announced and the controls are
 * disabled instead of leaving a frozen page.
 */
import { hooks } from './ui/hooks.js';
import { byId } from './ui/dom.js';
import { describeAdapter, GpuUnavailable, startGpu } from './ui/gpu-check.js';
import { SegmentTab } from './ui/segment-tab.js';
import { TrainTab } from './ui/train-tab.js';

const banner = byId('gpu-banner');

function showBanner(title: string, lines: string[], error: boolean): void {
  const h = document.createElement('h3');
  h.textContent = title;
  const list = document.createElement('ul');
  for (const line of lines) {
    const li = document.createElement('li');
    li.textContent = line;
    list.append(li);
  }
  banner.replaceChildren(h, list);
  banner.classList.toggle('error', error);
  banner.hidden = false;
}

function selectTab(name: string): void {
  for (const button of document.querySelectorAll<HTMLButtonElement>('.tabs button')) {
    const selected = button.dataset.tab === name;
    button.setAttribute('aria-selected', String(selected));
    byId(button.dataset.tab ?? '').hidden = !selected;
  }
  // niivue and the plot size themselves from their canvas, which has no size while hidden.
  window.dispatchEvent(new Event('resize'));
}

for (const button of document.querySelectorAll<HTMLButtonElement>('.tabs button')) {
  button.addEventListener('click', () => selectTab(button.dataset.tab ?? 'segment'));
}
if (location.hash === '#train') selectTab('train');

const segment = new SegmentTab();
const train = new TrainTab((bytes, name, info) => {
  try {
    segment.useWeights(bytes, name, info);
    selectTab('segment');
  } catch (e) {
    showBanner('The trained model could not be loaded', [(e as Error).message], true);
  }
});

async function start(): Promise<void> {
  const adapterLine = byId('adapter');
  try {
    const gpu = await startGpu();
    hooks.gpu = gpu;
    hooks.adapter = describeAdapter(gpu);
    adapterLine.textContent = `WebGPU: ${hooks.adapter}`;
    void gpu.device.lost.then((info) => {
      hooks.deviceLost = `${info.reason}: ${info.message}`;
      segment.setGpuReady(false);
      train.setGpuReady(false);
      adapterLine.textContent = 'WebGPU: device lost';
      showBanner('The GPU device was lost', [
        `The browser reports: ${info.message || info.reason}.`,
        'Work in progress stopped and the results shown so far stay; a driver reset, a GPU process crash or running out of GPU memory causes this.',
        'Reload the page to start on a new device (a checkpoint downloaded from the Train tab can be loaded again under Weights).',
      ], true);
    });
    segment.setGpuReady(true);
    train.setGpuReady(true);
  } catch (e) {
    hooks.state = 'no-gpu';
    adapterLine.textContent = 'WebGPU: not available';
    if (e instanceof GpuUnavailable) showBanner(e.title, e.details, false);
    else showBanner('WebGPU could not start', [(e as Error).message], true);
    return;
  }
  await segment.loadDefaultModel();
  hooks.state = 'ready';
}

void start();
