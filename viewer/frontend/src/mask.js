// The lesion mask: one Cornerstone labelmap segmentation over the stack, segment index = lesion
// number, painted with the brush and eraser tools. Encodes it per slice as the run lengths of
// docs/read-format.md and restores it from them (drafts kept across a reload).
import { cache, imageLoader } from '@cornerstonejs/core';
import { Enums as ToolEnums, segmentation } from '@cornerstonejs/tools';
import { decodeRunsInto, encodeRuns, hasForeground } from './rle.js';
import { VIEWPORT_ID } from './viewer.js';

function scalars(image) {
  return image.voxelManager?.getCompleteScalarDataArray?.() ?? image.getPixelData();
}

export class LesionMask {
  /** Create an empty labelmap over `imageIds` and show it on the viewport. */
  static async create(imageIds, segmentationId) {
    const labelmaps = imageLoader.createAndCacheDerivedLabelmapImages(imageIds);
    segmentation.addSegmentations([
      {
        segmentationId,
        representation: {
          type: ToolEnums.SegmentationRepresentations.Labelmap,
          data: { imageIds: labelmaps.map((image) => image.imageId) },
        },
      },
    ]);
    await segmentation.addLabelmapRepresentationToViewport(VIEWPORT_ID, [{ segmentationId }]);
    const mask = new LesionMask(segmentationId);
    imageIds.forEach((imageId, k) => mask.labelmapOf.set(imageId, labelmaps[k].imageId));
    return mask;
  }

  constructor(segmentationId) {
    this.segmentationId = segmentationId;
    this.labelmapOf = new Map(); // source image id -> labelmap image id
  }

  /** Paint with lesion `number` from now on. */
  setActiveLesion(number) {
    segmentation.segmentIndex.setActiveSegmentIndex(this.segmentationId, number);
  }

  /** For each lesion number painted anywhere: [{imageId, counts}] of the slices it covers. */
  encode() {
    const byLesion = new Map();
    for (const [imageId, labelmapId] of this.labelmapOf) {
      const image = cache.getImage(labelmapId);
      if (!image) continue;
      const pixels = scalars(image);
      const present = new Set();
      for (let i = 0; i < pixels.length; i += 1) if (pixels[i]) present.add(pixels[i]);
      for (const lesion of present) {
        const counts = encodeRuns(pixels, lesion);
        if (!hasForeground(counts)) continue;
        if (!byLesion.has(lesion)) byLesion.set(lesion, []);
        byLesion.get(lesion).push({ imageId, counts });
      }
    }
    return byLesion;
  }

  /** Pixels painted per lesion number (for the lesion list); `encoded` is encode()'s answer when the caller has it. */
  pixelCounts(encoded = this.encode()) {
    const totals = new Map();
    for (const [lesion, slices] of encoded) {
      let n = 0;
      for (const { counts } of slices) for (let i = 1; i < counts.length; i += 2) n += counts[i];
      totals.set(lesion, { pixels: n, slices: slices.length });
    }
    return totals;
  }

  /** Paint stored slices back: entries [{imageId, lesion, counts}]. */
  restore(entries) {
    for (const { imageId, lesion, counts } of entries) {
      const image = cache.getImage(this.labelmapOf.get(imageId));
      if (!image) continue;
      const pixels = scalars(image);
      const layer = new Uint8Array(pixels.length);
      decodeRunsInto(counts, layer, 1);
      for (let i = 0; i < layer.length; i += 1) if (layer[i]) pixels[i] = lesion;
      image.voxelManager?.setCompleteScalarDataArray?.(pixels);
    }
    this.changed();
  }

  /** Clear every pixel of lesion `number`. */
  clearLesion(number) {
    for (const labelmapId of this.labelmapOf.values()) {
      const image = cache.getImage(labelmapId);
      if (!image) continue;
      const pixels = scalars(image);
      let touched = false;
      for (let i = 0; i < pixels.length; i += 1) {
        if (pixels[i] === number) {
          pixels[i] = 0;
          touched = true;
        }
      }
      if (touched) image.voxelManager?.setCompleteScalarDataArray?.(pixels);
    }
    this.changed();
  }

  changed() {
    segmentation.triggerSegmentationEvents.triggerSegmentationDataModified(this.segmentationId);
  }

  remove() {
    segmentation.removeSegmentation(this.segmentationId);
  }
}
