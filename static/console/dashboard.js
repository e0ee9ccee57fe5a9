// Live task dashboard: draws the figures the server sends over /ws/console/tasks/<id>/ and
// reconnects (with a polling fallback) when the socket drops.
import { api, el, sleep } from './api.js';

const root = document.getElementById('dashboard');
const live = document.getElementById('live');
const caseUrl = (id) => root.dataset.caseUrl.replace(/\/0\/$/, `/${id}/`);
const SVG = 'http://www.w3.org/2000/svg';

function svgEl(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

function barChart(svg, values, labels, colour) {
  const width = 480; const height = 140; const bottom = 18; const left = 26;
  const max = Math.max(1, ...values);
  const slot = (width - left) / Math.max(1, values.length);
  // A few wide buckets look like a solid block: cap the bar width.
  const step = Math.min(slot, 56);
  const children = [svgEl('line', { x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: 'axis' })];
  children.push(Object.assign(svgEl('text', { x: 0, y: 12, class: 'tick' }), { textContent: String(max) }));
  values.forEach((value, i) => {
    const h = ((height - bottom - 8) * value) / max;
    const bar = svgEl('rect', { x: left + i * step + 1, y: height - bottom - h, width: Math.max(1, step - 2), height: h, fill: colour, rx: 1 });
    bar.append(Object.assign(svgEl('title', {}), { textContent: `${labels[i]}: ${value}` }));
    children.push(bar);
    const every = Math.ceil(values.length / 8);
    if (i % every === 0) {
      children.push(Object.assign(svgEl('text', { x: left + i * step + step / 2, y: height - 4, class: 'tick', 'text-anchor': 'middle' }), { textContent: labels[i] }));
    }
  });
  svg.replaceChildren(...children);
}

function render(d) {
  document.getElementById('stat-complete').textContent = `${d.cases_complete} / ${d.cases_total}`;
  document.getElementById('meter-complete').style.width = `${d.cases_total ? (100 * d.cases_complete) / d.cases_total : 0}%`;
  document.getElementById('stat-reads').textContent = `${d.reads_counted} / ${d.reads_needed}`;
  document.getElementById('stat-reads-total').textContent = `${d.reads_total} reads stored (incl. skips and corrections)`;
  document.getElementById('stat-active').textContent = String(d.active_readers);
  document.getElementById('stat-readers').textContent = `${d.readers_total} readers so far`;
  document.getElementById('stat-consensus').textContent = `${d.consensus.current} / ${d.cases_total}`;
  document.getElementById('stat-consensus-detail').textContent = `current · ${d.consensus.stale} stale · ${d.consensus.none} not yet`;
  document.getElementById('stat-low').textContent = String(d.low_agreement.length);

  barChart(document.getElementById('hourly'), d.reads_per_hour.map((b) => b.reads),
    d.reads_per_hour.map((b) => new Date(b.hour).toLocaleTimeString([], { hour: '2-digit' })), '#3fa7ff');
  barChart(document.getElementById('histogram'), d.reads_per_case_histogram.map((b) => b.cases),
    d.reads_per_case_histogram.map((b) => `${b.reads} reads`), '#35c28b');

  const low = document.getElementById('low-agreement');
  low.replaceChildren(...(d.low_agreement.length
    ? d.low_agreement.map((c) => el('li', {}, el('a', { href: caseUrl(c.id), text: c.label }), ` · ${c.reads} reads · ${c.lesions ?? 0} lesions`))
    : [el('li', { class: 'muted', text: 'None: readers agree on every case with a consensus.' })]));

  document.getElementById('case-rows').replaceChildren(...d.cases.map((c) => el('tr', { class: c.complete ? 'complete' : '', 'data-case': c.id },
    el('td', {}, c.label, ...(c.is_gold ? [' ', el('span', { class: 'pill gold', text: 'gold' })] : [])),
    el('td', {}, el('div', { class: 'meter' }, el('span', { style: `width:${Math.min(100, (100 * c.reads) / c.target)}%` })), `${c.reads} / ${c.target}`,
      ...(c.read_decision ? [el('div', { class: 'small muted', 'data-testid': 'read-decision', text: c.read_decision })] : [])),
    el('td', {}, el('span', { class: `pill ${c.consensus}`, text: c.consensus }), ...(c.low_agreement ? [' ', el('span', { class: 'pill warn', text: 'low agreement' })] : [])),
    el('td', { text: c.lesions ?? '—' }),
    el('td', {}, el('a', { href: caseUrl(c.id), text: 'View reads' })))));
  root.dataset.updatedAt = d.generated_at;
}

render(JSON.parse(document.getElementById('dashboard-data').textContent));

let failures = 0;
function connect() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const socket = new WebSocket(`${scheme}://${location.host}${root.dataset.ws}`);
  socket.addEventListener('open', () => { failures = 0; live.textContent = 'live'; live.className = 'live on'; });
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'dashboard') {
      render(message.dashboard);
      live.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    }
  });
  socket.addEventListener('close', async (event) => {
    live.className = 'live off';
    if (event.code === 4403) { live.textContent = 'not allowed'; return; }
    failures += 1;
    live.textContent = 'reconnecting…';
    // While the socket is down, poll so the numbers never go stale for long.
    try { render(await api(root.dataset.api)); } catch { /* keep the last figures */ }
    await sleep(Math.min(30000, 1000 * 2 ** Math.min(failures, 5)));
    connect();
  });
}
connect();
