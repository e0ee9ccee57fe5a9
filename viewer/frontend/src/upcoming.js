// The next case, a little ahead: once the open case's slices are all in the cache, ask the server
// which case is likely to come next (no lease is taken) and fetch its first slices, one at a time at
// prefetch priority, so "Submit, next" shows an image at once even over booth Wi-Fi. The page then asks
// for that case by id (prefer_case); the server honours it while it still ranks with the best cases,
// and when another case comes the warmed slices leave the cache again.
import { Enums, imageLoader } from '@cornerstonejs/core';
import { upcomingCase } from './api.js';
import { registerCaseImages } from './imageIds.js';
import { isCached, releaseImages } from './prefetch.js';
import { outwardOrder } from './sliceOrder.js';

/** Slices of the next case fetched ahead: the one it opens on and those around it. */
export const UPCOMING_SLICES = 12;

export class UpcomingCase {
  constructor({ slices = UPCOMING_SLICES, wadorsRoot = null } = {}) {
    this.slices = slices;
    this.wadorsRoot = wadorsRoot;
    this.upcoming = null;
    this.imageIds = [];
    this.warming = null;
  }

  /** The id to send as prefer_case with the next-case request, or null. */
  preferredId() {
    return this.upcoming?.id ?? null;
  }

  /** Find the likely next case of the task and fetch its first slices; a failure only loses the hint. */
  warm(taskId) {
    this.warming ||= this._warm(taskId).catch(() => undefined);
    return this.warming;
  }

  async _warm(taskId) {
    const upcoming = await upcomingCase(taskId);
    if (!upcoming) return;
    const source = this.wadorsRoot ? { ...upcoming, wadors_root: this.wadorsRoot } : upcoming;
    const { imageIds } = await registerCaseImages(source);
    this.upcoming = upcoming;
    this.imageIds = imageIds;
    // A case opens on its first slice; fetch it, then outward, one request at a time so the open
    // case's own requests never queue behind these.
    const wanted = [0, ...outwardOrder(0, imageIds.length, { limit: this.slices - 1 })];
    for (const index of wanted) {
      if (this.upcoming !== upcoming) return;
      const imageId = imageIds[index];
      if (isCached(imageId)) continue;
      await imageLoader
        .loadAndCacheImage(imageId, { requestType: Enums.RequestType.Prefetch, priority: 5 })
        .catch(() => undefined);
    }
  }

  /** A case was opened: keep the warmed slices when it is the upcoming one, let them go otherwise. */
  settle(openedCaseId) {
    if (this.upcoming && this.upcoming.id !== openedCaseId) releaseImages(this.imageIds);
    this.upcoming = null;
    this.imageIds = [];
    this.warming = null;
  }
}
