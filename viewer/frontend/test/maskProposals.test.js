// Unit tests of mask proposal requests and the provenance ledger: run with `npm test` (node --test).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  lineRequest,
  ProposalLedger,
  proposalAsDocument,
  proposalErrorMessage,
  seedMaskRequest,
  tapRequest,
} from '../src/maskProposals.js';
import { buildReadDocument } from '../src/readDocument.js';

const LONG = { sop_instance_uid: '1.2.3', frame: 1, start: [10, 20], end: [40, 20], length_mm: 21 };
const SHORT = { sop_instance_uid: '1.2.3', frame: 1, start: [25, 12], end: [25, 28], length_mm: 11.2 };
const ANSWER = {
  prompt: 'line',
  algorithm: 'readerboard seeded random walker',
  algorithm_version: '1',
  mask: { slices: [{ sop_instance_uid: '1.2.3', frame: 1, counts: [5, 3, 8] }] },
  long_axis: LONG,
  short_axis: SHORT,
};

test('a line request carries the long axis, the short axis of a bidirectional, and propagate only when off', () => {
  assert.deepEqual(lineRequest({ long_axis: LONG }), { long_axis: LONG });
  assert.deepEqual(lineRequest({ long_axis: LONG, short_axis: SHORT }, { propagate: false }), {
    long_axis: LONG,
    short_axis: SHORT,
    propagate: false,
  });
  assert.throws(() => lineRequest({}), /Draw a line/);
});

test('tap and corrected-slice requests name the instance and frame', () => {
  assert.deepEqual(tapRequest({ sop_instance_uid: '1.2.3', frame: 2 }, [10.123, 4.5]), {
    tap: { sop_instance_uid: '1.2.3', frame: 2, point: [10.12, 4.5] },
  });
  assert.deepEqual(seedMaskRequest({ sop_instance_uid: '1.2.3', frame: 1 }, [5, 3, 8]), {
    seed_mask: { sop_instance_uid: '1.2.3', frame: 1, counts: [5, 3, 8] },
  });
});

test('a proposal becomes a one-lesion document with its axes for a tap', () => {
  const document_ = proposalAsDocument(ANSWER, 4, { withAxes: true });
  assert.equal(document_.lesions[0].lesion, 4);
  assert.deepEqual(document_.lesions[0].short_axis, SHORT);
  assert.equal(proposalAsDocument(ANSWER, 4).lesions[0].long_axis, undefined);
});

test('the ledger keeps the first source across re-propagation and survives a draft', () => {
  const ledger = new ProposalLedger();
  ledger.record(2, { ...ANSWER, prompt: 'tap' });
  ledger.record(2, { ...ANSWER, prompt: 'seed_mask', mask: { slices: [] } });
  const revived = new ProposalLedger(JSON.parse(JSON.stringify(ledger)));
  assert.equal(revived.provenance(2).source, 'tap');
  assert.deepEqual(revived.provenance(2).proposal, { slices: [] });
  revived.forget(2);
  assert.equal(revived.provenance(2), null);
  const fromHand = new ProposalLedger();
  fromHand.record(1, { ...ANSWER, prompt: 'seed_mask' });
  assert.equal(fromHand.provenance(1).source, 'line');
});

test('the read document carries the provenance of a proposed mask, and none for a hand-painted one', () => {
  const ledger = new ProposalLedger();
  ledger.record(3, ANSWER);
  const frameOf = new Map([['img', { sop_instance_uid: '1.2.3', frame: 1 }]]);
  const lesion = (number) => ({
    number,
    axes: {},
    maskSlices: [{ imageId: 'img', counts: [5, 2, 9] }],
    answers: {},
    provenance: ledger.provenance(number),
  });
  const document_ = buildReadDocument({
    clientUuid: 'u',
    caseId: 1,
    startedAt: '2026-12-07T10:00:00Z',
    now: new Date('2026-12-07T10:01:00Z'),
    flags: {},
    comment: '',
    lesions: [lesion(3), lesion(5)],
    frameOf,
  });
  assert.deepEqual(document_.lesions[0].mask.provenance, {
    source: 'line',
    algorithm: 'readerboard seeded random walker',
    algorithm_version: '1',
    proposal: { slices: ANSWER.mask.slices },
  });
  assert.equal('provenance' in document_.lesions[1].mask, false);
  assert.equal('dice' in document_.lesions[0].mask.provenance, false);
});

test('refusals read as sentences a reader can act on', () => {
  assert.match(proposalErrorMessage({ status: 422, body: { detail: 'no lesion found here: the line lies on air' } }), /brush/);
  assert.match(proposalErrorMessage({ status: 429, body: { detail: 'too many; try again in 12 s' } }), /in 12 s/);
});
