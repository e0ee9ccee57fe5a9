// Task questions (docs/read-format.md, "Questions and answers"): normalising the question set a
// CaseForReading carries, checking one answer the way the server will, keeping only answered
// questions for the read document, and naming every required answer that is still missing.
// Pure: no DOM, no Cornerstone, no server; the page and the node tests share it.

export const KINDS = ['single_choice', 'multiple_choice', 'likert', 'number', 'yes_no', 'text'];
const CHOICE_KINDS = new Set(['single_choice', 'multiple_choice']);

/** The task's question set as {version, lesion: [...], case: [...]}, or null when it asks nothing. */
export function questionSet(task) {
  const questions = task?.questions;
  if (!questions) return null;
  const lesion = (questions.lesion || []).filter((q) => KINDS.includes(q.kind));
  const case_ = (questions.case || []).filter((q) => KINDS.includes(q.kind));
  if (!lesion.length && !case_.length) return null;
  return { version: questions.version ?? null, lesion, case: case_ };
}

/** True when `value` counts as an answer at all (an empty list, string or null does not). */
export function isAnswered(value) {
  if (value === undefined || value === null) return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'string') return value.trim().length > 0;
  if (typeof value === 'number') return Number.isFinite(value);
  return typeof value === 'boolean';
}

function formatNumber(value) {
  return Number.isInteger(value) ? String(value) : String(Math.round(value * 1e6) / 1e6);
}

/** The unit as the reader sees it ("mm"), or ''. */
export function unitLabel(question) {
  const unit = question.number?.unit;
  return unit ? unit.value || unit.meaning || '' : '';
}

/** The allowed range in words, e.g. "0 to 100 mm", or '' when unbounded. */
export function rangeLabel(question) {
  const { min, max } = question.number || {};
  const unit = unitLabel(question);
  const suffix = unit ? ` ${unit}` : '';
  if (min != null && max != null) return `${formatNumber(min)} to ${formatNumber(max)}${suffix}`;
  if (min != null) return `at least ${formatNumber(min)}${suffix}`;
  if (max != null) return `at most ${formatNumber(max)}${suffix}`;
  return '';
}

/** What is wrong with an answered value (in the reader's words), or null when the server will take it. */
export function answerError(question, value) {
  const options = (question.options || []).map((option) => option.value);
  switch (question.kind) {
    case 'single_choice':
      return options.includes(value) ? null : 'pick one of the options';
    case 'multiple_choice':
      if (!Array.isArray(value) || value.some((item) => !options.includes(item))) return 'pick from the options';
      return new Set(value).size === value.length ? null : 'pick each option once';
    case 'likert': {
      const { min, max } = question.scale || {};
      return Number.isInteger(value) && value >= min && value <= max ? null : `pick ${min} to ${max}`;
    }
    case 'number': {
      const { min, max, integer } = question.number || {};
      if (typeof value !== 'number' || !Number.isFinite(value)) return 'enter a number';
      if (integer && !Number.isInteger(value)) return 'enter a whole number';
      if ((min != null && value < min) || (max != null && value > max)) return `must be ${rangeLabel(question)}`;
      return null;
    }
    case 'yes_no':
      return typeof value === 'boolean' ? null : 'answer yes or no';
    case 'text':
      if (typeof value !== 'string') return 'enter text';
      return question.max_length && value.length > question.max_length ? `at most ${question.max_length} characters` : null;
    default:
      return 'unknown question';
  }
}

/** The answers of `questions` that are answered, in question order; unknown keys are dropped. */
export function answeredOnly(questions, answers) {
  const kept = {};
  for (const question of questions) {
    let value = answers?.[question.key];
    if (typeof value === 'string' && question.kind === 'text') value = value.trim();
    if (isAnswered(value)) kept[question.key] = value;
  }
  return kept;
}

/** Answers from a draft that still fit the current questions (a new question version may drop some). */
export function answersStillValid(questions, answers) {
  const kept = {};
  for (const [key, value] of Object.entries(answeredOnly(questions, answers))) {
    const question = questions.find((q) => q.key === key);
    if (!answerError(question, value)) kept[key] = value;
  }
  return kept;
}

/**
 * Every answer the server would refuse, in the order the panel shows them (lesions first, then the
 * case): [{scope: 'lesion'|'case', lesion: number|null, key, message}].
 * lesions: [{number, answers}] as the reader numbers them; flags.skip waives the case questions.
 */
export function answerProblems({ questions, caseAnswers, lesions, flags }) {
  if (!questions) return [];
  const problems = [];
  const check = (list, answers, scope, lesion) => {
    const prefix = scope === 'lesion' ? `Lesion ${lesion}` : 'Case';
    for (const question of list) {
      const value = answers?.[question.key];
      if (!isAnswered(value)) {
        if (question.required && !(scope === 'case' && flags?.skip)) {
          problems.push({ scope, lesion, key: question.key, message: `${prefix}: ${question.label} is required` });
        }
        continue;
      }
      const error = answerError(question, value);
      if (error) problems.push({ scope, lesion, key: question.key, message: `${prefix}: ${question.label}: ${error}` });
    }
  };
  for (const lesion of lesions) check(questions.lesion, lesion.answers, 'lesion', lesion.number);
  check(questions.case, caseAnswers, 'case', null);
  return problems;
}

/** A short line for a lesion row that is not open: its choices, or how many required answers are missing. */
export function answerSummary(questions, answers) {
  const missing = questions.filter((q) => q.required && !isAnswered(answers?.[q.key])).length;
  if (missing) return `${missing} answer${missing === 1 ? '' : 's'} missing`;
  const parts = [];
  for (const question of questions) {
    const value = answers?.[question.key];
    if (!isAnswered(value)) continue;
    parts.push(displayValue(question, value));
  }
  return parts.join(' · ');
}

/** One answer as the reader would say it ("Liver", "Yes", "4 / 5", "12 mm"). */
export function displayValue(question, value) {
  const labelOf = (v) => question.options?.find((option) => option.value === v)?.label ?? String(v);
  switch (question.kind) {
    case 'single_choice':
      return labelOf(value);
    case 'multiple_choice':
      return value.map(labelOf).join(', ');
    case 'likert':
      return `${value} / ${question.scale?.max}`;
    case 'number':
      return `${formatNumber(value)}${unitLabel(question) ? ` ${unitLabel(question)}` : ''}`;
    case 'yes_no':
      return value ? 'Yes' : 'No';
    default:
      return String(value).length > 24 ? `${String(value).slice(0, 23)}…` : String(value);
  }
}

/**
 * The answer a digit key gives a focused question, or undefined when the key means nothing there.
 * Likert keys are the scale values themselves; choices and yes/no (1 = yes, 2 = no) count options
 * from 1; multiple choice toggles the option.
 */
export function answerForDigit(question, digit, current) {
  const n = Number(digit);
  if (!Number.isInteger(n) || n < 0 || n > 9) return undefined;
  switch (question.kind) {
    case 'likert':
      return n >= question.scale.min && n <= question.scale.max ? n : undefined;
    case 'yes_no':
      return n === 1 ? true : n === 2 ? false : undefined;
    case 'single_choice':
      return question.options[n - 1]?.value;
    case 'multiple_choice': {
      const option = question.options[n - 1]?.value;
      if (option === undefined) return undefined;
      const chosen = Array.isArray(current) ? current : [];
      return chosen.includes(option) ? chosen.filter((v) => v !== option) : [...chosen, option];
    }
    default:
      return undefined;
  }
}

/**
 * A 400's field errors in the reader's words: "lesions[0].answers.lesion_site" becomes
 * "Lesion 3: Lesion site: …" (lesionNumbers: the reader's number of each lesion sent, in order).
 */
export function describeAnswerErrors(errors, { questions, lesionNumbers = [] }) {
  const labelOf = (scope, key) => questions?.[scope]?.find((q) => q.key === key)?.label || key;
  return Object.entries(errors || {}).map(([field, messages]) => {
    const text = [].concat(messages).join(' ');
    const lesion = field.match(/^lesions\[(\d+)\]\.answers\.(\w+)$/);
    if (lesion) {
      const number = lesionNumbers[Number(lesion[1])] ?? Number(lesion[1]) + 1;
      return `Lesion ${number}: ${labelOf('lesion', lesion[2])}: ${text}`;
    }
    const caseAnswer = field.match(/^answers\.(\w+)$/);
    if (caseAnswer) return `Case: ${labelOf('case', caseAnswer[1])}: ${text}`;
    return `${field}: ${text}`;
  });
}

export const isChoiceKind = (kind) => CHOICE_KINDS.has(kind);
