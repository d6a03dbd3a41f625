import { index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * Suppression imports (SPEC §10), in the control database. One row per import, rewritten once per
 * processed chunk (`offset`, `line` and the counts are its progress): about 1 row written per 5,000
 * imported rows. The uploaded file waits in R2 (`imports/{id}`) until the import ends.
 * suppression_imports_status_idx finds imports left running by a Worker that died (the scheduled
 * work resumes them).
 */
export const suppressionImports = sqliteTable(
  "suppression_imports",
  {
    id: text("id").primaryKey(),
    accountId: text("account_id").notNull(),
    status: text("status").notNull(),
    format: text("format").notNull(),
    /** Bytes of the file processed so far (a chunk ends at a line boundary). */
    offset: integer("offset").notNull().default(0),
    /** Lines of the file read so far (the CSV header included). */
    line: integer("line").notNull().default(0),
    /** The CSV header's column mapping (JSON), once read. */
    columns: text("columns"),
    rows: integer("rows").notNull().default(0),
    accepted: integer("accepted").notNull().default(0),
    rejected: integer("rejected").notNull().default(0),
    /** The holder of the account's import lease (lib/lease.ts), released when the import ends. */
    leaseHolder: text("lease_holder").notNull(),
    /** JSON array of at most 100 {line, message}. */
    errors: text("errors").notNull().default("[]"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    completedAt: integer("completed_at"),
  },
  (t) => [index("suppression_imports_status_idx").on(t.status, t.updatedAt)],
);
export type SuppressionImportRow = typeof suppressionImports.$inferSelect;

/**
 * Erasure requests (SPEC §20), in the control database. Never the address: only its HMAC. The
 * address waits in R2 (`jobs/erasures/{id}`) while the erasure runs and is deleted with its end.
 * One row written per request and one when it completes.
 */
export const erasures = sqliteTable(
  "erasures",
  {
    id: text("id").primaryKey(),
    accountId: text("account_id").notNull(),
    status: text("status").notNull(),
    emailHash: text("email_hash").notNull(),
    /** JSON {events, registrations, deliveries, suppressions, parked}. */
    removed: text("removed").notNull(),
    createdAt: integer("created_at").notNull(),
    completedAt: integer("completed_at"),
  },
  (t) => [
    index("erasures_status_idx").on(t.status, t.createdAt),
    // Whether an erasure removed events since a window's start (erasures/since.ts): totals and offset
    // pages that count by the hourly rollups ask it on each request.
    index("erasures_account_idx").on(t.accountId, t.completedAt),
  ],
);
export type ErasureRow = typeof erasures.$inferSelect;
