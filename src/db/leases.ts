import { integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * Leases of SPEC §18 (one export and one import per account at a time), in the control database:
 * one row per (account, kind) while held. A lease lapses `expires_at` after its holder last made
 * progress, so a holder that died frees it within 5 minutes. Rows written: 1 on acquire, 1 per
 * renewal (once per chunk of a stream or import), 1 on release.
 */
export const leases = sqliteTable(
  "leases",
  {
    accountId: text("account_id").notNull(),
    kind: text("kind").notNull(),
    holder: text("holder").notNull(),
    expiresAt: integer("expires_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.accountId, t.kind] })],
);
