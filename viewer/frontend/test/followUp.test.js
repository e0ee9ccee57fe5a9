// Unit tests of follow-up reading's pure parts: linked scrolling by patient position, the landmark
// offset, the read document of docs/follow-up.md and the completeness check that blocks Submit.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildFollowUpReadDocument, describeRecist, followUpProblems, lesionStatus, timePointRows } from '../src/followUpDocument.js';
import {
  initialLink,
  landmarkOffsetMm,
  linkedSliceIndex,
  nearestSliceIndex,
  positionsAlongNormalMm,
  sliceNormal,
} from '../src/sliceLinking.js';

// Baseline: 11 slices at 2.5 mm from z = -12.5; follow-up: 6 slices at 5 mm from z = -10, head first.
const baselineZ = Array.from({ length: 11 }, (_, k) => -12.5 + 2.5 * k);
const followUpZ = Array.from({ length: 6 }, (_, k) => 15 - 5 * k);

test('the slice normal is row cosines x column cosines: +z for axial, +y for coronal', () => {
  assert.deepEqual(sliceNormal([1, 0, 0], [0, 1, 0]), [0, 0, 1]);
  assert.deepEqual(sliceNormal([1, 0, 0], [0, 0, -1]), [0, 1, 0]);
  assert.throws(() => sliceNormal([1, 0, 0], [1, 0, 0]), /parallel/);
});

test('positions along the normal ignore where the image sits in plane', () => {
  const normal = sliceNormal([1, 0, 0], [0, 1, 0]);
  const positions = positionsAlongNormalMm(
    [
      [-95.5, -120, 7.5],
      [40, 12, 10],
    ],
    normal,
  );
  assert.deepEqual(positions, [7.5, 10]);
});

test('an oblique stack is measured along its own normal, not along z', () => {
  const c = Math.SQRT1_2;
  const normal = sliceNormal([1, 0, 0], [0, c, -c]); // tilted 45 degrees about x
  const positions = positionsAlongNormalMm(
    [
      [0, 0, 0],
      [0, 2 * c, 2 * c],
    ],
    normal,
  );
  assert.ok(Math.abs(positions[1] - positions[0] - 2) < 1e-9, positions);
});

test('the nearest slice is the one closest in patient position, the first of a tie', () => {
  assert.equal(nearestSliceIndex(followUpZ, 0.4), 3); // z = 0
  assert.equal(nearestSliceIndex(followUpZ, 2.5), 2); // halfway between z = 5 (index 2) and 0 (index 3)
  assert.equal(nearestSliceIndex(followUpZ, 400), 0); // beyond the top: the top slice
  assert.equal(nearestSliceIndex([], 3), -1);
});

test('linked scrolling moves the other series to the slice at the same height, either way round', () => {
  // Baseline slice 6 is z = 2.5: the follow-up's nearest are z = 5 (index 2) and z = 0 (index 3).
  assert.equal(linkedSliceIndex({ fromPositionsMm: baselineZ, fromIndex: 5, toPositionsMm: followUpZ }), 3); // z = 0
  assert.equal(linkedSliceIndex({ fromPositionsMm: baselineZ, fromIndex: 10, toPositionsMm: followUpZ }), 0); // z = 12.5 -> 15
  assert.equal(linkedSliceIndex({ fromPositionsMm: followUpZ, fromIndex: 4, toPositionsMm: baselineZ }), 3); // z = -5
  assert.throws(() => linkedSliceIndex({ fromPositionsMm: baselineZ, fromIndex: 11, toPositionsMm: followUpZ }), RangeError);
});

test('a landmark offset recorded once makes later slices follow with that shift', () => {
  // The reader puts baseline slice 2 (z = -7.5) beside follow-up slice 1 (z = 10): the table moved 17.5 mm.
  const offset = landmarkOffsetMm({ fromPositionsMm: baselineZ, fromIndex: 2, toPositionsMm: followUpZ, toIndex: 1 });
  assert.equal(offset, 17.5);
  assert.equal(linkedSliceIndex({ fromPositionsMm: baselineZ, fromIndex: 2, toPositionsMm: followUpZ, offsetMm: offset }), 1);
  // Baseline z = -2.5 -> follow-up z = 15 (index 0); back from follow-up z = 10 -> baseline z = -7.5 (index 2),
  // and from follow-up z = 5 -> baseline z = -12.5, the first slice.
  assert.equal(linkedSliceIndex({ fromPositionsMm: baselineZ, fromIndex: 4, toPositionsMm: followUpZ, offsetMm: offset }), 0);
  assert.equal(linkedSliceIndex({ fromPositionsMm: followUpZ, fromIndex: 1, toPositionsMm: baselineZ, offsetMm: -offset }), 2);
  assert.equal(linkedSliceIndex({ fromPositionsMm: followUpZ, fromIndex: 2, toPositionsMm: baselineZ, offsetMm: -offset }), 0);
});

test('series start linked only when they share a frame of reference', () => {
  assert.deepEqual(initialLink('1.2.3', '1.2.3'), { linked: true, offsetMm: 0, by: 'frame_of_reference' });
  assert.equal(initialLink('1.2.3', '1.2.4').linked, false);
  assert.equal(initialLink(null, null).linked, false);
});

const baselineLesions = [
  { id: 'B1', label: 'Lesion 1' },
  { id: 'B2', label: 'Lesion 2' },
  { id: 'B3', label: 'Lesion 3' },
];
const line = (sop, length_mm) => ({ sop_instance_uid: sop, frame: 1, start: [10, 20], end: [10 + length_mm, 20], length_mm });
const envelope = {
  clientUuid: 'c0ffee00-0000-4000-8000-000000000001',
  caseId: 7,
  startedAt: '2026-11-30T05:00:00Z',
  now: new Date('2026-11-30T05:02:30Z'),
  flags: { no_lesion: false, skip: false, quality_problem: false },
  comment: 'ok',
  baselineLesions,
};

test('a measurement beats a mark and the latest measurement of a lesion wins', () => {
  const measurements = [
    { timePoint: 1, baselineId: 'B1', axes: { long_axis: line('f1', 20) } },
    { timePoint: 1, baselineId: 'B1', axes: { long_axis: line('f1', 22) } },
  ];
  const marks = { 1: { B1: 'disappeared', B2: 'not_evaluable', B3: 'bogus' } };
  assert.equal(lesionStatus({ baselineId: 'B1', timePoint: 1, measurements, marks }), 'measured');
  assert.equal(lesionStatus({ baselineId: 'B2', timePoint: 1, measurements, marks }), 'not_evaluable');
  assert.equal(lesionStatus({ baselineId: 'B3', timePoint: 1, measurements, marks }), null);
  assert.equal(lesionStatus({ baselineId: 'B1', timePoint: 2, measurements, marks }), null);
  const { baseline } = timePointRows({ baselineLesions, timePoint: 1, measurements, marks });
  assert.equal(baseline[0].axes.long_axis.length_mm, 22);
});

test('the follow-up read lists every time point, baseline lesions first, then new ones, numbered across the read', () => {
  const measurements = [
    { timePoint: 2, baselineId: 'B1', axes: { long_axis: line('g1', 15) } },
    { timePoint: 1, newNumber: 1, axes: { long_axis: line('f2', 12) } },
    { timePoint: 1, baselineId: 'B1', axes: { long_axis: line('f1', 24), short_axis: line('f1', 9) } },
    { timePoint: 2, newNumber: 2, axes: {} }, // a new lesion whose line was deleted is not sent
  ];
  const marks = { 1: { B2: 'disappeared', B3: 'not_evaluable' }, 2: { B2: 'disappeared', B3: 'disappeared' } };
  const document_ = buildFollowUpReadDocument({ ...envelope, followUpIndices: [2, 1], measurements, marks });
  assert.equal(document_.duration_s, 150);
  assert.equal(document_.lesions, undefined);
  assert.deepEqual(document_.flags, { no_lesion: false, skip: false, quality_problem: false });
  assert.deepEqual(
    document_.time_points.map((tp) => tp.index),
    [1, 2],
  );
  assert.deepEqual(document_.time_points[0].lesions, [
    { lesion: 1, baseline_lesion: 'B1', status: 'measured', long_axis: line('f1', 24), short_axis: line('f1', 9) },
    { lesion: 2, baseline_lesion: 'B2', status: 'disappeared' },
    { lesion: 3, baseline_lesion: 'B3', status: 'not_evaluable' },
    { lesion: 4, new: true, status: 'measured', long_axis: line('f2', 12) },
  ]);
  assert.deepEqual(
    document_.time_points[1].lesions.map((lesion) => [lesion.lesion, lesion.baseline_lesion, lesion.status]),
    [
      [5, 'B1', 'measured'],
      [6, 'B2', 'disappeared'],
      [7, 'B3', 'disappeared'],
    ],
  );
  assert.deepEqual(followUpProblems(document_, { baselineLesions, followUpIndices: [1, 2] }), []);
});

test('submit is blocked naming each baseline lesion without a status, per time point', () => {
  const measurements = [{ timePoint: 1, baselineId: 'B1', axes: { long_axis: line('f1', 24) } }];
  const marks = { 1: { B3: 'disappeared' } };
  const document_ = buildFollowUpReadDocument({ ...envelope, followUpIndices: [1, 2], measurements, marks });
  const problems = followUpProblems(document_, {
    baselineLesions,
    followUpIndices: [1, 2],
    timePointLabels: { 1: 'Follow-up 1', 2: 'Follow-up 2' },
  });
  assert.equal(problems.length, 4);
  assert.match(problems[0], /^Lesion 2 \(B2\) at Follow-up 1 has no status/);
  assert.ok(problems.slice(1).every((problem) => problem.includes('Follow-up 2')), problems);
});

test('a skipped follow-up case sends no time points and is complete', () => {
  const document_ = buildFollowUpReadDocument({
    ...envelope,
    flags: { skip: true, no_lesion: true },
    followUpIndices: [1],
    measurements: [{ timePoint: 1, baselineId: 'B1', axes: { long_axis: line('f1', 24) } }],
    marks: {},
  });
  assert.deepEqual(document_.time_points, []);
  assert.deepEqual(document_.flags, { no_lesion: false, skip: true, quality_problem: false });
  assert.deepEqual(followUpProblems(document_, { baselineLesions, followUpIndices: [1] }), []);
});

test('the computed response reads as one line with signed changes', () => {
  const text = describeRecist(
    { index: 1, sum_mm: 41, baseline_sum_mm: 58.3, nadir_sum_mm: 58.3, change_from_baseline_pct: -29.7, change_from_nadir_pct: -29.7, new_lesions: 1, response: 'PD' },
    'Follow-up 1',
  );
  assert.equal(text, 'Follow-up 1: PD · sum 41.0 mm · baseline 58.3 mm (-29.7 %) · nadir 58.3 mm (-29.7 %) · 1 new lesion');
  assert.match(describeRecist({ index: 2, sum_mm: 0, baseline_sum_mm: 0, change_from_baseline_pct: null, response: 'NE' }), /n\/a/);
});
