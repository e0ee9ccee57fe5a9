// The task page's "Import model predictions" form: refuse, before sending, a choice the server would refuse
// as a whole request (over the body size limit or Django's file count), saying which limit and what to do.
const form = document.getElementById('prediction-form');
const problem = document.getElementById('prediction-form-problem');

function megabytes(bytes) {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

form?.addEventListener('submit', (event) => {
  const files = [...form.querySelector('input[type=file]').files];
  const bytes = files.reduce((sum, file) => sum + file.size, 0);
  const maxBytes = Number(form.dataset.maxBytes);
  const maxFiles = Number(form.dataset.maxFiles);
  let reason = '';
  if (files.length > maxFiles) reason = `${files.length} files chosen; at most ${maxFiles} per import: put them in a .zip.`;
  else if (bytes > maxBytes) reason = `${megabytes(bytes)} chosen; at most ${megabytes(maxBytes)} per import: import them in turns.`;
  problem.hidden = !reason;
  problem.textContent = reason;
  if (reason) event.preventDefault();
});
