// The Cornerstone3D stack viewport: start-up (GPU, or CPU rendering where WebGL is missing),
// the stack, slice changes, window/level presets, invert, reset, and the live HU/pixel readout.
// Knows nothing about reads or the server.
import {
  cache,
  Enums,
  getRenderingEngine,
  getShouldUseCPURendering,
  init as initCore,
  metaData,
  RenderingEngine,
  setUseCPURendering,
  utilities as csUtils,
} from '@cornerstonejs/core';
import { init as initTools, utilities as toolUtilities } from '@cornerstonejs/tools';
import { init as initImageLoader } from '@cornerstonejs/dicom-image-loader';
import { patientToImage } from './geometry.js';
import { configureRequestPools, StackPrefetcher } from './prefetch.js';

export const RENDERING_ENGINE_ID = 'readerboard-engine';
export const VIEWPORT_ID = 'readerboard-stack';

/** Standard CT windows (centre/width in HU) used when the server sends none. */
export const CT_PRESETS = [
  { name: 'Soft tissue', center: 40, width: 400 },
  { name: 'Lung', center: -600, width: 1500 },
  { name: 'Liver', center: 60, width: 160 },
  { name: 'Bone', center: 400, width: 1800 },
  { name: 'Brain', center: 40, width: 80 },
];

let started = false;

function webglAvailable() {
  try {
    const canvas = document.createElement('canvas');
    return Boolean(canvas.getContext('webgl2') || canvas.getContext('webgl'));
  } catch {
    return false;
  }
}

/**
 * Initialise Cornerstone once; return the rendering mode in use ('gpu' or 'cpu'). `frameAccept`
 * overrides the Accept header of frame requests (benchmarks compare native transfer with it).
 */
export async function startCornerstone({ forceCpu = false, frameAccept = null } = {}) {
  if (!started) {
    await initCore();
    await initTools();
    // Two decode workers at most: booth laptops and tablets are small.
    await initImageLoader({
      maxWebWorkers: Math.min(2, navigator.hardwareConcurrency || 1),
      ...(frameAccept ? { beforeSend: () => ({ Accept: frameAccept }) } : {}),
    });
    if (forceCpu || !webglAvailable()) setUseCPURendering(true);
    configureRequestPools();
    started = true;
  }
  return getShouldUseCPURendering() ? 'cpu' : 'gpu';
}

/** Plane geometry of an image id in the form geometry.js expects. */
export function planeOf(imageId) {
  const plane = metaData.get('imagePlaneModule', imageId);
  if (!plane) throw new Error(`no image plane for ${imageId}`);
  return {
    imagePositionPatient: plane.imagePositionPatient,
    rowCosines: plane.rowCosines,
    columnCosines: plane.columnCosines,
    columnSpacingMm: plane.columnPixelSpacing || 1,
    rowSpacingMm: plane.rowPixelSpacing || 1,
    rows: plane.rows,
    columns: plane.columns,
  };
}

export class StackViewer {
  /**
   * `prefetch` is 'interaction-first' (this module's StackPrefetcher) or 'context' (Cornerstone's
   * stackContextPrefetch, the earlier behaviour, kept for side-by-side benchmarks). `viewportId`
   * names a second viewport on the page (follow-up reading shows baseline and follow-up side by side).
   */
  constructor(element, { prefetch = 'interaction-first', viewportId = VIEWPORT_ID } = {}) {
    this.element = element;
    this.viewportId = viewportId;
    this.legacyPrefetch = prefetch === 'context';
    this.listeners = { slice: [], voi: [] };
    this.element.oncontextmenu = (event) => event.preventDefault();
    this.engine = getRenderingEngine(RENDERING_ENGINE_ID) || new RenderingEngine(RENDERING_ENGINE_ID);
    this.engine.enableElement({
      viewportId,
      type: Enums.ViewportType.STACK,
      element,
      defaultOptions: { background: [0, 0, 0] },
    });
    this.viewport = this.engine.getViewport(viewportId);
    this.prefetcher = new StackPrefetcher();
    this.wantedSlice = null;
    this.moving = null;
    // The asked-for slice goes out before any prefetch: hold the prefetch queue while it loads,
    // then rebuild it outward from where the reader now is.
    element.addEventListener(Enums.Events.PRE_STACK_NEW_IMAGE, () => {
      if (!this.legacyPrefetch) this.prefetcher.hold();
    });
    element.addEventListener(Enums.Events.STACK_NEW_IMAGE, () => {
      if (!this.legacyPrefetch) this.prefetcher.focus(this.sliceIndex());
      this._emit('slice', this.sliceIndex());
    });
    element.addEventListener(Enums.Events.VOI_MODIFIED, () => this._emit('voi', this.window()));
    this.resizeObserver = new ResizeObserver(() => this.engine.resize(true, true));
    this.resizeObserver.observe(element);
  }

  on(kind, callback) {
    this.listeners[kind].push(callback);
  }

  _emit(kind, value) {
    for (const callback of this.listeners[kind]) callback(value);
  }

  /**
   * Show the stack at `index` and start prefetching outward from it. `extraBytesPerSlice` is what
   * each slice adds to the image cache besides its pixels (a lesion labelmap), for the budget.
   */
  async show(imageIds, index = 0, { extraBytesPerSlice = 0 } = {}) {
    this.imageIds = imageIds;
    this.prefetcher.setStack(imageIds, { extraBytesPerSlice });
    await this.viewport.setStack(imageIds, index);
    this.viewport.render();
    this.fileWindow = this.window();
    if (this.legacyPrefetch) toolUtilities.stackContextPrefetch.enable(this.element);
    else this.prefetcher.focus(this.sliceIndex());
    this._emit('slice', this.sliceIndex());
    this._emit('voi', this.window());
  }

  sliceIndex() {
    return this.viewport.getCurrentImageIdIndex();
  }

  currentImageId() {
    return this.viewport.getCurrentImageId();
  }

  /**
   * Go to slice `index`. While a slice is loading, later requests only remember the latest
   * target (a slider dragged across 300 slices fetches the one it stops on, not all of them).
   */
  goToSlice(index) {
    if (!this.imageIds?.length) return Promise.resolve();
    this.wantedSlice = Math.max(0, Math.min(this.imageIds.length - 1, index));
    if (this.legacyPrefetch) return this.viewport.setImageIdIndex(this.wantedSlice);
    if (this.moving) return this.moving;
    if (this.wantedSlice === this.sliceIndex()) return Promise.resolve();
    this.prefetcher.hold();
    this.moving = (async () => {
      while (this.wantedSlice !== this.sliceIndex()) {
        const target = this.wantedSlice;
        await this.viewport.setImageIdIndex(target);
        if (this.sliceIndex() !== target) break;
      }
    })().finally(() => {
      this.moving = null;
    });
    return this.moving;
  }

  scrollBy(delta) {
    return this.goToSlice(this.sliceIndex() + delta);
  }

  /** Current window as {center, width}, or null before an image is shown. */
  window() {
    const { voiRange } = this.viewport.getProperties();
    if (!voiRange) return null;
    const { windowWidth, windowCenter } = csUtils.windowLevel.toWindowLevel(voiRange.lower, voiRange.upper);
    return { center: windowCenter, width: windowWidth };
  }

  setWindow({ center, width }) {
    const { lower, upper } = csUtils.windowLevel.toLowHighRange(width, center);
    this.viewport.setProperties({ voiRange: { lower, upper } });
    this.viewport.render();
    this._emit('voi', this.window());
  }

  /** The windows stored in the current file (DICOM WindowCenter/Width), possibly several. */
  fileWindows() {
    const voi = metaData.get('voiLUTModule', this.currentImageId()) || {};
    const centers = [].concat(voi.windowCenter ?? []);
    const widths = [].concat(voi.windowWidth ?? []);
    return centers
      .map((center, k) => ({ name: k === 0 ? 'File window' : `File window ${k + 1}`, center, width: widths[k] }))
      .filter((w) => Number.isFinite(w.center) && Number.isFinite(w.width) && w.width > 0);
  }

  toggleInvert() {
    const { invert } = this.viewport.getProperties();
    this.viewport.setProperties({ invert: !invert });
    this.viewport.render();
    return !invert;
  }

  zoomBy(factor) {
    const camera = this.viewport.getCamera();
    this.viewport.setCamera({ parallelScale: camera.parallelScale / factor });
    this.viewport.render();
  }

  /** Back to the file's window, no inversion, fitted and centred. */
  reset() {
    this.viewport.resetProperties();
    this.viewport.resetCamera();
    if (this.fileWindow) this.setWindow(this.fileWindow);
    this.viewport.render();
  }

  /** The pixel under a canvas point: {column, row, value, unit} or null outside the image. */
  pixelAt(canvasPoint) {
    const imageId = this.currentImageId();
    const image = imageId && cache.getImage(imageId);
    if (!image) return null;
    const world = this.viewport.canvasToWorld(canvasPoint);
    const [c, r] = patientToImage(world, planeOf(imageId)).map(Math.round);
    if (c < 0 || r < 0 || c >= image.columns || r >= image.rows) return null;
    const stored = image.getPixelData()[r * image.columns + c];
    // Images are pre-scaled to modality units by default; apply slope/intercept only when not.
    const scaled = image.preScale?.scaled ? stored : stored * (image.slope ?? 1) + (image.intercept ?? 0);
    const modality = metaData.get('generalSeriesModule', imageId)?.modality;
    return { column: c, row: r, value: scaled, unit: modality === 'CT' ? 'HU' : '' };
  }

  /** Let go of the shown stack's images (and derived ones such as labelmaps) before the next case. */
  release(derivedImageIds = []) {
    this.prefetcher.release(this.imageIds || [], derivedImageIds);
  }

  destroy() {
    this.prefetcher.release();
    this.resizeObserver.disconnect();
    this.engine.disableElement(this.viewportId);
  }
}
