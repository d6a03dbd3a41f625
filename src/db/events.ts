import { index, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { EVENT_FIELD_NAMES, eventColumns } from "./event-record";

/**
 * Events, the table every write lands in. Write cost decides its shape: D1 bills every index entry
 * an insert touches as one more row written, so an event costs 1 + (number of secondary indexes).
 *
 * - The table is WITHOUT ROWID (see scripts/without-rowid.mjs) and clustered on its primary key
 *   (account_id, occurred_at, id). That key is the time index: the default query (one account, a
 *   time window, newest first, keyset on (occurred_at, id)) walks it backwards and reads only the
 *   rows it returns. A rowid table would need a separate time index and one more write per event.
 *   `id` is deterministic (SNS MessageId + recipient, or fixed when a tracking hit is queued), so a
 *   redelivered event conflicts on this key and `ON CONFLICT DO NOTHING` writes nothing.
 * - Two secondary indexes, for the two filters that select a handful of rows out of millions and
 *   that platforms query most (one email's history; one recipient's history). Each ends with
 *   occurred_at, and WITHOUT ROWID indexes carry the rest of the key (id), so each serves the
 *   filter, the window and the newest-first keyset order from the index alone.
 * - Everything else (event_type, topic, campaign, template_id, domain, tags, message_id) is a
 *   residual filter on the time-ordered scan. Each extra index would add a row written to every
 *   event forever; these filters are low-cardinality or rare, and BENCHMARKS.md measures what they
 *   read. Together: 3 rows written per event.
 * Correlation dimensions are copied onto the event at write time (from the message's
 * registration), so filtering never joins. The columns are derived from the event's one
 * declaration (db/event-record.ts).
 */
export const events = sqliteTable(
  "events",
  // The key's columns first (account_id is not an event field: the record carries it beside them),
  // then every field of the root in SPEC §8 order.
  {
    accountId: text("account_id").notNull(),
    ...eventColumns(["occurred_at", "id"]),
    ...eventColumns(EVENT_FIELD_NAMES.filter((k) => k !== "occurred_at" && k !== "id")),
    /**
     * Clicks only: the network the click came from (networkOf in src/tracking/bursts.ts), so that a
     * later batch can tell a scanner burst. Not an event field (§8): stored beside it, no extra row.
     */
    network: text("network"),
  },
  (t) => [
    primaryKey({ columns: [t.accountId, t.occurredAt, t.id] }),
    index("events_email_idx").on(t.accountId, t.emailId, t.occurredAt),
    index("events_recipient_idx").on(t.accountId, t.recipient, t.occurredAt),
  ],
);
