import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * Leases of SPEC §18 (one export and one import per account at a time), in the control database:
 * one row per running slot, named `import:suppressions:<account>` and so on. A lease lapses at
 * `expires_at`, 5 minutes after its holder last made progress, so a holder that died frees it.
 * Rows written: 1 on take, 1 per renewal, 1 on release. (The same table as the hardening branch's,
 * which owns the module; see /work/signals/lease-api.md.)
 */
export const leases = sqliteTable("leases", {
  name: text("name").primaryKey(),
  holder: text("holder").notNull(),
  acquiredAt: integer("acquired_at").notNull(),
  expiresAt: integer("expires_at").notNull(),
});
