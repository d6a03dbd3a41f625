import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/** Accounts with a plan other than the default. An account with no row has DEFAULT_PLAN (SPEC §11). */
export const accounts = sqliteTable("accounts", {
  id: text("id").primaryKey(),
  plan: text("plan").notNull(),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
  /**
   * Since when the account's stored events are complete (epoch ms), set when a plan change lengthens
   * its retention: before it, the purge may have removed events under the shorter plan that the
   * longer window now covers, while the rollups still count them. Totals and offset pages count the
   * events before it and the rollups after it (events/hour-reads.ts). Null: complete for the whole
   * retention. One column of the control database's accounts row: nothing per event.
   */
  eventsCompleteFrom: integer("events_complete_from"),
});
