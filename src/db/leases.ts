import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * Leases (SPEC §18), in the control database: one row per slot in use, such as "one export per
 * account at a time" (`export:events:<account>`) or "one replay per endpoint"
 * (`webhook-replay:<endpoint>`). A row is written when a slot is taken, about every 30 s while its
 * holder makes progress, and deleted when it is released; a row whose `expires_at` has passed is
 * free and is taken over by the next caller. Nothing per event; at most one row per running
 * export, import or replay.
 */
export const leases = sqliteTable("leases", {
  name: text("name").primaryKey(),
  /** A random token naming the holder: only it renews or releases the lease. */
  holder: text("holder").notNull(),
  acquiredAt: integer("acquired_at").notNull(),
  expiresAt: integer("expires_at").notNull(),
});
