// Keeps the reader's lease on the open case alive while they read (docs/api-reading.md).
// Renews at a third of the remaining time (30 s to 2 min); a lost lease is reported, not hidden.
import { renewLease } from './api.js';

export class LeaseKeeper {
  constructor({ onLost }) {
    this.onLost = onLost;
    this.timer = null;
    // Only a reader who touched the page since the last renewal counts as present (booth idle sign-out).
    this.active = false;
    for (const type of ['pointerdown', 'keydown', 'wheel', 'touchstart']) {
      window.addEventListener(type, () => (this.active = true), { passive: true, capture: true });
    }
  }

  start(caseForReading) {
    this.stop();
    this.caseId = caseForReading.id;
    this._schedule(caseForReading.lease_expires_at);
  }

  _schedule(expiresAt) {
    const remaining = expiresAt ? new Date(expiresAt) - Date.now() : 300000;
    const delay = Math.max(30000, Math.min(120000, remaining / 3));
    this.timer = setTimeout(() => this._renew(), delay);
  }

  async _renew() {
    const caseId = this.caseId;
    try {
      const active = this.active;
      this.active = false;
      const answer = await renewLease(caseId, active);
      if (caseId === this.caseId) this._schedule(answer?.lease_expires_at);
    } catch (error) {
      if (caseId !== this.caseId) return;
      if (error.status === 401) window.location.assign(`/login/?next=${encodeURIComponent(window.location.pathname)}`);
      else if (error.status === 409 || error.status === 404) this.onLost?.(error);
      else this._schedule(null);
    }
  }

  stop() {
    clearTimeout(this.timer);
    this.caseId = null;
  }
}

/** What the reader is told when a renewal is refused: the server's reason (409 names which of its rules). */
export function leaseLostMessage(error) {
  const reason = typeof error?.body?.detail === 'string' ? error.body.detail : '';
  if (error?.status === 404) return 'This case is no longer available: ask for the next case.';
  if (!reason) return 'Your hold on this case lapsed and it filled up: this read may not be accepted.';
  return `Your hold on this case was not renewed: ${reason}. This read may not be accepted.`;
}
