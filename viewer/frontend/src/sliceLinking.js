// The arithmetic of linked scrolling between a baseline and a follow-up series: where each slice
// lies along the slice normal, which slice of the other series is nearest a patient position, and
// the offset a reader sets by aligning one landmark when the two series share no frame of reference.
// Pure functions over plain arrays (no Cornerstone), so node --test checks them.

const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];

/** Unit normal of an image plane (row cosines x column cosines), the direction slices advance in. */
export function sliceNormal(rowCosines, columnCosines) {
  const [a, b] = [rowCosines, columnCosines];
  const n = [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
  const length = Math.hypot(...n);
  if (!(length > 0)) throw new Error(`image orientation has parallel cosines: ${a} and ${b}`);
  return n.map((v) => v / length + 0); // + 0 turns -0 into 0
}

/** Positions (mm) of slices along `normal`: the dot product of each ImagePositionPatient with it. */
export function positionsAlongNormalMm(imagePositions, normal) {
  return imagePositions.map((position) => dot(position, normal));
}

/** Index of the position nearest `targetMm` (the first of equals); -1 for an empty list. */
export function nearestSliceIndex(positionsMm, targetMm) {
  let best = -1;
  let bestDistance = Infinity;
  positionsMm.forEach((position, index) => {
    const distance = Math.abs(position - targetMm);
    if (distance < bestDistance) {
      best = index;
      bestDistance = distance;
    }
  });
  return best;
}

/**
 * Index in `toPositionsMm` of the slice at the same patient position as slice `fromIndex` of
 * `fromPositionsMm`, where a position p in the "from" series is p + offsetMm in the "to" series.
 */
export function linkedSliceIndex({ fromPositionsMm, fromIndex, toPositionsMm, offsetMm = 0 }) {
  const from = fromPositionsMm[fromIndex];
  if (from === undefined) throw new RangeError(`no slice ${fromIndex} in a series of ${fromPositionsMm.length}`);
  return nearestSliceIndex(toPositionsMm, from + offsetMm);
}

/**
 * The offset (mm, "to" minus "from") that makes slice `fromIndex` and slice `toIndex` show the same
 * anatomy: what "Link here" records when the reader has both viewports on one landmark.
 */
export function landmarkOffsetMm({ fromPositionsMm, fromIndex, toPositionsMm, toIndex }) {
  const from = fromPositionsMm[fromIndex];
  const to = toPositionsMm[toIndex];
  if (from === undefined || to === undefined) throw new RangeError(`slice ${fromIndex} or ${toIndex} is outside its series`);
  return to - from;
}

/**
 * How two series start out linked: by patient position with no offset when they share a
 * FrameOfReferenceUID (same scanner coordinates), otherwise not until the reader aligns a landmark.
 */
export function initialLink(baselineFrameOfReference, followUpFrameOfReference) {
  const shared = Boolean(baselineFrameOfReference) && baselineFrameOfReference === followUpFrameOfReference;
  return shared ? { linked: true, offsetMm: 0, by: 'frame_of_reference' } : { linked: false, offsetMm: null, by: null };
}
