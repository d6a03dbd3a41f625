import { integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * Which emails carry a Message-ID, so that `GET /v1/events?message_id=` is an `email_id` query (an
 * index seek on events_email_idx) instead of a scan of the window. Written by the queue consumer with
 * `ON CONFLICT DO NOTHING`, from registrations and events that carry a message_id: one row written per
 * (account, message_id, email_id), that is once per email (+1 row per email, about +0.38 rows per event
 * over the benchmark's mix of 2.65 events per email); a repeated event or registration writes nothing.
 * WITHOUT ROWID on the lookup key; `email_id` is in the key because a Message-ID is not guaranteed
 * unique across a customer's emails. Purged with the email's registration (src/retention/).
 */
export const messageIds = sqliteTable(
  "message_ids",
  {
    accountId: text("account_id").notNull(),
    messageId: text("message_id").notNull(),
    emailId: text("email_id").notNull(),
    firstSeenAt: integer("first_seen_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.accountId, t.messageId, t.emailId] })],
);
