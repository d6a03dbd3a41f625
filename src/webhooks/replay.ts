import { getAccountPlan } from "../accounts/plans";
import { alertsByIds } from "../alerts/store";
import type { WebhookEndpointRow } from "../db/webhooks";
import type { Env } from "../env";
import { windowTotal } from "../events/hour-reads";
import { EVENT_TYPES, type EventType } from "../events/record";
import { ApiError, validationError } from "../lib/errors";
import { releaseLease, renewLease, takeLease } from "../lib/lease";
import { DAY_MS } from "../lib/params";
import { mergeNewestFirst } from "../shards/across";
import { type AccountShards, accountShards, readDbs } from "../shards/route";
import { countPendingDeliveries, eventsByIds, eventsInWindowOldestFirst } from "../store";
import { changesByIds } from "../suppressions/changes";
import { replayIdWindow } from "../tracking/interaction";
import { isAlertId, isChangeId } from "./deliver";
import { sendDeliveries } from "./enqueue";
import type { StoredEvent } from "./fanout";
import { type MatchableEvent, matches, subscriptionOf } from "./match";
import { MAX_REPLAY_WINDOW_EVENTS } from "./schema";

/**
 * POST /v1/webhooks/{id}/replay: stored events delivered again to one endpoint, with the same
 * `webhook-id`, as a new run of attempts (a new 72-hour window). Only events the endpoint
 * subscribes to now (its event_types and filters) are queued; unknown or purged ids are skipped,
 * and `queued` says how many went. Both forms read events only within the plan's retention. By
 * ids, alerts (`alt_…`) and suppression changes (`sch_…`) are replayed too (SPEC §14: their
 * webhook-id is stable "across retries and replays"), for as long as they are kept.
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
    const account = await accountShards(env, endpoint.accountId);
    const queued = await replay(env, endpoint, request, now, async (n) => {
      const pending = await pendingDeliveries(env, account, endpoint.id);
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

/**
 * Deliveries of the endpoint waiting for a retry, counted up to one past the cap (the partial pending
 * index) on every shard of its account: a delivery row sits beside its event (SPEC §17).
 */
export async function pendingDeliveries(
  env: Env,
  account: AccountShards,
  endpointId: string,
): Promise<number> {
  const counts = await Promise.all(
    readDbs(env, account).map(({ db }) =>
      countPendingDeliveries(db, endpointId, MAX_PENDING_PER_ENDPOINT + 1),
    ),
  );
  return counts.reduce((sum, n) => sum + n, 0);
}

/** One thing a replay delivers again: its key, the shard holding it, what a subscription looks at. */
interface Replayed {
  id: string;
  occurred_at: number;
  shard?: number | undefined;
  matchable: MatchableEvent;
}

/**
 * The alerts and suppression changes among replayed ids, as their fan-outs matched them: an alert
 * by its type alone, a change by its type and its entry's topic (alerts/push.ts,
 * suppressions/changes.ts). Alerts are in the control database (kept 400 days), changes on the
 * account's shards (kept 7 days); an id not found is skipped, like an event's.
 */
async function notificationsByIds(
  env: Env,
  accountId: string,
  shards: { shard: number; db: D1Database }[],
  ids: readonly string[],
): Promise<Replayed[]> {
  const none = { topic: null, campaign: null, from_domain: null, tags: [] };
  const [alerts, changes] = await Promise.all([
    alertsByIds(env, accountId, ids.filter(isAlertId)),
    Promise.all(
      shards.map(async ({ shard, db }) =>
        (await changesByIds(db, accountId, ids.filter(isChangeId))).map((c) => ({ ...c, shard })),
      ),
    ),
  ]);
  return [
    ...alerts.map((a) => ({ id: a.id, occurred_at: a.occurred_at, matchable: { ...none, type: a.type } })),
    ...changes.flat().map((c) => ({
      id: c.id,
      occurred_at: c.occurred_at,
      shard: c.shard,
      matchable: { ...none, type: c.type, topic: c.topic === "" ? null : c.topic },
    })),
  ];
}

/**
 * A window replay's refusal without reading its events (SPEC §18): the hourly rollups count the
 * window's events of its types (events/hour-reads.ts windowTotal: a row per hour plus the edge
 * hours' events), and more than MAX_REPLAY_WINDOW_EVENTS is `400` naming `start`. Where they cannot
 * answer (an erasure or a plan change's gap in the window) nothing is refused here: the read of the
 * window's events, capped at one past the limit, refuses it as before. A 30-day window of the
 * largest account read the 10,001st event and 10,004 rows to refuse; now its hourly rows.
 */
async function refuseWindowPastCap(
  env: Env,
  accountId: string,
  shards: readonly { shard: number }[],
  window: { start: number; end: number },
  eventTypes: readonly string[] | null,
): Promise<void> {
  if (window.start >= window.end) return;
  let answered = true;
  const counted = await windowTotal(
    env,
    shards.map((s) => s.shard),
    accountId,
    window,
    { types: (eventTypes as EventType[] | null) ?? EVENT_TYPES, where: null },
    async () => {
      answered = false;
      return { total: 0, rowsRead: 0 };
    },
  );
  if (answered && counted.total > MAX_REPLAY_WINDOW_EVENTS) throw tooManyToReplay();
}

function tooManyToReplay(): ApiError {
  return validationError(
    "start",
    `the window holds more than ${MAX_REPLAY_WINDOW_EVENTS.toLocaleString("en-US")} events; replay a shorter one`,
  );
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
  // The account's events on every shard it is read from (stripes, a previous placement, SPEC §17).
  const shards = readDbs(env, await accountShards(env, endpoint.accountId));
  const oldestFirst = (lists: StoredEvent[][], take: number) =>
    mergeNewestFirst(
      lists.map((l) => [...l].reverse()),
      Number.MAX_SAFE_INTEGER,
      (e) => ({ at: e.occurred_at, id: e.id }),
    )
      .reverse()
      .slice(0, take);
  // Alerts (alt_…) and suppression changes (sch_…) replayed by id, each as its first delivery was.
  let notifications: Replayed[] = [];
  if (request.kind === "ids") {
    // Bounded (SPEC §18): tracking ids by their bucket, the rest among the newest 10,000 events
    // (per shard it touches).
    const eventIds = request.eventIds.filter((id) => !isAlertId(id) && !isChangeId(id));
    const hints = new Map<string, { start: number; end: number }>();
    for (const id of eventIds) {
      const w = replayIdWindow(id);
      if (w && w.end > earliest && w.start <= now) hints.set(id, w);
    }
    const found = await Promise.all(
      shards.map(async ({ shard, db }) =>
        eventIds.length === 0
          ? []
          : (await eventsByIds(db, endpoint.accountId, earliest, eventIds, hints)).map((e) => ({
              ...e,
              shard,
            })),
      ),
    );
    events = oldestFirst(found, Number.MAX_SAFE_INTEGER);
    notifications = await notificationsByIds(env, endpoint.accountId, shards, request.eventIds);
  } else {
    const start = Math.max(request.start, earliest);
    await refuseWindowPastCap(
      env,
      endpoint.accountId,
      shards,
      { start, end: request.end },
      request.eventTypes,
    );
    const perShard = await Promise.all(
      shards.map(async ({ shard, db }) =>
        (
          await eventsInWindowOldestFirst(db, endpoint.accountId, {
            start,
            end: request.end,
            types: request.eventTypes,
            limit: MAX_REPLAY_WINDOW_EVENTS + 1,
          })
        ).map((e) => ({ ...e, shard })),
      ),
    );
    const results = oldestFirst(perShard, MAX_REPLAY_WINDOW_EVENTS + 1);
    if (results.length > MAX_REPLAY_WINDOW_EVENTS) throw tooManyToReplay();
    events = results;
  }
  const sub = subscriptionOf(endpoint);
  const replayed: Replayed[] = [
    ...events.map((e) => ({ id: e.id, occurred_at: e.occurred_at, shard: e.shard, matchable: e })),
    ...notifications,
  ];
  const deliveries = replayed
    .filter((r) => matches(sub, r.matchable))
    .sort((a, b) => a.occurred_at - b.occurred_at)
    .map((r) => ({
      body: {
        type: "deliver" as const,
        account_id: endpoint.accountId,
        endpoint_id: endpoint.id,
        event_id: r.id,
        occurred_at: r.occurred_at,
        ...(r.shard !== undefined ? { shard: r.shard } : {}),
        replay: true,
      },
    }));
  await beforeQueueing(deliveries.length);
  await sendDeliveries(env, deliveries);
  return deliveries.length;
}
