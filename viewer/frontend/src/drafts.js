// In-progress reads kept per reader and case in localStorage, so a reload, a crash or a flat
// battery loses nothing drawn. Measurements are kept as Cornerstone annotations (world points,
// which are stable for a series); masks as the same run lengths the read document uses.
import { loadJson, remove, saveJson } from './storage.js';

const PREFIX = 'readerboard:draft:';

const key = (readerKey, caseId) => `${PREFIX}${readerKey}:${caseId}`;

export function loadDraft(readerKey, caseId) {
  return loadJson(key(readerKey, caseId));
}

export function saveDraft(readerKey, caseId, draft) {
  return saveJson(key(readerKey, caseId), { ...draft, savedAt: new Date().toISOString() });
}

export function dropDraft(readerKey, caseId) {
  remove(key(readerKey, caseId));
}

/** A plain copy of an annotation that addAnnotation accepts back after a reload. */
export function serializeAnnotation(annotation) {
  const { annotationUID, metadata, data } = annotation;
  return JSON.parse(
    JSON.stringify({
      annotationUID,
      metadata,
      data: {
        handles: { points: data.handles.points, textBox: data.handles.textBox },
        label: data.label,
        readerboardLesion: data.readerboardLesion,
        readerboardFollowUp: data.readerboardFollowUp,
      },
    }),
  );
}

export function reviveAnnotation(stored) {
  return {
    ...stored,
    data: { ...stored.data, handles: { ...stored.data.handles, activeHandleIndex: null }, cachedStats: {} },
    highlighted: false,
    invalidated: true,
    isLocked: false,
    isVisible: true,
  };
}

/** A random RFC 4122 version 4 UUID, also where crypto.randomUUID is missing (plain-http booth LANs). */
export function uuid4() {
  if (window.crypto?.randomUUID) return window.crypto.randomUUID();
  const bytes = window.crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
