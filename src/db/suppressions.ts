import { index, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * The suppression list, the truth that KV mirrors. WITHOUT ROWID on (account_id, email, topic):
 * `topic` is '' for an entry that covers every topic (NULL would not take part in the key), so an
 * address has at most one entry per topic and adds are idempotent. The one secondary index serves
 * the newest-first listing with its keyset (suppressed_at, email, topic). Entry ids (`sup_…`) are
 * derived from the key when an entry is shown, so there is no id column to keep consistent.
 */
export const suppressions = sqliteTable(
  "suppressions",
  {
    accountId: text("account_id").notNull(),
    email: text("email").notNull(),
    topic: text("topic").notNull().default(""),
    reason: text("reason").notNull(),
    emailId: text("email_id"),
    suppressedAt: integer("suppressed_at").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.accountId, t.email, t.topic] }),
    index("suppressions_recent_idx").on(t.accountId, t.suppressedAt),
  ],
);
export type SuppressionRow = typeof suppressions.$inferSelect;

/** The `topic` column of an every-topic entry: '' (it takes part in the primary key; NULL would not). */
export const EVERY_TOPIC = "";
/** A topic as stored: '' for every topic (null in the API and the mirror). */
export const topicColumn = (topic: string | null): string => topic ?? EVERY_TOPIC;
/** A stored topic as the API and the mirror show it: null for every topic. */
export const topicOfColumn = (column: string): string | null => (column === EVERY_TOPIC ? null : column);
