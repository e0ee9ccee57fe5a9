// "Check the model" review on the reading page: which of the reader's lesion numbers the model drew, what
// it drew (the line stub and mask slices drawingFromDocument made of the suggestion), and whether the
// reader kept it as drawn, edited it or rejected it. The drawing is kept so a rejected lesion comes back
// with one click and so a draft remembers the model's lesions across a reload. Pure: no Cornerstone, no
// fetch. It never puts anything into the read document: the server works out what came from the model.

const SAME_POINT_MM = 1e-3;

function masksByImage(slices) {
  return new Map((slices || []).map(({ imageId, counts }) => [imageId, counts.join(',')]));
}

function sameMask(original, current) {
  const before = masksByImage(original);
  const after = masksByImage(current);
  if (before.size !== after.size) return false;
  for (const [imageId, counts] of before) if (after.get(imageId) !== counts) return false;
  return true;
}

function sameLine(original, current) {
  if (!original || !current) return !original && !current;
  if (original.metadata.toolName !== current.metadata.toolName) return false;
  if (original.metadata.referencedImageId !== current.metadata.referencedImageId) return false;
  const before = original.data.handles.points;
  const after = current.data.handles.points;
  return (
    before.length === after.length &&
    before.every((point, i) => point.every((value, axis) => Math.abs(value - after[i][axis]) <= SAME_POINT_MM))
  );
}

/**
 * Where a case of a suggestion opens: {sop_instance_uid, frame} of the model's first lesion, on its line's
 * slice when it drew a line, else on the slice where its mask is largest; null without one. The reader
 * starts where there is a lesion to judge, not on the series' first (often empty) slice, and that slice
 * is the first one fetched.
 */
export function firstLesionSlice(suggestion) {
  const [first] = [...(suggestion?.lesions || [])].sort((a, b) => a.lesion - b.lesion);
  if (!first) return null;
  const place = ({ sop_instance_uid, frame }) => ({ sop_instance_uid, frame: frame || 1 });
  if (first.long_axis) return place(first.long_axis);
  let largest = null;
  let largestArea = 0;
  for (const slice of first.mask?.slices || []) {
    const area = slice.counts.reduce((sum, run, i) => (i % 2 ? sum + run : sum), 0);
    if (area > largestArea) [largest, largestArea] = [place(slice), area];
  }
  return largest;
}

/** The model's lesions on the page, keyed by the reader's lesion number. */
export class SuggestionLedger {
  /** entries: {number: {model, line, masks, rejected}} as toJSON() gives them (a draft's copy). */
  constructor(entries = {}) {
    this.byLesion = new Map(Object.entries(entries).map(([number, entry]) => [Number(number), { ...entry }]));
  }

  /**
   * The ledger of a suggestion just drawn: `drawing` is drawingFromDocument's answer for the suggestion
   * (annotations carry data.readerboardLesion, masks carry lesion), `model` the model's name.
   */
  static fromDrawing(drawing, model) {
    const ledger = new SuggestionLedger();
    const entry = (number) => {
      if (!ledger.byLesion.has(number)) ledger.byLesion.set(number, { model, line: null, masks: [], rejected: false });
      return ledger.byLesion.get(number);
    };
    for (const stub of drawing.annotations) entry(stub.data.readerboardLesion).line = JSON.parse(JSON.stringify(stub));
    for (const { imageId, lesion, counts } of drawing.masks) entry(lesion).masks.push({ imageId, counts: [...counts] });
    return ledger;
  }

  has(number) {
    return this.byLesion.has(number);
  }

  numbers() {
    return [...this.byLesion.keys()].sort((a, b) => a - b);
  }

  get size() {
    return this.byLesion.size;
  }

  /**
   * 'accepted' (as the model drew it), 'edited' or 'rejected' for a model lesion, null for the reader's own.
   * measurement: the lesion's Length/Bidirectional annotation or undefined; maskSlices: [{imageId, counts}].
   */
  status(number, { measurement, maskSlices }) {
    const entry = this.byLesion.get(number);
    if (!entry) return null;
    if (entry.rejected || (!measurement && !maskSlices?.length)) return 'rejected';
    return sameLine(entry.line, measurement) && sameMask(entry.masks, maskSlices) ? 'accepted' : 'edited';
  }

  /** True when the reader rejected model lesion `number` (and has not accepted it again). */
  isRejected(number) {
    return Boolean(this.byLesion.get(number)?.rejected);
  }

  /** Mark a model lesion rejected (the session removes its marks); false for the reader's own lesions. */
  reject(number) {
    const entry = this.byLesion.get(number);
    if (!entry) return false;
    entry.rejected = true;
    return true;
  }

  /**
   * Take a rejection back: return what the model drew for lesion `number` ({annotation stub or null,
   * masks [{imageId, lesion, counts}]}) for the session to draw again, or null for the reader's own.
   */
  accept(number) {
    const entry = this.byLesion.get(number);
    if (!entry) return null;
    entry.rejected = false;
    return {
      annotation: entry.line ? JSON.parse(JSON.stringify(entry.line)) : null,
      masks: entry.masks.map(({ imageId, counts }) => ({ imageId, lesion: number, counts: [...counts] })),
    };
  }

  toJSON() {
    return Object.fromEntries(this.byLesion);
  }
}

