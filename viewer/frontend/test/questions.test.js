// Unit tests of task questions on the reading page: the answers in the read document and the
// required-answer check that stops Submit. Run with `npm test` (node --test).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildReadDocument } from '../src/readDocument.js';
import {
  answerError,
  answerForDigit,
  answerProblems,
  answersStillValid,
  answerSummary,
  describeAnswerErrors,
  questionSet,
} from '../src/questions.js';

const LESION_TYPE = {
  key: 'lesion_type',
  kind: 'single_choice',
  label: 'Lesion type',
  help: '',
  required: true,
  options: [
    { value: 'lung', label: 'Lung', code: { value: '39607008', scheme: 'SCT', meaning: 'Lung' } },
    { value: 'liver', label: 'Liver', code: { value: '10200004', scheme: 'SCT', meaning: 'Liver' } },
  ],
};
const LESION_SITE = { ...LESION_TYPE, key: 'lesion_site', label: 'Lesion site' };
const SIZE = {
  key: 'size',
  kind: 'number',
  label: 'Size',
  help: '',
  required: false,
  number: { min: 0, max: 100, integer: false, unit: { value: 'mm', scheme: 'UCUM', meaning: 'millimeter' } },
};
const CONFIDENCE = {
  key: 'confidence',
  kind: 'likert',
  label: 'Confidence',
  help: '',
  required: true,
  scale: { min: 1, max: 5, min_label: 'Unsure', max_label: 'Certain' },
};
const CONTRAST = { key: 'contrast', kind: 'yes_no', label: 'Contrast', help: '', required: false };
const FEATURES = {
  key: 'features',
  kind: 'multiple_choice',
  label: 'Features',
  help: '',
  required: false,
  options: [
    { value: 'calcified', label: 'Calcified', code: null },
    { value: 'necrotic', label: 'Necrotic', code: null },
  ],
};
const NOTE = { key: 'note', kind: 'text', label: 'Note', help: '', required: false, max_length: 10 };

const TASK = {
  questions: { version: 3, lesion: [LESION_TYPE, LESION_SITE, SIZE], case: [CONFIDENCE, CONTRAST, FEATURES, NOTE] },
};
const questions = questionSet(TASK);

const imageId = 'wadors:/dicomweb/x/frames/1';
const frameOf = new Map([[imageId, { sop_instance_uid: '1.2.3', frame: 1 }]]);
const line = { length_mm: 5 };

function documentWith({ lesions, caseAnswers, flags = {} }) {
  return buildReadDocument({
    clientUuid: 'u',
    caseId: 7,
    startedAt: '2026-11-25T10:00:00Z',
    now: new Date('2026-11-25T10:00:30Z'),
    flags,
    comment: '',
    lesions,
    frameOf,
    questions,
    caseAnswers,
  });
}

test('a task without questions gives no question set and a read document without answers', () => {
  assert.equal(questionSet({ questions: null }), null);
  assert.equal(questionSet({ questions: { version: 1, lesion: [], case: [] } }), null);
  const document_ = buildReadDocument({
    clientUuid: 'u',
    caseId: 1,
    startedAt: '2026-11-25T10:00:00Z',
    flags: {},
    comment: '',
    lesions: [{ number: 1, axes: { long_axis: line }, maskSlices: [], answers: { lesion_type: 'lung' } }],
    frameOf,
  });
  assert.ok(!('answers' in document_) && !('question_version' in document_));
  assert.ok(!('answers' in document_.lesions[0]));
});

test('the read document carries the question version, case answers and each lesion answers', () => {
  const document_ = documentWith({
    lesions: [
      { number: 2, axes: { long_axis: line }, maskSlices: [], answers: { lesion_type: 'liver', lesion_site: 'liver', size: 12.5 } },
      { number: 4, axes: {}, maskSlices: [{ imageId, counts: [1, 2] }], answers: { lesion_type: 'lung', lesion_site: 'lung' } },
    ],
    caseAnswers: { confidence: 4, contrast: false, features: ['necrotic'], note: '  fine ' },
  });
  assert.equal(document_.question_version, 3);
  assert.deepEqual(document_.answers, { confidence: 4, contrast: false, features: ['necrotic'], note: 'fine' });
  assert.deepEqual(
    document_.lesions.map((lesion) => [lesion.lesion, lesion.answers]),
    [
      [1, { lesion_type: 'liver', lesion_site: 'liver', size: 12.5 }],
      [2, { lesion_type: 'lung', lesion_site: 'lung' }],
    ],
  );
});

test('unanswered optional questions and unknown keys are left out, not sent as null', () => {
  const document_ = documentWith({
    lesions: [{ number: 1, axes: { long_axis: line }, maskSlices: [], answers: { lesion_type: 'lung', size: null, stale: 'x' } }],
    caseAnswers: { confidence: 2, features: [], note: '   ' },
  });
  assert.deepEqual(document_.answers, { confidence: 2 });
  assert.deepEqual(document_.lesions[0].answers, { lesion_type: 'lung' });
});

test('a lesion without a line or mask is not sent, and neither are its answers', () => {
  const document_ = documentWith({
    lesions: [{ number: 1, axes: {}, maskSlices: [], answers: { lesion_type: 'lung' } }],
    caseAnswers: { confidence: 3 },
    flags: { no_lesion: true },
  });
  assert.deepEqual(document_.lesions, []);
});

test('a missing required answer is named with its lesion as the reader numbers it', () => {
  const problems = answerProblems({
    questions,
    caseAnswers: {},
    lesions: [
      { number: 1, answers: { lesion_type: 'lung', lesion_site: 'lung' } },
      { number: 2, answers: { lesion_type: 'liver' } },
    ],
    flags: {},
  });
  assert.deepEqual(
    problems.map((p) => p.message),
    ['Lesion 2: Lesion site is required', 'Case: Confidence is required'],
  );
  assert.deepEqual(problems[0], { scope: 'lesion', lesion: 2, key: 'lesion_site', message: 'Lesion 2: Lesion site is required' });
});

test('everything answered gives no problem; "Skip" waives the case questions but not a lesion', () => {
  const lesions = [{ number: 1, answers: { lesion_type: 'lung', lesion_site: 'lung' } }];
  assert.deepEqual(answerProblems({ questions, caseAnswers: { confidence: 5 }, lesions, flags: {} }), []);
  assert.deepEqual(answerProblems({ questions, caseAnswers: {}, lesions: [], flags: { skip: true } }), []);
  assert.equal(answerProblems({ questions, caseAnswers: {}, lesions: [], flags: { no_lesion: true } }).length, 1);
});

test('answers the server would refuse are problems too: out of range, unknown option, too long', () => {
  const problems = answerProblems({
    questions,
    caseAnswers: { confidence: 6, note: 'much too long' },
    lesions: [{ number: 1, answers: { lesion_type: 'lungg', lesion_site: 'lung', size: 120 } }],
    flags: {},
  });
  assert.deepEqual(
    problems.map((p) => p.message),
    [
      'Lesion 1: Lesion type: pick one of the options',
      'Lesion 1: Size: must be 0 to 100 mm',
      'Case: Confidence: pick 1 to 5',
      'Case: Note: at most 10 characters',
    ],
  );
});

test('an integer number question refuses a fraction', () => {
  const count = { ...SIZE, number: { min: 0, max: 9, integer: true } };
  assert.equal(answerError(count, 2), null);
  assert.equal(answerError(count, 2.5), 'enter a whole number');
});

test('number keys: likert by value, choices and yes/no by position, multiple choice toggles', () => {
  assert.equal(answerForDigit(CONFIDENCE, '4'), 4);
  assert.equal(answerForDigit(CONFIDENCE, '7'), undefined);
  assert.equal(answerForDigit(LESION_TYPE, '2'), 'liver');
  assert.equal(answerForDigit(LESION_TYPE, '3'), undefined);
  assert.equal(answerForDigit(CONTRAST, '1'), true);
  assert.equal(answerForDigit(CONTRAST, '2'), false);
  assert.deepEqual(answerForDigit(FEATURES, '2', ['calcified']), ['calcified', 'necrotic']);
  assert.deepEqual(answerForDigit(FEATURES, '1', ['calcified', 'necrotic']), ['necrotic']);
  assert.equal(answerForDigit(NOTE, '1'), undefined);
});

test('a draft keeps only the answers that still fit a new question version', () => {
  assert.deepEqual(answersStillValid(questions.case, { confidence: 4, note: 'x', removed: 'y', contrast: 'maybe' }), {
    confidence: 4,
    note: 'x',
  });
});

test('a closed lesion row says how many answers are missing, or what was chosen', () => {
  assert.equal(answerSummary(questions.lesion, {}), '2 answers missing');
  assert.equal(answerSummary(questions.lesion, { lesion_type: 'liver', lesion_site: 'lung', size: 12 }), 'Liver · Lung · 12 mm');
});

test("the server's field errors are told with the reader's lesion numbers and the questions' labels", () => {
  const errors = {
    'lesions[1].answers.lesion_site': ['required answer missing'],
    'answers.confidence': ['6 is above the maximum 5'],
    comment: ['too long'],
  };
  assert.deepEqual(describeAnswerErrors(errors, { questions, lesionNumbers: [2, 5] }), [
    'Lesion 5: Lesion site: required answer missing',
    'Case: Confidence: 6 is above the maximum 5',
    'comment: too long',
  ]);
});
