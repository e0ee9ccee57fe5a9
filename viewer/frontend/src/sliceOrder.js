// The pure parts of prefetching: which slices to fetch in what order, and how much memory to use.
// No Cornerstone imports, so node --test checks them.

/**
 * Return the cache budget in bytes for this device: a quarter of its memory as the browser reports it
 * (navigator.deviceMemory, in GiB, capped at 8 by Chrome), between 256 MiB and 1.5 GiB.
 */
export function cacheBudgetBytes(deviceMemoryGiB = globalThis.navigator?.deviceMemory) {
  const gib = Number(deviceMemoryGiB) > 0 ? Number(deviceMemoryGiB) : 4;
  const quarter = (gib * 1024 ** 3) / 4;
  return Math.round(Math.min(1.5 * 1024 ** 3, Math.max(256 * 1024 ** 2, quarter)));
}

/**
 * Return slice indices ordered outward from `center` (center itself excluded): two steps in the
 * scroll `direction` for each step back, up to `limit` indices, all within [0, count).
 */
export function outwardOrder(center, count, { direction = 1, limit = count } = {}) {
  const forward = direction >= 0 ? 1 : -1;
  const inside = (index) => index >= 0 && index < count;
  const order = [];
  let ahead = center + forward;
  let behind = center - forward;
  while (order.length < limit && (inside(ahead) || inside(behind))) {
    // Readers mostly keep scrolling the way they were going: two slices ahead for each one behind.
    for (let step = 0; step < 2 && inside(ahead) && order.length < limit; step += 1) {
      order.push(ahead);
      ahead += forward;
    }
    if (inside(behind) && order.length < limit) {
      order.push(behind);
      behind -= forward;
    } else if (!inside(ahead) && inside(behind)) {
      behind -= forward;
    }
  }
  return order;
}

/** Round-robin merge of several queues: [a0, b0, a1, b1, b2, ...] (each stack's nearest slices first). */
export function interleave(queues) {
  const merged = [];
  const longest = Math.max(0, ...queues.map((queue) => queue.length));
  for (let k = 0; k < longest; k += 1) {
    for (const queue of queues) if (k < queue.length) merged.push(queue[k]);
  }
  return merged;
}
