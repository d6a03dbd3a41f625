import {
  columnOf,
  DIMENSIONS,
  type Dimension,
  EVENT_FIELD_NAMES,
  type EventField,
  ID_DEDUPED_SQL,
  isList,
} from "../db/event-record";
import { EVERY_TOPIC } from "../db/suppressions";
import type { Env } from "../env";
import { MAP_EVENT_MESSAGE_IDS, MAP_REGISTERED_MESSAGE_IDS } from "../events/message-id-map";
import { domainOf } from "../events/record";
import { toStoredFields } from "../events/serialize";
import { describeError, log } from "../lib/log";
import { learnProvidersStatement } from "../mailbox/learned";
import { newClicksRollup, removedClicksRollup } from "../metrics/link-rollup";
import { backfillRollup, newEventsRollup, removedEventsRollup } from "../metrics/rollup";
import {
  type EventMessage,
  type QueueMessage,
  queueMessageSchema,
  type RegisterMessage,
} from "../pipeline/messages";
import { isSimulatorAddress } from "../suppressions/address";
import { type AddressRef, markPending, syncMirror } from "../suppressions/mirror";
import { findClickBursts } from "../tracking/burst-store";
import { FANOUT_COLUMNS, fanOutNewEvents, type StoredEvent } from "../webhooks/fanout";

/**
 * The EVENTS_QUEUE consumer: every event, registration and automatic suppression is written here.
 *
 * One D1 batch (one transaction) per queue batch. Rows travel as one JSON array per statement and
 * are unpacked with json_each, so a statement binds a single parameter however many rows it writes
 * (D1 allows 100 bound parameters). Events are `ON CONFLICT DO NOTHING` on their deterministic key,
 * registrations and suppressions are upserts, so a redelivered batch writes nothing twice.
 *
 * Enrichment happens inside the same transaction, in both orders: an event insert joins the
 * message's registration, and a registration back-fills the dimensions of events already stored.
 * D1 runs transactions one at a time, so whichever comes second sees the first.
 */

/** Keep each JSON parameter well under D1's 2 MB value limit. */
const MAX_JSON_PARAM_BYTES = 512 * 1024;

export function retryDelaySeconds(attempts: number): number {
  return Math.min(300, 5 * 2 ** Math.max(0, attempts - 1));
}

export async function handleEventsBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const valid: { message: Message<unknown>; body: QueueMessage }[] = [];
  for (const message of batch.messages) {
    const parsed = queueMessageSchema.safeParse(message.body);
    if (parsed.success) {
      valid.push({ message, body: parsed.data });
    } else {
      // It can never be written: retrying would only delay the rest. Acknowledge and keep a record.
      log("error", "invalid queue message dropped", {
        queue: batch.queue,
        message_id: message.id,
        issues: parsed.error.issues.slice(0, 5).map((i) => `${i.path.join(".")}: ${i.message}`),
      });
      message.ack();
    }
  }
  if (valid.length === 0) return;

  const bodies = valid.map((v) => v.body);
  let touched: AddressRef[];
  const inserted: StoredEvent[] = [];
  try {
    touched = await writeBatch(env, bodies, inserted);
  } catch (err) {
    log("error", "D1 write failed; retrying the batch", {
      queue: batch.queue,
      size: valid.length,
      ...describeError(err),
    });
    for (const { message } of valid) message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    return;
  }
  // Webhooks (SPEC §14): first arrivals only, before the ack; a failed send retries the batch,
  // whose retry fans its events out again (webhooks/fanout.ts explains why that delivers nothing twice).
  try {
    await fanOutNewEvents(
      env,
      valid.map(({ message, body }) => ({ attempts: message.attempts, body })),
      inserted,
    );
  } catch (err) {
    log("error", "webhook fan-out failed; retrying the batch", { queue: batch.queue, ...describeError(err) });
    for (const { message } of valid) message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    return;
  }
  for (const { message } of valid) message.ack();
  // D1 holds the change and its journal row now; a KV failure leaves the row for the reconcile.
  if (touched.length > 0) {
    try {
      await syncMirror(env, touched);
    } catch (err) {
      log("warn", "suppression mirror not updated; the reconcile will repair it", {
        queue: batch.queue,
        ...describeError(err),
      });
    }
  }
}

/**
 * Writes messages that failed before (dead letters, parked messages) and hands their new events to
 * the webhook fan-out, as the consumer does. They count as retried: an earlier attempt may have
 * committed and failed only at the fan-out, so their stored events are fanned out again and the
 * delivery side drops any (endpoint, event) pair already delivered (webhooks/fanout.ts).
 */
export async function writeRetried(env: Env, bodies: QueueMessage[]): Promise<AddressRef[]> {
  const inserted: StoredEvent[] = [];
  const touched = await writeBatch(env, bodies, inserted);
  await fanOutRetried(env, bodies, inserted);
  return touched;
}

/** The webhook half of writeRetried, for callers that must tell a D1 failure from a fan-out failure. */
export async function fanOutRetried(
  env: Env,
  bodies: QueueMessage[],
  inserted: StoredEvent[],
): Promise<void> {
  await fanOutNewEvents(
    env,
    bodies.map((body) => ({ attempts: 2, body })),
    inserted,
  );
}

/** Writes a batch of valid messages in one D1 transaction; returns the addresses whose suppressions changed. */
export async function writeBatch(
  env: Env,
  bodies: QueueMessage[],
  /** Filled with the events this batch inserted (first arrivals), for the webhook fan-out. */
  inserted?: StoredEvent[],
): Promise<AddressRef[]> {
  const registrations = bodies.filter((b): b is RegisterMessage => b.type === "register");
  // One event per id within a batch: a statement's NOT EXISTS cannot see rows it inserts itself.
  const seenEvents = new Set<string>();
  const arrived = bodies.filter((b): b is EventMessage => {
    if (b.type !== "event") return false;
    const key = `${b.event.account_id}\u0000${b.event.id}`;
    if (seenEvents.has(key)) return false;
    seenEvents.add(key);
    return true;
  });
  // Scanner bursts (SPEC §5): their clicks are not written, and any an earlier batch wrote are deleted
  // below. `bursts.dropped` / `bursts.removed` name them for anything that counts or forwards events.
  const bursts = await findClickBursts(env.DB, arrived);
  const events = bursts.kept;
  const statements: D1PreparedStatement[] = [];

  for (const chunk of chunkByJsonSize(registrations.map(registrationRow))) {
    statements.push(env.DB.prepare(UPSERT_MESSAGES).bind(chunk));
    statements.push(env.DB.prepare(REGISTERED_DOMAINS).bind(chunk));
    statements.push(env.DB.prepare(MAP_REGISTERED_MESSAGE_IDS).bind(chunk));
  }
  // Back-fill events that arrived before their registration. Only rows with a gap are written.
  const backfilled = new Set<string>();
  for (const r of registrations) {
    const key = `${r.account_id}\u0000${r.message.email_id}`;
    if (backfilled.has(key)) continue;
    backfilled.add(key);
    statements.push(...backfillRollup(env.DB, r.account_id, r.message.email_id));
    statements.push(env.DB.prepare(BACKFILL_EVENTS).bind(r.account_id, r.message.email_id));
  }

  // Before the events: a suppression is written only with its event's first arrival, so a
  // redelivered bounce cannot bring back an entry that was removed since.
  const suppressing = events.filter((e) => e.suppress && !isSimulatorAddress(e.event.recipient));
  const suppressionRows = suppressing.map((e) => ({
    ...eventRow(e),
    suppression_reason: e.suppress?.reason,
    suppression_topic: e.suppress?.topic ?? null,
    suppression_inherit_topic: e.suppress?.inherit_topic === true,
  }));
  for (const chunk of chunkByJsonSize(suppressionRows)) {
    statements.push(env.DB.prepare(INSERT_SUPPRESSIONS).bind(chunk));
  }
  const touched = suppressing.map((e) => ({ accountId: e.event.account_id, email: e.event.recipient }));
  // The mirror's journal, in the same transaction: the KV write below may fail, never silently.
  if (touched.length > 0) statements.push(markPending(env, touched, Date.now()));

  // Scanner bursts: take back what removed clicks counted in the rollups, then delete them.
  if (bursts.removed.length > 0) {
    statements.push(...removedEventsRollup(env.DB, bursts.removed));
    statements.push(removedClicksRollup(env.DB, bursts.removed));
  }
  statements.push(...bursts.statements);
  const insertAt: number[] = [];
  for (const chunk of chunkByJsonSize(events.map((e) => eventRow(e)))) {
    // Metrics (SPEC §15) before the insert: it counts the chunk's first arrivals only.
    statements.push(...newEventsRollup(env.DB, chunk));
    statements.push(newClicksRollup(env.DB, chunk));
    insertAt.push(statements.length);
    statements.push(env.DB.prepare(INSERT_EVENTS).bind(chunk));
    statements.push(env.DB.prepare(EVENT_DOMAINS).bind(chunk));
    statements.push(env.DB.prepare(MAP_EVENT_MESSAGE_IDS).bind(chunk));
  }

  // What SES said of receiving servers, per recipient domain (SPEC §15 mailbox_provider).
  const learned = learnProvidersStatement(
    env.DB,
    arrived.flatMap((e) =>
      e.mailbox_provider
        ? [{ domain: domainOf(e.event.recipient) ?? "", provider: e.mailbox_provider }].filter(
            (l) => l.domain,
          )
        : [],
    ),
    Date.now(),
  );
  if (learned) statements.push(learned);

  if (statements.length > 0) {
    const results = await env.DB.batch(statements);
    for (const i of insertAt) inserted?.push(...((results[i]?.results ?? []) as StoredEvent[]));
  }
  return touched;
}

const eventRow = (m: EventMessage) => ({ ...toStoredFields(m.event), network: m.network ?? null });

function registrationRow(r: RegisterMessage) {
  const row: Record<string, unknown> = {
    account_id: r.account_id,
    registered_at: r.registered_at,
    email_id: r.message.email_id,
  };
  for (const k of DIMENSIONS) row[k] = isList(k) ? JSON.stringify(r.message[k]) : r.message[k];
  return row;
}

/** JSON arrays of rows, each under the parameter size bound. */
function chunkByJsonSize(rows: object[]): string[] {
  const chunks: string[] = [];
  let current: string[] = [];
  let size = 2;
  for (const row of rows) {
    const json = JSON.stringify(row);
    if (current.length > 0 && size + json.length + 1 > MAX_JSON_PARAM_BYTES) {
      chunks.push(`[${current.join(",")}]`);
      current = [];
      size = 2;
    }
    current.push(json);
    size += json.length + 1;
  }
  if (current.length > 0) chunks.push(`[${current.join(",")}]`);
  return chunks;
}

// Rows travel as JSON keyed by field name (db/event-record.ts); each column reads its field.
const j = (field: string) => `json_extract(value, '$.${field}')`;
const col = columnOf;

/** A dimension's value: `fresh`, or `fallback` where fresh is empty (NULL; '[]' for a list). */
const fill = (k: Dimension, fresh: string, fallback: string) =>
  isList(k)
    ? `CASE WHEN ${fresh} = '[]' AND ${fallback} IS NOT NULL THEN ${fallback} ELSE ${fresh} END`
    : `COALESCE(${fresh}, ${fallback})`;
/** Whether `registered` would fill a gap in `have`. */
const gap = (k: Dimension, have: string, registered: string) =>
  isList(k)
    ? `(${have} = '[]' AND ${registered} <> '[]')`
    : `(${have} IS NULL AND ${registered} IS NOT NULL)`;

const UPSERT_MESSAGES = `
INSERT INTO messages (account_id, email_id, ${DIMENSIONS.map(col).join(", ")}, registered_at)
SELECT ${["account_id", "email_id", ...DIMENSIONS, "registered_at"].map(j).join(", ")}
FROM json_each(?1) WHERE true
ON CONFLICT (account_id, email_id) DO UPDATE SET
  ${DIMENSIONS.map((k) => `${col(k)} = ${fill(k, `excluded.${col(k)}`, `messages.${col(k)}`)}`).join(",\n  ")},
  registered_at = excluded.registered_at`;

const REGISTERED_DOMAINS = `
INSERT INTO sending_domains (account_id, domain, first_seen_at)
SELECT ${j("account_id")}, ${j("from_domain")}, MIN(${j("registered_at")})
FROM json_each(?1) WHERE ${j("from_domain")} IS NOT NULL GROUP BY 1, 2
ON CONFLICT DO NOTHING`;

// Named index: without it SQLite walks the account's whole time index for every registration.
const BACKFILL_EVENTS = `
UPDATE events INDEXED BY events_email_idx SET
  ${DIMENSIONS.map((k) => `${col(k)} = ${fill(k, `events.${col(k)}`, `m.${col(k)}`)}`).join(",\n  ")}
FROM messages AS m
WHERE m.account_id = ?1 AND m.email_id = ?2
  AND events.account_id = ?1 AND events.email_id = ?2
  AND (${DIMENSIONS.map((k) => gap(k, `events.${col(k)}`, `m.${col(k)}`)).join("\n       OR ")})`;

const EVENT_COLUMNS = ["account_id", ...EVENT_FIELD_NAMES.map(col)];
const EVENT_SELECT = ["account_id", ...EVENT_FIELD_NAMES]
  .map((k, i) => `${j(k)} AS ${EVENT_COLUMNS[i]}`)
  .join(", ");
const isDimension = (k: EventField): k is Dimension => (DIMENSIONS as EventField[]).includes(k);

// `network` is stored beside the event's fields for the consumer's burst detection (tracking/bursts.ts).
const INSERT_EVENTS = `
INSERT INTO events (${EVENT_COLUMNS.join(", ")}, network)
SELECT e.account_id, ${EVENT_FIELD_NAMES.map((k) => (isDimension(k) ? fill(k, `e.${col(k)}`, `m.${col(k)}`) : `e.${col(k)}`)).join(", ")}, e.network
FROM (SELECT ${EVENT_SELECT}, ${j("network")} AS network FROM json_each(?1)) AS e
LEFT JOIN messages AS m ON m.account_id = e.account_id AND m.email_id = e.email_id
-- These types take their time from the request that recorded them, so their deterministic id is the
-- only thing a repeat shares with the first (a repeated check; a replayed tracking token within its
-- bucket, SPEC §5): look it up (a few rows of one email's index).
WHERE e.type NOT IN (${ID_DEDUPED_SQL})
   OR NOT EXISTS (SELECT 1 FROM events AS x INDEXED BY events_email_idx
                   WHERE x.account_id = e.account_id AND x.email_id = e.email_id AND x.id = e.id)
ON CONFLICT DO NOTHING
RETURNING ${FANOUT_COLUMNS}`;

const EVENT_DOMAINS = `
INSERT INTO sending_domains (account_id, domain, first_seen_at)
SELECT e.account_id, COALESCE(e.from_domain, m.from_domain) AS domain, MIN(e.occurred_at)
FROM (SELECT ${j("account_id")} AS account_id, ${j("email_id")} AS email_id, ${j("from_domain")} AS from_domain,
             ${j("occurred_at")} AS occurred_at FROM json_each(?1)) AS e
LEFT JOIN messages AS m ON m.account_id = e.account_id AND m.email_id = e.email_id
WHERE COALESCE(e.from_domain, m.from_domain) IS NOT NULL
GROUP BY 1, 2
ON CONFLICT DO NOTHING`;

/**
 * A topic-less effect covers every topic (''), unless it asks to inherit the registered message's
 * topic and there is one. First entry wins: an address already suppressed
 * for that topic keeps its original reason and time.
 */
const INSERT_SUPPRESSIONS = `
INSERT INTO suppressions (account_id, email, topic, reason, email_id, suppressed_at)
SELECT s.account_id, s.recipient, s.topic, s.reason, s.email_id, s.occurred_at
FROM (
  SELECT ${j("account_id")} AS account_id, ${j("recipient")} AS recipient, ${j("email_id")} AS email_id,
         ${j("occurred_at")} AS occurred_at, ${j("id")} AS id, ${j("suppression_reason")} AS reason,
         COALESCE(${j("suppression_topic")},
                  CASE WHEN ${j("suppression_inherit_topic")}
                       THEN (SELECT m.topic FROM messages AS m
                              WHERE m.account_id = ${j("account_id")} AND m.email_id = ${j("email_id")}) END,
                  '${EVERY_TOPIC}') AS topic
  FROM json_each(?1)
) AS s
WHERE NOT EXISTS (SELECT 1 FROM events AS x INDEXED BY events_email_idx
                   WHERE x.account_id = s.account_id AND x.email_id = s.email_id AND x.id = s.id)
ON CONFLICT DO NOTHING`;
