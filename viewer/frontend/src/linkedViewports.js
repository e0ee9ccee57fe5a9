// Baseline and follow-up stack viewports moved together: scrolling either one moves the other to the
// slice nearest in patient position along the slice normal (same frame of reference, or an offset
// the reader records once with "Link here"), and window/level linked through Cornerstone's VOI
// synchronizer when the reader wants it.
//
// Why not Cornerstone's image-slice synchronizer for the slices: it picks the target slice by 3-D
// distance between ImagePositionPatient points, which an in-plane shift between studies (another
// field of view or table centring) biases, and across frames of reference it registers the two
// viewports implicitly at whatever slices they show at that moment. Readers need the explicit,
// visible landmark offset of sliceLinking.js, which node tests check.
import { SynchronizerManager, synchronizers } from '@cornerstonejs/tools';
import { initialLink, landmarkOffsetMm, linkedSliceIndex, positionsAlongNormalMm, sliceNormal } from './sliceLinking.js';
import { planeOf, RENDERING_ENGINE_ID } from './viewer.js';

const VOI_SYNC_ID = 'readerboard-follow-up-voi';

/** Positions (mm) along `normal` of every image id of a stack, from Cornerstone's plane metadata. */
export function stackPositionsMm(imageIds, normal) {
  return positionsAlongNormalMm(
    imageIds.map((imageId) => planeOf(imageId).imagePositionPatient),
    normal,
  );
}

export class LinkedViewports {
  /** baseline, followUp: StackViewer instances (viewer.js). */
  constructor(baseline, followUp) {
    this.baseline = baseline;
    this.followUp = followUp;
    this.link = { linked: false, offsetMm: null, by: null };
    this.enabled = true;
    this.listeners = [];
    // A programmatic move of one viewport must not bounce back to the other one.
    this.following = { baseline: 0, followUp: 0 };
    baseline.on('slice', (index) => this._follow('baseline', index));
    followUp.on('slice', (index) => this._follow('followUp', index));
    SynchronizerManager.destroySynchronizer(VOI_SYNC_ID);
    this.voiSync = synchronizers.createVOISynchronizer(VOI_SYNC_ID, { syncInvertState: true, syncColormap: false });
    for (const viewer of [baseline, followUp]) this.voiSync.add({ renderingEngineId: RENDERING_ENGINE_ID, viewportId: viewer.viewportId });
    this.voiSync.setEnabled(false);
  }

  /** Called with the link state whenever it changes (for the link bar). */
  onChange(callback) {
    this.listeners.push(callback);
  }

  _changed() {
    for (const callback of this.listeners) callback(this.state());
  }

  /**
   * The two stacks now shown (image ids in stack order) and their frames of reference; `saved` is an
   * earlier link of this pair from a draft ({linked, offsetMm, by}).
   */
  setStacks({ baselineImageIds, followUpImageIds, baselineFrameOfReference, followUpFrameOfReference, saved = null }) {
    const first = planeOf(baselineImageIds[0]);
    // One normal for both series: they are positioned in one patient coordinate system (or offset along it).
    const normal = sliceNormal(first.rowCosines, first.columnCosines);
    this.baselinePositions = stackPositionsMm(baselineImageIds, normal);
    this.followUpPositions = stackPositionsMm(followUpImageIds, normal);
    this.sharedFrameOfReference = initialLink(baselineFrameOfReference, followUpFrameOfReference).linked;
    this.link = saved?.by ? { ...saved } : initialLink(baselineFrameOfReference, followUpFrameOfReference);
    this._changed();
  }

  state() {
    return { ...this.link, enabled: this.enabled, windowLinked: this.voiSync.isDisabled() === false, sharedFrameOfReference: this.sharedFrameOfReference };
  }

  /**
   * Index of the follow-up slice linked to baseline slice `index`: null when not linked, unless
   * `guess`, which takes the same patient position (offset 0) before the reader has set one.
   */
  followUpIndexFor(baselineIndex, { guess = false } = {}) {
    if (!this.followUpPositions?.length || !(this.link.linked || guess)) return null;
    return linkedSliceIndex({
      fromPositionsMm: this.baselinePositions,
      fromIndex: baselineIndex,
      toPositionsMm: this.followUpPositions,
      offsetMm: this.link.linked ? this.link.offsetMm : 0,
    });
  }

  baselineIndexFor(followUpIndex) {
    if (!this.link.linked || !this.baselinePositions?.length) return null;
    return linkedSliceIndex({
      fromPositionsMm: this.followUpPositions,
      fromIndex: followUpIndex,
      toPositionsMm: this.baselinePositions,
      offsetMm: -this.link.offsetMm,
    });
  }

  async _follow(source, index) {
    if (!this.enabled || !this.link.linked || this.following[source] > 0) return;
    const targetName = source === 'baseline' ? 'followUp' : 'baseline';
    const target = this[targetName];
    if (!target.imageIds?.length || this[`${source}Positions`]?.[index] === undefined) return;
    let targetIndex;
    try {
      targetIndex = source === 'baseline' ? this.followUpIndexFor(index) : this.baselineIndexFor(index);
    } catch {
      return; // a stack being swapped: the next slice event will do
    }
    if (targetIndex == null || targetIndex < 0 || targetIndex === target.sliceIndex()) return;
    this.following[targetName] += 1;
    try {
      await target.goToSlice(targetIndex);
    } finally {
      this.following[targetName] -= 1;
    }
  }

  /** Scroll linking on or off (the offset is kept). */
  setEnabled(enabled) {
    this.enabled = enabled;
    if (enabled) this._follow('baseline', this.baseline.sliceIndex());
    this._changed();
  }

  /** Record that the two slices shown now show the same anatomy: link from here on by that offset. */
  linkHere() {
    this.link = {
      linked: true,
      by: 'landmark',
      offsetMm: landmarkOffsetMm({
        fromPositionsMm: this.baselinePositions,
        fromIndex: this.baseline.sliceIndex(),
        toPositionsMm: this.followUpPositions,
        toIndex: this.followUp.sliceIndex(),
      }),
    };
    this.enabled = true;
    this._changed();
    return this.link;
  }

  setWindowLinked(linked) {
    this.voiSync.setEnabled(linked);
    if (linked) {
      const window_ = this.baseline.window();
      if (window_) this.followUp.setWindow(window_);
    }
    this._changed();
  }

  /** Show baseline slice `index` and, when linked, the follow-up slice at the same position. */
  async jumpBaseline(index) {
    const followUpIndex = this.followUpIndexFor(index);
    this.following.baseline += 1;
    this.following.followUp += 1;
    try {
      await Promise.all([this.baseline.goToSlice(index), followUpIndex == null ? null : this.followUp.goToSlice(followUpIndex)]);
    } finally {
      this.following.baseline -= 1;
      this.following.followUp -= 1;
    }
  }

  destroy() {
    SynchronizerManager.destroySynchronizer(VOI_SYNC_ID);
  }
}
