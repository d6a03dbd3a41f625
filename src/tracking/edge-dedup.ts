/**
 * SPEC §18: a tracking repeat inside its replay bucket is dropped at the edge, per isolate, before
 * the queue. The replay id (token nonce, type, bucket: interaction.ts) names the one event a bucket
 * may record, so once an isolate has queued it, later requests for it carry nothing new and are not
 * sent (the consumer would drop them anyway). A bounded insertion-ordered set: past MAX_IDS the
 * oldest ids go first, and an id never outlives its bucket's meaning (a later bucket is another id).
 * About 60 bytes an id: at most ~1.2 MB per isolate.
 */

const MAX_IDS = 20_000;
const ids = new Set<string>();

/** Whether this isolate already queued (or is queueing) the event `id`. */
export function seenAtEdge(id: string): boolean {
  return ids.has(id);
}

/** Marks `id` as queued; call before sending, and `forgetAtEdge` if the send failed. */
export function rememberAtEdge(id: string): void {
  if (ids.has(id)) return;
  if (ids.size >= MAX_IDS) {
    // Sets iterate in insertion order: drop the oldest tenth at once, so this is rare.
    let drop = Math.ceil(MAX_IDS / 10);
    for (const old of ids) {
      ids.delete(old);
      if (--drop === 0) break;
    }
  }
  ids.add(id);
}

export function forgetAtEdge(id: string): void {
  ids.delete(id);
}
