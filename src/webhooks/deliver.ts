import { type AlertDbRow, toPublicAlert } from "../alerts/schema";
import { config } from "../config";
import type { WebhookEndpointRow } from "../db/webhooks";
import type { Env } from "../env";
import { type EventDbRow, toPublicEvent } from "../events/serialize";
import { ApiError } from "../lib/errors";
import { describeError, log } from "../lib/log";
import { DAY_MS } from "../lib/params";
import { shardDb } from "../shards/bindings";
import { loadDirectory } from "../shards/directory";
import { routeAccount } from "../shards/route";
import {
  type DeliveryStateRow,
  deliveriesByKeyStatement,
  eventsByKeyStatement,
  upsertDelivery,
} from "../store";
import { loadChanges } from "../suppressions/changes";
import { toSuppression } from "../suppressions/schema";
import { sendDeliveries } from "./enqueue";
import { type MatchableEvent, matches } from "./match";
import { type WebhookMessage, webhookMessageSchema } from "./messages";
import { DELIVERY_WINDOW_MS, nextAttempt } from "./schedule";
import { signatureHeader } from "./signing";
import { type CachedEndpoint, endpointsOf, forgetAccount, signingSecrets } from "./store";
import { checkWebhookUrl } from "./url-safety";

/**
 * The WEBHOOKS_QUEUE consumer (SPEC §14). Each message is one delivery of a stored event to one
 * endpoint. Per batch: one D1 round trip reads the events and the delivery rows of every message;
 * then the POSTs run, each bounded at 15 s, and each is recorded and acknowledged (or retried with
 * the §14 schedule's delay) as soon as it finishes, so no endpoint waits for another's answer
 * (SPEC §18: no head-of-line blocking). Records of attempts that finish together share one round
 * trip (webhook_deliveries: 1 row written per attempt, the attempt history in the row).
 *
 * Fairness within a batch: at most six fetches in flight (what a Worker invocation keeps open), taken
 * round-robin over the batch's endpoints, at most three per endpoint and one for an endpoint that
 * was slow (≥ 5 s) in this isolate within the last minute. A delivery that could not start within
 * 2 s of the batch (its endpoint's slots were held by slow answers) is re-enqueued a few seconds
 * later instead of waiting: that is not an attempt, and its run is unchanged.
 *
 * D1 failures: nothing is lost or duplicated. Before any POST, the messages are retried with
 * exponential backoff (30 s doubling to 1 h), and a message that would run out of Queues' retries
 * or retention continues in a new one, so a 24-hour outage is waited out. After a POST, a record D1
 * refused travels in a new message (`outcome`) that only writes it, so the endpoint is not POSTed again.
 *
 * Idempotency: a first-run message (not a retry, replay or continuation) for a pair that already
 * has a delivery row is a duplicate fan-out and is dropped, so a redelivered events batch never
 * POSTs twice. Replays start a new run on the same row with the same `webhook-id`.
 */

export const DELIVERY_TIMEOUT_MS = 15_000;
export const USER_AGENT = "mailtrail-webhooks/1";
/** Queues keeps a message 4 days by default; a run that would outlive that is re-enqueued. */
const QUEUE_RETENTION_MS = 4 * DAY_MS;
const RETENTION_MARGIN_MS = 12 * 3600_000;
/** Queues allows at most 100 retries per message (the consumer's max_retries). */
const MAX_MESSAGE_ATTEMPTS = 90;
/** Fetches in flight per invocation: Workers keep six connections open at once, a seventh waits. */
const MAX_IN_FLIGHT = 6;
/** Fetches one endpoint may have in flight within a batch; one while it is known to be slow. */
const PER_ENDPOINT_CONCURRENCY = 3;
const SLOW_ATTEMPT_MS = 5_000;
const SLOW_MEMORY_MS = 60_000;
/** A delivery not started this long after its batch began is re-enqueued rather than waiting for a slot. */
export const START_BUDGET_MS = 2_000;
const DEFER_DELAY_SECONDS = 3;
/** Backoff while D1 fails: 30 s, doubling, at most an hour (a 24-hour outage costs about 30 retries). */
const D1_BACKOFF_FIRST_SECONDS = 30;
const D1_BACKOFF_MAX_SECONDS = 3600;

/** Endpoints whose last attempt in this isolate was slow, until when. Bounded: cleared past 10,000. */
const slowUntil = new Map<string, number>();

export interface DeliveryOptions {
  /** The clock for the schedule and the records; tests move it instead of waiting. */
  now?: () => number;
  timeoutMs?: number;
  startBudgetMs?: number;
}

interface DeliveryRow {
  status: string;
  attempts: number;
  first_attempt_at: number;
  last_attempt_at: number;
}

type Outcome =
  | { kind: "succeeded"; status: number }
  | { kind: "gone"; status: number }
  | { kind: "failed"; status: number | null; error: string; ours?: boolean };

/**
 * What one delivery carries: a stored event (§8), a suppression change (`sch_…` ids, data the
 * §10 entry; suppressions/changes.ts) or an alert (`alt_…` ids, data the §19 alert; alerts/push.ts).
 * Each is loaded at every attempt, so a removed one stops it.
 */
interface Subject extends MatchableEvent {
  id: string;
  /** ISO 8601: the envelope's `timestamp`. */
  timestamp: string;
  data: unknown;
}

const eventSubject = (event: EventDbRow): Subject => {
  const data = toPublicEvent(event);
  return { ...event, tags: data.tags, timestamp: data.occurred_at, data };
};

/** Ids of suppression changes, which the delivery consumer loads from suppression_changes. */
export const isChangeId = (id: string) => id.startsWith("sch_");

/** Ids of alerts (SPEC §19), which the delivery consumer loads from the control database's alerts. */
export const isAlertId = (id: string) => id.startsWith("alt_");

const alertSubject = (a: AlertDbRow): Subject => {
  const data = toPublicAlert(a);
  // Endpoint filters are about events: an alert goes by its type alone (match.ts).
  return {
    id: a.id,
    type: a.type,
    topic: null,
    campaign: null,
    from_domain: null,
    tags: [],
    timestamp: data.occurred_at,
    data,
  };
};

interface Item {
  message: Message<unknown>;
  m: WebhookMessage;
  /** The event shard that holds the event and so its delivery row (SPEC §17). */
  db: D1Database;
  existing: DeliveryRow | null;
  event: Subject | null;
  endpoint: CachedEndpoint | null;
}

interface Attempted {
  message: Message<unknown>;
  m: WebhookMessage;
  /** The event shard its delivery row is written to. */
  db: D1Database;
  eventType: string;
  outcome: Outcome;
  at: number;
  firstAttemptAt: number;
  attempts: number;
  next: { at: number; delaySeconds: number } | null;
}

interface Closing {
  message: Message<unknown>;
  m: WebhookMessage;
  db: D1Database;
  statement: D1PreparedStatement;
}

const key = (endpointId: string, occurredAt: number, eventId: string) =>
  `${endpointId}|${occurredAt}|${eventId}`;

/** The body that carries a message's work on in a new message, with its run unchanged. */
function carriedBody(message: Message<unknown>, m: WebhookMessage): WebhookMessage {
  const { outcome: _recorded, ...rest } = m;
  const continuing = message.attempts > 1 || m.continued === true || m.outcome !== undefined;
  return continuing ? { ...rest, continued: true } : rest;
}

/** The delay before the next try of a message D1 failed for. */
export function d1BackoffSeconds(messageAttempts: number): number {
  return Math.min(D1_BACKOFF_MAX_SECONDS, D1_BACKOFF_FIRST_SECONDS * 2 ** Math.max(0, messageAttempts - 1));
}

/** Whether a retry after `delaySeconds` would outlive the message's retention or retries. */
function outlives(message: Message<unknown>, delaySeconds: number): boolean {
  return (
    Date.now() + delaySeconds * 1000 >
      message.timestamp.getTime() + QUEUE_RETENTION_MS - RETENTION_MARGIN_MS ||
    message.attempts >= MAX_MESSAGE_ATTEMPTS
  );
}

/**
 * Carries messages on in new ones (a body of their choosing, a delay) and acknowledges them; when
 * the queue refuses, retries them instead (Queues redelivers the same body).
 */
async function carryOn(
  env: Env,
  items: { message: Message<unknown>; body: WebhookMessage; delaySeconds: number }[],
): Promise<void> {
  if (items.length === 0) return;
  try {
    await sendDeliveries(
      env,
      items.map((i) => ({ body: i.body, delaySeconds: i.delaySeconds })),
    );
    for (const i of items) i.message.ack();
  } catch (err) {
    log("error", "webhook continuation not queued; retrying the messages instead", describeError(err));
    for (const i of items) i.message.retry({ delaySeconds: i.delaySeconds });
  }
}

/** D1 failed before these messages were attempted: back off, continuing in new messages where retries run out. */
async function backOff(env: Env, items: { message: Message<unknown>; m: WebhookMessage }[], err: unknown) {
  if (items.length === 0) return;
  log("error", "webhook deliveries could not reach D1; backing off", {
    size: items.length,
    ...describeError(err),
  });
  const carried: { message: Message<unknown>; body: WebhookMessage; delaySeconds: number }[] = [];
  for (const { message, m } of items) {
    const delaySeconds = d1BackoffSeconds(message.attempts);
    // An outcome message keeps its outcome: the POST was made, only its record waits.
    if (outlives(message, delaySeconds))
      carried.push({
        message,
        body: m.outcome ? { ...m, continued: true } : carriedBody(message, m),
        delaySeconds,
      });
    else message.retry({ delaySeconds });
  }
  await carryOn(env, carried);
}

export async function handleWebhookBatch(
  batch: MessageBatch<unknown>,
  env: Env,
  options: DeliveryOptions = {},
): Promise<void> {
  const batchStarted = Date.now();
  const clock = options.now ?? Date.now;
  const parsed: { message: Message<unknown>; m: WebhookMessage }[] = [];
  for (const message of batch.messages) {
    const result = webhookMessageSchema.safeParse(message.body);
    if (result.success) parsed.push({ message, m: result.data });
    else {
      log("error", "invalid webhook message dropped", { message_id: message.id });
      message.ack();
    }
  }
  if (parsed.length === 0) return;

  let items: Item[];
  try {
    items = await loadItems(env, parsed, clock());
  } catch (err) {
    await backOff(env, parsed, err);
    return;
  }

  // Attempts made earlier whose records D1 refused: only written now, unless the row already holds
  // them or a later attempt (a redelivered outcome message must not roll the record back).
  const recorder = new Recorder(env);
  for (const { message, m, existing, db } of items) {
    const o = m.outcome;
    if (o === undefined) continue;
    if (existing !== null && (existing.attempts > o.attempts || existing.last_attempt_at >= o.at)) {
      message.ack();
      continue;
    }
    const outcome: Outcome =
      o.kind === "failed"
        ? { kind: "failed", status: o.status, error: o.error ?? "failed", ...(o.ours ? { ours: true } : {}) }
        : { kind: o.kind, status: o.status ?? 200 };
    recorder.add({
      message,
      m,
      db,
      eventType: o.event_type,
      outcome,
      at: o.at,
      firstAttemptAt: o.first_attempt_at,
      attempts: o.attempts,
      next: o.kind === "failed" ? nextAttempt(o.first_attempt_at, o.attempts, o.at) : null,
    });
  }
  items = items.filter(({ m }) => m.outcome === undefined);

  const toAttempt: Item[] = [];
  for (const item of items) {
    const { message, m, existing, event, endpoint } = item;
    const newRun = m.replay === true && message.attempts === 1 && m.continued !== true;
    const continuing = message.attempts > 1 || m.continued === true;
    // A duplicate fan-out of a pair already delivered or being delivered, or a run already over.
    if (existing !== null && !newRun && (!continuing || existing.status !== "pending")) {
      message.ack();
      continue;
    }
    // Nothing to attempt: the endpoint was deleted or disabled, the event is gone (purged, or a
    // scanner's click removed), or the endpoint no longer wants it. A pending run is closed.
    const stop =
      endpoint === null
        ? "the endpoint was deleted"
        : endpoint.row.status !== "enabled"
          ? `the endpoint is disabled (${endpoint.row.disabledReason ?? "manual"})`
          : event === null
            ? "the event is no longer stored"
            : !matches(endpoint.sub, event)
              ? "the endpoint no longer subscribes to this event"
              : null;
    if (stop === null) {
      toAttempt.push(item);
      continue;
    }
    if (existing?.status === "pending") {
      recorder.close({
        message,
        m,
        db: item.db,
        statement: deliveryUpsert(item.db, m, event?.type ?? "", {
          status: "failed",
          attempts: existing.attempts,
          counted: false,
          firstAttemptAt: existing.first_attempt_at,
          lastAttemptAt: existing.last_attempt_at,
          responseStatus: null,
          error: `stopped: ${stop}`,
        }),
      });
    } else message.ack();
  }

  const deferred = await attemptFairly(env, toAttempt, {
    clock,
    timeoutMs: options.timeoutMs ?? DELIVERY_TIMEOUT_MS,
    startBy: batchStarted + (options.startBudgetMs ?? START_BUDGET_MS),
    done: (a) => recorder.add(a),
  });
  await carryOn(
    env,
    deferred.map(({ message, m }) => ({
      message,
      body: carriedBody(message, m),
      delaySeconds: DEFER_DELAY_SECONDS,
    })),
  );
  await recorder.idle();
}

/**
 * Writes finished attempts (and closed runs) as they come: whatever finished while the previous
 * write was in flight goes in the next one, and each message is settled right after its write.
 */
class Recorder {
  private attempted: Attempted[] = [];
  private closing: Closing[] = [];
  private running: Promise<void> | null = null;

  constructor(private readonly env: Env) {}

  add(a: Attempted): void {
    this.attempted.push(a);
    this.running ??= this.drain();
  }

  close(c: Closing): void {
    this.closing.push(c);
    this.running ??= this.drain();
  }

  async idle(): Promise<void> {
    while (this.running !== null) await this.running;
  }

  private async drain(): Promise<void> {
    while (this.attempted.length > 0 || this.closing.length > 0) {
      const attempted = this.attempted.splice(0);
      const closing = this.closing.splice(0);
      try {
        await recordAll(this.env, attempted, closing);
      } catch (err) {
        log("error", "webhook attempts not recorded; their records wait in new messages", {
          size: attempted.length,
          ...describeError(err),
        });
        await backOff(this.env, closing, err);
        await carryOn(
          this.env,
          attempted.map((a) => ({
            message: a.message,
            body: {
              ...a.m,
              outcome: {
                kind: a.outcome.kind,
                status: a.outcome.status,
                error: a.outcome.kind === "failed" ? a.outcome.error.slice(0, 400) : null,
                ...(a.outcome.kind === "failed" && a.outcome.ours ? { ours: true } : {}),
                event_type: a.eventType,
                at: a.at,
                first_attempt_at: a.firstAttemptAt,
                attempts: a.attempts,
              },
            },
            delaySeconds: d1BackoffSeconds(a.message.attempts),
          })),
        );
        continue;
      }
      for (const c of closing) c.message.ack();
      await settle(this.env, attempted);
    }
    this.running = null;
  }
}

/** Acknowledges recorded attempts, or schedules their next try (in a new message where this one would run out). */
async function settle(env: Env, attempted: Attempted[]): Promise<void> {
  const carried: { message: Message<unknown>; body: WebhookMessage; delaySeconds: number }[] = [];
  for (const a of attempted) {
    if (a.next === null) a.message.ack();
    else if (a.m.outcome !== undefined || outlives(a.message, a.next.delaySeconds)) {
      // An outcome message must not be retried as it is (it would only write its record again).
      // After an attempt the run is under way: the new message continues it.
      const { outcome: _recorded, ...rest } = a.m;
      carried.push({
        message: a.message,
        body: { ...rest, continued: true },
        delaySeconds: a.next.delaySeconds,
      });
    } else a.message.retry({ delaySeconds: a.next.delaySeconds });
  }
  await carryOn(env, carried);
}

/**
 * Runs the batch's POSTs: at most MAX_IN_FLIGHT at once, round-robin over endpoints, at most
 * PER_ENDPOINT_CONCURRENCY per endpoint (one for an endpoint known to be slow). Each finished
 * attempt is handed to `done` at once. Returns the items that could not start by `startBy`.
 */
function attemptFairly(
  env: Env,
  items: Item[],
  o: { clock: () => number; timeoutMs: number; startBy: number; done: (a: Attempted) => void },
): Promise<Item[]> {
  const queues = new Map<string, Item[]>();
  for (const item of items) {
    const q = queues.get(item.m.endpoint_id);
    if (q) q.push(item);
    else queues.set(item.m.endpoint_id, [item]);
  }
  const order = [...queues.keys()];
  const inFlightBy = new Map<string, number>();
  let inFlight = 0;
  let cursor = 0;
  const deferred: Item[] = [];
  const limit = (endpointId: string) =>
    (slowUntil.get(endpointId) ?? 0) > Date.now() ? 1 : PER_ENDPOINT_CONCURRENCY;

  const next = (): Item | undefined => {
    for (let k = 0; k < order.length; k++) {
      const id = order[(cursor + k) % order.length] as string;
      const q = queues.get(id);
      if (q && q.length > 0 && (inFlightBy.get(id) ?? 0) < limit(id)) {
        cursor = (cursor + k + 1) % order.length;
        return q.shift();
      }
    }
    return undefined;
  };

  return new Promise<Item[]>((resolve) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = () => {
      if (inFlight > 0 || [...queues.values()].some((q) => q.length > 0)) return;
      if (timer !== undefined) clearTimeout(timer);
      resolve(deferred);
    };
    const deferRest = () => {
      for (const q of queues.values()) deferred.push(...q.splice(0));
      finish();
    };
    const pump = () => {
      if (Date.now() >= o.startBy) {
        deferRest();
        return;
      }
      for (
        let item = inFlight < MAX_IN_FLIGHT ? next() : undefined;
        item;
        item = inFlight < MAX_IN_FLIGHT ? next() : undefined
      ) {
        const id = item.m.endpoint_id;
        inFlight++;
        inFlightBy.set(id, (inFlightBy.get(id) ?? 0) + 1);
        attemptOne(env, item, o.clock, o.timeoutMs)
          .then(o.done)
          .finally(() => {
            inFlight--;
            inFlightBy.set(id, (inFlightBy.get(id) ?? 1) - 1);
            pump();
            finish();
          });
      }
      finish();
    };
    timer = setTimeout(deferRest, Math.max(0, o.startBy - Date.now()));
    pump();
  });
}

/** One POST, timed: an endpoint that took 5 s or more gets one slot per batch for the next minute. */
async function attemptOne(env: Env, item: Item, clock: () => number, timeoutMs: number): Promise<Attempted> {
  const event = item.event as Subject;
  const endpoint = item.endpoint as CachedEndpoint;
  const newRun = item.m.replay === true && item.message.attempts === 1 && item.m.continued !== true;
  const at = clock();
  const firstAttemptAt = item.existing === null || newRun ? at : item.existing.first_attempt_at;
  const attempts = (item.existing?.attempts ?? 0) + 1;
  const started = Date.now();
  const outcome = await attempt(env, endpoint.row, event, at, timeoutMs);
  const took = Date.now() - started;
  if (slowUntil.size > 10_000) slowUntil.clear();
  if (took >= SLOW_ATTEMPT_MS) slowUntil.set(item.m.endpoint_id, Date.now() + SLOW_MEMORY_MS);
  else if (!(outcome.kind === "failed" && outcome.ours)) slowUntil.delete(item.m.endpoint_id);
  const next = outcome.kind === "failed" ? nextAttempt(firstAttemptAt, attempts, at) : null;
  if (outcome.kind !== "succeeded") {
    log("warn", "webhook attempt failed", {
      account_id: item.m.account_id,
      endpoint_id: item.m.endpoint_id,
      event_id: item.m.event_id,
      attempt: attempts,
      response_status: outcome.status,
      error: outcome.kind === "failed" ? outcome.error : "410 Gone",
    });
  }
  return {
    message: item.message,
    m: item.m,
    db: item.db,
    eventType: event.type,
    outcome,
    at,
    firstAttemptAt,
    attempts,
    next,
  };
}

/**
 * One D1 round trip per shard for the batch: each message's stored event (or suppression change)
 * and delivery row, on the shard the fan-out named (`shard`), or else on every shard the account is
 * read from (a message queued before shards, or a replay); alerts from the control database (SPEC
 * §17); endpoints from the cache.
 */
async function loadItems(
  env: Env,
  parsed: { message: Message<unknown>; m: WebhookMessage }[],
  now: number,
): Promise<Item[]> {
  const directory = await loadDirectory(env);
  const candidates = parsed.map(({ m }) =>
    m.shard !== undefined ? [m.shard] : [...routeAccount(env, m.account_id, directory).read],
  );
  const byShard = new Map<number, WebhookMessage[]>();
  parsed.forEach(({ m }, i) => {
    if (isAlertId(m.event_id)) return;
    for (const shard of candidates[i] ?? []) byShard.set(shard, [...(byShard.get(shard) ?? []), m]);
  });
  // Alerts' delivery rows sit on the account's home shard (the first it is read from).
  parsed.forEach(({ m }, i) => {
    const home = candidates[i]?.[0];
    if (isAlertId(m.event_id) && home !== undefined) byShard.set(home, [...(byShard.get(home) ?? []), m]);
  });
  const alertKeys = JSON.stringify(
    parsed.filter(({ m }) => isAlertId(m.event_id)).map(({ m }) => [m.account_id, m.occurred_at, m.event_id]),
  );
  const [endpoints, alertResult, perShard] = await Promise.all([
    endpointsOf(
      env,
      parsed.map(({ m }) => m.account_id),
      now,
    ),
    // Alerts (alt_…), by primary key, in the control database.
    (async () =>
      env.DB.prepare(
        `SELECT a.* FROM json_each(?1) AS k JOIN alerts AS a
           ON a.account_id = k.value->>0 AND a.occurred_at = k.value->>1 AND a.id = k.value->>2`,
      )
        .bind(alertKeys)
        .all<AlertDbRow>())(),
    Promise.all(
      [...byShard].map(async ([shard, messages]) => {
        // Inside the async function, so a binding that throws while preparing rejects here.
        const db = shardDb(env, shard);
        // Suppression changes (sch_… ids) are loaded from their outbox; events from the store.
        const changeKeys = messages
          .filter((m) => isChangeId(m.event_id))
          .map((m) => ({ accountId: m.account_id, id: m.event_id }));
        const [changes, [eventResult, deliveryResult]] = await Promise.all([
          loadChanges(db, changeKeys),
          db.batch([
            eventsByKeyStatement(
              db,
              messages
                .filter((m) => !isAlertId(m.event_id))
                .map((m) => ({ account_id: m.account_id, occurred_at: m.occurred_at, id: m.event_id })),
            ),
            deliveriesByKeyStatement(db, messages),
          ]),
        ]);
        return { shard, changes, eventResult, deliveryResult };
      }),
    ),
  ]);
  const subjects = new Map<string, { subject: Subject; shard: number | null }>();
  for (const a of alertResult.results)
    subjects.set(key(a.account_id, a.occurred_at, a.id), { subject: alertSubject(a), shard: null });
  const deliveriesByKey = new Map<string, { row: DeliveryStateRow; shard: number }>();
  for (const { shard, changes, eventResult, deliveryResult } of perShard) {
    for (const e of (eventResult?.results ?? []) as EventDbRow[])
      subjects.set(key(e.account_id, e.occurred_at, e.id), { subject: eventSubject(e), shard });
    for (const c of changes.values()) {
      subjects.set(key(c.accountId, c.occurredAt, c.id), {
        subject: {
          id: c.id,
          type: c.type,
          topic: c.topic === "" ? null : c.topic,
          campaign: null,
          from_domain: null,
          tags: [],
          timestamp: new Date(c.occurredAt).toISOString(),
          data: await toSuppression(c),
        },
        shard,
      });
    }
    for (const d of (deliveryResult?.results ?? []) as DeliveryStateRow[])
      deliveriesByKey.set(key(d.endpoint_id, d.event_occurred_at, d.event_id), { row: d, shard });
  }
  return parsed.map(({ message, m }, i) => {
    const found = subjects.get(key(m.account_id, m.occurred_at, m.event_id));
    const delivery = deliveriesByKey.get(key(m.endpoint_id, m.occurred_at, m.event_id));
    // The delivery row sits beside its subject (an event, or a suppression change on the account's
    // home shard); an outcome whose subject was purged since still finds its row.
    const shard = found?.shard ?? delivery?.shard ?? candidates[i]?.[0] ?? 0;
    return {
      message,
      m,
      db: shardDb(env, shard),
      existing: delivery?.row ?? null,
      event: found?.subject ?? null,
      endpoint: endpoints.get(m.account_id)?.find((e) => e.row.id === m.endpoint_id) ?? null,
    };
  });
}

/**
 * Records the batch's attempts. Failures first update their endpoint's health (start a failure
 * streak; disable on 410, or after 72 hours without a success), and an endpoint disabled now ends
 * its deliveries' runs. Then one round trip: each delivery's upsert, and for endpoints that
 * succeeded the end of a failure streak (a write only when there was one).
 */
async function recordAll(env: Env, attempted: Attempted[], closing: Closing[]): Promise<void> {
  // A failure of ours (the secret could not be opened) says nothing about the endpoint's health.
  const failures = attempted.filter(
    (a) => a.outcome.kind === "gone" || (a.outcome.kind === "failed" && a.outcome.ours !== true),
  );
  if (failures.length > 0) {
    const results = await env.DB.batch(failures.map((a) => endpointFailure(env, a)));
    const disabled = new Set<string>();
    results.forEach((r, i) => {
      const a = failures[i];
      if (a && (r.results[0] as { status?: string } | undefined)?.status === "disabled") {
        disabled.add(a.m.endpoint_id);
        forgetAccount(a.m.account_id);
      }
    });
    for (const a of failures) if (disabled.has(a.m.endpoint_id)) a.next = null;
  }
  // Endpoint health on the control database; each delivery on its event's shard (SPEC §17).
  const statements: D1PreparedStatement[] = [];
  const byDb = new Map<D1Database, D1PreparedStatement[]>();
  const onShard = (db: D1Database, statement: D1PreparedStatement) =>
    byDb.set(db, [...(byDb.get(db) ?? []), statement]);
  for (const c of closing) onShard(c.db, c.statement);
  const healed = new Set<string>();
  for (const a of attempted) {
    if (a.outcome.kind === "succeeded" && !healed.has(a.m.endpoint_id)) {
      healed.add(a.m.endpoint_id);
      statements.push(
        env.DB.prepare(
          "UPDATE webhook_endpoints SET failing_since = NULL WHERE account_id = ?1 AND id = ?2 AND failing_since IS NOT NULL",
        ).bind(a.m.account_id, a.m.endpoint_id),
      );
    }
    onShard(
      a.db,
      deliveryUpsert(a.db, a.m, a.eventType, {
        status: a.outcome.kind === "succeeded" ? "succeeded" : a.next === null ? "failed" : "pending",
        attempts: a.attempts - 1,
        counted: true,
        firstAttemptAt: a.firstAttemptAt,
        lastAttemptAt: a.at,
        nextAttemptAt: a.next?.at ?? null,
        responseStatus: a.outcome.status,
        error:
          a.outcome.kind === "failed"
            ? a.outcome.error
            : a.outcome.kind === "gone"
              ? "410 Gone: the endpoint was disabled"
              : null,
      }),
    );
  }
  await Promise.all([
    statements.length > 0 ? env.DB.batch(statements) : null,
    ...[...byDb].map(([db, list]) => db.batch(list)),
  ]);
}

/** A 410 disables at once; another failure starts the streak or, 72 hours into it, disables. */
function endpointFailure(env: Env, a: Attempted): D1PreparedStatement {
  if (a.outcome.kind === "gone") {
    return env.DB.prepare(
      `UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = 'gone', updated_at = ?3
       WHERE account_id = ?1 AND id = ?2 AND status = 'enabled' RETURNING status`,
    ).bind(a.m.account_id, a.m.endpoint_id, a.at);
  }
  return env.DB.prepare(
    `UPDATE webhook_endpoints SET
       failing_since = COALESCE(failing_since, ?3),
       status = CASE WHEN failing_since <= ?4 THEN 'disabled' ELSE status END,
       disabled_reason = CASE WHEN failing_since <= ?4 THEN 'failing' ELSE disabled_reason END,
       updated_at = CASE WHEN failing_since <= ?4 THEN ?3 ELSE updated_at END
     WHERE account_id = ?1 AND id = ?2 AND status = 'enabled' AND (failing_since IS NULL OR failing_since <= ?4)
     RETURNING status`,
  ).bind(a.m.account_id, a.m.endpoint_id, a.at, a.at - DELIVERY_WINDOW_MS);
}

/** POSTs the event, signed; never follows a redirect. */
async function attempt(
  env: Env,
  endpoint: WebhookEndpointRow,
  event: Subject,
  now: number,
  timeoutMs: number,
): Promise<Outcome> {
  const verdict = checkWebhookUrl(endpoint.url, config(env, "WEBHOOK_ALLOW_INSECURE_URLS"));
  if (!verdict.ok) return { kind: "failed", status: null, error: `not attempted: ${verdict.reason}` };
  const body = JSON.stringify({ type: event.type, timestamp: event.timestamp, data: event.data });
  const timestamp = Math.floor(now / 1000);
  let secrets: string[];
  try {
    secrets = await signingSecrets(env, endpoint, now);
  } catch (err) {
    // SECRETS_KEY missing or changed: ours to fix, visible in the deliveries list, retried on schedule.
    log("error", "webhook secret could not be opened", { endpoint_id: endpoint.id, ...describeError(err) });
    const why = err instanceof ApiError ? err.message : "the signing secret does not open under SECRETS_KEY";
    return { kind: "failed", status: null, error: `not attempted: ${why}`, ours: true };
  }
  const headers = {
    "content-type": "application/json",
    "user-agent": USER_AGENT,
    "webhook-id": event.id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": await signatureHeader(secrets, event.id, timestamp, body),
  };

  try {
    const res = await fetch(verdict.url, {
      method: "POST",
      headers,
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body?.cancel();
    if (res.status >= 200 && res.status < 300) return { kind: "succeeded", status: res.status };
    if (res.status === 410) return { kind: "gone", status: res.status };
    if (res.status >= 300 && res.status < 400) {
      return { kind: "failed", status: res.status, error: `redirect (${res.status}) not followed` };
    }
    return { kind: "failed", status: res.status, error: `HTTP ${res.status}` };
  } catch (err) {
    const name = err instanceof Error ? err.name : "";
    if (name === "TimeoutError" || name === "AbortError") {
      const limit = timeoutMs >= 1000 ? `${Math.round(timeoutMs / 1000)} s` : `${timeoutMs} ms`;
      return { kind: "failed", status: null, error: `no response within ${limit}` };
    }
    return {
      kind: "failed",
      status: null,
      error: `network error: ${err instanceof Error ? err.message : String(err)}`.slice(0, 300),
    };
  }
}

interface RecordFields {
  status: "pending" | "succeeded" | "failed";
  /** Attempts before this one. */
  attempts: number;
  /** Whether this record is an attempt (false: a run closed without one). */
  counted: boolean;
  firstAttemptAt: number;
  lastAttemptAt: number;
  nextAttemptAt?: number | null;
  responseStatus: number | null;
  error: string | null;
}

/** One upsert: the delivery's only write for this attempt. */
function deliveryUpsert(
  db: D1Database,
  m: WebhookMessage,
  eventType: string,
  f: RecordFields,
): D1PreparedStatement {
  return upsertDelivery(db, {
    endpoint_id: m.endpoint_id,
    event_occurred_at: m.occurred_at,
    event_id: m.event_id,
    account_id: m.account_id,
    event_type: eventType,
    status: f.status,
    attempts: f.attempts + (f.counted ? 1 : 0),
    first_attempt_at: f.firstAttemptAt,
    last_attempt_at: f.lastAttemptAt,
    next_attempt_at: f.nextAttemptAt ?? null,
    response_status: f.responseStatus,
    error: f.error,
  });
}
