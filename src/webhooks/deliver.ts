import { type AlertDbRow, toPublicAlert } from "../alerts/schema";
import { config } from "../config";
import type { WebhookEndpointRow } from "../db/webhooks";
import type { Env } from "../env";
import { type EventDbRow, toPublicEvent } from "../events/serialize";
import { describeError, log } from "../lib/log";
import { DAY_MS } from "../lib/params";
import {
  type DeliveryStateRow,
  deliveriesByKeyStatement,
  eventsByKeyStatement,
  upsertDelivery,
} from "../store";
import { sendDeliveries } from "./enqueue";
import { matches } from "./match";
import { type WebhookMessage, webhookMessageSchema } from "./messages";
import { DELIVERY_WINDOW_MS, nextAttempt } from "./schedule";
import { signatureHeader } from "./signing";
import { type CachedEndpoint, endpointsOf, forgetAccount, signingSecrets } from "./store";
import { checkWebhookUrl } from "./url-safety";

/**
 * The WEBHOOKS_QUEUE consumer (SPEC §14). Each message is one delivery of a stored event to one
 * endpoint. Per batch: one D1 round trip reads the events and the delivery rows of every message;
 * the POSTs run concurrently (each bounded at 15 s, at most three in flight per endpoint); then one
 * round trip records every attempt, each as one upsert of its delivery row (webhook_deliveries: 1
 * row written) — failures first update their endpoint's health, which decides whether they retry.
 * Each message is then acknowledged or retried with the §14 schedule's delay.
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
/**
 * Fetches one endpoint may have in flight within a batch. Workers let an invocation wait on six
 * connections at once (a seventh queues until one has its headers), so one slow endpoint holds at
 * most three of them, each for at most 15 s, and the rest of the batch keeps the others.
 */
const PER_ENDPOINT_CONCURRENCY = 3;

export interface DeliveryOptions {
  /** The clock for the schedule and the records; tests move it instead of waiting. */
  now?: () => number;
  timeoutMs?: number;
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
  | { kind: "failed"; status: number | null; error: string };

interface Item {
  message: Message<unknown>;
  m: WebhookMessage;
  existing: DeliveryRow | null;
  event: Deliverable | null;
  endpoint: CachedEndpoint | null;
}

interface Attempted extends Item {
  event: Deliverable;
  endpoint: CachedEndpoint;
  outcome: Outcome;
  at: number;
  firstAttemptAt: number;
  attempts: number;
  next: { at: number; delaySeconds: number } | null;
}

/**
 * What one delivery carries: a stored event, or an alert (SPEC §19, `alt_…`), in the one envelope
 * `{type, timestamp, data}` with its id as `webhook-id`.
 */
interface Deliverable {
  id: string;
  type: string;
  /** What endpoint subscriptions look at (match.ts). */
  matchable: EventDbRow | { type: string; topic: null; campaign: null; from_domain: null; tags: string };
  envelope: () => { type: string; timestamp: string; data: unknown };
}

function eventDeliverable(e: EventDbRow): Deliverable {
  return {
    id: e.id,
    type: e.type,
    matchable: e,
    envelope: () => {
      const data = toPublicEvent(e);
      return { type: data.type, timestamp: data.occurred_at, data };
    },
  };
}

function alertDeliverable(a: AlertDbRow): Deliverable {
  return {
    id: a.id,
    type: a.type,
    matchable: { type: a.type, topic: null, campaign: null, from_domain: null, tags: "[]" },
    envelope: () => {
      const data = toPublicAlert(a);
      return { type: data.type, timestamp: data.occurred_at, data };
    },
  };
}

/** Alert deliveries name their alert by this prefix; every other id is an event's. */
const isAlertId = (id: string) => id.startsWith("alt_");

const key = (endpointId: string, occurredAt: number, eventId: string) =>
  `${endpointId}|${occurredAt}|${eventId}`;

export async function handleWebhookBatch(
  batch: MessageBatch<unknown>,
  env: Env,
  options: DeliveryOptions = {},
): Promise<void> {
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
  const retryAll = (items: { message: Message<unknown> }[], err: unknown) => {
    // D1 or the queue failed around the attempts: try the messages again later.
    log("error", "webhook deliveries failed unexpectedly; retrying", {
      size: items.length,
      ...describeError(err),
    });
    for (const { message } of items) message.retry({ delaySeconds: 30 });
  };

  let items: Item[];
  try {
    items = await loadItems(env, parsed, clock());
  } catch (err) {
    retryAll(parsed, err);
    return;
  }

  const closing: D1PreparedStatement[] = [];
  const closed: Message<unknown>[] = [];
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
            : !matches(endpoint.sub, event.matchable)
              ? "the endpoint no longer subscribes to this event"
              : null;
    if (stop === null) {
      toAttempt.push(item);
      continue;
    }
    if (existing?.status === "pending") {
      closing.push(
        deliveryUpsert(env, m, event?.type ?? "", {
          status: "failed",
          attempts: existing.attempts,
          counted: false,
          firstAttemptAt: existing.first_attempt_at,
          lastAttemptAt: existing.last_attempt_at,
          responseStatus: null,
          error: `stopped: ${stop}`,
        }),
      );
      closed.push(message);
    } else message.ack();
  }

  const attempted = await attemptAll(env, toAttempt, clock, options.timeoutMs ?? DELIVERY_TIMEOUT_MS);
  try {
    await recordAll(env, attempted, closing);
  } catch (err) {
    retryAll([...attempted, ...closed.map((message) => ({ message }))], err);
    return;
  }
  for (const message of closed) message.ack();

  const continuations: Attempted[] = [];
  for (const a of attempted) {
    if (a.next === null) a.message.ack();
    else if (
      Date.now() + a.next.delaySeconds * 1000 >
        a.message.timestamp.getTime() + QUEUE_RETENTION_MS - RETENTION_MARGIN_MS ||
      a.message.attempts >= MAX_MESSAGE_ATTEMPTS
    ) {
      continuations.push(a);
    } else a.message.retry({ delaySeconds: a.next.delaySeconds });
  }
  if (continuations.length > 0) {
    // These messages would expire (or run out of retries) before their runs end: continue in new ones.
    try {
      await sendDeliveries(
        env,
        continuations.map((a) => ({
          body: { ...a.m, continued: true },
          delaySeconds: a.next?.delaySeconds ?? 1,
        })),
      );
      for (const a of continuations) a.message.ack();
    } catch (err) {
      log("error", "webhook continuation not queued; retrying the message instead", describeError(err));
      for (const a of continuations) a.message.retry({ delaySeconds: a.next?.delaySeconds ?? 60 });
    }
  }
}

/** One D1 round trip for the batch: each message's stored event and delivery row; endpoints from the cache. */
async function loadItems(
  env: Env,
  parsed: { message: Message<unknown>; m: WebhookMessage }[],
  now: number,
): Promise<Item[]> {
  // Alerts (alt_…) are in the control database; every other id names a stored event.
  const alertKeys = JSON.stringify(
    parsed.filter(({ m }) => isAlertId(m.event_id)).map(({ m }) => [m.account_id, m.occurred_at, m.event_id]),
  );
  const [endpoints, [eventResult, deliveryResult, alertResult]] = await Promise.all([
    endpointsOf(
      env,
      parsed.map(({ m }) => m.account_id),
      now,
    ),
    env.DB.batch([
      eventsByKeyStatement(
        env.DB,
        parsed
          .filter(({ m }) => !isAlertId(m.event_id))
          .map(({ m }) => ({ account_id: m.account_id, occurred_at: m.occurred_at, id: m.event_id })),
      ),
      deliveriesByKeyStatement(
        env.DB,
        parsed.map(({ m }) => m),
      ),
      env.DB.prepare(
        `SELECT a.* FROM json_each(?1) AS k JOIN alerts AS a
           ON a.account_id = k.value->>0 AND a.occurred_at = k.value->>1 AND a.id = k.value->>2`,
      ).bind(alertKeys),
    ]),
  ]);
  const eventsByKey = new Map<string, Deliverable>([
    ...((eventResult?.results ?? []) as EventDbRow[]).map(
      (e) => [key(e.account_id, e.occurred_at, e.id), eventDeliverable(e)] as const,
    ),
    ...((alertResult?.results ?? []) as AlertDbRow[]).map(
      (a) => [key(a.account_id, a.occurred_at, a.id), alertDeliverable(a)] as const,
    ),
  ]);
  const deliveriesByKey = new Map(
    ((deliveryResult?.results ?? []) as DeliveryStateRow[]).map((d) => [
      key(d.endpoint_id, d.event_occurred_at, d.event_id),
      d,
    ]),
  );
  return parsed.map(({ message, m }) => ({
    message,
    m,
    existing: deliveriesByKey.get(key(m.endpoint_id, m.occurred_at, m.event_id)) ?? null,
    event: eventsByKey.get(key(m.account_id, m.occurred_at, m.event_id)) ?? null,
    endpoint: endpoints.get(m.account_id)?.find((e) => e.row.id === m.endpoint_id) ?? null,
  }));
}

/** The POSTs, concurrently: every endpoint at once, at most PER_ENDPOINT_CONCURRENCY each. */
async function attemptAll(
  env: Env,
  items: Item[],
  clock: () => number,
  timeoutMs: number,
): Promise<Attempted[]> {
  const byEndpoint = new Map<string, Item[]>();
  for (const item of items)
    byEndpoint.set(item.m.endpoint_id, [...(byEndpoint.get(item.m.endpoint_id) ?? []), item]);
  const out: Attempted[] = [];
  const one = async (item: Item) => {
    const event = item.event as Deliverable;
    const endpoint = item.endpoint as CachedEndpoint;
    const newRun = item.m.replay === true && item.message.attempts === 1 && item.m.continued !== true;
    const at = clock();
    const firstAttemptAt = item.existing === null || newRun ? at : item.existing.first_attempt_at;
    const attempts = (item.existing?.attempts ?? 0) + 1;
    const outcome = await attempt(env, endpoint.row, event, at, timeoutMs);
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
    out.push({ ...item, event, endpoint, outcome, at, firstAttemptAt, attempts, next });
  };
  await Promise.all(
    [...byEndpoint.values()].map((queue) =>
      Promise.all(
        Array.from({ length: Math.min(PER_ENDPOINT_CONCURRENCY, queue.length) }, async () => {
          for (let item = queue.shift(); item !== undefined; item = queue.shift()) await one(item);
        }),
      ),
    ),
  );
  return out;
}

/**
 * Records the batch's attempts. Failures first update their endpoint's health (start a failure
 * streak; disable on 410, or after 72 hours without a success), and an endpoint disabled now ends
 * its deliveries' runs. Then one round trip: each delivery's upsert, and for endpoints that
 * succeeded the end of a failure streak (a write only when there was one).
 */
async function recordAll(env: Env, attempted: Attempted[], closing: D1PreparedStatement[]): Promise<void> {
  const failures = attempted.filter((a) => a.outcome.kind !== "succeeded");
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
  const statements = [...closing];
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
    statements.push(
      deliveryUpsert(env, a.m, a.event.type, {
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
  if (statements.length > 0) await env.DB.batch(statements);
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
  event: Deliverable,
  now: number,
  timeoutMs: number,
): Promise<Outcome> {
  const verdict = checkWebhookUrl(endpoint.url, config(env, "WEBHOOK_ALLOW_INSECURE_URLS"));
  if (!verdict.ok) return { kind: "failed", status: null, error: `not attempted: ${verdict.reason}` };
  const body = JSON.stringify(event.envelope());
  const timestamp = Math.floor(now / 1000);
  const headers = {
    "content-type": "application/json",
    "user-agent": USER_AGENT,
    "webhook-id": event.id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": await signatureHeader(signingSecrets(endpoint, now), event.id, timestamp, body),
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
  env: Env,
  m: WebhookMessage,
  eventType: string,
  f: RecordFields,
): D1PreparedStatement {
  return upsertDelivery(env.DB, {
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
