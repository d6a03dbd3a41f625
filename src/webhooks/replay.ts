import { getAccountPlan } from "../accounts/plans";
import type { WebhookEndpointRow } from "../db/webhooks";
import type { Env } from "../env";
import { ApiError, validationError } from "../lib/errors";
import { releaseLease, renewLease, takeLease } from "../lib/lease";
import { DAY_MS } from "../lib/params";
import { countPendingDeliveries, eventsByIds, eventsInWindowOldestFirst } from "../store";
import { replayIdWindow } from "../tracking/interaction";
import { sendDeliveries } from "./enqueue";
import type { StoredEvent } from "./fanout";
import { matches, subscriptionOf } from "./match";
import { MAX_REPLAY_WINDOW_EVENTS } from "./schema";

/**
 * POST /v1/webhooks/{id}/replay: stored events delivered again to one endpoint, with the same
 * `webhook-id`, as a new run of attempts (a new 72-hour window). Only events the endpoint
 * subscribes to now (its event_types and filters) are queued; unknown or purged ids are skipped,
 * and `queued` says how many went. Both forms read only within the plan's retention.
 */

export type ReplayRequest =
  | { kind: "ids"; eventIds: string[] }
  | { kind: "window"; start: number; end: number; eventTypes: string[] | null };

/** SPEC §18: at most this many deliveries pending per endpoint; a replay that would pass it is 429. */
export const MAX_PENDING_PER_ENDPOINT = 10_000;

/**
 * How long a replay holds its endpoint's slot (one replay in flight per endpoint): until its
 * deliveries have had their first attempts, estimated at 20 a second (a batch of 20 a second per
 * endpoint), with a minute's margin, at most 10 minutes.
 */
export function replaySlotMs(queued: number): number {
  return Math.min(10 * 60_000, 60_000 + queued * 50);
}

/**
 * Replays with the §18 caps: one replay in flight per endpoint (a lease in the control database,
 * held for replaySlotMs), and at most MAX_PENDING_PER_ENDPOINT deliveries pending (retries waiting,
 * counted on the pending index, plus this replay). Either beyond: 429 with Retry-After.
 */
export async function replayWithinCaps(
  env: Env,
  endpoint: WebhookEndpointRow,
  request: ReplayRequest,
  now: number,
): Promise<number> {
  const slot = await takeLease(env.DB, `webhook-replay:${endpoint.id}`, {
    ttlMs: replaySlotMs(MAX_PENDING_PER_ENDPOINT),
    now,
    busyMessage: "a replay of this endpoint is still being delivered; retry when it is done",
  });
  try {
    const queued = await replay(env, endpoint, request, now, async (n) => {
      const pending = await pendingDeliveries(env, endpoint.id);
      if (pending + n > MAX_PENDING_PER_ENDPOINT) {
        throw new ApiError(
          "rate_limit_exceeded",
          `the endpoint has ${pending.toLocaleString("en-US")} deliveries pending; replaying ${n.toLocaleString("en-US")} more ` +
            `would pass ${MAX_PENDING_PER_ENDPOINT.toLocaleString("en-US")}`,
          { headers: { "Retry-After": "300" } },
        );
      }
    });
    // The slot is held as long as this replay's deliveries need (a replay of nothing frees it).
    if (queued === 0) await releaseLease(env.DB, slot);
    else await renewLease(env.DB, { ...slot, ttlMs: replaySlotMs(queued) }, now);
    return queued;
  } catch (err) {
    await releaseLease(env.DB, slot).catch(() => undefined);
    throw err;
  }
}

/** Deliveries of the endpoint waiting for a retry, counted up to one past the cap (the partial pending index). */
export function pendingDeliveries(env: Env, endpointId: string): Promise<number> {
  return countPendingDeliveries(env.DB, endpointId, MAX_PENDING_PER_ENDPOINT + 1);
}

export async function replay(
  env: Env,
  endpoint: WebhookEndpointRow,
  request: ReplayRequest,
  now: number,
  beforeQueueing: (count: number) => Promise<void> = async () => undefined,
): Promise<number> {
  const plan = await getAccountPlan(env, endpoint.accountId);
  const earliest = now - plan.retention_days * DAY_MS;
  let events: StoredEvent[];
  const db = env.DB;
  if (request.kind === "ids") {
    // Bounded (SPEC §18): tracking ids by their bucket, the rest among the newest 10,000 events.
    const hints = new Map<string, { start: number; end: number }>();
    for (const id of request.eventIds) {
      const w = replayIdWindow(id);
      if (w && w.end > earliest && w.start <= now) hints.set(id, w);
    }
    events = await eventsByIds(db, endpoint.accountId, earliest, request.eventIds, hints);
  } else {
    const start = Math.max(request.start, earliest);
    const results = await eventsInWindowOldestFirst(db, endpoint.accountId, {
      start,
      end: request.end,
      types: request.eventTypes,
      limit: MAX_REPLAY_WINDOW_EVENTS + 1,
    });
    if (results.length > MAX_REPLAY_WINDOW_EVENTS) {
      throw validationError(
        "start",
        `the window holds more than ${MAX_REPLAY_WINDOW_EVENTS.toLocaleString("en-US")} events; replay a shorter one`,
      );
    }
    events = results;
  }
  const sub = subscriptionOf(endpoint);
  const deliveries = events
    .filter((e) => matches(sub, e))
    .map((e) => ({
      body: {
        type: "deliver" as const,
        account_id: e.account_id,
        endpoint_id: endpoint.id,
        event_id: e.id,
        occurred_at: e.occurred_at,
        replay: true,
      },
    }));
  await beforeQueueing(deliveries.length);
  await sendDeliveries(env, deliveries);
  return deliveries.length;
}
