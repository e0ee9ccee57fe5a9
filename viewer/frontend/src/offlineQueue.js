// The outbox of finished reads. A read is written here BEFORE it is sent, so a dropped
// connection, a closed tab or a reload loses nothing; it is removed only once the server has
// answered 200/201 (the client_uuid makes a resend harmless) or refused it for good (4xx).
import { submitRead } from './api.js';
import { loadJson, saveJson } from './storage.js';

// One outbox per reader: at a shared booth machine the next person must never send (or lose) yours.
const KEY_PREFIX = 'readerboard:outbox:';
const RETRY_MS = [2000, 5000, 10000, 20000, 30000];

export class OfflineQueue {
  constructor({ onSent, onRejected, onStateChange }) {
    this.onSent = onSent;
    this.onRejected = onRejected;
    this.onStateChange = onStateChange;
    this.flushing = null;
    this.failures = 0;
    this.timer = null;
    window.addEventListener('online', () => this.flush());
  }

  /** Use the outbox of this reader (call once the reader is known, before add/flush). */
  setReader(readerKey) {
    this.key = `${KEY_PREFIX}${readerKey}`;
  }

  pending() {
    return this.key ? loadJson(this.key, []) : [];
  }

  /** Keep `document` until the server has it; return false when storage refused it. */
  add(document_) {
    const items = this.pending().filter((item) => item.document.client_uuid !== document_.client_uuid);
    items.push({ document: document_, queuedAt: new Date().toISOString() });
    return saveJson(this.key, items);
  }

  _drop(clientUuid) {
    saveJson(
      this.key,
      this.pending().filter((item) => item.document.client_uuid !== clientUuid),
    );
  }

  /** Send everything queued, oldest first; resolve to true when the outbox is empty. */
  flush() {
    if (!this.flushing) {
      this.flushing = this._flush().finally(() => {
        this.flushing = null;
      });
    }
    return this.flushing;
  }

  async _flush() {
    clearTimeout(this.timer);
    for (const item of this.pending()) {
      try {
        const answer = await submitRead(item.document);
        this._drop(item.document.client_uuid);
        this.failures = 0;
        this.onSent?.(item.document, answer);
      } catch (error) {
        if (error.isNetwork) {
          this.failures += 1;
          const delay = RETRY_MS[Math.min(this.failures - 1, RETRY_MS.length - 1)];
          this.timer = setTimeout(() => this.flush(), delay);
          this.onStateChange?.({ queued: this.pending().length, retryInMs: delay, error });
          return false;
        }
        // The server looked at it and said no: resending would not change that.
        this._drop(item.document.client_uuid);
        this.onRejected?.(item.document, error);
      }
    }
    this.onStateChange?.({ queued: 0 });
    return true;
  }
}
