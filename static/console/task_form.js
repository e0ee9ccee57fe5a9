// Task form: live Markdown preview (rendered and sanitised by the server), gold cases imply the case,
// whole-collection ticks select their series, and reference-answer rows can be added.
import { api } from './api.js';

const form = document.getElementById('task-form');
const textarea = form.querySelector('textarea[name="instructions_md"]');
const preview = document.getElementById('md-preview');
let timer;
textarea.addEventListener('input', () => {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    try {
      const { html } = await api('/api/console/markdown/', { method: 'POST', json: { markdown: textarea.value } });
      preview.innerHTML = html; // sanitised by nh3 on the server
    } catch (error) {
      preview.textContent = error.message;
    }
  }, 300);
});

form.addEventListener('change', (event) => {
  const box = event.target;
  if (box.name === 'gold_series' && box.checked) {
    form.querySelector(`input[name="series"][value="${box.value}"]`).checked = true;
  }
  if (box.name === 'series' && !box.checked) {
    const gold = form.querySelector(`input[name="gold_series"][value="${box.value}"]`);
    if (gold) gold.checked = false;
  }
  if (box.name === 'collections') {
    for (const row of form.querySelectorAll(`tr[data-collection="${box.value}"] input[name="series"]`)) row.checked = box.checked;
  }
});

const total = form.querySelector('input[name="ref-TOTAL_FORMS"]');
document.getElementById('add-reference').addEventListener('click', () => {
  const index = Number(total.value);
  const html = document.getElementById('reference-template').innerHTML.replaceAll('__prefix__', String(index));
  const body = document.getElementById('reference-rows');
  body.insertAdjacentHTML('beforeend', html);
  total.value = String(index + 1);
  const select = body.lastElementChild.querySelector('select');
  // Offer the ticked gold cases first.
  const gold = [...form.querySelectorAll('input[name="gold_series"]:checked')].map((box) => box.value);
  if (select && gold.length) select.value = gold[0];
  body.lastElementChild.querySelector('input[type="number"]')?.focus();
});

// Question builder: edits the questions JSON (the textarea stays the form's source of truth, so the page
// also works without this script). Presets come from the server, coded from the DICOM code dictionary.
const questionsField = form.querySelector('textarea[name="questions_json"]');
const builder = document.getElementById('question-builder');
const presets = JSON.parse(document.getElementById('question-presets').textContent);
const kinds = JSON.parse(document.getElementById('question-kinds').textContent);
const KIND_LABELS = {
  single_choice: 'Single choice', multiple_choice: 'Multiple choice', likert: 'Likert scale',
  number: 'Number', yes_no: 'Yes / no', text: 'Free text',
};

function parseQuestions() {
  try {
    const value = JSON.parse(questionsField.value || '{}');
    return { lesion: value.lesion || [], case: value.case || [] };
  } catch {
    return null; // leave a broken JSON to the admin and the server's error message
  }
}

const questions = parseQuestions();
if (questions) {
  builder.hidden = false;
  renderAll();
}

function save() {
  questionsField.value = JSON.stringify(questions, null, 2);
}

function el(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === 'text') node.textContent = value;
    else if (name === 'checked') node.checked = Boolean(value);
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function input(label, value, onChange, attributes = {}) {
  const field = el('input', { value: value ?? '', ...attributes });
  field.addEventListener('input', () => { onChange(field.type === 'number' ? numberOrNull(field.value) : field.value); save(); });
  return el('label', { class: 'field' }, [document.createTextNode(label), field]);
}

function checkbox(label, value, onChange) {
  const box = el('input', { type: 'checkbox', checked: value });
  box.addEventListener('change', () => { onChange(box.checked); save(); });
  return el('label', { class: 'check' }, [box, document.createTextNode(` ${label}`)]);
}

function numberOrNull(text) {
  return text === '' ? null : Number(text);
}

function defaultsFor(kind, question) {
  const base = { key: question.key, kind, label: question.label, help: question.help || '', required: Boolean(question.required) };
  if (kind === 'single_choice' || kind === 'multiple_choice') base.options = question.options || [{ value: 'option_1', label: 'Option 1', code: null }];
  if (kind === 'likert') base.scale = question.scale || { min: 1, max: 5, min_label: '', max_label: '' };
  if (kind === 'number') base.number = question.number || { min: null, max: null, integer: false, unit: null };
  if (kind === 'text') base.max_length = question.max_length || 500;
  return base;
}

function uniqueKey(list, wanted) {
  const keys = new Set(list.map((question) => question.key));
  if (!keys.has(wanted)) return wanted;
  let n = 2;
  while (keys.has(`${wanted}_${n}`)) n += 1;
  return `${wanted}_${n}`;
}

function renderAll() {
  for (const scope of ['lesion', 'case']) {
    const list = builder.querySelector(`.question-scope[data-scope="${scope}"] .question-list`);
    list.replaceChildren(...questions[scope].map((question, index) => questionEditor(scope, index, question)));
  }
  save();
}

function questionEditor(scope, index, question) {
  const list = questions[scope];
  const kindSelect = el('select', { 'aria-label': 'Kind' }, kinds.map((kind) => el('option', { value: kind, text: KIND_LABELS[kind] || kind })));
  kindSelect.value = question.kind;
  kindSelect.addEventListener('change', () => { list[index] = defaultsFor(kindSelect.value, question); renderAll(); });
  const move = (step) => {
    const target = index + step;
    if (target < 0 || target >= list.length) return;
    [list[index], list[target]] = [list[target], list[index]];
    renderAll();
  };
  const head = el('div', { class: 'row' }, [
    input('Key', question.key, (value) => { question.key = value; }, { pattern: '[a-z][a-z0-9_]{0,39}', size: 16 }),
    input('Label', question.label, (value) => { question.label = value; }, { size: 28 }),
    el('label', { class: 'field' }, [document.createTextNode('Kind'), kindSelect]),
    checkbox('Required', question.required, (value) => { question.required = value; }),
    el('span', { class: 'question-moves' }, [
      el('button', { type: 'button', class: 'button', text: '↑', 'aria-label': 'Move up', onclick: () => move(-1) }),
      el('button', { type: 'button', class: 'button', text: '↓', 'aria-label': 'Move down', onclick: () => move(1) }),
      el('button', { type: 'button', class: 'button', text: 'Remove', onclick: () => { list.splice(index, 1); renderAll(); } }),
    ]),
  ]);
  const help = input('Help', question.help, (value) => { question.help = value; }, { size: 60 });
  return el('li', { class: 'question card' }, [head, help, kindEditor(question)]);
}

function kindEditor(question) {
  if (question.options) return optionsEditor(question);
  if (question.scale) {
    const scale = question.scale;
    return el('div', { class: 'row' }, [
      input('From', scale.min, (value) => { scale.min = value; }, { type: 'number', step: 1 }),
      input('To', scale.max, (value) => { scale.max = value; }, { type: 'number', step: 1 }),
      input('Label at the low end', scale.min_label, (value) => { scale.min_label = value; }),
      input('Label at the high end', scale.max_label, (value) => { scale.max_label = value; }),
    ]);
  }
  if (question.number) {
    const rule = question.number;
    const unit = rule.unit || {};
    const setUnit = (name, value) => {
      rule.unit = { value: unit.value || '', scheme: 'UCUM', meaning: unit.meaning || '', ...rule.unit, [name]: value };
      if (!rule.unit.value && !rule.unit.meaning) rule.unit = null;
    };
    return el('div', { class: 'row' }, [
      input('Minimum', rule.min, (value) => { rule.min = value; }, { type: 'number', step: 'any' }),
      input('Maximum', rule.max, (value) => { rule.max = value; }, { type: 'number', step: 'any' }),
      checkbox('Whole numbers', rule.integer, (value) => { rule.integer = value; }),
      input('Unit (UCUM code, e.g. mm)', unit.value, (value) => setUnit('value', value), { size: 8 }),
      input('Unit meaning', unit.meaning, (value) => setUnit('meaning', value), { size: 14 }),
    ]);
  }
  if (question.kind === 'text') {
    return input('Most characters', question.max_length, (value) => { question.max_length = value; }, { type: 'number', min: 1 });
  }
  return el('span');
}

function optionsEditor(question) {
  const rows = question.options.map((option, index) => {
    const code = option.code || {};
    const setCode = (name, value) => {
      option.code = { value: code.value || '', scheme: code.scheme || 'SCT', meaning: code.meaning || '', ...option.code, [name]: value };
      if (!option.code.value && !option.code.meaning) option.code = null;
    };
    return el('tr', {}, [
      el('td', {}, [input('Value', option.value, (value) => { option.value = value; }, { size: 14 })]),
      el('td', {}, [input('Label', option.label, (value) => { option.label = value; }, { size: 18 })]),
      el('td', {}, [input('Code', code.value, (value) => setCode('value', value), { size: 10 })]),
      el('td', {}, [input('Scheme', code.scheme, (value) => setCode('scheme', value), { size: 5 })]),
      el('td', {}, [input('Meaning', code.meaning, (value) => setCode('meaning', value), { size: 16 })]),
      el('td', {}, [el('button', { type: 'button', class: 'button', text: 'Remove', onclick: () => { question.options.splice(index, 1); renderAll(); } })]),
    ]);
  });
  const add = el('button', {
    type: 'button',
    class: 'button',
    text: '+ Option',
    onclick: () => {
      const n = question.options.length + 1;
      question.options.push({ value: `option_${n}`, label: `Option ${n}`, code: null });
      renderAll();
    },
  });
  return el('div', {}, [el('table', { class: 'grid question-options' }, [el('tbody', {}, rows)]), add]);
}

builder.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-preset], button[data-add-kind]');
  if (!button) return;
  const scope = button.closest('.question-scope').dataset.scope;
  const list = questions[scope];
  if (button.dataset.preset) {
    const preset = structuredClone(presets[button.dataset.preset]);
    preset.key = uniqueKey(list, preset.key);
    list.push(preset);
  } else {
    list.push(defaultsFor('single_choice', { key: uniqueKey(list, 'question'), label: 'New question', required: false }));
  }
  renderAll();
});
