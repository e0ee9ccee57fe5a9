// Entry of the reading page (built to static/viewer/read.js): one ReadingSession drives the
// viewer, the tools and the side panel through a loop of next case -> read -> submit -> next case.
// In answer-key mode (/read/answer-key/<case>/, staff) the same page draws one gold case's answer
// key: no lease, no outbox, no next case; saving returns to the console.
import './styles.css';
import { cache, eventTarget, imageLoader, utilities as csUtils } from '@cornerstonejs/core';
import { annotation, Enums as ToolEnums, utilities as toolUtilities } from '@cornerstonejs/tools';
import * as api from './api.js';
import { FollowUpReading } from './followUp.js';
import { dropDraft, loadDraft, reviveAnnotation, saveDraft, serializeAnnotation, uuid4 } from './drafts.js';
import { registerCaseImages } from './imageIds.js';
import { LeaseKeeper, leaseLostMessage } from './lease.js';
import { LesionMask } from './mask.js';
import {
  lineRequest,
  ProposalLedger,
  proposalAsDocument,
  proposalErrorMessage,
  seedMaskRequest,
  tapRequest,
} from './maskProposals.js';
import { OfflineQueue } from './offlineQueue.js';
import { ReadForm } from './readForm.js';
import { answerProblems, describeAnswerErrors, questionSet } from './questions.js';
import { buildReadDocument, collectLesions, lesionsWithContent, readProblems } from './readDocument.js';
import { bindShortcuts, renderShortcutSheet } from './shortcuts.js';
import { drawingFromDocument } from './storedRead.js';
import { SuggestionLedger, firstLesionSlice } from './suggestionReview.js';
import { MEASUREMENT_TOOLS, measurementAnnotations, ReadingTools } from './tools.js';
import { UpcomingCase } from './upcoming.js';
import { CT_PRESETS, planeOf, StackViewer, startCornerstone, VIEWPORT_ID } from './viewer.js';

const $ = (selector) => document.querySelector(selector);
const NATIVE_FRAMES_ACCEPT = 'multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1';

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

class ReadingSession {
  constructor(app) {
    this.app = app;
    this.taskId = Number(app.dataset.taskId) || Number(window.location.pathname.match(/\/read\/(\d+)/)?.[1]);
    // Answer-key mode: the gold case to draw, and where to go once it is saved.
    this.answerKeyCaseId = Number(app.dataset.answerKeyCase) || null;
    this.returnUrl = app.dataset.returnUrl || '/console/';
    this.questions = null;
    this.case = null;
    this.activeLesion = 1;
    this.maskSummary = new Map();
    this.maskSlices = new Map(); // lesion number -> [{imageId, counts}], as of the last mask change
    this.proposals = new ProposalLedger();
    this.suggestions = new SuggestionLedger();
    this.loading = false;
    this.brushRadius = 12;
    this.saveDraftSoon = debounce(() => this.saveDraft(), 400);
    this.refreshMaskSoon = debounce(() => {
      this.updateMaskState();
      this.refresh();
      this.saveDraft();
    }, 300);
  }

  async start() {
    const query = new URLSearchParams(window.location.search);
    const forceCpu = query.has('cpu') || this.app.dataset.renderMode === 'cpu';
    // Benchmark switches (benchmarks/bench_reading.py): the earlier native transfer and prefetch,
    // and another DICOMweb server for the images. Readers never need them.
    const benchNative = query.get('bench-transfer') === 'native';
    this.benchWadorsRoot = query.get('bench-wadors');
    this.renderMode = await startCornerstone({
      forceCpu,
      frameAccept: query.get('bench-accept') || (benchNative ? NATIVE_FRAMES_ACCEPT : null),
    });
    $('#render-mode').textContent = this.renderMode === 'cpu' ? 'CPU rendering' : '';
    this.viewer = new StackViewer($('#viewport'), {
      prefetch: query.get('bench-prefetch') === 'context' ? 'context' : 'interaction-first',
    });
    this.upcoming = new UpcomingCase({ wadorsRoot: this.benchWadorsRoot });
    // Once this case's slices are all cached, fetch the first slices of the case likely to come next.
    this.viewer.prefetcher.onIdle = () => {
      if (this.case && !this.answerKeyCaseId) this.upcoming.warm(this.taskId);
    };
    this.tools = new ReadingTools();
    this.tools.setBrushSize(this.brushRadius);
    this.form = new ReadForm(this.app, {
      changed: () => this.saveDraftSoon(),
      submit: () => this.submit(),
      newLesion: () => this.newLesion(),
      selectLesion: (n) => this.selectLesion(n),
      deleteLesion: (n) => this.deleteLesion(n),
      acceptLesion: (n) => this.acceptLesion(n),
      rejectLesion: (n) => this.rejectLesion(n),
      proposeMask: (n) => this.proposeMask(n),
      repropagate: (n) => this.repropagate(n),
    });
    this.queue = new OfflineQueue({
      onSent: (document_, answer) => this.onReadSaved(document_, answer),
      onRejected: (document_, error) => this.onReadRejected(document_, error),
      onStateChange: (state) => this.onQueueState(state),
    });
    this.lease = new LeaseKeeper({ onLost: (error) => this.form.message(leaseLostMessage(error), 'warn') });
    this.bindViewer();
    this.bindToolbar();
    this.bindEvents();
    renderShortcutSheet($('#shortcut-sheet'));
    window.readerboardViewer = this.testHandle();

    if (this.answerKeyCaseId) {
      await this.openAnswerKey();
      return;
    }
    try {
      this.me = await api.me();
    } catch (error) {
      if (error.status === 401 || error.status === 403) {
        window.location.assign(`/login/?next=${encodeURIComponent(window.location.pathname)}`);
        return;
      }
      throw error;
    }
    this.readerKey = this.me.pseudonym || this.me.display_name;
    this.queue.setReader(this.readerKey);
    this.form.showStats(this.me);
    // Reads queued in an earlier visit go first, so the server does not hand the same case out again.
    if (this.queue.pending().length && !(await this.queue.flush())) {
      this.status('Waiting for the network to send your queued reads…');
      this.waitingForQueue = true;
      return;
    }
    await this.openNextCase();
  }

  status(text) {
    const box = $('#viewer-status');
    box.textContent = text;
    box.hidden = !text;
  }

  // --- cases ----------------------------------------------------------------------------------

  async openNextCase() {
    this.status('Finding your next case…');
    let next;
    try {
      next = await api.nextCase(this.taskId, this.upcoming.preferredId());
    } catch (error) {
      this.status(`Could not get a case: ${error.message}. Retrying…`);
      setTimeout(() => this.openNextCase(), error.isNetwork ? 5000 : 15000);
      return;
    }
    if (!next) {
      this.closeCase();
      this.status('');
      $('#all-done').hidden = false;
      this.form.busy(true);
      return;
    }
    await this.openCase(next);
  }

  closeCase() {
    this.loading = true;
    this.lease.stop();
    annotation.state.removeAllAnnotations();
    // A closed case's slices and labelmaps leave the cache, so a tablet holds one case at a time.
    if (this.case) this.viewer.release(this.mask ? [...this.mask.labelmapOf.values()] : []);
    this.mask?.remove();
    this.mask = null;
    this.proposals = new ProposalLedger();
    this.suggestions = new SuggestionLedger();
    this.followUp?.close();
    this.case = null;
    this.loading = false;
  }

  /** Answer-key mode: load the gold case and its stored answer key (staff only on the server). */
  async openAnswerKey() {
    // Drafts of answer keys are kept apart from any reader's drafts on this browser.
    this.readerKey = `answer-key:${this.app.dataset.draftOwner || 'staff'}`;
    this.status('Loading the gold case…');
    let loaded;
    try {
      loaded = await api.answerKey(this.answerKeyCaseId);
    } catch (error) {
      this.status(`Could not open the answer key: ${error.message}`);
      return;
    }
    const { answer_key: stored, answer_key_saved: saved, ...caseForReading } = loaded;
    $('#answer-key-saved').textContent = saved
      ? `Stored: version ${saved.version}${saved.answered_by ? ` by ${saved.answered_by}` : ''}, ${new Date(saved.submitted_at).toLocaleString()}.`
      : 'None stored yet.';
    await this.openCase(caseForReading, { answerKey: stored });
  }

  async openCase(caseForReading, { answerKey = null } = {}) {
    // Marks for benchmarks/bench_reading.py: case open -> first image.
    performance.mark('readerboard-case-open');
    this.closeCase();
    this.upcoming.settle(caseForReading.id);
    this.loading = true;
    this.case = caseForReading;
    this.status(`Loading ${caseForReading.label || 'case'}…`);
    const draft = loadDraft(this.readerKey, caseForReading.id);
    if (caseForReading.follow_up) {
      // Follow-up mode (followUp.js): baseline and follow-up side by side, no masks.
      this.followUp ||= new FollowUpReading(this);
      await this.followUp.open(caseForReading, draft?.followUp);
      performance.mark('readerboard-first-image');
    } else {
      this.followUp?.leave();
      const source = this.benchWadorsRoot ? { ...caseForReading, wadors_root: this.benchWadorsRoot } : caseForReading;
      const { imageIds, frameOf } = await registerCaseImages(source);
      this.imageIds = imageIds;
      this.frameOf = frameOf;
      const first = caseForReading.instances[0] || {};
      await this.viewer.show(imageIds, this.openingSlice(caseForReading, draft), {
        extraBytesPerSlice: (first.rows || 512) * (first.columns || 512),
      });
      performance.mark('readerboard-first-image');
      this.mask = await LesionMask.create(imageIds, `lesions-${caseForReading.id}-${Date.now()}`);
    }
    this.questions = questionSet(caseForReading.task);
    this.form.clear();
    this.form.showCase(caseForReading, this.questions);
    this.applyTaskTools(caseForReading.task.tools);
    this.renderPresets();
    const slider = $('#slice-slider');
    slider.max = String(this.imageIds.length);
    slider.value = String(this.viewer.sliceIndex() + 1); // the stack was shown (at a draft's slice) before max was set
    this.clientUuid = draft?.client_uuid || uuid4();
    this.startedAt = draft?.started_at || new Date().toISOString();
    this.activeLesion = draft?.activeLesion || 1;
    if (draft) this.restoreDraft(draft);
    else if (answerKey) this.restoreAnswerKey(answerKey);
    // A "check the model" task: the model's lesions are drawn as the reader's own, to accept, edit or reject.
    else if (caseForReading.suggestion && this.mask) {
      const drawing = this.restoreAnswerKey(caseForReading.suggestion);
      this.suggestions = SuggestionLedger.fromDrawing(drawing, caseForReading.suggestion.model_name);
    }
    this.mask?.setActiveLesion(this.activeLesion);
    this.updateMaskState();
    if (!this.answerKeyCaseId) this.lease.start(caseForReading);
    this.loading = false;
    this.status('');
    this.showModelNote();
    $('#all-done').hidden = true;
    this.refresh();
    this.viewer.viewport.render();
  }

  /** The slice a case opens at: a draft's, else the model's first lesion of a suggestion, else the first. */
  openingSlice(caseForReading, draft) {
    if (draft) return Math.min(draft.slice ?? 0, this.imageIds.length - 1);
    const place = firstLesionSlice(caseForReading.suggestion);
    if (!place) return 0;
    const index = this.imageIds.findIndex((imageId) => {
      const where = this.frameOf.get(imageId);
      return where?.sop_instance_uid === place.sop_instance_uid && where.frame === place.frame;
    });
    return Math.max(index, 0);
  }

  /** In a "check the model" task, say above the lesion list whose lesions these are and what to do with them. */
  showModelNote() {
    const note = $('#model-note');
    const count = this.suggestions.size;
    note.hidden = !count;
    if (!count) return;
    const [model] = [...this.suggestions.byLesion.values()].map((entry) => entry.model);
    // Beside the list, not over the image: the reader draws on the image all the time.
    note.textContent =
      `Model ${model} drew ${count} lesion${count === 1 ? '' : 's'}: Accept or Reject each, edit them with the ` +
      'brush, eraser or line handles, and add what the model missed.';
  }

  applyTaskTools(tools) {
    const masks = tools.includes('mask') && !this.followUp?.active; // a follow-up read has no masks
    const allowed = {
      long_axis: tools.includes('long_axis'),
      bidirectional: tools.includes('bidirectional'),
      brush: masks,
      eraser: masks,
      tap: masks,
    };
    for (const button of document.querySelectorAll('[data-action="proposeMask"], [data-action="repropagate"]')) {
      button.hidden = !masks;
    }
    for (const button of document.querySelectorAll('[data-mode]')) {
      if (button.dataset.mode in allowed) button.hidden = !allowed[button.dataset.mode];
    }
    $('#brush-controls').hidden = !allowed.brush;
    // Every case starts with the measuring tool in hand: the booth's most common first action.
    this.setMode(['long_axis', 'bidirectional'].find((mode) => allowed[mode]) || 'window');
  }

  restoreDraft(draft) {
    for (const stored of draft.annotations || []) {
      try {
        const revived = reviveAnnotation(stored);
        // A follow-up measurement belongs to the second viewport's stack: its own frame of reference groups it.
        annotation.state.addAnnotation(revived, revived.data.readerboardFollowUp ? undefined : this.viewer.element);
      } catch (error) {
        console.warn('could not restore a measurement', error);
      }
    }
    if (draft.mask?.length) this.mask?.restore(draft.mask);
    this.proposals = new ProposalLedger(draft.proposals || {});
    this.suggestions = new SuggestionLedger(draft.suggestions || {});
    this.form.restore(draft);
    toolUtilities.triggerAnnotationRenderForViewportIds([VIEWPORT_ID, ...(this.followUp?.active ? [this.followUp.viewer.viewportId] : [])]);
    this.followUp?.refresh();
  }

  /** Draw a stored answer-key (or suggestion) document back: lines, masks, flags, comment, answers; return the drawing. */
  restoreAnswerKey(stored) {
    const imageIdOf = new Map([...this.frameOf].map(([imageId, where]) => [`${where.sop_instance_uid}/${where.frame}`, imageId]));
    const camera = this.viewer.viewport.getCamera();
    const drawing = drawingFromDocument(stored, {
      imageIdOf: (uid, frame) => imageIdOf.get(`${uid}/${frame}`),
      planeOf,
      view: {
        FrameOfReferenceUID: this.viewer.viewport.getFrameOfReferenceUID(),
        viewPlaneNormal: camera.viewPlaneNormal,
        viewUp: camera.viewUp,
      },
      newUid: uuid4,
    });
    for (const stub of drawing.annotations) annotation.state.addAnnotation(reviveAnnotation(stub), this.viewer.element);
    if (drawing.masks.length) this.mask.restore(drawing.masks);
    this.form.restore(drawing);
    toolUtilities.triggerAnnotationRenderForViewportIds([VIEWPORT_ID]);
    return drawing;
  }

  saveDraft() {
    if (!this.case || this.loading) return;
    const maskEntries = [];
    for (const [lesion, slices] of this.mask ? this.mask.encode() : []) {
      for (const { imageId, counts } of slices) maskEntries.push({ imageId, lesion, counts });
    }
    saveDraft(this.readerKey, this.case.id, {
      client_uuid: this.clientUuid,
      started_at: this.startedAt,
      activeLesion: this.activeLesion,
      slice: this.viewer.sliceIndex(),
      flags: this.form.flags,
      comment: this.form.comment,
      question_version: this.questions?.version ?? null,
      answers: this.form.answers,
      // The baseline lesions shown read-only come from the server again; they are not the reader's.
      annotations: measurementAnnotations()
        .filter((item) => !item.data.readerboardBaseline)
        .map(serializeAnnotation),
      mask: maskEntries,
      proposals: this.proposals.toJSON(),
      suggestions: this.suggestions.toJSON(),
      ...(this.followUp?.active ? this.followUp.draftFields() : {}),
    });
  }

  // --- lesions --------------------------------------------------------------------------------

  lookups() {
    return { frameOf: this.frameOf, planeOf };
  }

  lesions() {
    const maskByLesion = this.mask ? this.mask.encode() : new Map();
    const lesions = collectLesions(measurementAnnotations(), maskByLesion, this.lookups(), this.form.answers.lesions)
      // A rejected model lesion stays out of the read, whatever an undo of an older stroke put back.
      .filter((lesion) => !this.suggestions.isRejected(lesion.number));
    for (const lesion of lesions) lesion.provenance = lesion.maskSlices.length ? this.proposals.provenance(lesion.number) : null;
    return lesions;
  }

  // --- mask proposals (docs/api-reading.md, "Mask proposals") ------------------------------------

  imageIdOf(uid, frame) {
    for (const [imageId, where] of this.frameOf) if (where.sop_instance_uid === uid && where.frame === frame) return imageId;
    return undefined;
  }

  /** Ask the server for lesion `number`'s mask from its line; draw it into the lesion's labelmap segment. */
  async proposeMask(number = this.activeLesion) {
    if (!this.case || this.followUp?.active || !this.mask) return;
    const measurement = measurementAnnotations().find((item) => item.data.readerboardLesion === number);
    let body;
    try {
      body = lineRequest(measurement ? collectLesions([measurement], new Map(), this.lookups())[0].axes : null);
    } catch (error) {
      this.form.message(error.message, 'warn');
      return;
    }
    await this.askForMask(number, body);
  }

  /** Propagate lesion `number`'s mask again from the slice on screen (after the reader corrected it). */
  async repropagate(number = this.activeLesion) {
    if (!this.case || this.followUp?.active || !this.mask) return;
    const imageId = this.imageIds[this.viewer.sliceIndex()];
    const slice = (this.mask.encode().get(number) || []).find((entry) => entry.imageId === imageId);
    if (!slice) {
      this.form.message(`Lesion ${number} has no mask on this slice: paint or correct it here first.`, 'warn');
      return;
    }
    await this.askForMask(number, seedMaskRequest(this.frameOf.get(imageId), slice.counts));
  }

  /** Tap mode: the lesion under an image point gets its mask and, as an editable Bidirectional, its axes. */
  async tapAt(canvasPoint) {
    if (!this.case || this.followUp?.active || !this.mask) return;
    const pixel = this.viewer.pixelAt(canvasPoint);
    if (!pixel) return;
    const imageId = this.imageIds[this.viewer.sliceIndex()];
    let number = this.activeLesion;
    if (this.usedLesionNumbers().has(number)) {
      if (this.usedLesionNumbers().size >= this.maxLesions()) {
        this.form.message(`This task takes at most ${this.maxLesions()} lesions per case.`, 'warn');
        return;
      }
      number = this.nextFreeLesion();
    }
    await this.askForMask(number, tapRequest(this.frameOf.get(imageId), [pixel.column, pixel.row]), { drawAxes: true });
  }

  async askForMask(number, body, { drawAxes = false } = {}) {
    if (this.proposing) return;
    this.proposing = true;
    this.form.message(`Finding lesion ${number}'s mask…`);
    let answer;
    try {
      answer = await api.proposeMask(this.case.id, body);
    } catch (error) {
      this.form.message(proposalErrorMessage(error), 'warn');
      return;
    } finally {
      this.proposing = false;
    }
    const camera = this.viewer.viewport.getCamera();
    const drawing = drawingFromDocument(proposalAsDocument(answer, number, { withAxes: drawAxes }), {
      imageIdOf: (uid, frame) => this.imageIdOf(uid, frame),
      planeOf,
      view: {
        FrameOfReferenceUID: this.viewer.viewport.getFrameOfReferenceUID(),
        viewPlaneNormal: camera.viewPlaneNormal,
        viewUp: camera.viewUp,
      },
      newUid: uuid4,
    });
    this.mask.clearLesion(number);
    this.mask.restore(drawing.masks);
    if (drawAxes && this.case.task.tools.includes('bidirectional')) {
      for (const stub of drawing.annotations) annotation.state.addAnnotation(reviveAnnotation(stub), this.viewer.element);
      toolUtilities.triggerAnnotationRenderForViewportIds([VIEWPORT_ID]);
    }
    this.proposals.record(number, answer);
    this.updateMaskState();
    this.setActiveLesion(number);
    const slices = answer.mask.slices.length;
    this.form.message(`Lesion ${number}: mask on ${slices} slice${slices === 1 ? '' : 's'}. Correct it with the brush and eraser.`, 'ok');
    this.saveDraft();
  }

  /** Encode the mask once per change: the lesion list, the review badges and the lesion numbers read it. */
  updateMaskState() {
    this.maskSlices = this.mask ? this.mask.encode() : new Map();
    this.maskSummary = this.mask ? this.mask.pixelCounts(this.maskSlices) : new Map();
  }

  usedLesionNumbers() {
    const used = new Set(this.maskSummary.keys());
    for (const item of measurementAnnotations()) if (item.data.readerboardLesion) used.add(item.data.readerboardLesion);
    return used;
  }

  nextFreeLesion() {
    // A rejected model lesion keeps its number, so Accept can bring it back.
    return Math.max(0, ...this.usedLesionNumbers(), ...this.suggestions.numbers()) + 1;
  }

  maxLesions() {
    return Math.min(50, this.case?.task.max_lesions_per_case || 50);
  }

  setActiveLesion(number) {
    this.activeLesion = number;
    this.mask?.setActiveLesion(number);
    this.refresh();
    this.saveDraftSoon();
  }

  newLesion() {
    if (this.followUp?.active) {
      this.followUp.newLesion();
      return;
    }
    const used = this.usedLesionNumbers();
    if (!used.has(this.activeLesion)) return; // the active lesion is still empty: use it
    if (used.size >= this.maxLesions()) {
      this.form.message(`This task takes at most ${this.maxLesions()} lesions per case.`, 'warn');
      return;
    }
    this.setActiveLesion(this.nextFreeLesion());
  }

  async selectLesion(number) {
    if (this.isRejected(number)) return;
    this.setActiveLesion(number);
    const measurement = measurementAnnotations().find((item) => item.data.readerboardLesion === number);
    const imageId = measurement?.metadata.referencedImageId;
    const index = imageId ? this.imageIds.indexOf(imageId) : -1;
    if (index >= 0) await this.viewer.goToSlice(index);
  }

  deleteLesion(number) {
    if (this.suggestions.has(number)) {
      this.rejectLesion(number);
      return;
    }
    this.removeMarks(number);
    this.form.dropLesion(number);
    this.refresh();
    this.saveDraftSoon();
  }

  /** Remove lesion `number`'s line and its mask on every slice. */
  removeMarks(number) {
    for (const item of measurementAnnotations()) {
      if (item.data.readerboardLesion === number) annotation.state.removeAnnotation(item.annotationUID);
    }
    this.mask?.clearLesion(number);
    this.updateMaskState();
    this.proposals.forget(number);
    toolUtilities.triggerAnnotationRenderForViewportIds([VIEWPORT_ID]);
  }

  /** Review state of lesion `number` ('accepted', 'edited', 'rejected'), or null for a lesion the reader added. */
  reviewOf(number, maskByLesion = this.maskSlices) {
    if (!this.suggestions.has(number)) return null;
    const measurement = measurementAnnotations().find((item) => item.data.readerboardLesion === number);
    return this.suggestions.status(number, { measurement, maskSlices: maskByLesion.get(number) });
  }

  isRejected(number) {
    return this.reviewOf(number) === 'rejected';
  }

  /** Lesion `number`'s line (a stored annotation) and mask slices as they are now, to draw back later. */
  marksOf(number) {
    const measurement = measurementAnnotations().find((item) => item.data.readerboardLesion === number);
    const slices = (this.mask ? this.mask.encode().get(number) : null) || [];
    return {
      annotation: measurement ? serializeAnnotation(measurement) : null,
      masks: slices.map(({ imageId, counts }) => ({ imageId, lesion: number, counts })),
    };
  }

  /** Replace lesion `number`'s marks with `marks` ({annotation, masks} as marksOf gives them) and open it. */
  drawMarks(number, marks) {
    this.removeMarks(number);
    if (marks.annotation) annotation.state.addAnnotation(reviveAnnotation(marks.annotation), this.viewer.element);
    if (marks.masks.length) this.mask?.restore(marks.masks);
    this.updateMaskState();
    toolUtilities.triggerAnnotationRenderForViewportIds([VIEWPORT_ID]);
    this.setActiveLesion(number);
    this.saveDraft();
  }

  /**
   * Reject a model lesion: its marks go (mask on every slice and line). Accept brings back what the model
   * drew; Undo (Ctrl+Z) brings back what was there, edits included.
   */
  rejectLesion(number, { record = true } = {}) {
    if (!this.suggestions.has(number) || this.suggestions.isRejected(number)) return;
    const before = this.marksOf(number);
    this.suggestions.reject(number);
    this.removeMarks(number);
    // Brush strokes and new lines must not land in the rejected lesion.
    if (this.activeLesion === number) this.activeLesion = this.nextFreeLesion();
    this.mask?.setActiveLesion(this.activeLesion);
    this.form.message(`Lesion ${number} rejected: the model's marks are removed from your read. Accept brings them back.`, 'ok');
    if (record) {
      this.tools.remember({
        restoreMemo: (undo) => {
          if (!undo) {
            this.rejectLesion(number, { record: false });
            return;
          }
          this.suggestions.accept(number);
          this.drawMarks(number, before);
          this.form.message(`Lesion ${number} is back as it was.`, 'ok');
        },
      });
    }
    this.refresh();
    this.saveDraft();
  }

  /** Accept a model lesion: a rejected one gets the model's marks back as drawn; an edited one stays as edited. */
  acceptLesion(number, { record = true } = {}) {
    if (!this.isRejected(number)) {
      this.selectLesion(number); // a kept or edited lesion is accepted already: it is the default
      return;
    }
    const drawn = this.suggestions.accept(number);
    if (!drawn) return;
    this.drawMarks(number, drawn);
    this.form.message(`Lesion ${number} accepted: the model's marks are back.`, 'ok');
    if (record) {
      this.tools.remember({
        restoreMemo: (undo) => (undo ? this.rejectLesion(number, { record: false }) : this.acceptLesion(number, { record: false })),
      });
    }
  }

  /** A finished line joins the active lesion, or starts the next one if that already has a line. */
  onMeasurementCompleted(item) {
    if (this.loading || !MEASUREMENT_TOOLS.includes(item.metadata?.toolName) || item.data.readerboardLesion) return;
    if (this.followUp?.active) {
      this.followUp.onMeasurementCompleted(item);
      return;
    }
    let number = this.activeLesion;
    const others = measurementAnnotations().filter((other) => other !== item);
    if (others.some((other) => other.data.readerboardLesion === number)) {
      if (this.usedLesionNumbers().size >= this.maxLesions()) {
        annotation.state.removeAnnotation(item.annotationUID);
        toolUtilities.triggerAnnotationRenderForViewportIds([VIEWPORT_ID]);
        this.form.message(`This task takes at most ${this.maxLesions()} lesions per case.`, 'warn');
        return;
      }
      number = this.nextFreeLesion();
    }
    item.data.readerboardLesion = number;
    item.data.label = `Lesion ${number}`;
    this.setActiveLesion(number);
  }

  refresh() {
    if (!this.case) return;
    if (this.followUp?.active) {
      this.followUp.refresh();
      return;
    }
    let lesions = [];
    try {
      lesions = collectLesions(measurementAnnotations(), new Map(), this.lookups());
    } catch (error) {
      console.warn(error);
    }
    const byNumber = new Map(lesions.map((lesion) => [lesion.number, lesion]));
    for (const [number, summary] of this.maskSummary) {
      if (!byNumber.has(number)) byNumber.set(number, { number, axes: {} });
      byNumber.get(number).mask = summary;
    }
    for (const number of this.suggestions.numbers()) {
      if (!byNumber.has(number)) byNumber.set(number, { number, axes: {} });
      byNumber.get(number).review = this.reviewOf(number);
    }
    const rows = [...byNumber.values()].sort((a, b) => a.number - b.number);
    this.form.renderLesions(rows, this.activeLesion, { showMask: this.case.task.tools.includes('mask') });
  }

  // --- submitting -----------------------------------------------------------------------------

  async submit() {
    if (!this.case || this.submitting) return;
    if (this.followUp?.active) {
      const { document_, problems } = this.followUp.documentAndProblems({
        clientUuid: this.clientUuid,
        startedAt: this.startedAt,
        flags: this.form.flags,
        comment: this.form.comment,
      });
      if (problems.length) {
        this.form.message(problems.join(' '), 'error');
        return;
      }
      await this.send(document_);
      return;
    }
    let document_;
    let lesions;
    try {
      lesions = this.lesions();
      document_ = buildReadDocument({
        clientUuid: this.clientUuid,
        caseId: this.case.id,
        startedAt: this.startedAt,
        flags: this.form.flags,
        comment: this.form.comment,
        lesions,
        frameOf: this.frameOf,
        questions: this.questions,
        caseAnswers: this.form.answers.case,
      });
    } catch (error) {
      this.form.message(String(error.message || error), 'error');
      return;
    }
    const problems = readProblems(document_, { tools: this.case.task.tools });
    if (problems.length) {
      this.form.message(problems.join(' '), 'error');
      return;
    }
    const unanswered = answerProblems({
      questions: this.questions,
      caseAnswers: this.form.answers.case,
      lesions: lesionsWithContent(lesions),
      flags: this.form.flags,
    });
    if (unanswered.length) {
      await this.showAnswerProblem(unanswered);
      return;
    }
    this.lesionNumbersSent = lesionsWithContent(lesions).map((lesion) => lesion.number);
    await this.send(document_);
  }

  /** Keep the read in the outbox, then send it (offline, it waits there); an answer key is saved directly. */
  async send(document_) {
    this.saveDraft();
    if (this.answerKeyCaseId) {
      await this.submitAnswerKey(document_);
      return;
    }
    this.submitting = true;
    this.form.busy(true);
    this.form.message('Sending…');
    if (!this.queue.add(document_)) {
      this.form.message('This browser refused to store the read; sending it directly.', 'warn');
    }
    await this.queue.flush();
  }

  /** Name the first missing or wrong answer (and how many more), open its lesion and put the keyboard on it. */
  async showAnswerProblem(problems) {
    const [first] = problems;
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
    if (first.scope === 'lesion' && first.lesion !== this.activeLesion) await this.selectLesion(first.lesion);
    this.form.answerMessage(`${first.message}${more}.`);
    this.form.focusQuestion(first);
  }

  /** Answer-key mode: save straight to the case's answer key; the draft stays until the server has it. */
  async submitAnswerKey(document_) {
    this.submitting = true;
    this.form.busy(true);
    this.form.message('Saving the answer key…');
    try {
      await api.saveAnswerKey(this.case.id, document_);
    } catch (error) {
      this.submitting = false;
      this.form.busy(false);
      this.onServerErrors(error);
      return;
    }
    dropDraft(this.readerKey, this.case.id);
    this.form.message('Answer key saved. Back to the task…', 'ok');
    window.location.assign(this.returnUrl);
  }

  /** Show a refusal in the reader's words; a changed question set reloads the page (the draft is kept). */
  onServerErrors(error) {
    const errors = error.body?.errors || {};
    if (errors.question_version) {
      this.form.message("This task's questions have changed: reloading with the new questions (your drawing is kept).", 'warn');
      setTimeout(() => window.location.reload(), 1500);
      return;
    }
    const sentences = describeAnswerErrors(errors, { questions: this.questions, lesionNumbers: this.lesionNumbersSent });
    this.form.message(`Not saved: ${sentences.length ? sentences.join('; ') : error.message}`, 'error');
  }

  async onReadSaved(document_, answer) {
    if (this.readerKey) dropDraft(this.readerKey, document_.case);
    this.me = answer?.me || this.me;
    this.form.showStats(this.me);
    if (!this.case || document_.case !== this.case.id) return;
    const rank = this.me?.rank ? `, rank #${this.me.rank}` : '';
    const count = this.me?.reads_count;
    $('#saved-toast').textContent = count == null ? 'Saved.' : `Saved. ${count} read${count === 1 ? '' : 's'}${rank}.`;
    $('#saved-toast').hidden = false;
    setTimeout(() => {
      $('#saved-toast').hidden = true;
    }, 4000);
    this.submitting = false;
    this.form.message('');
    // A follow-up read answers with the RECIST response it computed: the reader sees it, then goes on.
    if (this.followUp?.active && this.followUp.showResult(answer?.recist)) return;
    this.form.busy(false);
    await this.openNextCase();
  }

  onReadRejected(document_, error) {
    if (!this.case || document_.case !== this.case.id) {
      this.form.message(`A queued read for another case was refused: ${error.message}`, 'error');
      return;
    }
    this.submitting = false;
    this.form.busy(false);
    if (error.status === 409 && /uuid/i.test(error.message)) {
      this.clientUuid = uuid4();
      this.saveDraft();
      this.form.message('That read was already stored. Press Submit again to save your changes as a new version.', 'warn');
      return;
    }
    this.onServerErrors(error);
  }

  onQueueState({ queued, retryInMs }) {
    this.form.showQueue({ queued, retryInMs });
    if (queued && this.submitting) this.form.message('Queued: your read is kept on this device and will be sent when the network is back.', 'warn');
    if (!queued && this.waitingForQueue) {
      this.waitingForQueue = false;
      this.openNextCase();
    }
  }

  // --- viewer controls --------------------------------------------------------------------------

  setMode(mode) {
    this.tools.setMode(mode);
    for (const button of document.querySelectorAll('[data-mode]')) {
      button.setAttribute('aria-pressed', String(button.dataset.mode === mode));
    }
  }

  presets() {
    const modality = this.case?.modality;
    const fromServer = this.case?.window_presets || [];
    const named = fromServer.length ? fromServer : modality === 'CT' ? CT_PRESETS : [];
    return [...named, ...this.viewer.fileWindows()];
  }

  renderPresets() {
    const box = $('#preset-buttons');
    box.innerHTML = '';
    this.presets().forEach((preset, index) => {
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = preset.name;
      button.title = `${index < 9 ? `${index + 1}: ` : ''}W ${Math.round(preset.width)} / L ${Math.round(preset.center)}`;
      button.addEventListener('click', () => this.focusedViewer().setWindow(preset));
      box.append(button);
    });
  }

  setBrushRadius(radius) {
    this.brushRadius = Math.max(1, Math.min(60, radius));
    this.tools.setBrushSize(this.brushRadius);
    $('#brush-size').value = String(this.brushRadius);
    $('#brush-size-label').textContent = `${this.brushRadius}px`;
  }

  bindViewer() {
    const slider = $('#slice-slider');
    slider.addEventListener('input', () => this.viewer.goToSlice(Number(slider.value) - 1));

    this.viewer.on('slice', (index) => {
      slider.value = String(index + 1);
      $('#slice-label').textContent = `Slice ${index + 1} / ${this.imageIds?.length ?? 0}`;
      this.saveDraftSoon();
    });
    this.viewer.on('voi', (window_) => {
      $('#window-label').textContent = window_ ? `W ${Math.round(window_.width)} · L ${Math.round(window_.center)}` : '';
    });
    const element = this.viewer.element;
    element.addEventListener('pointermove', (event) => {
      const rect = element.getBoundingClientRect();
      let pixel = null;
      try {
        pixel = this.viewer.pixelAt([event.clientX - rect.left, event.clientY - rect.top]);
      } catch {
        pixel = null;
      }
      $('#pixel-readout').textContent = pixel
        ? `x ${pixel.column} y ${pixel.row} · ${Math.round(pixel.value * 10) / 10}${pixel.unit ? ` ${pixel.unit}` : ''}`
        : '';
    });
    // Tap mode: a touch or click that does not move asks for the mask of the lesion under it.
    let down = null;
    element.addEventListener('pointerdown', (event) => {
      down = { x: event.clientX, y: event.clientY };
    });
    element.addEventListener('pointerup', (event) => {
      if (this.tools.mode !== 'tap' || !down) return;
      const moved = Math.hypot(event.clientX - down.x, event.clientY - down.y);
      down = null;
      if (moved > 6) return;
      const rect = element.getBoundingClientRect();
      this.tapAt([event.clientX - rect.left, event.clientY - rect.top]);
    });
    element.addEventListener('pointerleave', () => {
      $('#pixel-readout').textContent = '';
    });
  }

  bindToolbar() {
    for (const button of document.querySelectorAll('[data-mode]')) {
      button.addEventListener('click', () => this.setMode(button.dataset.mode));
    }
    const actions = this.actions();
    for (const button of document.querySelectorAll('[data-action]')) {
      button.addEventListener('click', () => actions[button.dataset.action]?.());
    }
    $('#brush-size').addEventListener('input', (event) => this.setBrushRadius(Number(event.target.value)));
    $('#toolbar-more').addEventListener('click', () => {
      const toolbar = $('.toolbar');
      const expanded = toolbar.classList.toggle('expanded');
      $('#toolbar-more').setAttribute('aria-expanded', String(expanded));
      $('#toolbar-more').textContent = expanded ? 'Less' : 'More';
    });
    this.setBrushRadius(this.brushRadius);
    bindShortcuts({
      previousSlice: () => this.focusedViewer().scrollBy(-1),
      nextSlice: () => this.focusedViewer().scrollBy(1),
      back10: () => this.focusedViewer().scrollBy(-10),
      forward10: () => this.focusedViewer().scrollBy(10),
      firstSlice: () => this.focusedViewer().goToSlice(0),
      lastSlice: () => this.focusedViewer().goToSlice(Number.MAX_SAFE_INTEGER),
      mode: (mode) => {
        const button = document.querySelector(`[data-mode="${mode}"]`);
        if (button && !button.hidden) this.setMode(mode);
      },
      brushSmaller: () => this.setBrushRadius(this.brushRadius - 2),
      brushBigger: () => this.setBrushRadius(this.brushRadius + 2),
      preset: (key) => {
        const preset = this.presets()[Number(key) - 1];
        if (preset) this.focusedViewer().setWindow(preset);
      },
      ...actions,
      questionKey: (event) => this.form.questionKey(event),
      escape: () => $('#shortcut-sheet').open && $('#shortcut-sheet').close(),
    });
  }

  /** The viewer the toolbar and keyboard act on: in follow-up mode, the one last touched. */
  focusedViewer() {
    return this.followUp?.active ? this.followUp.focusedViewer() : this.viewer;
  }

  actions() {
    return {
      invert: () => this.focusedViewer().toggleInvert(),
      reset: () => this.focusedViewer().reset(),
      zoomIn: () => this.focusedViewer().zoomBy(1.25),
      zoomOut: () => this.focusedViewer().zoomBy(0.8),
      undo: () => this.tools.undo(),
      redo: () => this.tools.redo(),
      deleteSelected: () => this.tools.deleteSelected(),
      newLesion: () => this.newLesion(),
      proposeMask: () => this.proposeMask(),
      repropagate: () => this.repropagate(),
      submit: () => this.submit(),
      help: () => {
        const sheet = $('#shortcut-sheet');
        if (sheet.open) sheet.close();
        else sheet.showModal();
      },
    };
  }

  bindEvents() {
    const { Events } = ToolEnums;
    eventTarget.addEventListener(Events.ANNOTATION_COMPLETED, (event) => this.onMeasurementCompleted(event.detail.annotation));
    const changed = () => {
      if (this.loading) return;
      this.refresh();
      this.saveDraftSoon();
    };
    eventTarget.addEventListener(Events.ANNOTATION_MODIFIED, changed);
    eventTarget.addEventListener(Events.ANNOTATION_REMOVED, changed);
    eventTarget.addEventListener(Events.SEGMENTATION_DATA_MODIFIED, () => {
      if (!this.loading) this.refreshMaskSoon();
    });
    window.addEventListener('beforeunload', () => this.saveDraft());
  }

  /** What the end-to-end tests need to turn patient millimetres into screen points. */
  testHandle() {
    return {
      viewport: () => this.viewer.viewport,
      caseId: () => this.case?.id ?? null,
      upcomingCaseId: () => this.upcoming.preferredId(),
      upcomingSlicesCached: () => this.upcoming.imageIds.filter((id) => cache.isLoaded(id)).length,
      sliceIndex: () => this.viewer.sliceIndex(),
      imageIds: () => this.imageIds,
      lesions: () => this.lesions(),
      proposeMask: (number) => this.proposeMask(number),
      repropagate: (number) => this.repropagate(number),
      goToSlice: (index) => this.viewer.goToSlice(index),
      maskSummary: () => Object.fromEntries(this.mask ? this.mask.pixelCounts() : []),
      /** {lesion number: 'accepted' | 'edited' | 'rejected'} of the model's lesions in a check-the-model task. */
      review: () => {
        this.updateMaskState();
        return Object.fromEntries(this.suggestions.numbers().map((number) => [number, this.reviewOf(number)]));
      },
      /** Cornerstone's own RECIST axes of lesion `number`'s mask (getSegmentLargestBidirectional), in mm. */
      largestBidirectional: async (number) => {
        const found = await toolUtilities.segmentation.getSegmentLargestBidirectional({
          segmentationId: this.mask.segmentationId,
          segmentIndices: [number],
        });
        return (found || []).map(({ segmentIndex, maxMajor, maxMinor }) => ({ segmentIndex, maxMajor, maxMinor }));
      },
      answers: () => JSON.parse(JSON.stringify(this.form.answers)),
      ready: () => Boolean(this.case) && !this.loading,
      renderMode: () => this.renderMode,
      cachedFraction: () => (this.imageIds || []).filter((id) => cache.isLoaded(id)).length / (this.imageIds?.length || 1),
      cacheBytes: () => cache.getCacheSize(),
      /** Decode every frame of a series the way the viewer does; pixels come back as plain arrays. */
      loadFrames: async (caseLike) => {
        const { imageIds } = await registerCaseImages(caseLike);
        const frames = [];
        for (const imageId of imageIds) {
          const image = await imageLoader.loadAndCacheImage(imageId);
          frames.push({
            pixels: Array.from(image.getPixelData()),
            transferSyntax: image.transferSyntaxUID,
            preScaled: Boolean(image.preScale?.scaled),
            slope: image.slope ?? 1,
            intercept: image.intercept ?? 0,
          });
        }
        return frames;
      },
      csUtils,
      followUp: () => this.followUp?.testHandle() ?? null,
    };
  }
}

const app = document.getElementById('reading-app');
if (app) {
  new ReadingSession(app).start().catch((error) => {
    console.error(error);
    const box = document.getElementById('viewer-status');
    if (box) {
      box.hidden = false;
      box.textContent = `The viewer could not start: ${error.message || error}`;
    }
  });
}
