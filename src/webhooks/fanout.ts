import type { Env } from "../env";
import type { QueueMessage } from "../pipeline/messages";
import { eventsByKey } from "../store";
import { CLICK_DELAY_SECONDS, type Delivery, sendDeliveries } from "./enqueue";
import { type MatchableEvent, matches } from "./match";
import { endpointsOf } from "./store";

/**
 * The fan-out of SPEC §14, called by the events consumer after its D1 transaction committed and
 * before it acknowledges the batch: one WEBHOOKS_QUEUE message per (new event, matching enabled
 * endpoint).
 *
 * New events are the rows the events INSERT returned (SQLite's RETURNING yields only rows actually
 * inserted, so a redelivered SNS notification or queue message fans out nothing). One gap remains:
 * D1 committed but the send below failed. The consumer then retries the batch, and that retry's
 * INSERT returns nothing; so for messages on their second or later attempt the stored events are
 * fanned out again. The delivery consumer makes that safe: a first-run message for a (endpoint,
 * event) pair that already has a delivery row is dropped, so nothing is delivered twice.
 */

/** A stored event as the fan-out needs it (the INSERT's RETURNING columns, store/event-writes.ts). */
export interface StoredEvent extends MatchableEvent {
  account_id: string;
  occurred_at: number;
  id: string;
  tags: string;
}

export async function fanOutNewEvents(
  env: Env,
  entries: { attempts: number; body: QueueMessage }[],
  inserted: StoredEvent[],
  now = Date.now(),
): Promise<number> {
  const events = new Map<string, StoredEvent>();
  const key = (accountId: string, id: string) => `${accountId}\u0000${id}`;
  for (const e of inserted) events.set(key(e.account_id, e.id), e);

  const retried = entries
    .filter((e) => e.attempts > 1 && e.body.type === "event")
    .map((e) => (e.body as Extract<QueueMessage, { type: "event" }>).event)
    .filter((e) => !events.has(key(e.account_id, e.id)));
  if (retried.length > 0) {
    // The stored (enriched) versions; events not stored are left out.
    for (const e of await eventsByKey(env.DB, retried)) events.set(key(e.account_id, e.id), e);
  }
  if (events.size === 0) return 0;

  const endpoints = await endpointsOf(
    env,
    [...events.values()].map((e) => e.account_id),
    now,
  );
  const deliveries: Delivery[] = [];
  for (const event of events.values()) {
    for (const { row, sub } of endpoints.get(event.account_id) ?? []) {
      if (row.status !== "enabled" || !matches(sub, event)) continue;
      deliveries.push({
        body: {
          type: "deliver",
          account_id: event.account_id,
          endpoint_id: row.id,
          event_id: event.id,
          occurred_at: event.occurred_at,
        },
        ...(event.type === "email.clicked" ? { delaySeconds: CLICK_DELAY_SECONDS } : {}),
      });
    }
  }
  await sendDeliveries(env, deliveries);
  return deliveries.length;
}
