// Unit tests of the pure parts of the read document: run with `npm test` (node --test).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clampToImage, imageToPatient, lineLengthMm, patientToImage } from '../src/geometry.js';
import { buildReadDocument, readProblems } from '../src/readDocument.js';
import { decodeRunsInto, encodeRuns, hasForeground } from '../src/rle.js';

const axial = {
  imagePositionPatient: [-95.5, -95.5, 0],
  rowCosines: [1, 0, 0],
  columnCosines: [0, 1, 0],
  columnSpacingMm: 0.5,
  rowSpacingMm: 0.8,
  rows: 192,
  columns: 192,
};

test('runs start with zeros, alternate, and sum to the pixel count', () => {
  const pixels = Uint8Array.from([2, 2, 0, 2, 0, 0, 1, 2]);
  const counts = encodeRuns(pixels, 2);
  assert.deepEqual(counts, [0, 2, 1, 1, 3, 1]);
  assert.equal(counts.reduce((a, b) => a + b, 0), pixels.length);
});

test('an empty mask is one run of zeros and has no foreground', () => {
  const counts = encodeRuns(new Uint8Array(12), 1);
  assert.deepEqual(counts, [12]);
  assert.equal(hasForeground(counts), false);
});

test('decoding the runs gives back the same pixels', () => {
  const pixels = Uint8Array.from({ length: 500 }, (_, i) => ((i * 7919) % 13 < 4 ? 3 : 0));
  const back = new Uint8Array(500);
  decodeRunsInto(encodeRuns(pixels, 3), back, 3);
  assert.deepEqual(back, pixels);
});

test('runs that do not cover the image are refused', () => {
  assert.throws(() => decodeRunsInto([3, 2], new Uint8Array(10)), RangeError);
});

test('image position patient is pixel (0, 0) and the mapping round-trips', () => {
  assert.deepEqual(patientToImage(axial.imagePositionPatient, axial), [0, 0]);
  const point = imageToPatient([10.25, 40.5], axial);
  const [c, r] = patientToImage(point, axial);
  assert.ok(Math.abs(c - 10.25) < 1e-9 && Math.abs(r - 40.5) < 1e-9);
});

test('line length uses column spacing across and row spacing down', () => {
  assert.equal(lineLengthMm([0, 0], [10, 0], axial), 5);
  assert.equal(lineLengthMm([0, 0], [0, 10], axial), 8);
});

test('points are clamped to the half-pixel border the server accepts', () => {
  assert.deepEqual(clampToImage([-3, 200], axial), [-0.5, 191.5]);
});

test('the read document renumbers lesions and names instance and frame', () => {
  const imageId = 'wadors:/dicomweb/x/frames/1';
  const frameOf = new Map([[imageId, { sop_instance_uid: '1.2.3', frame: 1 }]]);
  const document_ = buildReadDocument({
    clientUuid: 'u',
    caseId: 7,
    startedAt: '2026-11-25T10:00:00Z',
    now: new Date('2026-11-25T10:00:30Z'),
    flags: { quality_problem: true },
    comment: 'ok',
    lesions: [{ number: 3, axes: { long_axis: { length_mm: 5 } }, maskSlices: [{ imageId, counts: [1, 2, 3] }] }],
    frameOf,
  });
  assert.equal(document_.duration_s, 30);
  assert.deepEqual(document_.flags, { no_lesion: false, skip: false, quality_problem: true });
  assert.equal(document_.lesions[0].lesion, 1);
  assert.deepEqual(document_.lesions[0].mask.slices[0], { sop_instance_uid: '1.2.3', frame: 1, counts: [1, 2, 3] });
});

test('an empty read without "no lesion" or "skip" is a problem, with it is not', () => {
  const base = { flags: { no_lesion: false, skip: false }, lesions: [] };
  assert.equal(readProblems(base, { tools: [] }).length, 1);
  assert.equal(readProblems({ ...base, flags: { no_lesion: true } }, { tools: [] }).length, 0);
});
