// Mask proposals (POST /api/cases/<id>/mask-proposals/, docs/api-reading.md): the request for a lesion's
// line, tap or corrected slice, and the ledger of what the server proposed per lesion, which becomes the
// mask's `provenance` in the read document (docs/read-format.md). Pure: no Cornerstone, no fetch; the
// server computes whether the reader edited a proposal and by how much, never this page.

/** The request body for a lesion's line: its long axis (and short axis for a Bidirectional). */
export function lineRequest(axes, { propagate = true } = {}) {
  if (!axes?.long_axis) throw new Error('Draw a line across the lesion first (or tap it in tap mode).');
  const body = { long_axis: axes.long_axis };
  if (axes.short_axis) body.short_axis = axes.short_axis;
  if (!propagate) body.propagate = false;
  return body;
}

/** The request body for a tap at image [column, row] of one frame. */
export function tapRequest({ sop_instance_uid, frame }, point) {
  return { tap: { sop_instance_uid, frame, point: point.map((v) => Math.round(v * 100) / 100) } };
}

/** The request body to propagate again from one corrected slice (its run lengths). */
export function seedMaskRequest({ sop_instance_uid, frame }, counts) {
  return { seed_mask: { sop_instance_uid, frame, counts } };
}

/** A proposal answer as a read document with one lesion numbered `lesion` (for drawingFromDocument). */
export function proposalAsDocument(answer, lesion, { withAxes = false } = {}) {
  const entry = { lesion, mask: { slices: answer.mask.slices } };
  if (withAxes) {
    entry.long_axis = answer.long_axis;
    if (answer.short_axis) entry.short_axis = answer.short_axis;
  }
  return { lesions: [entry] };
}

/** What the server proposed for each of the reader's lesion numbers; the mask's provenance at submit. */
export class ProposalLedger {
  constructor(entries = {}) {
    this.byLesion = new Map(Object.entries(entries).map(([number, entry]) => [Number(number), entry]));
  }

  /**
   * Record a proposal answer for lesion `number`. A re-propagation keeps the source of the lesion's first
   * proposal (line or tap); one from a slice painted by hand counts as proposed from a line.
   */
  record(number, answer) {
    const earlier = this.byLesion.get(number);
    const source = answer.prompt === 'seed_mask' ? earlier?.source || 'line' : answer.prompt;
    this.byLesion.set(number, {
      source,
      algorithm: answer.algorithm,
      algorithm_version: answer.algorithm_version,
      proposal: { slices: answer.mask.slices },
    });
  }

  forget(number) {
    this.byLesion.delete(number);
  }

  has(number) {
    return this.byLesion.has(number);
  }

  /** The `provenance` object of lesion `number`'s mask, or null for a mask painted by hand. */
  provenance(number) {
    const entry = this.byLesion.get(number);
    if (!entry) return null;
    return {
      source: entry.source,
      algorithm: entry.algorithm,
      algorithm_version: entry.algorithm_version,
      proposal: { slices: entry.proposal.slices.map((slice) => ({ ...slice })) },
    };
  }

  toJSON() {
    return Object.fromEntries(this.byLesion);
  }
}

/** A refusal of the proposal endpoint in the reader's words (no lesion, too many requests, ...). */
export function proposalErrorMessage(error) {
  if (error.status === 422) return `${error.body?.detail || 'No lesion found here'}. Draw the mask with the brush instead.`;
  if (error.status === 429) {
    const wait = error.body?.detail?.match(/(\d+) s/)?.[1];
    return `Too many mask requests: try again${wait ? ` in ${wait} s` : ' shortly'}.`;
  }
  if (error.status === 503) return error.body?.detail || 'The mask took too long; paint it with the brush instead.';
  return `No mask: ${error.message}`;
}
