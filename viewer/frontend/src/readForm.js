// The side panel: case and task names, instructions, the lesion list with live lengths, the three
// flag buttons, the comment, Submit, and the messages (queued, errors, count and rank).
// Only touches the DOM; the session decides what happens.

const $ = (selector, root = document) => root.querySelector(selector);

const FLAG_LABELS = { no_lesion: 'No measurable lesion', skip: 'Skip', quality_problem: 'Image quality problem' };

export class ReadForm {
  constructor(root, handlers) {
    this.root = root;
    this.handlers = handlers;
    this.flags = { no_lesion: false, skip: false, quality_problem: false };
    for (const button of root.querySelectorAll('[data-flag]')) {
      button.addEventListener('click', () => this.toggleFlag(button.dataset.flag));
    }
    $('#comment', root).addEventListener('input', () => handlers.changed());
    $('#submit', root).addEventListener('click', () => handlers.submit());
    $('#new-lesion', root).addEventListener('click', () => handlers.newLesion());
    $('#lesion-list', root).addEventListener('click', (event) => {
      const row = event.target.closest('[data-lesion]');
      if (!row) return;
      const number = Number(row.dataset.lesion);
      if (event.target.closest('[data-delete]')) handlers.deleteLesion(number);
      else handlers.selectLesion(number);
    });
  }

  /** Show the case being read and the task's tools and instructions. */
  showCase(caseForReading) {
    const { task } = caseForReading;
    $('#case-label', this.root).textContent = caseForReading.label || `Case ${caseForReading.id}`;
    $('#task-name', this.root).textContent = task.name;
    // instructions_html is markdown rendered and sanitised on the server.
    $('#instructions', this.root).innerHTML = task.instructions_html || '';
    // On a phone or a tablet in portrait the instructions start folded, so the image keeps the room.
    const narrow = window.matchMedia?.('(max-width: 1000px), (orientation: portrait)').matches;
    $('#instructions', this.root).closest('details').open = !narrow;
    for (const button of this.root.querySelectorAll('[data-flag]')) {
      button.hidden = !task.tools.includes(button.dataset.flag);
    }
    $('#submit', this.root).disabled = false;
  }

  toggleFlag(flag, value = !this.flags[flag]) {
    this.flags[flag] = value;
    if (value && flag === 'no_lesion') this.flags.skip = false;
    if (value && flag === 'skip') this.flags.no_lesion = false;
    this.renderFlags();
    this.handlers.changed();
  }

  renderFlags() {
    for (const button of this.root.querySelectorAll('[data-flag]')) {
      button.setAttribute('aria-pressed', String(this.flags[button.dataset.flag]));
    }
    const on = Object.keys(FLAG_LABELS).filter((flag) => this.flags[flag]);
    $('#submit', this.root).textContent = on.length ? `Submit: ${on.map((f) => FLAG_LABELS[f]).join(', ')}` : 'Submit read';
  }

  get comment() {
    return $('#comment', this.root).value;
  }

  /** Put back flags and comment from a draft. */
  restore({ flags, comment }) {
    this.flags = { ...this.flags, ...(flags || {}) };
    $('#comment', this.root).value = comment || '';
    this.renderFlags();
  }

  clear() {
    this.restore({ flags: { no_lesion: false, skip: false, quality_problem: false }, comment: '' });
    this.message('');
  }

  /** Render lesions [{number, axes, mask: {pixels, slices}}] with the active one marked. */
  renderLesions(lesions, activeNumber, { showMask }) {
    const list = $('#lesion-list', this.root);
    const rows = lesions.map((lesion) => {
      const parts = [];
      if (lesion.axes.long_axis) parts.push(`long <b data-testid="long-axis-mm">${lesion.axes.long_axis.length_mm.toFixed(1)}</b> mm`);
      if (lesion.axes.short_axis) parts.push(`short <b>${lesion.axes.short_axis.length_mm.toFixed(1)}</b> mm`);
      if (showMask && lesion.mask?.pixels) parts.push(`mask ${lesion.mask.slices} slice${lesion.mask.slices === 1 ? '' : 's'}`);
      const active = lesion.number === activeNumber;
      return `<li data-lesion="${lesion.number}" class="lesion${active ? ' active' : ''}" aria-current="${active}">
        <button type="button" class="lesion-name">Lesion ${lesion.number}</button>
        <span class="lesion-sizes">${parts.join(' · ') || 'empty'}</span>
        <button type="button" class="icon" data-delete title="Delete lesion ${lesion.number}" aria-label="Delete lesion ${lesion.number}">✕</button>
      </li>`;
    });
    if (!lesions.some((lesion) => lesion.number === activeNumber)) {
      rows.push(`<li class="lesion active placeholder" aria-current="true">Lesion ${activeNumber}: draw a line or paint</li>`);
    }
    list.innerHTML = rows.join('');
  }

  /** A message under Submit; kind is '', 'ok', 'warn' or 'error'. */
  message(text, kind = '') {
    const box = $('#form-message', this.root);
    box.textContent = text;
    box.className = `form-message ${kind}`;
  }

  busy(isBusy) {
    $('#submit', this.root).disabled = isBusy;
  }

  /** The reader's count and rank after a saved read. */
  showStats(me) {
    if (!me) return;
    const rank = me.rank ? ` · rank #${me.rank}` : '';
    $('#my-stats', this.root).textContent = `${me.display_name}: ${me.reads_count} read${me.reads_count === 1 ? '' : 's'}${rank}`;
  }

  showQueue({ queued, retryInMs }) {
    const banner = $('#queue-banner', this.root);
    banner.hidden = !queued;
    if (queued) {
      banner.textContent = `${queued} read${queued === 1 ? '' : 's'} queued: the network is unreachable, retrying in ${Math.round(retryInMs / 1000)} s. Nothing is lost.`;
    }
  }
}
