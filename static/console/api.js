// Small fetch helpers shared by the console pages: CSRF header, JSON in and out, readable errors.

export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? '';
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail || `request failed (${status})`);
    this.status = status;
    this.body = body;
  }
}

export async function api(url, { method = 'GET', json, body, headers = {}, signal } = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json', ...headers }, signal };
  if (method !== 'GET') init.headers['X-CSRFToken'] = csrfToken();
  if (json !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text.slice(0, 200) }; }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
