// The side panel: case and task names, instructions, the lesion list with live lengths and the
// open lesion's questions, the three flag buttons, the comment, the case questions, Submit, and
// the messages (queued, errors, count and rank). Holds flags, comment and answers; only touches
// the DOM; the session decides what happens.
import { QuestionGroup } from './questionForm.js';
import { answersStillValid, answerSummary } from './questions.js';

const $ = (selector, root = document) => root.querySelector(selector);

/** Accept (pressed unless rejected: keeping the model's lesion is the default) and Reject of a model lesion. */
function reviewButtons(number, review) {
  const rejected = review === 'rejected';
  return `<span class="review-buttons" role="group" aria-label="The model's lesion ${number}">
    <button type="button" class="small" data-accept aria-pressed="${!rejected}" data-testid="accept-lesion"
      title="${rejected ? "Bring the model's marks back" : 'Keep this lesion (as drawn or as you edited it)'}">Accept</button>
    <button type="button" class="small" data-reject aria-pressed="${rejected}" data-testid="reject-lesion"
      title="Remove the model's lesion from your read">Reject</button>
  </span>`;
}

const ROW_CONTROLS = ['[data-accept]', '[data-reject]', '[data-delete]', '[data-propose]', '[data-repropagate]', '.lesion-name'];

/** If a lesion row's button has the focus, return a function that focuses the same button of the rebuilt row. */
function focusedRowControl(list) {
  const focused = document.activeElement;
  const row = focused?.closest?.('[data-lesion]');
  if (!row || !list.contains(row)) return null;
  const control = ROW_CONTROLS.find((selector) => focused.matches(selector));
  const number = row.dataset.lesion;
  return () => {
    const newRow = list.querySelector(`[data-lesion="${number}"]`);
    (newRow?.querySelector(control) || newRow?.querySelector('button'))?.focus();
  };
}

const FLAG_LABELS = { no_lesion: 'No measurable lesion', skip: 'Skip', quality_problem: 'Image quality problem' };

export class ReadForm {
  constructor(root, handlers) {
    this.root = root;
    this.handlers = handlers;
    this.flags = { no_lesion: false, skip: false, quality_problem: false };
    this.questions = null;
    this.answers = { case: {}, lesions: {} };
    this.caseQuestions = new QuestionGroup($('#case-questions-list', root), {
      idPrefix: 'q-case',
      onAnswer: (key, value) => {
        this.answers.case[key] = value;
        this.answerGiven();
        handlers.changed();
      },
    });
    // The open lesion's questions live in one list item that is moved, not rebuilt, when the lesion
    // list re-renders (it does so while a line is dragged), so typing and focus survive.
    this.lesionQuestionsItem = document.createElement('li');
    this.lesionQuestionsItem.className = 'lesion-questions';
    const lesionQuestionsBox = document.createElement('div');
    this.lesionQuestionsItem.append(lesionQuestionsBox);
    this.questionLesion = null;
    this.lesionQuestions = new QuestionGroup(lesionQuestionsBox, {
      idPrefix: 'q-lesion',
      onAnswer: (key, value) => {
        if (this.questionLesion == null) return;
        this.answers.lesions[this.questionLesion] = { ...this.answers.lesions[this.questionLesion], [key]: value };
        this.answerGiven();
        handlers.changed();
      },
    });
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
      if (event.target.closest('[data-accept]')) handlers.acceptLesion(number);
      else if (event.target.closest('[data-reject]')) handlers.rejectLesion(number);
      else if (row.dataset.review === 'rejected') return; // nothing of it is drawn: only Accept brings it back
      else if (event.target.closest('[data-delete]')) handlers.deleteLesion(number);
      else if (event.target.closest('[data-propose]')) handlers.proposeMask(number);
      else if (event.target.closest('[data-repropagate]')) handlers.repropagate(number);
      else handlers.selectLesion(number);
    });
  }

  /** Show the case being read, the task's tools and instructions, and its questions (questionSet or null). */
  showCase(caseForReading, questions = null) {
    this.questions = questions;
    this.questionLesion = null;
    const caseList = questions?.case || [];
    $('#case-questions', this.root).hidden = !caseList.length;
    this.caseQuestions.render(caseList, this.answers.case);
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
    const label = this.root.dataset.submitLabel || 'Submit read';
    $('#submit', this.root).textContent = on.length ? `${label}: ${on.map((f) => FLAG_LABELS[f]).join(', ')}` : label;
  }

  get comment() {
    return $('#comment', this.root).value;
  }

  /** Put back flags, comment and answers from a draft (answers a newer question version no longer takes are dropped). */
  restore({ flags, comment, answers }) {
    this.flags = { ...this.flags, ...(flags || {}) };
    $('#comment', this.root).value = comment || '';
    this.renderFlags();
    const lesions = {};
    for (const [number, given] of Object.entries(answers?.lesions || {})) {
      lesions[number] = answersStillValid(this.questions?.lesion || [], given);
    }
    this.answers = { case: answersStillValid(this.questions?.case || [], answers?.case), lesions };
    this.caseQuestions.render(this.questions?.case || [], this.answers.case);
    this.questionLesion = null; // the open lesion's questions are drawn again with the lesion list
  }

  clear() {
    this.restore({ flags: { no_lesion: false, skip: false, quality_problem: false }, comment: '', answers: null });
    this.message('');
  }

  /** Forget the answers of a deleted lesion. */
  dropLesion(number) {
    delete this.answers.lesions[number];
    if (this.questionLesion === number) this.questionLesion = null;
  }

  /** Answers of the lesion numbered `number` by the reader. */
  lesionAnswers(number) {
    return this.answers.lesions[number] || {};
  }

  /** Put the keyboard on a question named by answerProblems (its lesion must be the open one). */
  focusQuestion({ scope, key }) {
    return (scope === 'case' ? this.caseQuestions : this.lesionQuestions).focusQuestion(key);
  }

  /** Number keys on a focused question (bindShortcuts' questionKey). */
  questionKey(event) {
    return this.lesionQuestions.handleDigit(event) || this.caseQuestions.handleDigit(event);
  }

  /**
   * Render lesions [{number, axes, mask: {pixels, slices}, review}] with the active one marked and its questions
   * open. `review` is 'accepted', 'edited' or 'rejected' for a lesion the model drew ("check the model"
   * tasks), which gets a badge and Accept / Reject buttons instead of Delete; null for the reader's own.
   */
  renderLesions(lesions, activeNumber, { showMask }) {
    const list = $('#lesion-list', this.root);
    const lesionQuestions = this.questions?.lesion || [];
    const html = lesions.map((lesion) => {
      const parts = [];
      if (lesion.axes.long_axis) parts.push(`long <b data-testid="long-axis-mm">${lesion.axes.long_axis.length_mm.toFixed(1)}</b> mm`);
      if (lesion.axes.short_axis) parts.push(`short <b>${lesion.axes.short_axis.length_mm.toFixed(1)}</b> mm`);
      if (showMask && lesion.mask?.pixels) parts.push(`mask ${lesion.mask.slices} slice${lesion.mask.slices === 1 ? '' : 's'}`);
      const active = lesion.number === activeNumber;
      const { review } = lesion;
      if (review === 'rejected') {
        return `<li data-lesion="${lesion.number}" data-review="rejected" class="lesion rejected">
          <span class="lesion-name">Lesion ${lesion.number}</span>
          <span class="badge model-badge" data-testid="model-badge">model</span>
          <span class="lesion-sizes">rejected: not in your read</span>
          ${reviewButtons(lesion.number, review)}
        </li>`;
      }
      // A lesion with a line can ask the server for its mask; one with a mask can propagate it again.
      const propose = showMask && lesion.axes.long_axis
        ? `<button type="button" class="small" data-propose title="Mask from this line (A)" data-testid="propose-mask">Mask</button>`
        : '';
      const repropagate = showMask && lesion.mask?.pixels
        ? `<button type="button" class="small" data-repropagate title="Propagate again from the slice on screen (G)">Re-propagate</button>`
        : '';
      const badges = review
        ? `<span class="badge model-badge" data-testid="model-badge" title="Drawn by the model">model</span>${
            review === 'edited' ? '<span class="badge edited-badge" data-testid="edited-badge">edited</span>' : ''
          }`
        : '';
      const remove = review
        ? reviewButtons(lesion.number, review)
        : `<button type="button" class="icon" data-delete title="Delete lesion ${lesion.number}" aria-label="Delete lesion ${lesion.number}">✕</button>`;
      return `<li data-lesion="${lesion.number}"${review ? ` data-review="${review}"` : ''} class="lesion${active ? ' active' : ''}" aria-current="${active}">
        <button type="button" class="lesion-name">Lesion ${lesion.number}</button>${badges}
        <span class="lesion-sizes">${parts.join(' · ') || 'empty'}</span>${propose}${repropagate}
        ${remove}
        <span class="lesion-answers" data-testid="lesion-answers"></span>
      </li>`;
    });
    const activeHasContent = lesions.some((lesion) => lesion.number === activeNumber && lesion.review !== 'rejected');
    if (!activeHasContent) {
      html.push(`<li class="lesion active placeholder" aria-current="true">Lesion ${activeNumber}: draw a line or paint</li>`);
    }
    const template = document.createElement('template');
    template.innerHTML = html.join('');
    const rows = [...template.content.children];
    for (const row of rows) {
      const number = Number(row.dataset.lesion);
      const summary = row.querySelector('.lesion-answers');
      // Answer labels come from admins: text only. The open lesion shows its questions instead.
      if (summary && lesionQuestions.length && number !== activeNumber) {
        summary.textContent = answerSummary(lesionQuestions, this.lesionAnswers(number));
        summary.classList.toggle('incomplete', /missing$/.test(summary.textContent));
      } else summary?.remove();
    }
    // Rows are rebuilt: a keyboard user on a row's button (Reject, Accept, ...) keeps the focus on that button.
    const focusBack = focusedRowControl(list);
    // Replace the rows around the questions item without moving it while its lesion stays open.
    const item = this.lesionQuestionsItem;
    const showQuestions = Boolean(lesionQuestions.length) && activeHasContent;
    for (const child of [...list.children]) if (child !== item) child.remove();
    if (!showQuestions) {
      item.remove();
      this.questionLesion = null;
      list.append(...rows);
      focusBack?.();
      return;
    }
    if (!item.isConnected) list.append(item);
    const activeIndex = rows.findIndex((row) => Number(row.dataset.lesion) === activeNumber);
    item.before(...rows.slice(0, activeIndex + 1));
    item.after(...rows.slice(activeIndex + 1));
    if (this.questionLesion !== activeNumber) {
      this.questionLesion = activeNumber;
      item.setAttribute('aria-label', `Questions for lesion ${activeNumber}`);
      this.lesionQuestions.render(lesionQuestions, this.lesionAnswers(activeNumber), `q-lesion${activeNumber}`);
    }
    focusBack?.();
  }

  /** Name a missing or wrong answer under Submit; it goes away once the reader answers. */
  answerMessage(text) {
    this.message(text, 'error');
    this.showingAnswerMessage = true;
  }

  answerGiven() {
    if (this.showingAnswerMessage) this.message('');
  }

  /** A message under Submit; kind is '', 'ok', 'warn' or 'error'. */
  message(text, kind = '') {
    this.showingAnswerMessage = false;
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
