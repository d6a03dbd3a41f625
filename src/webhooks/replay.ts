import { getAccountPlan } from "../accounts/plans";
import type { WebhookEndpointRow } from "../db/webhooks";
import type { Env } from "../env";
import { validationError } from "../lib/errors";
import { DAY_MS } from "../lib/params";
import { eventsByIds, eventsInWindowOldestFirst } from "../store";
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

export async function replay(
  env: Env,
  endpoint: WebhookEndpointRow,
  request: ReplayRequest,
  now: number,
): Promise<number> {
  const plan = await getAccountPlan(env, endpoint.accountId);
  const earliest = now - plan.retention_days * DAY_MS;
  let events: StoredEvent[];
  const db = env.DB;
  if (request.kind === "ids") {
    events = await eventsByIds(db, endpoint.accountId, earliest, request.eventIds);
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
  await sendDeliveries(env, deliveries);
  return deliveries.length;
}
