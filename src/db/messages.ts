import { integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { DIMENSIONS, eventColumns } from "./event-record";

/**
 * Registered messages (POST /v1/messages, /v1/messages/instrument): the correlation dimensions that
 * the queue consumer copies onto every event of the message, one column per dimension of the event
 * (db/event-record.ts). WITHOUT ROWID on (account_id, email_id): one row written per registration,
 * and the consumer's enrichment join is a primary-key lookup.
 */
export const messages = sqliteTable(
  "messages",
  {
    accountId: text("account_id").notNull(),
    ...eventColumns(["email_id"]),
    ...eventColumns(DIMENSIONS),
    registeredAt: integer("registered_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.accountId, t.emailId] })],
);
