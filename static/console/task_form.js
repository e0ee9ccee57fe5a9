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
