// Export buttons on the results page: POST the export API (annotations/api/exports.py), follow the job until
// it is done, then offer its download_url. Progress comes live over the job's WebSocket
// (/ws/console/exports/<id>/); if that cannot open or drops, the page polls the job instead.
// The API's URLs come from the page (data-jobs-url, data-job-url).
import { api, el, sleep } from './api.js';

const box = document.getElementById('exports');
const status = document.getElementById('export-status');
const list = document.getElementById('export-list');
const jobsUrl = box.dataset.jobsUrl;
const jobUrl = (id) => `${jobsUrl}${id}/`;
const finished = (job) => job.status === 'done' || job.status === 'failed';
const SAFETY_CHECK_MS = 15000;

// DRF answers 400 with field errors ({"format": ["..."]}) and 403 with {"detail": "..."}.
function reason(error) {
  const body = error.body || {};
  if (body.detail) return body.detail;
  const fields = Object.entries(body).map(([field, messages]) => `${field}: ${[].concat(messages).join(' ')}`);
  return fields.join('; ') || error.message;
}

function showProgress(job, label) {
  const fraction = job.progress_total ? job.progress_done / job.progress_total : job.progress_fraction || 0;
  status.textContent = `Building ${label}… ${Math.round(100 * fraction)}%`;
}

// Resolves with true once the socket reports the job finished, false if the socket fails first.
function followLive(job, label) {
  return new Promise((resolve) => {
    let socket;
    try {
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      socket = new WebSocket(`${scheme}://${location.host}/ws/console/exports/${job.id}/`);
    } catch {
      resolve(false);
      return;
    }
    let settled = false;
    let check;
    const settle = (outcome) => {
      if (settled) return;
      settled = true;
      clearInterval(check);
      socket.close();
      resolve(outcome);
    };
    // A missed broadcast (a worker whose channel layer is down) must not leave the page waiting forever.
    check = setInterval(async () => {
      try {
        if (finished(await api(jobUrl(job.id)))) settle(true);
      } catch {
        // the next check, or the socket, will tell
      }
    }, SAFETY_CHECK_MS);
    socket.addEventListener('message', (event) => {
      const message = JSON.parse(event.data);
      if (message.type !== 'export.progress') return;
      showProgress(message, label);
      if (finished(message)) settle(true);
    });
    socket.addEventListener('error', () => settle(false));
    socket.addEventListener('close', () => settle(false));
  });
}

async function follow(job, label) {
  if (!finished(job) && 'WebSocket' in window && (await followLive(job, label))) {
    return api(jobUrl(job.id)); // the API's answer names the file and gives the absolute download URL
  }
  for (let i = 0; i < 900; i += 1) {
    if (finished(job)) return job;
    showProgress(job, label);
    await sleep(1000);
    job = await api(jobUrl(job.id));
  }
  return job;
}

function downloadLink(job) {
  return el('a', { href: job.download_url, text: `download${job.file_name ? ` ${job.file_name}` : ''}` });
}

function show(job, label, item) {
  if (job.status === 'done') {
    status.replaceChildren(`${label} ready: `, downloadLink(job));
    item.replaceChildren(`${label} · `, el('span', { class: 'pill done', text: 'done' }), ' · ', downloadLink(job));
  } else {
    status.textContent = `${label} failed: ${job.error || job.status}`;
    item.replaceChildren(`${label} · `, el('span', { class: 'pill failed', text: job.status }), ` · ${job.error || ''}`);
  }
}

for (const button of box.querySelectorAll('button[data-format]')) {
  button.addEventListener('click', async () => {
    const label = button.textContent;
    const checkbox = document.getElementById('pseudonymise');
    const teamNames = document.getElementById('identify-teams');
    button.disabled = true;
    try {
      // Researchers have no checkbox: the API refuses them identified exports anyway.
      const started = await api(jobsUrl, {
        method: 'POST',
        json: {
          task: Number(box.dataset.task),
          format: button.dataset.format,
          pseudonymise: checkbox ? checkbox.checked : true,
          identify_teams: teamNames ? teamNames.checked : false,
        },
      });
      const item = el('li', { 'data-job-url': jobUrl(started.id) }, `${label} · ${started.status}`);
      list.prepend(item);
      show(await follow(started, label), label, item);
    } catch (error) {
      status.textContent = `Export failed: ${reason(error)}`;
    } finally {
      button.disabled = false;
    }
  });
}

// Jobs still building when the page loaded are followed too, so a reload does not lose them.
for (const item of list.querySelectorAll('li[data-status="pending"], li[data-status="running"]')) {
  const label = item.firstChild.textContent.split(' · ')[0];
  api(item.dataset.jobUrl)
    .then((job) => follow(job, label))
    .then((job) => show(job, label, item))
    .catch((error) => { status.textContent = `Export failed: ${reason(error)}`; });
}
