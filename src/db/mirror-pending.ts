import { integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * The KV mirror's journal: an address whose suppressions changed in D1 and whose KV value has not yet
 * been confirmed written. Every change to `suppressions` upserts its address here in the same D1
 * transaction; the writer deletes the row once KV holds what D1 holds (src/suppressions/mirror.ts), and
 * the scheduled reconcile repairs every row left behind (a failed KV write, a Worker that died between
 * D1 and KV). `token` changes with every change, so a writer only clears the row it mirrored, never a
 * newer change's. WITHOUT ROWID on (account_id, email). Cost: 2 rows written per suppression change
 * (the upsert and the delete); suppressions are rare next to events (about +0.02 rows per event).
 */
export const mirrorPending = sqliteTable(
  "mirror_pending",
  {
    accountId: text("account_id").notNull(),
    email: text("email").notNull(),
    token: text("token").notNull(),
    /** When the oldest unmirrored change of the address was made (epoch ms): the backlog's age. */
    since: integer("since").notNull(),
  },
  (t) => [primaryKey({ columns: [t.accountId, t.email] })],
);
