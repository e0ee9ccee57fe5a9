// The reading page in follow-up mode (docs/follow-up.md): the baseline series in the page's own
// viewport and the chosen follow-up time point in a second one beside it (stacked on narrow
// screens), scrolling linked by patient position; the baseline lesions drawn read-only with a list
// in the side panel; each follow-up measurement tied to a baseline lesion (or a new lesion); marks
// for "disappeared" and "not evaluable"; and the computed RECIST response after Submit.
// The session (main.js) keeps the envelope: case loop, drafts, outbox, lease, flags, comment.
import { cache } from '@cornerstonejs/core';
import { annotation, BidirectionalTool, LengthTool, utilities as toolUtilities } from '@cornerstonejs/tools';
import { buildFollowUpReadDocument, describeRecist, followUpProblems, STATUS_LABELS, timePointRows } from './followUpDocument.js';
import { imageToPatient } from './geometry.js';
import { registerCaseImages } from './imageIds.js';
import { LinkedViewports } from './linkedViewports.js';
import { measurementAxes } from './readDocument.js';
import { nearestSliceIndex, positionsAlongNormalMm, sliceNormal } from './sliceLinking.js';
import { measurementAnnotations } from './tools.js';
import { planeOf, StackViewer, VIEWPORT_ID } from './viewer.js';

export const FOLLOW_UP_VIEWPORT_ID = 'readerboard-follow-up';
const BASELINE_COLOR = 'rgb(255, 196, 0)';

const escapeHtml = (text) =>
  String(text ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

const VIEWPORT_HTML = `
  <div id="viewport-follow-up" class="viewport" data-testid="viewport-follow-up"></div>
  <div class="overlay top-left"><span id="follow-up-slice-label" data-testid="follow-up-slice-label"></span></div>
  <div class="overlay top-center"><span id="follow-up-title" data-testid="follow-up-title"></span></div>`;

const LINK_BAR_HTML = `
  <label class="time-point-choice" id="time-point-choice">Follow-up
    <select id="time-point-select" data-testid="time-point-select"></select></label>
  <label><input type="checkbox" id="link-scroll" checked> Link scrolling</label>
  <button type="button" id="link-here" title="Both viewports show the same landmark: link scrolling from here">Link here</button>
  <label><input type="checkbox" id="link-window"> Link W/L</label>
  <span class="link-status" id="link-status" data-testid="link-status"></span>`;

const PANEL_HTML = `
  <h2 id="follow-up-heading">Baseline lesions</h2>
  <p class="hint" id="follow-up-hint"></p>
  <ol class="lesion-list" id="follow-up-list" data-testid="follow-up-list"></ol>
  <button type="button" id="follow-up-new-lesion" title="Measure a lesion that was not there at baseline (N)">+ New lesion</button>`;

const RESULT_HTML = `
  <h2>Response (RECIST 1.1)</h2>
  <ul id="follow-up-result-lines"></ul>
  <button type="button" class="submit" id="follow-up-next">Next case</button>`;

export class FollowUpReading {
  /** session: the ReadingSession of main.js (viewer, tools, form, saveDraftSoon, openNextCase). */
  constructor(session) {
    this.session = session;
    this.active = false;
    this.case = null;
    this.viewer = null;
  }

  // --- the page -------------------------------------------------------------------------------

  _ensureDom() {
    if (this.dom) return;
    const app = this.session.app;
    const pane = app.querySelector('.viewer-pane');
    const baselineWrap = pane.querySelector('.viewport-wrap');
    const pair = document.createElement('div');
    pair.className = 'viewport-pair';
    baselineWrap.before(pair);
    pair.append(baselineWrap);
    baselineWrap.insertAdjacentHTML('beforeend', '<div class="overlay top-center follow-up-only"><span id="baseline-title" data-testid="baseline-title"></span></div>');
    const followWrap = document.createElement('div');
    followWrap.className = 'viewport-wrap follow-up-wrap follow-up-only';
    followWrap.innerHTML = VIEWPORT_HTML;
    pair.append(followWrap);
    const linkBar = document.createElement('div');
    linkBar.className = 'link-bar follow-up-only';
    linkBar.innerHTML = LINK_BAR_HTML;
    pair.after(linkBar);
    const panel = document.createElement('section');
    panel.className = 'follow-up-lesions follow-up-only';
    panel.id = 'follow-up-panel';
    panel.dataset.testid = 'follow-up-panel';
    panel.innerHTML = PANEL_HTML;
    app.querySelector('.side-panel .lesions').after(panel);
    const result = document.createElement('section');
    result.className = 'follow-up-result follow-up-only';
    result.id = 'follow-up-result';
    result.dataset.testid = 'follow-up-result';
    result.hidden = true;
    result.innerHTML = RESULT_HTML;
    app.querySelector('.side-panel .submit-bar').before(result);
    const $ = (selector) => app.querySelector(selector);
    this.dom = {
      app,
      baselineTitle: $('#baseline-title'),
      followUpTitle: $('#follow-up-title'),
      followUpSliceLabel: $('#follow-up-slice-label'),
      timePointChoice: $('#time-point-choice'),
      timePointSelect: $('#time-point-select'),
      linkScroll: $('#link-scroll'),
      linkWindow: $('#link-window'),
      linkStatus: $('#link-status'),
      heading: $('#follow-up-heading'),
      hint: $('#follow-up-hint'),
      list: $('#follow-up-list'),
      result,
      resultLines: $('#follow-up-result-lines'),
    };
    app.classList.add('follow-up-mode'); // the second viewport needs its size before Cornerstone takes it
    this.viewer = new StackViewer($('#viewport-follow-up'), { viewportId: FOLLOW_UP_VIEWPORT_ID });
    this.session.tools.addViewport(FOLLOW_UP_VIEWPORT_ID);
    this.link = new LinkedViewports(this.session.viewer, this.viewer);
    this.focused = this.viewer;
    for (const viewer of [this.session.viewer, this.viewer]) {
      viewer.element.addEventListener('pointerdown', () => {
        this.focused = viewer;
      });
    }
    this.viewer.on('slice', (index) => {
      this.dom.followUpSliceLabel.textContent = `Slice ${index + 1} / ${this.viewer.imageIds?.length ?? 0}`;
      if (this.active) this.session.saveDraftSoon();
    });
    this.link.onChange((state) => this._renderLinkBar(state));
    this.dom.timePointSelect.addEventListener('change', () => this.showTimePoint(Number(this.dom.timePointSelect.value)));
    this.dom.linkScroll.addEventListener('change', () => this.link.setEnabled(this.dom.linkScroll.checked));
    this.dom.linkWindow.addEventListener('change', () => this.link.setWindowLinked(this.dom.linkWindow.checked));
    $('#link-here').addEventListener('click', () => {
      this.link.linkHere();
      this.session.form.message('Linked: both viewports now scroll together from these two slices.', 'ok');
    });
    $('#follow-up-new-lesion').addEventListener('click', () => this.newLesion());
    $('#follow-up-next').addEventListener('click', () => {
      this.dom.result.hidden = true;
      this.session.openNextCase();
    });
    this.dom.list.addEventListener('click', (event) => this._onListClick(event));
  }

  /** The viewer the toolbar and keyboard act on: the one the reader last touched. */
  focusedViewer() {
    return this.focused || this.session.viewer;
  }

  // --- opening, switching and leaving a case ---------------------------------------------------

  /** Show a follow-up case; `saved` is the follow-up part of a draft ({timePoint, marks, links, activeTarget}). */
  async open(caseForReading, saved = null) {
    this._ensureDom();
    this.dom.app.classList.add('follow-up-mode');
    this.dom.result.hidden = true;
    this.active = true;
    this.case = caseForReading;
    const followUp = caseForReading.follow_up;
    this.timePoints = [...followUp.time_points].sort((a, b) => a.index - b.index);
    this.baselineLesions = followUp.baseline_lesions || [];
    this.followUpIndices = this.timePoints.filter((tp) => tp.index > 0).map((tp) => tp.index);
    const registered = await Promise.all(
      this.timePoints.map((tp) => registerCaseImages({ ...tp, wadors_root: caseForReading.wadors_root })),
    );
    this.series = new Map(this.timePoints.map((tp, k) => [tp.index, registered[k]]));
    this.marks = saved?.marks || {};
    this.links = saved?.links || {};
    this.timePoint = this.followUpIndices.includes(saved?.timePoint) ? saved.timePoint : this.followUpIndices[0];
    const baseline = this.series.get(0);
    this.session.imageIds = baseline.imageIds;
    this.session.frameOf = baseline.frameOf;
    const normal = sliceNormal(planeOf(baseline.imageIds[0]).rowCosines, planeOf(baseline.imageIds[0]).columnCosines);
    this.baselinePositions = positionsAlongNormalMm(
      baseline.imageIds.map((id) => planeOf(id).imagePositionPatient),
      normal,
    );
    this.normal = normal;
    const firstLesion = this.baselineLesions[0];
    const start = saved?.baselineSlice ?? (firstLesion ? this.baselineSliceOf(firstLesion) : Math.floor(baseline.imageIds.length / 2));
    await this.session.viewer.show(baseline.imageIds, Math.max(0, Math.min(start, baseline.imageIds.length - 1)));
    this._addBaselineAnnotations();
    this.dom.baselineTitle.textContent = this._title(this.timePoints[0]);
    this._renderTimePointChoice();
    this.activeTarget = undefined; // chosen below, once the time point's measurements are known
    await this.showTimePoint(this.timePoint, { followUpSlice: saved?.followUpSlice });
    this.activeTarget = saved && 'activeTarget' in saved ? saved.activeTarget : this._nextOpenTarget(null);
    this.refresh();
  }

  /** Show follow-up time point `index` beside the baseline, linked as before for this pair. */
  async showTimePoint(index, { followUpSlice = null } = {}) {
    const series = this.series.get(index);
    if (!series) return;
    const previous = this.viewer.imageIds;
    this.timePoint = index;
    const tp = this._timePoint(index);
    this.link.setStacks({
      baselineImageIds: this.series.get(0).imageIds,
      followUpImageIds: series.imageIds,
      baselineFrameOfReference: this.timePoints[0].frame_of_reference_uid,
      followUpFrameOfReference: tp.frame_of_reference_uid,
      saved: this.links[index],
    });
    // Not linked yet: open at the same patient position as a first guess, for the reader to adjust and link.
    const start = followUpSlice ?? this.link.followUpIndexFor(this.session.viewer.sliceIndex(), { guess: true });
    // A time point left behind gives its images back; its measurements stay in the annotation state.
    if (previous && previous !== series.imageIds) this.viewer.release();
    await this.viewer.show(series.imageIds, Math.max(0, Math.min(start, series.imageIds.length - 1)));
    this.dom.followUpTitle.textContent = this._title(tp);
    this.dom.timePointSelect.value = String(index);
    if (this.active && this.activeTarget !== undefined) {
      this.activeTarget = this._nextOpenTarget(null);
      this.refresh();
      this.session.saveDraftSoon();
    }
  }

  /** Let go of the follow-up images (the session releases the baseline's and the annotations). */
  close() {
    if (!this.viewer) return;
    if (this.series) {
      for (const [index, { imageIds }] of this.series) if (index > 0) this.viewer.prefetcher.release(imageIds, []);
    }
    this.case = null;
    this.series = null;
  }

  /** Back to single-time-point reading: the second viewport and the follow-up panel go away. */
  leave() {
    this.close();
    this.active = false;
    this.dom?.app.classList.remove('follow-up-mode');
    if (this.dom) this.dom.result.hidden = true;
  }

  /** The follow-up part of the session's draft. */
  draftFields() {
    return {
      followUp: {
        timePoint: this.timePoint,
        marks: this.marks,
        links: this.links,
        activeTarget: this.activeTarget ?? null,
        baselineSlice: this.session.viewer.sliceIndex(),
        followUpSlice: this.viewer.sliceIndex(),
      },
    };
  }

  _timePoint(index) {
    return this.timePoints.find((tp) => tp.index === index);
  }

  _title(tp) {
    return [tp.label || (tp.index === 0 ? 'Baseline' : `Follow-up ${tp.index}`), tp.study_date].filter(Boolean).join(' · ');
  }

  _renderTimePointChoice() {
    const select = this.dom.timePointSelect;
    select.innerHTML = this.followUpIndices
      .map((index) => `<option value="${index}">${escapeHtml(this._title(this._timePoint(index)))}</option>`)
      .join('');
    // A choice only when there is one to make.
    this.dom.timePointChoice.hidden = this.followUpIndices.length < 2;
  }

  _renderLinkBar(state) {
    this.dom.linkScroll.checked = state.enabled;
    this.dom.linkWindow.checked = state.windowLinked;
    let text;
    if (!state.linked) text = 'Not linked: show one landmark in both viewports, then press Link here.';
    else if (!state.enabled) text = 'Scrolling unlinked.';
    else if (state.by === 'landmark') text = `Linked at a landmark: follow-up = baseline ${state.offsetMm >= 0 ? '+' : '−'} ${Math.abs(state.offsetMm).toFixed(1)} mm.`;
    else text = 'Linked by patient position (same frame of reference).';
    this.dom.linkStatus.textContent = text;
    if (this.active && this.timePoint != null && state.linked) {
      this.links[this.timePoint] = { linked: state.linked, offsetMm: state.offsetMm, by: state.by };
      this.session.saveDraftSoon();
    }
  }

  // --- baseline lesions -----------------------------------------------------------------------

  _baselineImageIdOf(line) {
    if (!line) return null;
    for (const [imageId, where] of this.series.get(0).frameOf) {
      if (where.sop_instance_uid === line.sop_instance_uid && where.frame === (line.frame || 1)) return imageId;
    }
    return null;
  }

  /** Baseline slice index of a baseline lesion: its long axis's slice, or the slice nearest its centre. */
  baselineSliceOf(lesion) {
    const imageId = this._baselineImageIdOf(lesion.long_axis);
    if (imageId) return this.series.get(0).imageIds.indexOf(imageId);
    if (lesion.center_patient_mm) {
      const [position] = positionsAlongNormalMm([lesion.center_patient_mm], this.normal);
      return nearestSliceIndex(this.baselinePositions, position);
    }
    return 0;
  }

  /** The baseline lesions as locked Length/Bidirectional annotations on the baseline viewport. */
  _addBaselineAnnotations() {
    const viewport = this.session.viewer.viewport;
    const { imageIds } = this.series.get(0);
    for (const lesion of this.baselineLesions) {
      const imageId = this._baselineImageIdOf(lesion.long_axis);
      if (!imageId) continue;
      const plane = planeOf(imageId);
      const points = [lesion.long_axis.start, lesion.long_axis.end].map((p) => imageToPatient(p, plane));
      const short = lesion.short_axis;
      const bidirectional = short && this._baselineImageIdOf(short) === imageId;
      if (bidirectional) points.push(...[short.start, short.end].map((p) => imageToPatient(p, plane)));
      const Tool = bidirectional ? BidirectionalTool : LengthTool;
      const reference = viewport.getViewReference({ sliceIndex: imageIds.indexOf(imageId) }) || {};
      const item = Tool.createAnnotation({
        metadata: { ...reference, toolName: Tool.toolName, referencedImageId: imageId },
        data: { handles: { points }, label: `${lesion.id} ${lesion.label || ''}`.trim(), readerboardBaseline: lesion.id },
      });
      item.annotationUID = `baseline-${this.case.id}-${lesion.id}`;
      item.highlighted = false;
      item.isLocked = true;
      annotation.state.addAnnotation(item, this.session.viewer.element);
      annotation.locking.setAnnotationLocked(item.annotationUID, true);
      annotation.config.style.setAnnotationStyles(item.annotationUID, { color: BASELINE_COLOR, colorLocked: BASELINE_COLOR });
    }
    toolUtilities.triggerAnnotationRenderForViewportIds([VIEWPORT_ID]);
  }

  /** Move both viewports to a baseline lesion: its baseline slice and the linked (or its measured) follow-up slice. */
  async jumpTo(baselineId) {
    const lesion = this.baselineLesions.find((item) => item.id === baselineId);
    if (!lesion) return;
    await this.link.jumpBaseline(this.baselineSliceOf(lesion));
    const measured = this._followUpAnnotations((tag) => tag.baseline === baselineId).at(-1);
    const index = measured ? this.viewer.imageIds.indexOf(measured.metadata.referencedImageId) : -1;
    if (index >= 0) await this.viewer.goToSlice(index);
  }

  // --- the reader's follow-up lesions ---------------------------------------------------------

  _followUpAnnotations(predicate = () => true, timePoint = this.timePoint) {
    return measurementAnnotations().filter((item) => {
      const tag = item.data.readerboardFollowUp;
      return tag && tag.timePoint === timePoint && predicate(tag);
    });
  }

  /** Every follow-up measurement as followUpDocument.js takes it. */
  measurements() {
    return measurementAnnotations()
      .filter((item) => item.data.readerboardFollowUp)
      .map((item) => {
        const { timePoint, baseline = null, newNumber = null } = item.data.readerboardFollowUp;
        const series = this.series?.get(timePoint);
        let axes = {};
        try {
          if (series) axes = measurementAxes(item, { frameOf: series.frameOf, planeOf });
        } catch (error) {
          console.warn(error);
        }
        return { timePoint, baselineId: baseline, newNumber, axes };
      });
  }

  _timePointOfImage(imageId) {
    for (const [index, { frameOf }] of this.series || []) if (frameOf.has(imageId)) return index;
    return null;
  }

  /** The first baseline lesion after `afterId` (wrapping) with no status at this time point, or null. */
  _nextOpenTarget(afterId) {
    const { baseline } = timePointRows({ baselineLesions: this.baselineLesions, timePoint: this.timePoint, measurements: this.measurements(), marks: this.marks });
    const start = afterId ? baseline.findIndex((row) => row.baselineId === afterId) + 1 : 0;
    const ordered = [...baseline.slice(start), ...baseline.slice(0, start)];
    const open = ordered.find((row) => !row.status);
    return open ? { kind: 'baseline', id: open.baselineId } : null;
  }

  _remove(items) {
    for (const item of items) annotation.state.removeAnnotation(item.annotationUID);
    toolUtilities.triggerAnnotationRenderForViewportIds([VIEWPORT_ID, this.viewer.viewportId]);
  }

  /** A finished line: tie it to the chosen baseline lesion, or make it the new lesion asked for. */
  onMeasurementCompleted(item) {
    const data = item.data;
    if (data.readerboardBaseline || data.readerboardFollowUp) return;
    const timePoint = this._timePointOfImage(item.metadata.referencedImageId);
    const form = this.session.form;
    if (!timePoint) {
      this._remove([item]);
      form.message('The baseline is for reference: measure on the follow-up image.', 'warn');
      return;
    }
    const target = this.activeTarget;
    if (!target) {
      this._remove([item]);
      form.message('Pick a baseline lesion in the list, or press "+ New lesion", then measure.', 'warn');
      return;
    }
    if (target.kind === 'baseline') {
      const lesion = this.baselineLesions.find((entry) => entry.id === target.id);
      this._remove(this._followUpAnnotations((tag) => tag.baseline === target.id, timePoint).filter((other) => other !== item));
      if (this.marks[timePoint]) delete this.marks[timePoint][target.id];
      data.readerboardFollowUp = { timePoint, baseline: target.id };
      data.label = `${target.id} ${lesion?.label || ''}`.trim();
      this.activeTarget = this._nextOpenTarget(target.id);
    } else {
      const numbers = measurementAnnotations().map((other) => other.data.readerboardFollowUp?.newNumber ?? 0);
      const newNumber = Math.max(0, ...numbers) + 1;
      data.readerboardFollowUp = { timePoint, newNumber };
      data.label = `New ${this._followUpAnnotations((tag) => tag.newNumber != null, timePoint).length}`;
      this.activeTarget = null;
    }
    form.message('');
    this.refresh();
    this.session.saveDraftSoon();
  }

  newLesion() {
    this.activeTarget = { kind: 'new' };
    this.refresh();
    this.session.saveDraftSoon();
  }

  setStatus(baselineId, status) {
    const marks = (this.marks[this.timePoint] ||= {});
    if (marks[baselineId] === status) {
      delete marks[baselineId];
    } else {
      marks[baselineId] = status;
      // A lesion marked disappeared or not evaluable has no follow-up measurement.
      this._remove(this._followUpAnnotations((tag) => tag.baseline === baselineId));
      if (this.activeTarget?.id === baselineId) this.activeTarget = this._nextOpenTarget(baselineId);
    }
    this.refresh();
    this.session.saveDraftSoon();
  }

  async _onListClick(event) {
    const row = event.target.closest('[data-baseline], [data-new]');
    if (!row) return;
    if (row.dataset.new) {
      const newNumber = Number(row.dataset.new);
      const items = this._followUpAnnotations((tag) => tag.newNumber === newNumber);
      if (event.target.closest('[data-delete]')) {
        this._remove(items);
        return;
      }
      const index = items[0] ? this.viewer.imageIds.indexOf(items[0].metadata.referencedImageId) : -1;
      if (index >= 0) await this.viewer.goToSlice(index);
      return;
    }
    const baselineId = row.dataset.baseline;
    const statusButton = event.target.closest('[data-set-status]');
    if (statusButton) {
      this.setStatus(baselineId, statusButton.dataset.setStatus);
      return;
    }
    this.activeTarget = { kind: 'baseline', id: baselineId };
    this.refresh();
    await this.jumpTo(baselineId);
  }

  /** Redraw the lesion list of the shown time point. */
  refresh() {
    if (!this.active || !this.series) return;
    const { baseline, added } = timePointRows({
      baselineLesions: this.baselineLesions,
      timePoint: this.timePoint,
      measurements: this.measurements(),
      marks: this.marks,
    });
    const byId = new Map(this.baselineLesions.map((lesion) => [lesion.id, lesion]));
    const done = baseline.filter((row) => row.status).length;
    this.dom.heading.textContent = `Lesions to follow: ${done} of ${baseline.length} done`;
    const target = this.activeTarget;
    const inHand = target?.kind === 'baseline' ? byId.get(target.id) : null;
    this.dom.hint.textContent = inHand
      ? inHand.is_node
        ? `Measure ${target.id} on the follow-up image with Bidirectional (a lymph node: its short axis counts), or mark it.`
        : `Measure ${target.id} on the follow-up image, or mark it.`
      : target?.kind === 'new'
        ? 'Draw the new lesion\'s long axis on the follow-up image.'
        : done < baseline.length
          ? 'Pick a lesion to measure it at follow-up.'
          : 'Every baseline lesion has a status. Add new lesions if any, then submit.';
    const rows = baseline.map((row) => {
      const lesion = byId.get(row.baselineId);
      const was = lesion.long_axis ? `${Number(lesion.long_axis.length_mm).toFixed(1)} mm` : '—';
      const now =
        row.status === 'measured'
          ? `<b data-testid="follow-up-mm">${row.axes.long_axis.length_mm.toFixed(1)}</b> mm`
          : row.status
            ? `<em>${STATUS_LABELS[row.status]}</em>`
            : '<span class="todo">to do</span>';
      const active = target?.kind === 'baseline' && target.id === row.baselineId;
      // The site is added unless the label already names it ("Lesion 1 (liver)").
      const named = (row.label || '').toLowerCase().includes(String(lesion.site || '').toLowerCase());
      const site = lesion.site && !named ? ` (${escapeHtml(lesion.site)}${lesion.is_node ? ', node' : ''})` : lesion.is_node ? ' (node)' : '';
      const pressed = (status) => String(row.status === status);
      return `<li class="lesion fu-lesion${active ? ' active' : ''}" data-baseline="${escapeHtml(row.baselineId)}" data-status="${row.status || 'open'}" aria-current="${active}">
        <div class="fu-line">
          <button type="button" class="lesion-name" title="Jump to lesion">${escapeHtml(row.baselineId)} · ${escapeHtml(row.label)}${site}</button>
          <span class="lesion-sizes">${was} → ${now}</span>
        </div>
        <div class="fu-status">
          <button type="button" data-set-status="disappeared" aria-pressed="${pressed('disappeared')}">Disappeared</button>
          <button type="button" data-set-status="not_evaluable" aria-pressed="${pressed('not_evaluable')}">Not evaluable</button>
        </div>
      </li>`;
    });
    for (const row of added) {
      rows.push(`<li class="lesion fu-new" data-new="${row.newNumber}">
        <button type="button" class="lesion-name">${escapeHtml(row.label)}</button>
        <span class="lesion-sizes">new · <b data-testid="new-lesion-mm">${row.axes.long_axis.length_mm.toFixed(1)}</b> mm</span>
        <button type="button" class="icon" data-delete title="Delete ${escapeHtml(row.label)}" aria-label="Delete ${escapeHtml(row.label)}">✕</button>
      </li>`);
    }
    if (target?.kind === 'new') rows.push('<li class="lesion active placeholder" aria-current="true">New lesion: draw its long axis on the follow-up image</li>');
    this.dom.list.innerHTML = rows.join('');
  }

  // --- submitting and the answer --------------------------------------------------------------

  /** The read document and the reasons it cannot be sent yet (empty when it can). */
  documentAndProblems({ clientUuid, startedAt, flags, comment }) {
    const document_ = buildFollowUpReadDocument({
      clientUuid,
      caseId: this.case.id,
      startedAt,
      flags,
      comment,
      baselineLesions: this.baselineLesions,
      followUpIndices: this.followUpIndices,
      measurements: this.measurements(),
      marks: this.marks,
    });
    const timePointLabels = Object.fromEntries(this.followUpIndices.map((index) => [index, this._title(this._timePoint(index))]));
    const problems = followUpProblems(document_, { baselineLesions: this.baselineLesions, followUpIndices: this.followUpIndices, timePointLabels });
    return { document_, problems };
  }

  /** Show the response the server computed; return false when there is none to show. */
  showResult(recist) {
    if (!this.dom || !recist?.length) return false;
    this.result = recist;
    this.dom.resultLines.innerHTML = recist
      .map((result) => {
        const tp = this._timePoint(result.index);
        const text = describeRecist(result, tp ? this._title(tp) : `Time point ${result.index}`);
        return `<li data-testid="recist-line" data-response="${escapeHtml(result.response)}">${escapeHtml(text)}</li>`;
      })
      .join('');
    this.dom.result.hidden = false;
    this.dom.result.scrollIntoView?.({ block: 'nearest' });
    return true;
  }

  testHandle() {
    return {
      active: () => this.active,
      baselineIndex: () => this.session.viewer.sliceIndex(),
      followUpIndex: () => this.viewer?.sliceIndex(),
      followUpViewport: () => this.viewer?.viewport,
      baselineViewport: () => this.session.viewer.viewport,
      followUpImageIds: () => this.viewer?.imageIds || [],
      baselineImageIds: () => this.session.viewer.imageIds || [],
      timePoint: () => this.timePoint,
      /** Share of the shown follow-up stack already in the image cache (prefetch works for both viewports). */
      followUpCachedFraction: () => {
        const ids = this.viewer?.imageIds || [];
        return ids.filter((id) => cache.isLoaded(id)).length / (ids.length || 1);
      },
      link: () => this.link?.state(),
      measurements: () => this.measurements(),
      baselineAnnotations: () =>
        measurementAnnotations()
          .filter((item) => item.data.readerboardBaseline)
          .map((item) => ({ id: item.data.readerboardBaseline, imageId: item.metadata.referencedImageId, locked: annotation.locking.isAnnotationLocked(item.annotationUID) })),
      result: () => this.result,
    };
  }
}
