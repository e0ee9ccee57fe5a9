// Builds the read document of docs/read-format.md from what the reader drew: measurement
// annotations (world points -> image [column, row] on a named instance and frame), mask run
// lengths per slice, flags, comment, time spent and the answers to the task's questions.
// Lesions are renumbered 1..n in order. Pure apart from the geometry lookups passed in; never
// talks to the server.
import { clampToImage, lineLengthMm, patientToImage, round } from './geometry.js';
import { answeredOnly } from './questions.js';

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
 * Return the lesions as [{number, axes, maskSlices, answers}] sorted by the reader's lesion number
 * (the session adds `provenance` to a lesion whose mask started from a proposal).
 * annotations: measurement annotations carrying data.readerboardLesion;
 * maskByLesion: Map(lesion number -> [{imageId, counts}]);
 * lesionAnswers: {lesion number: {question key: value}}.
 */
export function collectLesions(annotations, maskByLesion, lookups, lesionAnswers = {}) {
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
        answers: lesionAnswers[number] || {},
      };
    });
}

/** The lesions that go into the read: those with a line or a painted mask. */
export function lesionsWithContent(lesions) {
  return lesions.filter((lesion) => lesion.axes.long_axis || lesion.maskSlices.length);
}

/**
 * The JSON document to POST to /api/reads/ (or an answer key's endpoint).
 * questions: questionSet(task) or null; caseAnswers: {key: value}; each lesion carries `answers`.
 * Unanswered questions are left out; "answers" is left out for a scope the task asks nothing in.
 */
export function buildReadDocument({
  clientUuid,
  caseId,
  startedAt,
  now = new Date(),
  flags,
  comment,
  lesions,
  frameOf,
  questions = null,
  caseAnswers = {},
}) {
  const withContent = lesionsWithContent(lesions);
  const document_ = {
    client_uuid: clientUuid,
    case: caseId,
    started_at: new Date(startedAt).toISOString(),
    duration_s: round(Math.min(86400, Math.max(0, (now - new Date(startedAt)) / 1000)), 1),
    flags: { no_lesion: Boolean(flags.no_lesion), skip: Boolean(flags.skip), quality_problem: Boolean(flags.quality_problem) },
    comment: (comment || '').slice(0, 2000),
    lesions: withContent.map((lesion, index) => {
      const entry = { lesion: index + 1, ...lesion.axes };
      if (questions?.lesion.length) entry.answers = answeredOnly(questions.lesion, lesion.answers);
      if (lesion.maskSlices.length) {
        entry.mask = {
          slices: lesion.maskSlices.map(({ imageId, counts }) => ({
            sop_instance_uid: frameOf.get(imageId).sop_instance_uid,
            frame: frameOf.get(imageId).frame,
            counts,
          })),
        };
        // A mask that started from a server proposal says so; the server works out how much it was edited.
        if (lesion.provenance) entry.mask.provenance = lesion.provenance;
      }
      return entry;
    }),
  };
  if (questions) {
    document_.question_version = questions.version;
    if (questions.case.length) document_.answers = answeredOnly(questions.case, caseAnswers);
  }
  return document_;
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
