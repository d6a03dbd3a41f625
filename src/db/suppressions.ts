import { sql } from "drizzle-orm";
import { index, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * The suppression list, the truth that KV mirrors. WITHOUT ROWID on (account_id, email, topic):
 * `topic` is '' for an entry that covers every topic (NULL would not take part in the key), so an
 * address has at most one entry per topic and adds are idempotent. The one secondary index serves
 * the newest-first listing with its keyset (suppressed_at, email, topic). Entry ids (`sup_…`) are
 * derived from the key when an entry is shown, so there is no id column to keep consistent.
 *
 * `email` is the entry's lookup key: the lowercased address, or for an erased address (SPEC §20)
 * `#` followed by its `email_hash` (an HMAC, src/suppressions/erasure-hash.ts), which can never be
 * an address (no `@`). So a hashed entry keeps the key's uniqueness and its own mirror key.
 *
 * `expires_at` (epoch ms, null: never): the entry stops suppressing at that instant (check and KV
 * honour it; reads filter it) and the scheduled work deletes it. suppressions_expiry_idx is partial
 * (only rows with an expiry), so entries without one cost nothing more; an expiring entry costs one
 * more row written (the index entry) on insert and on delete.
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
    expiresAt: integer("expires_at"),
    emailHash: text("email_hash"),
  },
  (t) => [
    primaryKey({ columns: [t.accountId, t.email, t.topic] }),
    index("suppressions_recent_idx").on(t.accountId, t.suppressedAt),
    index("suppressions_expiry_idx").on(t.expiresAt).where(sql`${t.expiresAt} IS NOT NULL`),
  ],
);
export type SuppressionRow = typeof suppressions.$inferSelect;

/** The `topic` column of an every-topic entry: '' (it takes part in the primary key; NULL would not). */
export const EVERY_TOPIC = "";
/** A topic as stored: '' for every topic (null in the API and the mirror). */
export const topicColumn = (topic: string | null): string => topic ?? EVERY_TOPIC;
/** A stored topic as the API and the mirror show it: null for every topic. */
export const topicOfColumn = (column: string): string | null => (column === EVERY_TOPIC ? null : column);
/** The `email` key column of an erased address's hashed entries. */
export const hashedKey = (emailHash: string) => `#${emailHash}`;

/**
 * Every add and remove of a suppression entry, whatever caused it (SPEC §10, §14): the outbox of the
 * `suppression.created` / `suppression.deleted` webhooks. A change is written in the same D1
 * transaction as the change itself, `pending = 1`; after the commit the writer hands pending changes
 * to the webhook fan-out and clears the flag, and the scheduled work pushes whatever a failed writer
 * left (src/suppressions/changes.ts). The row holds the entry as it was (the §10 data), so a delivery
 * attempted later still has it; `email` is the entry's key column (a hashed key for an erased
 * address, never the address once erased). `id` (`sch_…`) is the webhook-id: stored, so stable
 * across retries. WITHOUT ROWID on (account_id, id); kept 7 days (the 72-hour retry window with room),
 * found by the purge through suppression_changes_time_idx. Cost per change: 1 row + the time index +
 * the pending index (written, then removed when pushed): about 5 rows written, once per add or
 * remove, which are rare next to events.
 */
export const suppressionChanges = sqliteTable(
  "suppression_changes",
  {
    accountId: text("account_id").notNull(),
    id: text("id").notNull(),
    occurredAt: integer("occurred_at").notNull(),
    /** suppression.created or suppression.deleted */
    type: text("type").notNull(),
    email: text("email").notNull(),
    emailHash: text("email_hash"),
    topic: text("topic").notNull(),
    reason: text("reason").notNull(),
    emailId: text("email_id"),
    suppressedAt: integer("suppressed_at").notNull(),
    expiresAt: integer("expires_at"),
    pending: integer("pending").notNull().default(1),
  },
  (t) => [
    primaryKey({ columns: [t.accountId, t.id] }),
    index("suppression_changes_time_idx").on(t.occurredAt),
    index("suppression_changes_pending_idx").on(t.pending).where(sql`${t.pending} = 1`),
  ],
);
export type SuppressionChangeRow = typeof suppressionChanges.$inferSelect;
