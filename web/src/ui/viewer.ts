/**
 * The CT and the predicted mask in three planes (axial, coronal, sagittal) with niivue. Volumes are handed over
 * as NIfTI bytes written by the data layer, so what is shown has the geometry a file of them would have.
 */
import { MULTIPLANAR_TYPE, Niivue, SHOW_RENDER } from '@niivue/niivue';
import { writeNifti, type NiftiVolume } from '../../../src/data/nifti.js';
import { HU_WINDOW } from '../../../src/data/preprocess.js';

/** Label colours: 1 organ (green), 2 tumour (red), as the legend shows. */
const LABEL_COLOURS = { R: [0, 47, 229], G: [0, 191, 72], B: [0, 113, 77], A: [0, 255, 255], I: [0, 1, 2], labels: ['background', 'organ', 'tumour'] };

export class Viewer {
  private readonly nv: Niivue;
  private ready: Promise<unknown>;
  private urls: string[] = [];
  private overlayOpacity = 0.55;
  private hasMask = false;

  constructor(canvas: HTMLCanvasElement) {
    this.nv = new Niivue({
      backColor: [0, 0, 0, 1], crosshairColor: [1, 0.85, 0.2, 0.7], crosshairWidth: 0.35, crosshairWidthUnit: 'percent', show3Dcrosshair: false, isColorbar: false,
      dragAndDropEnabled: false, multiplanarShowRender: SHOW_RENDER.NEVER, multiplanarLayout: MULTIPLANAR_TYPE.ROW,
      isOrientationTextVisible: true, logLevel: 'error', loadingText: 'load a CT or make a phantom',
      isRadiologicalConvention: true,
    });
    this.ready = this.nv.attachToCanvas(canvas).then(() => {
      this.nv.setSliceType(this.nv.sliceTypeMultiplanar);
      this.nv.setInterpolation(true);
    });
  }

  private url(bytes: Uint8Array): string {
    const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }));
    this.urls.push(url);
    return url;
  }

  private releaseUrls(): void {
    for (const u of this.urls) URL.revokeObjectURL(u);
    this.urls = [];
  }

  /** Shows a CT (HU) in the soft-tissue window, with a label map (0/1/2) over it when given. */
  async show(ct: NiftiVolume, labelMap: Uint8Array | null): Promise<void> {
    await this.ready;
    const ctBytes = writeNifti({ ...ct, data: ct.data }, { datatype: 'float32', name: 'ct.nii' });
    const list: Parameters<Niivue['loadVolumes']>[0] = [
      { url: this.url(ctBytes), name: 'ct.nii', colormap: 'gray', cal_min: HU_WINDOW[0], cal_max: HU_WINDOW[1], trustCalMinMax: true },
    ];
    if (labelMap) {
      const maskBytes = writeNifti({ ...ct, data: Float32Array.from(labelMap) }, { datatype: 'uint8', name: 'mask.nii' });
      list.push({ url: this.url(maskBytes), name: 'mask.nii', colormap: 'gray', opacity: this.overlayOpacity });
    }
    const previous = this.urls.slice(0, this.urls.length - list.length);
    await this.nv.loadVolumes(list);
    for (const u of previous) URL.revokeObjectURL(u);
    this.urls = this.urls.slice(previous.length);
    this.hasMask = labelMap !== null;
    if (this.hasMask) {
      this.nv.volumes[1].setColormapLabel(LABEL_COLOURS);
      this.nv.updateGLVolume();
    }
  }

  setOverlayOpacity(opacity: number): void {
    this.overlayOpacity = opacity;
    if (this.hasMask && this.nv.volumes.length > 1) this.nv.setOpacity(1, opacity);
  }

  dispose(): void {
    this.releaseUrls();
  }
}
