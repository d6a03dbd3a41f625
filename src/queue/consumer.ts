import type { Env } from "../env";
import { describeError, log } from "../lib/log";
import { type AddressRef, syncMirror } from "../suppressions/mirror";
import { findClickBursts } from "../tracking/burst-store";
import { type EventMessage, type QueueMessage, queueMessageSchema, type RegisterMessage } from "./messages";

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
const SIMULATOR_DOMAIN = "@simulator.amazonses.com";

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
  try {
    touched = await writeBatch(env, bodies);
  } catch (err) {
    log("error", "D1 write failed; retrying the batch", {
      queue: batch.queue,
      size: valid.length,
      ...describeError(err),
    });
    for (const { message } of valid) message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    return;
  }
  for (const { message } of valid) message.ack();
  // D1 holds the change now; a KV failure is logged and repaired by the reconcile, never retried here.
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

/** Writes a batch of valid messages in one D1 transaction; returns the addresses whose suppressions changed. */
export async function writeBatch(env: Env, bodies: QueueMessage[]): Promise<AddressRef[]> {
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
  }
  // Back-fill events that arrived before their registration. Only rows with a gap are written.
  const backfilled = new Set<string>();
  for (const r of registrations) {
    const key = `${r.account_id}\u0000${r.message.email_id}`;
    if (backfilled.has(key)) continue;
    backfilled.add(key);
    statements.push(env.DB.prepare(BACKFILL_EVENTS).bind(r.account_id, r.message.email_id));
  }

  // Before the events: a suppression is written only with its event's first arrival, so a
  // redelivered bounce cannot bring back an entry that was removed since.
  const suppressing = events.filter((e) => e.suppress && !e.event.recipient.endsWith(SIMULATOR_DOMAIN));
  const suppressionRows = suppressing.map((e) => ({
    ...eventRow(e),
    suppression_reason: e.suppress?.reason,
    suppression_topic: e.suppress?.topic ?? null,
    suppression_inherit_topic: e.suppress?.inherit_topic === true,
  }));
  for (const chunk of chunkByJsonSize(suppressionRows)) {
    statements.push(env.DB.prepare(INSERT_SUPPRESSIONS).bind(chunk));
  }

  statements.push(...bursts.statements);
  for (const chunk of chunkByJsonSize(events.map((e) => eventRow(e)))) {
    statements.push(env.DB.prepare(INSERT_EVENTS).bind(chunk));
    statements.push(env.DB.prepare(EVENT_DOMAINS).bind(chunk));
  }

  if (statements.length > 0) await env.DB.batch(statements);
  return suppressing.map((e) => ({ accountId: e.event.account_id, email: e.event.recipient }));
}

function eventRow(m: EventMessage) {
  return {
    ...m.event,
    tags: JSON.stringify(m.event.tags),
    tracking: m.event.tracking && JSON.stringify(m.event.tracking),
    network: m.network ?? null,
  };
}

function registrationRow(r: RegisterMessage) {
  return {
    account_id: r.account_id,
    registered_at: r.registered_at,
    ...r.message,
    tags: JSON.stringify(r.message.tags),
  };
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

const j = (field: string) => `json_extract(value, '$.${field}')`;

const UPSERT_MESSAGES = `
INSERT INTO messages (account_id, email_id, message_id, from_address, from_domain, subject, topic, campaign, template_id, tags, registered_at)
SELECT ${["account_id", "email_id", "message_id", "from", "from_domain", "subject", "topic", "campaign", "template_id", "tags", "registered_at"].map(j).join(", ")}
FROM json_each(?1) WHERE true
ON CONFLICT (account_id, email_id) DO UPDATE SET
  message_id = COALESCE(excluded.message_id, messages.message_id),
  from_address = COALESCE(excluded.from_address, messages.from_address),
  from_domain = COALESCE(excluded.from_domain, messages.from_domain),
  subject = COALESCE(excluded.subject, messages.subject),
  topic = COALESCE(excluded.topic, messages.topic),
  campaign = COALESCE(excluded.campaign, messages.campaign),
  template_id = COALESCE(excluded.template_id, messages.template_id),
  tags = CASE WHEN excluded.tags = '[]' THEN messages.tags ELSE excluded.tags END,
  registered_at = excluded.registered_at`;

const REGISTERED_DOMAINS = `
INSERT INTO sending_domains (account_id, domain, first_seen_at)
SELECT ${j("account_id")}, ${j("from_domain")}, MIN(${j("registered_at")})
FROM json_each(?1) WHERE ${j("from_domain")} IS NOT NULL GROUP BY 1, 2
ON CONFLICT DO NOTHING`;

const DIMENSIONS = [
  "message_id",
  "from_address",
  "from_domain",
  "subject",
  "topic",
  "campaign",
  "template_id",
];

// Named index: without it SQLite walks the account's whole time index for every registration.
const BACKFILL_EVENTS = `
UPDATE events INDEXED BY events_email_idx SET
  ${DIMENSIONS.map((d) => `${d} = COALESCE(events.${d}, m.${d})`).join(",\n  ")},
  tags = CASE WHEN events.tags = '[]' THEN m.tags ELSE events.tags END
FROM messages AS m
WHERE m.account_id = ?1 AND m.email_id = ?2
  AND events.account_id = ?1 AND events.email_id = ?2
  AND (${DIMENSIONS.map((d) => `(events.${d} IS NULL AND m.${d} IS NOT NULL)`).join(" OR ")}
       OR (events.tags = '[]' AND m.tags <> '[]'))`;

const EVENT_FIELDS = `
  ${j("account_id")} AS account_id, ${j("occurred_at")} AS occurred_at, ${j("id")} AS id, ${j("type")} AS type,
  ${j("email_id")} AS email_id, ${j("message_id")} AS message_id, ${j("from")} AS from_address,
  ${j("from_domain")} AS from_domain, ${j("recipient")} AS recipient, ${j("subject")} AS subject,
  ${j("topic")} AS topic, ${j("campaign")} AS campaign, ${j("template_id")} AS template_id, ${j("tags")} AS tags,
  ${j("smtp_code")} AS smtp_code, ${j("smtp_response")} AS smtp_response, ${j("bounce_type")} AS bounce_type,
  ${j("bounce_classification")} AS bounce_classification, ${j("complaint_type")} AS complaint_type,
  ${j("attempt")} AS attempt, ${j("tracking")} AS tracking, ${j("network")} AS network`;

const INSERT_EVENTS = `
INSERT INTO events (account_id, occurred_at, id, type, email_id, ${DIMENSIONS.join(", ")}, recipient,
  tags, smtp_code, smtp_response, bounce_type, bounce_classification, complaint_type, attempt, tracking, network)
SELECT e.account_id, e.occurred_at, e.id, e.type, e.email_id,
  ${DIMENSIONS.map((d) => `COALESCE(e.${d}, m.${d})`).join(", ")},
  e.recipient,
  CASE WHEN e.tags = '[]' AND m.tags IS NOT NULL THEN m.tags ELSE e.tags END,
  e.smtp_code, e.smtp_response, e.bounce_type, e.bounce_classification, e.complaint_type, e.attempt, e.tracking,
  e.network
FROM (SELECT ${EVENT_FIELDS} FROM json_each(?1)) AS e
LEFT JOIN messages AS m ON m.account_id = e.account_id AND m.email_id = e.email_id
-- email.suppressed takes its time from the check that recorded it, so its deterministic id is the
-- only thing a repeated check shares with the first: look it up (a few rows of one email's index).
WHERE e.type <> 'email.suppressed'
   OR NOT EXISTS (SELECT 1 FROM events AS x INDEXED BY events_email_idx
                   WHERE x.account_id = e.account_id AND x.email_id = e.email_id AND x.id = e.id)
ON CONFLICT DO NOTHING`;

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
                  '') AS topic
  FROM json_each(?1)
) AS s
WHERE NOT EXISTS (SELECT 1 FROM events AS x
                   WHERE x.account_id = s.account_id AND x.occurred_at = s.occurred_at AND x.id = s.id)
ON CONFLICT DO NOTHING`;
