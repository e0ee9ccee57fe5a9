// Image coordinates of docs/read-format.md: (column, row) in pixels with (0, 0) the centre of the
// top-left pixel, i.e. the point ImagePositionPatient names. Cornerstone3D's own
// worldToImageCoords puts (0, 0) at the pixel's corner instead, so the read document never uses it.
// Pure functions over plain arrays; no Cornerstone imports.

const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];

/**
 * Return [column, row] of a patient-space point (mm) on an image plane.
 * plane: {imagePositionPatient, rowCosines (along a row: X), columnCosines (down a column: Y),
 *         columnSpacingMm (PixelSpacing[1]), rowSpacingMm (PixelSpacing[0])}.
 */
export function patientToImage(point, plane) {
  const offset = [0, 1, 2].map((k) => point[k] - plane.imagePositionPatient[k]);
  return [dot(offset, plane.rowCosines) / plane.columnSpacingMm, dot(offset, plane.columnCosines) / plane.rowSpacingMm];
}

/** Return the patient-space point (mm) of image coordinates [column, row]. */
export function imageToPatient([column, row], plane) {
  return [0, 1, 2].map(
    (k) =>
      plane.imagePositionPatient[k] +
      column * plane.columnSpacingMm * plane.rowCosines[k] +
      row * plane.rowSpacingMm * plane.columnCosines[k],
  );
}

/** Length in mm of a line between two image points: sqrt((Δc·dc)² + (Δr·dr)²). */
export function lineLengthMm(start, end, plane) {
  const dc = (end[0] - start[0]) * plane.columnSpacingMm;
  const dr = (end[1] - start[1]) * plane.rowSpacingMm;
  return Math.hypot(dc, dr);
}

/** Clamp image coordinates into the range the server accepts (-0.5 .. size - 0.5). */
export function clampToImage([column, row], { rows, columns }) {
  const clamp = (v, hi) => Math.min(Math.max(v, -0.5), hi - 0.5);
  return [clamp(column, columns), clamp(row, rows)];
}

export const round = (value, digits = 3) => Math.round(value * 10 ** digits) / 10 ** digits;
