import { index, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * Clicks dropped as part of a scanner burst (SPEC §5, src/tracking/bursts.ts). They are not events
 * (scanners are not recorded at all); they are remembered for two days so that the rest of a burst,
 * arriving in a later queue batch, is recognised and dropped too.
 *
 * Cost: two rows written per dropped burst click (the row and its time index entry; machine traffic
 * only, a person's click writes nothing here), and two more when the scheduled purge deletes it.
 * The consumer reads one recipient's marks through the primary key (WITHOUT ROWID,
 * scripts/without-rowid.mjs); the time index lets the purge read only the rows it deletes.
 */
export const clickBursts = sqliteTable(
  "click_bursts",
  {
    accountId: text("account_id").notNull(),
    emailId: text("email_id").notNull(),
    recipient: text("recipient").notNull(),
    occurredAt: integer("occurred_at").notNull(),
    /** The dropped click's event id. */
    id: text("id").notNull(),
    network: text("network"),
    /** linkOf(url, link_name) of src/tracking/bursts.ts. */
    link: text("link").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.accountId, t.emailId, t.recipient, t.occurredAt, t.id] }),
    index("click_bursts_time_idx").on(t.occurredAt),
  ],
);
