import { config } from "../config";
import type { WebhookEndpointRow } from "../db/webhooks";
import type { Env } from "../env";
import { type EventDbRow, toPublicEvent } from "../events/serialize";
import { describeError, log } from "../lib/log";
import { sendDeliveries } from "./enqueue";
import { matches } from "./match";
import { type WebhookMessage, webhookMessageSchema } from "./messages";
import { DELIVERY_WINDOW_MS, nextAttempt } from "./schedule";
import { signatureHeader } from "./signing";
import { endpointsOf, forgetAccount, signingSecrets } from "./store";
import { checkWebhookUrl } from "./url-safety";

/**
 * The WEBHOOKS_QUEUE consumer (SPEC §14). Each message is one delivery of a stored event to one
 * endpoint; a batch's messages are delivered concurrently, each fetch bounded at 15 s, so one slow
 * endpoint never holds the others for longer than that. Every attempt ends in one upsert of the
 * delivery row (webhook_deliveries; 1 row written) and either an ack or `message.retry` with the
 * §14 schedule's delay. The endpoint row is written only when its health changes.
 *
 * Idempotency: a first-run message (not a retry, replay or continuation) for a pair that already
 * has a delivery row is a duplicate fan-out and is dropped, so a redelivered events batch never
 * POSTs twice. Replays start a new run on the same row with the same `webhook-id`.
 */

export const DELIVERY_TIMEOUT_MS = 15_000;
export const USER_AGENT = "mailtrail-webhooks/1";
/** Queues keeps a message 4 days by default; a run that would outlive that is re-enqueued. */
const QUEUE_RETENTION_MS = 4 * 86_400_000;
const RETENTION_MARGIN_MS = 12 * 3600_000;
/** Queues allows at most 100 retries per message (the consumer's max_retries). */
const MAX_MESSAGE_ATTEMPTS = 90;

export interface DeliveryOptions {
  /** The clock for the schedule and the records; tests move it instead of waiting. */
  now?: () => number;
  timeoutMs?: number;
}

/**
 * Fetches one endpoint may have in flight within a batch. Workers let an invocation wait on six
 * connections at once (a seventh queues until one has its headers), so one slow endpoint holds at
 * most two of them, each for at most 15 s, and the rest of the batch keeps four.
 */
const PER_ENDPOINT_CONCURRENCY = 2;

export async function handleWebhookBatch(
  batch: MessageBatch<unknown>,
  env: Env,
  options: DeliveryOptions = {},
): Promise<void> {
  const byEndpoint = new Map<string, Message<unknown>[]>();
  for (const message of batch.messages) {
    const endpointId = (message.body as { endpoint_id?: unknown } | null)?.endpoint_id;
    const key = typeof endpointId === "string" ? endpointId : "";
    byEndpoint.set(key, [...(byEndpoint.get(key) ?? []), message]);
  }
  const one = async (message: Message<unknown>) => {
    try {
      await deliverMessage(message, env, options);
    } catch (err) {
      // D1 or the queue failed around the attempt: try the message again later.
      log("error", "webhook delivery failed unexpectedly; retrying", {
        message_id: message.id,
        ...describeError(err),
      });
      message.retry({ delaySeconds: 30 });
    }
  };
  await Promise.all(
    [...byEndpoint.values()].map(async (messages) => {
      const lanes = Array.from({ length: Math.min(PER_ENDPOINT_CONCURRENCY, messages.length) }, async () => {
        for (let m = messages.shift(); m !== undefined; m = messages.shift()) await one(m);
      });
      await Promise.all(lanes);
    }),
  );
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

async function deliverMessage(message: Message<unknown>, env: Env, options: DeliveryOptions): Promise<void> {
  const parsed = webhookMessageSchema.safeParse(message.body);
  if (!parsed.success) {
    log("error", "invalid webhook message dropped", { message_id: message.id });
    message.ack();
    return;
  }
  const m = parsed.data;
  const now = (options.now ?? Date.now)();
  const [endpoints, [eventResult, deliveryResult]] = await Promise.all([
    endpointsOf(env, [m.account_id], now),
    env.DB.batch([
      env.DB.prepare("SELECT * FROM events WHERE account_id = ?1 AND occurred_at = ?2 AND id = ?3").bind(
        m.account_id,
        m.occurred_at,
        m.event_id,
      ),
      env.DB.prepare(
        `SELECT status, attempts, first_attempt_at, last_attempt_at FROM webhook_deliveries
         WHERE endpoint_id = ?1 AND event_occurred_at = ?2 AND event_id = ?3`,
      ).bind(m.endpoint_id, m.occurred_at, m.event_id),
    ]),
  ]);
  const existing = (deliveryResult?.results[0] as DeliveryRow | undefined) ?? null;
  const event = (eventResult?.results[0] as EventDbRow | undefined) ?? null;
  const endpoint = endpoints.get(m.account_id)?.find((e) => e.row.id === m.endpoint_id) ?? null;

  const newRun = m.replay === true && message.attempts === 1 && m.continued !== true;
  const continuing = message.attempts > 1 || m.continued === true;
  if (existing !== null && !newRun) {
    // A duplicate fan-out of a pair already delivered or being delivered, or a run already over.
    if (!continuing || existing.status !== "pending") {
      message.ack();
      return;
    }
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
          : !matches(endpoint.sub, { ...event, tags: event.tags })
            ? "the endpoint no longer subscribes to this event"
            : null;
  if (stop !== null || event === null || endpoint === null) {
    if (existing?.status === "pending") {
      await deliveryUpsert(env, m, event?.type ?? "", {
        status: "failed",
        attempts: existing.attempts,
        counted: false,
        firstAttemptAt: existing.first_attempt_at,
        lastAttemptAt: existing.last_attempt_at,
        responseStatus: null,
        error: `stopped: ${stop}`,
      }).run();
    }
    message.ack();
    return;
  }

  const firstAttemptAt = existing === null || newRun ? now : existing.first_attempt_at;
  const attempts = (existing?.attempts ?? 0) + 1;
  const outcome = await attempt(env, endpoint.row, event, now, options.timeoutMs ?? DELIVERY_TIMEOUT_MS);

  let next: { at: number; delaySeconds: number } | null = null;
  const statements: D1PreparedStatement[] = [];
  if (outcome.kind === "succeeded") {
    statements.push(
      env.DB.prepare(
        "UPDATE webhook_endpoints SET failing_since = NULL WHERE account_id = ?1 AND id = ?2 AND failing_since IS NOT NULL",
      ).bind(m.account_id, m.endpoint_id),
    );
  } else if (outcome.kind === "gone") {
    statements.push(
      env.DB.prepare(
        `UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = 'gone', updated_at = ?3
         WHERE account_id = ?1 AND id = ?2 AND status = 'enabled' RETURNING status`,
      ).bind(m.account_id, m.endpoint_id, now),
    );
  } else {
    next = nextAttempt(firstAttemptAt, attempts, now);
    // Starts the failure streak, or disables an endpoint without a success for 72 hours.
    statements.push(
      env.DB.prepare(
        `UPDATE webhook_endpoints SET
           failing_since = COALESCE(failing_since, ?3),
           status = CASE WHEN failing_since <= ?4 THEN 'disabled' ELSE status END,
           disabled_reason = CASE WHEN failing_since <= ?4 THEN 'failing' ELSE disabled_reason END,
           updated_at = CASE WHEN failing_since <= ?4 THEN ?3 ELSE updated_at END
         WHERE account_id = ?1 AND id = ?2 AND status = 'enabled' AND (failing_since IS NULL OR failing_since <= ?4)
         RETURNING status`,
      ).bind(m.account_id, m.endpoint_id, now, now - DELIVERY_WINDOW_MS),
    );
  }
  if (outcome.kind !== "succeeded") {
    // The endpoint's answer decides the delivery's: disabled now means no retry.
    const [result] = await env.DB.batch(statements.splice(0));
    if ((result?.results[0] as { status?: string } | undefined)?.status === "disabled") {
      forgetAccount(m.account_id);
      next = null;
    }
  }
  const upsert = deliveryUpsert(env, m, event.type, {
    status: outcome.kind === "succeeded" ? "succeeded" : next === null ? "failed" : "pending",
    attempts: attempts - 1,
    counted: true,
    firstAttemptAt,
    lastAttemptAt: now,
    nextAttemptAt: next?.at ?? null,
    responseStatus: outcome.status,
    error:
      outcome.kind === "failed"
        ? outcome.error
        : outcome.kind === "gone"
          ? "410 Gone: the endpoint was disabled"
          : null,
  });
  // One round trip; the success path's endpoint statement writes only when a failure streak ends.
  await env.DB.batch([...statements, upsert]);
  if (next === null) {
    message.ack();
  } else if (
    Date.now() + next.delaySeconds * 1000 >
      message.timestamp.getTime() + QUEUE_RETENTION_MS - RETENTION_MARGIN_MS ||
    message.attempts >= MAX_MESSAGE_ATTEMPTS
  ) {
    // This message would expire (or run out of retries) before the run ends: continue in a new one.
    await sendDeliveries(env, [{ body: { ...m, continued: true }, delaySeconds: next.delaySeconds }]);
    message.ack();
  } else {
    message.retry({ delaySeconds: next.delaySeconds });
  }
}

/** POSTs the event, signed; never follows a redirect. */
async function attempt(
  env: Env,
  endpoint: WebhookEndpointRow,
  event: EventDbRow,
  now: number,
  timeoutMs: number,
): Promise<Outcome> {
  const verdict = checkWebhookUrl(endpoint.url, config(env, "WEBHOOK_ALLOW_INSECURE_URLS"));
  if (!verdict.ok) return { kind: "failed", status: null, error: `not attempted: ${verdict.reason}` };
  const data = toPublicEvent(event);
  const body = JSON.stringify({ type: data.type, timestamp: data.occurred_at, data });
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
  return env.DB.prepare(
    `INSERT INTO webhook_deliveries (endpoint_id, event_occurred_at, event_id, account_id, event_type, status,
       attempts, first_attempt_at, last_attempt_at, next_attempt_at, response_status, error)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
     ON CONFLICT DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
       first_attempt_at = excluded.first_attempt_at, last_attempt_at = excluded.last_attempt_at,
       next_attempt_at = excluded.next_attempt_at, response_status = excluded.response_status, error = excluded.error`,
  ).bind(
    m.endpoint_id,
    m.occurred_at,
    m.event_id,
    m.account_id,
    eventType,
    f.status,
    f.attempts + (f.counted ? 1 : 0),
    f.firstAttemptAt,
    f.lastAttemptAt,
    f.nextAttemptAt ?? null,
    f.responseStatus,
    f.error,
  );
}
