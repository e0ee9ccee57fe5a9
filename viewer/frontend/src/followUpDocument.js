// The follow-up read of docs/follow-up.md, built from what the reader did at each follow-up time
// point: a measurement tied to a baseline lesion, a baseline lesion marked disappeared or not
// evaluable, or a new lesion; and the checks that keep an incomplete read from being sent.
// Pure: measurements arrive with their axes already in image coordinates (readDocument.js's
// measurementAxes); never talks to the server or Cornerstone.
import { round } from './geometry.js';

export const STATUSES = ['measured', 'disappeared', 'not_evaluable'];
export const STATUS_LABELS = { measured: 'measured', disappeared: 'disappeared', not_evaluable: 'not evaluable' };

/**
 * measurements: [{timePoint, baselineId | null, newNumber | null, axes: {long_axis, short_axis?}}]
 * (a later entry for the same lesion and time point wins); marks: {[timePoint]: {[baselineId]: status}}.
 */
function measurementOf(measurements, timePoint, predicate) {
  return measurements.filter((item) => item.timePoint === timePoint && item.axes?.long_axis && predicate(item)).at(-1);
}

/** The status of one baseline lesion at a time point: 'measured' beats a mark; null when neither. */
export function lesionStatus({ baselineId, timePoint, measurements, marks }) {
  if (measurementOf(measurements, timePoint, (item) => item.baselineId === baselineId)) return 'measured';
  const mark = marks?.[timePoint]?.[baselineId];
  return mark === 'disappeared' || mark === 'not_evaluable' ? mark : null;
}

/**
 * What the side panel lists for one time point: every baseline lesion with its status and axes,
 * then the new lesions in the order the reader added them.
 */
export function timePointRows({ baselineLesions, timePoint, measurements, marks }) {
  const baseline = baselineLesions.map((lesion) => {
    const status = lesionStatus({ baselineId: lesion.id, timePoint, measurements, marks });
    const measured = measurementOf(measurements, timePoint, (item) => item.baselineId === lesion.id);
    return { baselineId: lesion.id, label: lesion.label || lesion.id, status, axes: measured?.axes || {} };
  });
  const newNumbers = [
    ...new Set(measurements.filter((item) => item.timePoint === timePoint && item.newNumber != null).map((item) => item.newNumber)),
  ].sort((a, b) => a - b);
  const added = newNumbers
    .map((newNumber) => ({ newNumber, axes: measurementOf(measurements, timePoint, (item) => item.newNumber === newNumber)?.axes }))
    .filter((row) => row.axes)
    .map((row, k) => ({ ...row, label: `New lesion ${k + 1}`, status: 'measured' }));
  return { baseline, added };
}

/**
 * The JSON document to POST to /api/reads/ for a follow-up case. Every follow-up time point is
 * listed (index order); lesions are numbered 1..n across the whole read. Baseline lesions without a
 * status are left out here and reported by followUpProblems. A skipped case sends no time points.
 */
export function buildFollowUpReadDocument({
  clientUuid,
  caseId,
  startedAt,
  now = new Date(),
  flags,
  comment,
  baselineLesions,
  followUpIndices,
  measurements,
  marks,
}) {
  let number = 0;
  const skip = Boolean(flags.skip);
  const timePoints = skip
    ? []
    : [...followUpIndices]
        .sort((a, b) => a - b)
        .map((index) => {
          const { baseline, added } = timePointRows({ baselineLesions, timePoint: index, measurements, marks });
          const lesions = [];
          for (const row of baseline) {
            if (!row.status) continue;
            number += 1;
            const entry = { lesion: number, baseline_lesion: row.baselineId, status: row.status };
            lesions.push(row.status === 'measured' ? { ...entry, ...row.axes } : entry);
          }
          for (const row of added) {
            number += 1;
            lesions.push({ lesion: number, new: true, status: 'measured', ...row.axes });
          }
          return { index, lesions };
        });
  return {
    client_uuid: clientUuid,
    case: caseId,
    started_at: new Date(startedAt).toISOString(),
    duration_s: round(Math.min(86400, Math.max(0, (now - new Date(startedAt)) / 1000)), 1),
    flags: { no_lesion: false, skip, quality_problem: Boolean(flags.quality_problem) },
    comment: (comment || '').slice(0, 2000),
    time_points: timePoints,
  };
}

/**
 * Problems that would make the server refuse the document, in the reader's words, naming each
 * baseline lesion that still has no status at each follow-up time point.
 * timePointLabels: {[index]: 'Follow-up 1'}.
 */
export function followUpProblems(document_, { baselineLesions, followUpIndices, timePointLabels = {} }) {
  if (document_.flags.skip) return [];
  const problems = [];
  for (const index of [...followUpIndices].sort((a, b) => a - b)) {
    const sent = document_.time_points.find((timePoint) => timePoint.index === index);
    const done = new Set((sent?.lesions || []).map((lesion) => lesion.baseline_lesion).filter(Boolean));
    const missing = baselineLesions.filter((lesion) => !done.has(lesion.id));
    const where = timePointLabels[index] || `time point ${index}`;
    for (const lesion of missing) {
      problems.push(`${lesion.label || lesion.id} (${lesion.id}) at ${where} has no status: measure it, or mark it disappeared or not evaluable.`);
    }
  }
  return problems;
}

/** One line for a computed RECIST result of the server: "Follow-up 1: PD · sum 41.0 mm (baseline 58.3 mm, +12.0 %)". */
export function describeRecist(result, label = `Time point ${result.index}`) {
  const pct = (value) => (value == null ? 'n/a' : `${value > 0 ? '+' : ''}${Number(value).toFixed(1)} %`);
  const mm = (value) => (value == null ? 'n/a' : `${Number(value).toFixed(1)} mm`);
  const parts = [
    `sum ${mm(result.sum_mm)}`,
    `baseline ${mm(result.baseline_sum_mm)} (${pct(result.change_from_baseline_pct)})`,
    `nadir ${mm(result.nadir_sum_mm)} (${pct(result.change_from_nadir_pct)})`,
  ];
  if (result.new_lesions) parts.push(`${result.new_lesions} new lesion${result.new_lesions === 1 ? '' : 's'}`);
  return `${label}: ${result.response} · ${parts.join(' · ')}`;
}
