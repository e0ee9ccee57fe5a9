// The model's lesions on the reading page: drawn from a suggestion with masks and lines, they are
// 'accepted' until the reader changes a pixel or a handle, 'rejected' when removed, and come back as drawn.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { drawingFromDocument } from '../src/storedRead.js';
import { SuggestionLedger, firstLesionSlice } from '../src/suggestionReview.js';

const plane = {
  imagePositionPatient: [-95.5, -95.5, 12.5],
  rowCosines: [1, 0, 0],
  columnCosines: [0, 1, 0],
  columnSpacingMm: 1,
  rowSpacingMm: 1,
  rows: 4,
  columns: 4,
};
const imageIdOf = (uid, frame) => ({ '1.2.3.1/1': 'wadors:a', '1.2.3.2/1': 'wadors:b' })[`${uid}/${frame}`];
const suggestion = {
  model_name: 'nnunet-3d',
  lesions: [
    {
      lesion: 1,
      long_axis: { sop_instance_uid: '1.2.3.2', frame: 1, start: [0, 1], end: [3, 1], length_mm: 3 },
      short_axis: { sop_instance_uid: '1.2.3.2', frame: 1, start: [1, 0], end: [1, 3], length_mm: 3 },
      mask: { slices: [{ sop_instance_uid: '1.2.3.2', frame: 1, counts: [5, 2, 9] }] },
    },
    {
      lesion: 2,
      mask: {
        slices: [
          { sop_instance_uid: '1.2.3.1', frame: 1, counts: [0, 1, 15] },
          { sop_instance_uid: '1.2.3.2', frame: 1, counts: [14, 2] },
        ],
      },
    },
    { lesion: 3, long_axis: { sop_instance_uid: '1.2.3.1', frame: 1, start: [0, 0], end: [2, 2], length_mm: 2.83 } },
  ],
};

let uid = 0;
function drawn() {
  return drawingFromDocument(suggestion, { imageIdOf, planeOf: () => plane, view: {}, newUid: () => `uid-${(uid += 1)}` });
}

/** What the page holds right after drawing: measurements by lesion and mask slices by lesion. */
function onPage(drawing) {
  const measurements = new Map(drawing.annotations.map((stub) => [stub.data.readerboardLesion, JSON.parse(JSON.stringify(stub))]));
  const masks = new Map();
  for (const { imageId, lesion, counts } of drawing.masks) masks.set(lesion, [...(masks.get(lesion) || []), { imageId, counts }]);
  const state = (number) => ({ measurement: measurements.get(number), maskSlices: masks.get(number) || [] });
  return { measurements, masks, state };
}

test('every lesion of a suggestion with masks and RECIST lines starts accepted', () => {
  const drawing = drawn();
  const ledger = SuggestionLedger.fromDrawing(drawing, 'nnunet-3d');
  const page = onPage(drawing);

  assert.deepEqual(ledger.numbers(), [1, 2, 3]);
  assert.deepEqual(drawing.annotations.map((stub) => stub.metadata.toolName), ['Bidirectional', 'Length']);
  assert.deepEqual([1, 2, 3].map((n) => ledger.status(n, page.state(n))), ['accepted', 'accepted', 'accepted']);
  assert.equal(ledger.status(4, { measurement: undefined, maskSlices: [] }), null);
});

test('a brushed pixel or a moved handle makes the lesion edited, a sub-micron wobble does not', () => {
  const drawing = drawn();
  const ledger = SuggestionLedger.fromDrawing(drawing, 'nnunet-3d');
  const page = onPage(drawing);
  page.masks.set(2, [page.masks.get(2)[0], { imageId: 'wadors:b', counts: [13, 3] }]);
  page.measurements.get(3).data.handles.points[1][0] += 1e-6;
  page.measurements.get(1).data.handles.points[0][0] += 2;

  assert.equal(ledger.status(2, page.state(2)), 'edited');
  assert.equal(ledger.status(3, page.state(3)), 'accepted');
  assert.equal(ledger.status(1, page.state(1)), 'edited');
});

test('a rejected lesion, or one erased to nothing, is rejected; accepting gives back what the model drew', () => {
  const drawing = drawn();
  const ledger = SuggestionLedger.fromDrawing(drawing, 'nnunet-3d');
  const gone = { measurement: undefined, maskSlices: [] };

  assert.equal(ledger.status(2, gone), 'rejected');
  assert.equal(ledger.reject(1), true);
  assert.equal(ledger.reject(7), false);
  assert.equal(ledger.status(1, gone), 'rejected');
  const back = ledger.accept(1);
  assert.equal(back.annotation.metadata.toolName, 'Bidirectional');
  assert.deepEqual(back.masks, [{ imageId: 'wadors:b', lesion: 1, counts: [5, 2, 9] }]);
  assert.equal(ledger.status(1, { measurement: back.annotation, maskSlices: back.masks }), 'accepted');
});

test("a draft's copy of the ledger keeps which lesions are the model's and which were rejected", () => {
  const ledger = SuggestionLedger.fromDrawing(drawn(), 'nnunet-3d');
  ledger.reject(2);

  const reloaded = new SuggestionLedger(JSON.parse(JSON.stringify(ledger)));

  assert.deepEqual(reloaded.numbers(), [1, 2, 3]);
  assert.equal(reloaded.status(2, { measurement: undefined, maskSlices: [{ imageId: 'wadors:a', counts: [0, 1, 15] }] }), 'rejected');
  assert.equal(reloaded.byLesion.get(1).model, 'nnunet-3d');
});

test("a case opens on the model's first lesion: its line's slice, else where its mask is largest", () => {
  const masksOnly = { lesions: suggestion.lesions.filter((lesion) => lesion.lesion !== 1) };

  assert.deepEqual(firstLesionSlice(suggestion), { sop_instance_uid: '1.2.3.2', frame: 1 }); // lesion 1's long axis
  assert.deepEqual(firstLesionSlice(masksOnly), { sop_instance_uid: '1.2.3.2', frame: 1 }); // 2 pixels there, 1 on .1
  assert.equal(firstLesionSlice({ lesions: [] }), null);
  assert.equal(firstLesionSlice(undefined), null);
});
