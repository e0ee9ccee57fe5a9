// Builds the read document of docs/read-format.md from what the reader drew: measurement
// annotations (world points -> image [column, row] on a named instance and frame), mask run
// lengths per slice, flags, comment and time spent. Lesions are renumbered 1..n in order.
// Pure apart from the geometry lookups passed in; never talks to the server.
import { clampToImage, lineLengthMm, patientToImage, round } from './geometry.js';

function line(points, imageId, { frameOf, planeOf }) {
  const where = frameOf.get(imageId);
  if (!where) throw new Error(`measurement on an image outside this case: ${imageId}`);
  const plane = planeOf(imageId);
  const size = { rows: plane.rows ?? where.rows, columns: plane.columns ?? where.columns };
  const [start, end] = points.map((p) => clampToImage(patientToImage(p, plane), size).map((v) => round(v, 3)));
  return {
    sop_instance_uid: where.sop_instance_uid,
    frame: where.frame,
    start,
    end,
    length_mm: round(lineLengthMm(start, end, plane), 2),
  };
}

/** The long (and short) axis of one Length or Bidirectional annotation. */
export function measurementAxes(annotation, lookups) {
  const imageId = annotation.metadata.referencedImageId;
  const points = annotation.data.handles.points;
  if (annotation.metadata.toolName === 'Bidirectional') {
    return {
      long_axis: line([points[0], points[1]], imageId, lookups),
      short_axis: line([points[2], points[3]], imageId, lookups),
    };
  }
  return { long_axis: line([points[0], points[1]], imageId, lookups) };
}

/**
 * Return the lesions as [{number, axes, maskSlices}] sorted by the reader's lesion number.
 * annotations: measurement annotations carrying data.readerboardLesion;
 * maskByLesion: Map(lesion number -> [{imageId, counts}]).
 */
export function collectLesions(annotations, maskByLesion, lookups) {
  const numbers = new Set([...maskByLesion.keys()]);
  for (const item of annotations) numbers.add(item.data.readerboardLesion);
  return [...numbers]
    .filter((n) => Number.isInteger(n) && n > 0)
    .sort((a, b) => a - b)
    .map((number) => {
      const measurement = annotations.find((item) => item.data.readerboardLesion === number);
      return {
        number,
        annotationUID: measurement?.annotationUID,
        axes: measurement ? measurementAxes(measurement, lookups) : {},
        maskSlices: maskByLesion.get(number) || [],
      };
    });
}

/** The JSON document to POST to /api/reads/. */
export function buildReadDocument({ clientUuid, caseId, startedAt, now = new Date(), flags, comment, lesions, frameOf }) {
  const withContent = lesions.filter((lesion) => lesion.axes.long_axis || lesion.maskSlices.length);
  return {
    client_uuid: clientUuid,
    case: caseId,
    started_at: new Date(startedAt).toISOString(),
    duration_s: round(Math.min(86400, Math.max(0, (now - new Date(startedAt)) / 1000)), 1),
    flags: { no_lesion: Boolean(flags.no_lesion), skip: Boolean(flags.skip), quality_problem: Boolean(flags.quality_problem) },
    comment: (comment || '').slice(0, 2000),
    lesions: withContent.map((lesion, index) => {
      const entry = { lesion: index + 1, ...lesion.axes };
      if (lesion.maskSlices.length) {
        entry.mask = {
          slices: lesion.maskSlices.map(({ imageId, counts }) => ({
            sop_instance_uid: frameOf.get(imageId).sop_instance_uid,
            frame: frameOf.get(imageId).frame,
            counts,
          })),
        };
      }
      return entry;
    }),
  };
}

/** Problems that would make the server refuse the document, in the reader's words. */
export function readProblems(document_, { tools }) {
  const problems = [];
  const { flags, lesions } = document_;
  if ((flags.no_lesion || flags.skip) && lesions.length) {
    problems.push('"No measurable lesion" and "Skip" cannot be sent with lesions: delete the lesions or un-press the button.');
  }
  if (!lesions.length && !flags.no_lesion && !flags.skip) {
    problems.push('Measure at least one lesion, or press "No measurable lesion" or "Skip".');
  }
  if (lesions.some((lesion) => lesion.mask) && !tools.includes('mask')) problems.push('This task does not take masks.');
  return problems;
}
