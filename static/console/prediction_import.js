// A running prediction import's page: poll the job (api/console/tasks/<task>/predictions/<job>/), move the
// progress bar, and reload once it is done so the server renders the per-file report.
import { api, sleep } from './api.js';

const box = document.getElementById('prediction-import');
const bar = document.getElementById('prediction-progress');
const text = document.getElementById('prediction-progress-text');
const POLL_MS = 1000;

async function follow() {
  for (;;) {
    try {
      const job = await api(box.dataset.api);
      bar.style.width = `${job.percent}%`;
      text.textContent = `${job.files_done} of ${job.files_total} files`;
      if (job.status !== 'running') {
        location.reload();
        return;
      }
    } catch (error) {
      text.textContent = `Cannot reach the server (${error.message}); retrying…`;
    }
    await sleep(POLL_MS);
  }
}

follow();
