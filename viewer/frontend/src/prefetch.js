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
import { cacheBudgetBytes, interleave, outwardOrder } from './sliceOrder.js';

const { RequestType } = Enums;

/**
 * Prefetch downloads in flight at once. Five keep 50 Mbit/s Wi-Fi with 20 ms round trips busy (three
 * left it idle half the time: whole series 36 s against 27 s), and leave the sixth of the browser's six
 * HTTP/1.1 connections per host to the slice the reader asks for.
 */
export const PREFETCH_IN_FLIGHT = 5;
/**
 * Prefetch loads (download, then decode in a web worker) in flight at once: more than the downloads,
 * so a frame that has arrived and waits for a decoder does not hold one of the five network slots.
 */
export const PREFETCH_LOADS_IN_FLIGHT = 10;
/** Share of the cache budget prefetch may fill; the rest is headroom for labelmaps and the next case. */
const PREFETCH_SHARE = 0.75;

/** Put the request pools in the shape interaction-first reading needs (call once at start). */
export function configureRequestPools() {
  imageRetrievalPoolManager.setMaxSimultaneousRequests(RequestType.Prefetch, PREFETCH_IN_FLIGHT);
  imageLoadPoolManager.setMaxSimultaneousRequests(RequestType.Prefetch, PREFETCH_LOADS_IN_FLIGHT);
}

// Cornerstone has one prefetch queue for the page; follow-up reading shows two stacks, each with its
// own prefetcher. Whenever one of them changes its wishes the queue is rebuilt from all of them
// (interleaved), so moving one viewport never drops the other's prefetch.
const prefetchers = new Set();

function rebuildPrefetchQueue() {
  imageLoadPoolManager.clearRequestStack(RequestType.Prefetch);
  const queues = [...prefetchers].filter((prefetcher) => !prefetcher.held).map((prefetcher) => prefetcher._wanted());
  for (const { load, imageId } of interleave(queues)) {
    imageLoadPoolManager.addRequest(load, RequestType.Prefetch, { imageId }, 0);
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
    this.held = true;
    this.idleSignalled = false;
    /** Called once per stack when every slice prefetch may hold is in the cache. */
    this.onIdle = null;
  }

  /** Start on a new stack; `extraBytesPerSlice` is what else each slice holds in the cache (a labelmap). */
  setStack(imageIds, { extraBytesPerSlice = 0 } = {}) {
    this.generation += 1;
    this.held = true;
    prefetchers.add(this);
    rebuildPrefetchQueue();
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
    // Two stacks on the page (follow-up reading) share the budget.
    const share = PREFETCH_SHARE / Math.max(1, prefetchers.size);
    return Math.max(8, Math.floor((this.budgetBytes * share) / perSlice));
  }

  /** Hold queued prefetch (the reader asked for a slice, which must go out first). */
  hold() {
    this.held = true;
    rebuildPrefetchQueue();
  }

  /** The reader is now on slice `index`: drop queued prefetch and queue outward from here. */
  focus(index) {
    if (!this.imageIds.length) return;
    if (index !== this.center) this.direction = index > this.center ? 1 : -1;
    this.center = index;
    this._learnSliceSize(this.imageIds[index]);
    this.held = false;
    rebuildPrefetchQueue();
    this._checkIdle();
  }

  /** The slices still to fetch, outward from the reader's slice: [{imageId, load}]. */
  _wanted() {
    if (!this.imageIds.length) return [];
    const generation = this.generation;
    const wanted = [];
    for (const sliceIndex of this._order()) {
      const imageId = this.imageIds[sliceIndex];
      if (isCached(imageId)) continue;
      const load = () => {
        if (generation !== this.generation) return undefined;
        return imageLoader
          .loadAndCacheImage(imageId, { requestType: RequestType.Prefetch, priority: 0 })
          .then((image) => this._learnSliceSize(imageId, image))
          .catch(() => undefined)
          .finally(() => {
            if (generation === this.generation) this._checkIdle();
          });
      };
      wanted.push({ imageId, load });
    }
    return wanted;
  }

  /** The slices prefetch may hold, outward from the reader's slice. */
  _order() {
    return outwardOrder(this.center, this.imageIds.length, {
      direction: this.direction,
      limit: Math.min(this.imageIds.length, this.sliceAllowance()),
    });
  }

  /** Signal onIdle (once per stack) when the reader's slice and every slice prefetch may hold are loaded. */
  _checkIdle() {
    if (this.idleSignalled || !this.imageIds.length) return;
    const indices = [this.center, ...this._order()];
    if (!indices.every((index) => cache.isLoaded(this.imageIds[index]))) return;
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
    this.held = true;
    prefetchers.delete(this);
    rebuildPrefetchQueue();
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
