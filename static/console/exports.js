// Export buttons on the results page: ask /api/exports/ for a file and follow it until it can be downloaded.
import { api, el, sleep } from './api.js';

const box = document.getElementById('exports');
const status = document.getElementById('export-status');
const list = document.getElementById('export-list');

async function follow(job) {
  for (let i = 0; i < 600; i += 1) {
    if (job.status === 'done' || job.status === 'failed') return job;
    const total = job.progress_total || 0;
    status.textContent = `Building ${job.format} export… ${total ? Math.round((100 * job.progress_done) / total) : 0}%`;
    await sleep(1000);
    job = await api(`/api/exports/${job.id}/`);
  }
  return job;
}

for (const button of box.querySelectorAll('button[data-format]')) {
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const pseudonymise = document.getElementById('pseudonymise').checked;
      const job = await follow(await api('/api/exports/', {
        method: 'POST', json: { task: Number(box.dataset.task), format: button.dataset.format, pseudonymise },
      }));
      if (job.status === 'done') {
        const href = job.download_url || `/api/exports/${job.id}/download/`;
        status.replaceChildren('Export ready: ', el('a', { href, text: 'download' }));
        list.prepend(el('li', {}, `${button.textContent} · done · `, el('a', { href, text: 'download' })));
      } else {
        status.textContent = `Export failed: ${job.error || job.status}`;
      }
    } catch (error) {
      status.textContent = `Export failed: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });
}
