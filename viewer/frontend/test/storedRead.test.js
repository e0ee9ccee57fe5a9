// A stored answer key drawn back and sent again gives the same read document (lines, masks, answers).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildReadDocument, collectLesions } from '../src/readDocument.js';
import { drawingFromDocument } from '../src/storedRead.js';

const plane = {
  imagePositionPatient: [-95.5, -95.5, 12.5],
  rowCosines: [1, 0, 0],
  columnCosines: [0, 1, 0],
  columnSpacingMm: 0.5,
  rowSpacingMm: 0.8,
  rows: 192,
  columns: 192,
};
const imageIds = ['wadors:a/frames/1', 'wadors:b/frames/1'];
const frameOf = new Map([
  [imageIds[0], { sop_instance_uid: '1.2.3.1', frame: 1, rows: 192, columns: 192 }],
  [imageIds[1], { sop_instance_uid: '1.2.3.2', frame: 1, rows: 192, columns: 192 }],
]);
const lookups = { frameOf, planeOf: () => plane };

const stored = {
  client_uuid: 'old',
  case: 4,
  started_at: '2026-11-25T10:00:00.000Z',
  duration_s: 12,
  flags: { no_lesion: false, skip: false, quality_problem: true },
  comment: 'reference',
  question_version: 2,
  answers: { confidence: 5 },
  lesions: [
    {
      lesion: 1,
      long_axis: { sop_instance_uid: '1.2.3.2', frame: 1, start: [10, 20], end: [58, 20], length_mm: 24 },
      short_axis: { sop_instance_uid: '1.2.3.2', frame: 1, start: [34, 10], end: [34, 30], length_mm: 16 },
      answers: { lesion_type: 'liver' },
    },
    {
      lesion: 2,
      long_axis: { sop_instance_uid: '1.2.3.1', frame: 1, start: [100.5, 60.25], end: [120, 90], length_mm: 25.72 },
      mask: { slices: [{ sop_instance_uid: '1.2.3.1', frame: 1, counts: [5, 3, 36856] }] },
      answers: { lesion_type: 'lung' },
    },
    { lesion: 3, long_axis: { sop_instance_uid: '9.9.9', frame: 1, start: [1, 1], end: [5, 5], length_mm: 3 } },
  ],
};

function drawBack() {
  const imageIdOf = (uid, frame) => [...frameOf].find(([, where]) => where.sop_instance_uid === uid && where.frame === frame)?.[0];
  let n = 0;
  return drawingFromDocument(stored, {
    imageIdOf,
    planeOf: () => plane,
    view: { FrameOfReferenceUID: '1.2.9', viewPlaneNormal: [0, 0, -1], viewUp: [0, -1, 0] },
    newUid: () => `uid-${(n += 1)}`,
  });
}

test('a stored answer key becomes Length and Bidirectional records on the right images', () => {
  const drawing = drawBack();
  assert.deepEqual(
    drawing.annotations.map((item) => [item.metadata.toolName, item.metadata.referencedImageId, item.data.readerboardLesion]),
    [
      ['Bidirectional', imageIds[1], 1],
      ['Length', imageIds[0], 2],
    ],
  );
  assert.deepEqual(drawing.annotations[1].data.handles.points[0], [-95.5 + 100.5 * 0.5, -95.5 + 60.25 * 0.8, 12.5]);
  assert.deepEqual(drawing.masks, [{ imageId: imageIds[0], lesion: 2, counts: [5, 3, 36856] }]);
  assert.deepEqual(drawing.answers, { case: { confidence: 5 }, lesions: { 1: { lesion_type: 'liver' }, 2: { lesion_type: 'lung' } } });
});

test('drawn back and sent again, the answer key keeps its lines, masks and answers', () => {
  const drawing = drawBack();
  const masks = new Map([[2, drawing.masks.map(({ imageId, counts }) => ({ imageId, counts }))]]);
  const lesions = collectLesions(drawing.annotations, masks, lookups, drawing.answers.lesions);
  const again = buildReadDocument({
    clientUuid: 'new',
    caseId: 4,
    startedAt: stored.started_at,
    flags: drawing.flags,
    comment: drawing.comment,
    lesions,
    frameOf,
    questions: {
      version: 2,
      lesion: [{ key: 'lesion_type', kind: 'single_choice', options: [{ value: 'lung' }, { value: 'liver' }] }],
      case: [{ key: 'confidence', kind: 'likert', scale: { min: 1, max: 5 } }],
    },
    caseAnswers: drawing.answers.case,
  });
  const strip = (axis) => ({ ...axis, start: axis.start.map((v) => Math.round(v * 1000) / 1000), end: axis.end.map((v) => Math.round(v * 1000) / 1000) });
  assert.deepEqual(again.lesions.map((lesion) => strip(lesion.long_axis)), stored.lesions.slice(0, 2).map((lesion) => strip(lesion.long_axis)));
  assert.deepEqual(again.lesions[0].short_axis, stored.lesions[0].short_axis);
  assert.deepEqual(again.lesions[1].mask, stored.lesions[1].mask);
  assert.deepEqual(again.lesions.map((lesion) => lesion.answers), [{ lesion_type: 'liver' }, { lesion_type: 'lung' }]);
  assert.deepEqual([again.question_version, again.answers, again.comment, again.flags], [2, { confidence: 5 }, 'reference', stored.flags]);
});
