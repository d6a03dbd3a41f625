import { integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * Webhook endpoints (SPEC §14). WITHOUT ROWID on (account_id, id): every read names the account,
 * so listing an account's endpoints and loading one are both primary-key range reads. At most 20
 * rows per account. Rows written: one per create/patch/rotate/delete; per event, none, except
 * when an endpoint starts or stops failing (`failing_since` set or cleared, once per streak) or is
 * disabled.
 */
export const webhookEndpoints = sqliteTable(
  "webhook_endpoints",
  {
    accountId: text("account_id").notNull(),
    id: text("id").notNull(),
    url: text("url").notNull(),
    description: text("description"),
    /** JSON array of event types, or null for every type. */
    eventTypes: text("event_types"),
    /** JSON object {topic?, campaign?, domain?, tags?}; '{}' when none. */
    filters: text("filters").notNull().default("{}"),
    status: text("status").notNull(),
    disabledReason: text("disabled_reason"),
    secret: text("secret").notNull(),
    /** The secret before the last rotation, signing alongside the new one until previous_expires_at. */
    previousSecret: text("previous_secret"),
    previousExpiresAt: integer("previous_expires_at"),
    /** First failed attempt since the last success; null while healthy. Drives the 72-hour disable. */
    failingSince: integer("failing_since"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.accountId, t.id] })],
);
export type WebhookEndpointRow = typeof webhookEndpoints.$inferSelect;
