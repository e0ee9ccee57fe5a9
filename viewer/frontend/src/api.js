// The reading API of docs/api-reading.md, as small async functions over fetch.
// Session authentication: writes carry Django's CSRF token from the csrftoken cookie.
// Never reads or sends anything about other readers' marks; the server would refuse anyway.

export class ApiError extends Error {
  /** An HTTP answer other than 2xx; `status` 0 means the network itself failed. */
  constructor(status, body, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }

  get isNetwork() {
    return this.status === 0 || this.status >= 500 || this.status === 408 || this.status === 429;
  }
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const field = document.querySelector('input[name=csrfmiddlewaretoken]');
  return field ? field.value : '';
}

/** Return the parsed JSON answer (or null for 204); throw ApiError otherwise. */
export async function request(method, url, body, { timeoutMs = 20000 } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') headers['X-CSRFToken'] = csrfToken();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: controller.signal,
    });
  } catch (error) {
    throw new ApiError(0, null, `network: ${error.message || error}`);
  } finally {
    clearTimeout(timer);
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { detail: text.slice(0, 300) };
  }
  if (!response.ok) throw new ApiError(response.status, parsed, describeError(response.status, parsed));
  return parsed;
}

/** One human sentence for an error body: `detail`, or the field errors joined. */
export function describeError(status, body) {
  if (body?.detail) return String(body.detail);
  if (body?.errors) {
    return Object.entries(body.errors)
      .map(([field, messages]) => `${field}: ${[].concat(messages).join(' ')}`)
      .join('; ');
  }
  return `HTTP ${status}`;
}

export const me = () => request('GET', '/api/me/');
export const tasks = () => request('GET', '/api/tasks/');
export const nextCase = (taskId, preferCase = null) =>
  request('POST', `/api/tasks/${taskId}/next-case/`, preferCase ? { prefer_case: preferCase } : {});
export const upcomingCase = (taskId) => request('GET', `/api/tasks/${taskId}/upcoming-case/`);
export const renewLease = (caseId, active = false) => request('POST', `/api/cases/${caseId}/lease/`, { active });
export const releaseLease = (caseId) => request('DELETE', `/api/cases/${caseId}/lease/`);
export const submitRead = (document_) => request('POST', '/api/reads/', document_, { timeoutMs: 30000 });
// A lesion mask proposed from a line, a tap or a corrected slice (docs/api-reading.md, "Mask proposals").
export const proposeMask = (caseId, body) => request('POST', `/api/cases/${caseId}/mask-proposals/`, body, { timeoutMs: 30000 });
export const leaderboard = () => request('GET', '/api/leaderboard/');
// Answer keys of gold cases (staff): CaseForReading plus the stored "answer_key" document or null.
export const answerKey = (caseId) => request('GET', `/api/cases/${caseId}/answer-key/`);
export const saveAnswerKey = (caseId, document_) => request('POST', `/api/cases/${caseId}/answer-key/`, document_, { timeoutMs: 30000 });

/** The DICOM JSON of every instance of a series (QIDO/WADO-RS series metadata). */
export function seriesMetadata(wadorsRoot, studyUid, seriesUid) {
  return fetch(`${wadorsRoot}/studies/${studyUid}/series/${seriesUid}/metadata`, {
    headers: { Accept: 'application/dicom+json' },
    credentials: 'same-origin',
  }).then(async (response) => {
    if (!response.ok) throw new ApiError(response.status, null, `series metadata: HTTP ${response.status}`);
    return response.json();
  });
}
