// Interaction-first image loading for a stack of hundreds of slices over shared Wi-Fi.
//
// Cornerstone's request pools run three request types: the slice the reader asks for goes out as
// an Interaction request (StackViewport does that), and everything this module fetches ahead goes
// out as Prefetch. Prefetch is kept to a few requests in flight, so an asked-for slice always finds
// a free connection (browsers open 6 per host) and waits behind well under a megabyte. The queue is
// rebuilt outward from the current slice whenever the reader moves, so a jump re-prioritises
// everything not yet sent. The image cache is bounded by a budget sized to the device; prefetch never
// fills it past what keeps the slices around the reader, and a closed case's images are let go.
import { cache, Enums, imageLoader, imageLoadPoolManager, imageRetrievalPoolManager } from '@cornerstonejs/core';
import { cacheBudgetBytes, outwardOrder } from './sliceOrder.js';

const { RequestType } = Enums;

/** Prefetch requests in flight at once (per pool). */
export const PREFETCH_IN_FLIGHT = 3;
/** Share of the cache budget prefetch may fill; the rest is headroom for labelmaps and the next case. */
const PREFETCH_SHARE = 0.75;

/** Put the request pools in the shape interaction-first reading needs (call once at start). */
export function configureRequestPools() {
  for (const pool of [imageLoadPoolManager, imageRetrievalPoolManager]) {
    pool.setMaxSimultaneousRequests(RequestType.Prefetch, PREFETCH_IN_FLIGHT);
  }
}

export class StackPrefetcher {
  constructor({ budgetBytes = cacheBudgetBytes() } = {}) {
    this.budgetBytes = budgetBytes;
    cache.setMaxCacheSize(budgetBytes);
    this.imageIds = [];
    this.center = 0;
    this.direction = 1;
    this.bytesPerSlice = 0;
    this.generation = 0;
    this.focusToken = 0;
    this.outstanding = 0;
    this.idleSignalled = false;
    /** Called once per stack when every slice prefetch may hold is in the cache. */
    this.onIdle = null;
  }

  /** Start on a new stack; `extraBytesPerSlice` is what else each slice holds in the cache (a labelmap). */
  setStack(imageIds, { extraBytesPerSlice = 0 } = {}) {
    this.generation += 1;
    imageLoadPoolManager.clearRequestStack(RequestType.Prefetch);
    this.imageIds = imageIds;
    this.extraBytesPerSlice = extraBytesPerSlice;
    this.bytesPerSlice = 0;
    this.center = 0;
    this.direction = 1;
    this.idleSignalled = false;
  }

  /** How many slices prefetch may hold in the cache at once. */
  sliceAllowance() {
    const perSlice = (this.bytesPerSlice || 0) + this.extraBytesPerSlice;
    if (!perSlice) return this.imageIds.length;
    return Math.max(8, Math.floor((this.budgetBytes * PREFETCH_SHARE) / perSlice));
  }

  /** Hold queued prefetch (the reader asked for a slice, which must go out first). */
  hold() {
    imageLoadPoolManager.clearRequestStack(RequestType.Prefetch);
  }

  /** The reader is now on slice `index`: drop queued prefetch and queue outward from here. */
  focus(index) {
    if (!this.imageIds.length) return;
    if (index !== this.center) this.direction = index > this.center ? 1 : -1;
    this.center = index;
    this._learnSliceSize(this.imageIds[index]);
    imageLoadPoolManager.clearRequestStack(RequestType.Prefetch);
    const generation = this.generation;
    const token = ++this.focusToken;
    const order = outwardOrder(index, this.imageIds.length, {
      direction: this.direction,
      limit: Math.min(this.imageIds.length, this.sliceAllowance()),
    });
    const missing = order.map((sliceIndex) => this.imageIds[sliceIndex]).filter((imageId) => !isCached(imageId));
    this.outstanding = missing.length;
    for (const imageId of missing) {
      const load = () => {
        if (generation !== this.generation) return undefined;
        return imageLoader
          .loadAndCacheImage(imageId, { requestType: RequestType.Prefetch, priority: 0 })
          .then((image) => this._learnSliceSize(imageId, image))
          .catch(() => undefined)
          .finally(() => this._settled(token));
      };
      imageLoadPoolManager.addRequest(load, RequestType.Prefetch, { imageId }, 0);
    }
    if (!missing.length) this._signalIdle();
  }

  _settled(token) {
    // Loads queued by an earlier focus were dropped from the queue; only the latest focus counts down.
    if (token !== this.focusToken) return;
    this.outstanding -= 1;
    if (this.outstanding <= 0) this._signalIdle();
  }

  _signalIdle() {
    if (this.idleSignalled || !this.imageIds.length) return;
    this.idleSignalled = true;
    this.onIdle?.();
  }

  _learnSliceSize(imageId, image = null) {
    if (this.bytesPerSlice) return;
    const loaded = image || cache.getImage?.(imageId);
    if (loaded?.sizeInBytes) this.bytesPerSlice = loaded.sizeInBytes;
  }

  /** Stop prefetching and let go of a closed case's images (and any derived images listed). */
  release(imageIds = this.imageIds, derivedImageIds = []) {
    this.generation += 1;
    imageLoadPoolManager.clearRequestStack(RequestType.Prefetch);
    releaseImages([...imageIds, ...derivedImageIds]);
    this.imageIds = [];
  }
}

/** True when the image is in the cache or on its way there. */
export function isCached(imageId) {
  return Boolean(cache.isLoaded(imageId) || cache.getImageLoadObject(imageId));
}

/** Take images out of the cache (those still loading leave when they are replaced or evicted). */
export function releaseImages(imageIds) {
  for (const imageId of imageIds) {
    if (!isCached(imageId)) continue;
    try {
      cache.removeImageLoadObject(imageId, { force: true });
    } catch {
      // still loading: the cache drops it when it is replaced or evicted
    }
  }
}
