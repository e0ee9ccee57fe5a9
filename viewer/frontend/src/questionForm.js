// The task's questions as form controls: one <fieldset> per question (legend, help, controls), large
// radio "buttons" for single choice, Likert and yes/no, check boxes for multiple choice, a number
// field with its unit and range, a text box. Labels come from admins, so everything is built with
// textContent, never innerHTML. Only touches the DOM; values go back through onAnswer.
import { answerForDigit, rangeLabel, unitLabel } from './questions.js';

// Longer single-choice lists (a body-site list) become a native <select>: a tablet shows its own picker.
const MAX_BUTTON_OPTIONS = 12;
const DIGIT_KINDS = new Set(['single_choice', 'multiple_choice', 'likert', 'yes_no']);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'text') node.textContent = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function optionsOf(question) {
  switch (question.kind) {
    case 'likert': {
      const { min, max, min_label: minLabel, max_label: maxLabel } = question.scale;
      const values = [];
      for (let v = min; v <= max; v += 1) {
        const end = v === min ? minLabel : v === max ? maxLabel : '';
        values.push({ value: v, label: String(v), spoken: end ? `${v}, ${end}` : String(v) });
      }
      return values;
    }
    case 'yes_no':
      return [
        { value: true, label: 'Yes' },
        { value: false, label: 'No' },
      ];
    default:
      return question.options || [];
  }
}

function isSelect(question) {
  return question.kind === 'single_choice' && (question.options || []).length > MAX_BUTTON_OPTIONS;
}

function choiceControls(question, value, id) {
  const multiple = question.kind === 'multiple_choice';
  const box = el('div', { class: `options ${question.kind}` });
  optionsOf(question).forEach((option, index) => {
    const checked = multiple ? Array.isArray(value) && value.includes(option.value) : value === option.value;
    const keyHint = question.kind === 'likert' ? null : index < 9 ? String(index + 1) : null;
    const input = el('input', {
      type: multiple ? 'checkbox' : 'radio',
      name: id,
      value: String(index),
      checked,
      'aria-label': option.spoken || null,
    });
    input.checked = checked;
    box.append(
      el(
        'label',
        { class: 'option' },
        input,
        keyHint ? el('span', { class: 'key-hint', 'aria-hidden': 'true', text: keyHint }) : null,
        el('span', { class: 'option-label', text: option.label }),
      ),
    );
  });
  if (question.kind !== 'likert') return [box];
  const ends = el(
    'div',
    { class: 'scale-ends', 'aria-hidden': 'true' },
    el('span', { text: question.scale.min_label || '' }),
    el('span', { text: question.scale.max_label || '' }),
  );
  return [box, ends];
}

function selectControl(question, value, id, legendId) {
  const select = el('select', { id: `${id}-input`, 'aria-labelledby': legendId });
  select.append(el('option', { value: '', text: 'Choose…' }));
  question.options.forEach((option, index) => {
    select.append(el('option', { value: String(index), text: option.label, selected: value === option.value }));
  });
  return [select];
}

function numberControl(question, value, id, legendId) {
  const { min, max, integer } = question.number || {};
  const input = el('input', {
    type: 'number',
    id: `${id}-input`,
    inputmode: integer ? 'numeric' : 'decimal',
    min: min ?? null,
    max: max ?? null,
    step: integer ? '1' : 'any',
    'aria-labelledby': legendId,
  });
  if (typeof value === 'number') input.value = String(value);
  const unit = unitLabel(question);
  const range = rangeLabel(question);
  return [
    el(
      'div',
      { class: 'number-row' },
      input,
      unit ? el('span', { class: 'unit', text: unit, title: question.number.unit.meaning || unit }) : null,
      range ? el('span', { class: 'range muted', text: `(${range})` }) : null,
    ),
  ];
}

function textControl(question, value, id, legendId) {
  const area = el('textarea', {
    id: `${id}-input`,
    rows: 2,
    maxlength: question.max_length || null,
    'aria-labelledby': legendId,
  });
  area.value = typeof value === 'string' ? value : '';
  return [area];
}

/** One question's <fieldset>; `id` is unique on the page. */
export function questionElement(question, value, id) {
  const legendId = `${id}-legend`;
  const helpId = `${id}-help`;
  const box = el('fieldset', {
    class: `question kind-${question.kind}`,
    'data-question': question.key,
    id,
    tabindex: '-1',
    'aria-describedby': question.help ? helpId : null,
  });
  const legend = el('legend', { id: legendId }, el('span', { text: question.label }));
  if (question.required) {
    legend.append(
      el('span', { class: 'required', text: ' *', title: 'required', 'aria-hidden': 'true' }),
      el('span', { class: 'visually-hidden', text: ' (required)' }),
    );
  } else legend.append(el('span', { class: 'optional muted', text: ' (optional)' }));
  box.append(legend);
  if (question.help) box.append(el('p', { class: 'question-help', id: helpId, text: question.help }));
  let controls;
  if (isSelect(question)) controls = selectControl(question, value, id, legendId);
  else if (question.kind === 'number') controls = numberControl(question, value, id, legendId);
  else if (question.kind === 'text') controls = textControl(question, value, id, legendId);
  else controls = choiceControls(question, value, id);
  box.append(...controls);
  return box;
}

/** The value a question's controls hold now (undefined when unanswered). */
export function readQuestionValue(question, box) {
  const options = optionsOf(question);
  if (isSelect(question)) {
    const index = box.querySelector('select').value;
    return index === '' ? undefined : options[Number(index)].value;
  }
  switch (question.kind) {
    case 'number': {
      const input = box.querySelector('input');
      return input.value === '' || !Number.isFinite(input.valueAsNumber) ? undefined : input.valueAsNumber;
    }
    case 'text':
      return box.querySelector('textarea').value;
    case 'multiple_choice':
      return [...box.querySelectorAll('input:checked')].map((input) => options[Number(input.value)].value);
    default: {
      const checked = box.querySelector('input:checked');
      return checked ? options[Number(checked.value)].value : undefined;
    }
  }
}

function writeChoiceValue(question, box, value) {
  const options = optionsOf(question);
  for (const input of box.querySelectorAll('input')) {
    const option = options[Number(input.value)].value;
    input.checked = Array.isArray(value) ? value.includes(option) : option === value;
  }
}

/**
 * A group of questions (one lesion's, or the case's) rendered into `container`.
 * onAnswer(key, value) is called on every change the reader makes.
 */
export class QuestionGroup {
  constructor(container, { idPrefix, onAnswer }) {
    this.container = container;
    this.idPrefix = idPrefix;
    this.onAnswer = onAnswer;
    this.questions = [];
    const changed = (event) => {
      const box = event.target.closest('[data-question]');
      const question = box && this.questions.find((q) => q.key === box.dataset.question);
      if (!question) return;
      box.classList.remove('missing');
      box.removeAttribute('aria-invalid');
      this.onAnswer(question.key, readQuestionValue(question, box));
    };
    container.addEventListener('change', changed);
    container.addEventListener('input', changed);
  }

  /** Replace the controls with `questions`, showing `answers`. */
  render(questions, answers = {}, idPrefix = this.idPrefix) {
    this.questions = questions;
    this.idPrefix = idPrefix;
    this.container.replaceChildren(
      ...questions.map((question) => questionElement(question, answers[question.key], `${idPrefix}-${question.key}`)),
    );
  }

  box(key) {
    return this.container.querySelector(`[data-question="${CSS.escape(key)}"]`);
  }

  /** Mark a question as needing an answer, scroll it into view and put the keyboard on it. */
  focusQuestion(key) {
    const box = this.box(key);
    if (!box) return false;
    box.classList.add('missing');
    box.setAttribute('aria-invalid', 'true');
    box.scrollIntoView({ block: 'nearest' });
    // On a phone Submit is pinned over the panel's bottom edge: lift the options above it.
    const panel = box.closest('.side-panel');
    const bar = panel?.querySelector('.submit-bar');
    if (panel && bar) {
      const barTop = bar.getBoundingClientRect().top;
      const whole = box.getBoundingClientRect();
      // The whole question when it fits between the panel's top and Submit, else its options.
      const fits = whole.height <= barTop - panel.getBoundingClientRect().top;
      const bottom = fits ? whole.bottom : (box.querySelector('.options, .number-row, select, textarea') || box).getBoundingClientRect().bottom;
      if (bottom > barTop) panel.scrollTop += bottom - barTop + 4;
    }
    const control = box.querySelector('input:checked, input, select, textarea') || box;
    control.focus({ preventScroll: true });
    return true;
  }

  /**
   * A digit typed while the keyboard is on a choice question of this group picks its option
   * (Likert: the value). Returns true when the key was used here, so window presets stay off it.
   */
  handleDigit(event) {
    const box = event.target.closest?.('[data-question]');
    if (!box || !this.container.contains(box) || !/^[0-9]$/.test(event.key)) return false;
    const index = this.questions.findIndex((q) => q.key === box.dataset.question);
    const question = this.questions[index];
    if (!question || !DIGIT_KINDS.has(question.kind) || isSelect(question)) return false;
    event.preventDefault();
    const value = answerForDigit(question, event.key, readQuestionValue(question, box));
    if (value === undefined) return true;
    writeChoiceValue(question, box, value);
    box.classList.remove('missing');
    box.removeAttribute('aria-invalid');
    this.onAnswer(question.key, value);
    // A single answer moves the keyboard on to the next question, so a reader can key through them.
    const next = question.kind === 'multiple_choice' ? null : this.container.querySelectorAll('[data-question]')[index + 1];
    const target = next ? next.querySelector('input:checked, input, select, textarea') || next : box.querySelector('input:checked') || box;
    target.focus({ preventScroll: false });
    return true;
  }
}
