import { DIMENSIONS } from "../db/event-record";
import { EVERY_TOPIC } from "../db/suppressions";
import {
  col,
  EVENT_COLUMNS,
  EVENT_JSON_SELECT,
  enrichedFields,
  fill,
  firstArrivalById,
  gap,
  jsonField as j,
  registrationOf,
  storedWithIdOf,
} from "./fragments";
import { newClicksRollup } from "./link-rollups";
import { MAP_EVENT_MESSAGE_IDS, MAP_REGISTERED_MESSAGE_IDS } from "./message-ids";
import { backfillRollup, newEventsRollup } from "./rollups";

/**
 * The queue consumer's writes (src/queue/consumer.ts decides what to write and runs them as one D1
 * batch): each function returns the statements for one chunk of rows, bound to the database it is
 * handed. Rows travel as one JSON array per statement and are unpacked with json_each, so a statement
 * binds a single parameter however many rows it writes (D1 allows 100 bound parameters).
 */

/** Keep each JSON parameter well under D1's 2 MB value limit. */
const MAX_JSON_PARAM_BYTES = 512 * 1024;

/** JSON arrays of rows, each under the parameter size bound. */
export function chunkByJsonSize(rows: object[]): string[] {
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

/** Columns an insert RETURNS for the webhook fan-out (webhooks/fanout.ts), in the events table's names. */
export const FANOUT_COLUMNS = "account_id, occurred_at, id, type, topic, campaign, from_domain, tags";

const UPSERT_MESSAGES = `
INSERT INTO messages (account_id, email_id, ${DIMENSIONS.map(col).join(", ")}, registered_at)
SELECT ${["account_id", "email_id", ...DIMENSIONS, "registered_at"].map((k) => j(k)).join(", ")}
FROM json_each(?1) WHERE true
ON CONFLICT (account_id, email_id) DO UPDATE SET
  ${DIMENSIONS.map((k) => `${col(k)} = ${fill(k, `excluded.${col(k)}`, `messages.${col(k)}`)}`).join(",\n  ")},
  registered_at = excluded.registered_at`;

const REGISTERED_DOMAINS = `
INSERT INTO sending_domains (account_id, domain, first_seen_at)
SELECT ${j("account_id")}, ${j("from_domain")}, MIN(${j("registered_at")})
FROM json_each(?1) WHERE ${j("from_domain")} IS NOT NULL GROUP BY 1, 2
ON CONFLICT DO NOTHING`;

/** A chunk of registration rows (`account_id`, `email_id`, the dimensions, `registered_at`). */
export function registrationStatements(db: D1Database, chunk: string): D1PreparedStatement[] {
  return [
    db.prepare(UPSERT_MESSAGES).bind(chunk),
    db.prepare(REGISTERED_DOMAINS).bind(chunk),
    db.prepare(MAP_REGISTERED_MESSAGE_IDS).bind(chunk),
  ];
}

// Named index: without it SQLite walks the account's whole time index for every registration.
const BACKFILL_EVENTS = `
UPDATE events INDEXED BY events_email_idx SET
  ${DIMENSIONS.map((k) => `${col(k)} = ${fill(k, `events.${col(k)}`, `m.${col(k)}`)}`).join(",\n  ")}
FROM messages AS m
WHERE m.account_id = ?1 AND m.email_id = ?2
  AND events.account_id = ?1 AND events.email_id = ?2
  AND (${DIMENSIONS.map((k) => gap(k, `events.${col(k)}`, `m.${col(k)}`)).join("\n       OR ")})`;

/** Back-fills the stored events of a registered email (rollups first); only rows with a gap are written. */
export function backfillStatements(
  db: D1Database,
  accountId: string,
  emailId: string,
): D1PreparedStatement[] {
  return [...backfillRollup(db, accountId, emailId), db.prepare(BACKFILL_EVENTS).bind(accountId, emailId)];
}

// `network` is stored beside the event's fields for the consumer's burst detection (tracking/bursts.ts).
const INSERT_EVENTS = `
INSERT INTO events (${EVENT_COLUMNS.join(", ")}, network)
SELECT e.account_id, ${enrichedFields("e", "m").join(", ")}, e.network
FROM (SELECT ${EVENT_JSON_SELECT}, ${j("network")} AS network FROM json_each(?1)) AS e
LEFT JOIN ${registrationOf("e")}
WHERE ${firstArrivalById("e")}
ON CONFLICT DO NOTHING
RETURNING ${FANOUT_COLUMNS}`;

const EVENT_DOMAINS = `
INSERT INTO sending_domains (account_id, domain, first_seen_at)
SELECT e.account_id, COALESCE(e.from_domain, m.from_domain) AS domain, MIN(e.occurred_at)
FROM (SELECT ${j("account_id")} AS account_id, ${j("email_id")} AS email_id, ${j("from_domain")} AS from_domain,
             ${j("occurred_at")} AS occurred_at FROM json_each(?1)) AS e
LEFT JOIN ${registrationOf("e")}
WHERE COALESCE(e.from_domain, m.from_domain) IS NOT NULL
GROUP BY 1, 2
ON CONFLICT DO NOTHING`;

/**
 * A chunk of event rows (stored fields keyed by field name, plus `network`): the rollups of its
 * first arrivals (quarter-hour, daily and link rollups, before the insert, which they must precede),
 * the insert, the sending domains and the Message-ID map. `insert` is the index of the statement
 * whose results are the inserted events.
 */
export function eventInsertStatements(
  db: D1Database,
  chunk: string,
): { statements: D1PreparedStatement[]; insert: number } {
  const rollups = [...newEventsRollup(db, chunk), newClicksRollup(db, chunk)];
  return {
    statements: [
      ...rollups,
      db.prepare(INSERT_EVENTS).bind(chunk),
      db.prepare(EVENT_DOMAINS).bind(chunk),
      db.prepare(MAP_EVENT_MESSAGE_IDS).bind(chunk),
    ],
    insert: rollups.length,
  };
}

/**
 * A topic-less effect covers every topic (''), unless it asks to inherit the registered message's
 * topic and there is one. First entry wins: an address already suppressed for that topic keeps its
 * original reason and time. Written only with its event's first arrival (the event is inserted after).
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
WHERE NOT ${storedWithIdOf("s")}
ON CONFLICT DO NOTHING`;

/** A chunk of event rows with `suppression_reason`, `suppression_topic`, `suppression_inherit_topic`. */
export function suppressionFromEventsStatement(db: D1Database, chunk: string): D1PreparedStatement {
  return db.prepare(INSERT_SUPPRESSIONS).bind(chunk);
}
