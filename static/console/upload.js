// Upload page: collect dropped files/folders/zips, send them in resumable chunks, start the import,
// follow its progress and show the per-file report.
import { api, el, sleep } from './api.js';

const root = document.getElementById('uploader');
const CHUNK = Number(root.dataset.chunkBytes);
const MAX_FILE = Number(root.dataset.maxFileBytes);
const dropzone = document.getElementById('dropzone');
const selectionBox = document.getElementById('selection');
const startButton = document.getElementById('start');
const statusLine = document.getElementById('status');
let selected = []; // [{file, name}]

function formatBytes(n) {
  const units = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function showSelection() {
  const bytes = selected.reduce((sum, item) => sum + item.file.size, 0);
  document.getElementById('selection-count').textContent =
    `${selected.length} file${selected.length === 1 ? '' : 's'} selected (${formatBytes(bytes)})`;
  selectionBox.hidden = selected.length === 0;
}

const niftiOptions = document.getElementById('nifti-options');
const NIFTI_NAME = /\.nii(\.gz)?$/i;

/** The NIfTI options as the import API takes them (empty fields are left to the server's defaults). */
function niftiFields() {
  return {
    nifti_modality: document.getElementById('nifti-modality').value,
    patient_id: document.getElementById('nifti-patient-id').value.trim(),
    patient_name: document.getElementById('nifti-patient-name').value.trim(),
  };
}

/** Show the server's refusals beside their fields ({field: [message]}); return true when there were any. */
function showFieldErrors(errors = {}) {
  let shown = false;
  for (const box of niftiOptions.querySelectorAll('[data-error-for]')) {
    const messages = errors[box.dataset.errorFor] || [];
    box.textContent = messages.join(' ');
    box.hidden = !messages.length;
    box.closest('label').querySelector('input, select').setAttribute('aria-invalid', String(Boolean(messages.length)));
    shown ||= Boolean(messages.length);
  }
  if (shown) niftiOptions.open = true;
  return shown;
}

function addFiles(items) {
  for (const item of items) {
    if (item.file.size > MAX_FILE) {
      statusLine.textContent = `${item.name} is larger than the ${formatBytes(MAX_FILE)} limit and was left out.`;
      continue;
    }
    selected.push(item);
    // The NIfTI options matter only now: show them rather than leave them folded.
    if (NIFTI_NAME.test(item.name)) niftiOptions.open = true;
  }
  showSelection();
}

// Folders arrive as directory entries; walk them so every file keeps its relative path.
async function entriesToFiles(entry, prefix = '') {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    return [{ file, name: prefix + file.name }];
  }
  const reader = entry.createReader();
  const children = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    children.push(...batch);
  }
  const nested = await Promise.all(children.map((child) => entriesToFiles(child, `${prefix}${entry.name}/`)));
  return nested.flat();
}

dropzone.addEventListener('dragover', (event) => { event.preventDefault(); dropzone.classList.add('over'); });
dropzone.addEventListener('dragleave', () => dropzone.classList.remove('over'));
dropzone.addEventListener('drop', async (event) => {
  event.preventDefault();
  dropzone.classList.remove('over');
  const entries = [...event.dataTransfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  if (entries.length) {
    addFiles((await Promise.all(entries.map((entry) => entriesToFiles(entry)))).flat());
  } else {
    addFiles([...event.dataTransfer.files].map((file) => ({ file, name: file.name })));
  }
});
for (const id of ['file-input', 'folder-input']) {
  document.getElementById(id).addEventListener('change', (event) => {
    addFiles([...event.target.files].map((file) => ({ file, name: file.webkitRelativePath || file.name })));
    event.target.value = '';
  });
}
document.getElementById('clear').addEventListener('click', () => { selected = []; showSelection(); });

function setBar(barId, textId, done, total, label) {
  const percent = total ? Math.round((100 * done) / total) : 0;
  document.getElementById(barId).style.width = `${percent}%`;
  document.getElementById(barId).parentElement.setAttribute('aria-valuenow', String(percent));
  document.getElementById(textId).textContent = label ?? `${percent}%`;
}

// Send one file from wherever the server says it stopped; retry a failed chunk with backoff.
async function sendFile(jobId, item, onBytes) {
  const registered = await api(`/api/console/imports/${jobId}/files/`, {
    method: 'POST', json: { name: item.name, size: item.file.size },
  });
  const url = `/api/console/imports/${jobId}/files/${registered.upload_id}/`;
  let offset = 0;
  let failures = 0;
  while (offset < item.file.size) {
    const end = Math.min(offset + CHUNK, item.file.size);
    try {
      const state = await api(`${url}?offset=${offset}`, {
        method: 'PUT', body: item.file.slice(offset, end), headers: { 'Content-Type': 'application/octet-stream' },
      });
      onBytes(state.offset - offset);
      offset = state.offset;
      failures = 0;
    } catch (error) {
      if (error.status === 409 && typeof error.body?.offset === 'number') {
        onBytes(error.body.offset - offset);
        offset = error.body.offset; // the server holds more (or less) than we thought: resume there
        continue;
      }
      failures += 1;
      if (failures > 5 || (error.status && error.status < 500 && error.status !== 429)) throw error;
      statusLine.textContent = `Connection trouble on ${item.name}; retrying (${failures}/5)…`;
      await sleep(500 * 2 ** failures);
      try {
        const state = await api(url);
        onBytes(state.offset - offset);
        offset = state.offset;
      } catch { /* keep the offset we have and retry */ }
    }
  }
}

function renderReport(job) {
  const summary = job.summary || {};
  document.getElementById('report-summary').textContent =
    `${summary.imported ?? 0} imported · ${summary.duplicates ?? 0} duplicates · ${summary.rejected ?? 0} rejected`;
  // What identifies a patient in these files (attribute names and file counts, never values).
  const phi = Object.entries(summary.phi || {});
  const phiLine = document.getElementById('report-phi');
  phiLine.hidden = phi.length === 0;
  phiLine.textContent = phi.length
    ? `${job.deidentify ? 'Removed on import' : 'Identifying attributes present (check before a public booth)'}: ` +
      phi.map(([name, count]) => `${name} (${count})`).join(', ')
    : '';
  const rows = document.getElementById('report-rows');
  rows.replaceChildren(...(job.report || []).map((row) => el('tr', { class: row.status },
    el('td', { class: 'filename', text: row.name }),
    el('td', {}, el('span', { class: `pill ${row.status}`, text: row.status })),
    el('td', { text: row.reason || '' }))));
  document.getElementById('report').hidden = false;
}

document.getElementById('only-problems').addEventListener('change', (event) => {
  document.getElementById('report-rows').classList.toggle('only-problems', event.target.checked);
});

function addRecentImport(job) {
  const body = document.getElementById('recent-imports');
  body.querySelector('td.empty')?.parentElement.remove();
  const s = job.summary || {};
  body.prepend(el('tr', {},
    el('td', {}, el('a', { href: job.url, text: `#${job.id}` })), el('td', { text: job.collection ?? '—' }),
    el('td', { text: 'you' }), el('td', { text: new Date(job.created_at).toLocaleString() }),
    el('td', {}, el('span', { class: `pill ${job.status}`, text: job.status })),
    el('td', { text: String(s.imported ?? '') }), el('td', { text: String(s.duplicates ?? '') }),
    el('td', { text: String(s.rejected ?? '') })));
}

async function follow(jobId) {
  for (;;) {
    const job = await api(`/api/console/imports/${jobId}/`);
    setBar('import-bar', 'import-text', job.files_done, job.files_total,
      job.files_total ? `${job.files_done} / ${job.files_total} files` : '');
    if (job.status === 'done' || job.status === 'failed') {
      if (job.status === 'done') setBar('import-bar', 'import-text', 1, 1, `${job.files_total} / ${job.files_total} files`);
      statusLine.textContent = job.status === 'done' ? 'Import finished.' : `Import failed: ${job.error}`;
      renderReport(job);
      addRecentImport(job);
      return job;
    }
    statusLine.textContent = 'Importing…';
    await sleep(700);
  }
}

startButton.addEventListener('click', async () => {
  const collection = document.getElementById('collection').value.trim();
  if (!collection) { statusLine.textContent = 'Name the collection first.'; document.getElementById('collection').focus(); return; }
  if (!selected.length) return;
  startButton.disabled = true;
  document.getElementById('progress').hidden = false;
  document.getElementById('report').hidden = true;
  const files = selected;
  const total = files.reduce((sum, item) => sum + item.file.size, 0);
  let sent = 0;
  setBar('upload-bar', 'upload-text', 0, total);
  setBar('import-bar', 'import-text', 0, 1, 'waiting');
  try {
    const deidentify = document.getElementById('deidentify').checked;
    let job;
    try {
      job = await api('/api/console/imports/', { method: 'POST', json: { collection, deidentify, ...niftiFields() } });
    } catch (error) {
      if (showFieldErrors(error.body?.errors)) throw new Error('check the NIfTI options');
      throw error;
    }
    showFieldErrors({});
    statusLine.textContent = `Uploading ${files.length} file(s)…`;
    // Two files at a time: enough to fill the pipe without starving the booth's readers.
    const queue = [...files];
    const workers = [0, 1].map(async () => {
      while (queue.length) {
        const item = queue.shift();
        await sendFile(job.id, item, (bytes) => {
          sent += bytes;
          setBar('upload-bar', 'upload-text', sent, total, `${formatBytes(sent)} / ${formatBytes(total)}`);
        });
      }
    });
    await Promise.all(workers);
    setBar('upload-bar', 'upload-text', 1, 1, `${formatBytes(total)} / ${formatBytes(total)}`);
    statusLine.textContent = 'Upload complete; importing…';
    await api(`/api/console/imports/${job.id}/start/`, { method: 'POST', json: {} });
    await follow(job.id);
    selected = [];
    showSelection();
  } catch (error) {
    statusLine.textContent = `Upload failed: ${error.message}`;
  } finally {
    startButton.disabled = false;
  }
});
