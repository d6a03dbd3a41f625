import { sql } from "drizzle-orm";
import { index, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * Webhook deliveries: one row per (endpoint, event), written only when an attempt finishes, in one
 * upsert (the queue message, not the row, is the pending work). So a delivery that succeeds at its
 * first attempt costs exactly 1 row written, and each further attempt (retry or replay) 1 more:
 * the table is WITHOUT ROWID, and updates never change the key. Its one secondary index is partial:
 * `webhook_deliveries_pending_idx` holds only deliveries waiting for a retry (status 'pending'), so
 * a delivery that succeeds at its first attempt writes no index entry, and one that fails costs one
 * entry (about 60 bytes) until its run ends. It answers "how many deliveries does this endpoint
 * have pending" within the §18 budget (at most 10,000 per endpoint), which caps replays.
 *
 * The key (endpoint_id, event_occurred_at, event_id) serves the deliveries list (newest event
 * first, keyset on (event_occurred_at, event_id)), the delivery consumer's idempotency check (it
 * knows all three), and the retention purge (one range per endpoint below the cutoff). The
 * `event_id` and `status` filters of the list are residual filters on the endpoint's range.
 */
export const webhookDeliveries = sqliteTable(
  "webhook_deliveries",
  {
    endpointId: text("endpoint_id").notNull(),
    eventOccurredAt: integer("event_occurred_at").notNull(),
    eventId: text("event_id").notNull(),
    accountId: text("account_id").notNull(),
    eventType: text("event_type").notNull(),
    /** pending (a retry is scheduled), succeeded or failed. */
    status: text("status").notNull(),
    attempts: integer("attempts").notNull(),
    /** First attempt of the current run (the original delivery or the latest replay): the 72-hour window starts here. */
    firstAttemptAt: integer("first_attempt_at").notNull(),
    lastAttemptAt: integer("last_attempt_at").notNull(),
    nextAttemptAt: integer("next_attempt_at"),
    responseStatus: integer("response_status"),
    error: text("error"),
  },
  (t) => [
    primaryKey({ columns: [t.endpointId, t.eventOccurredAt, t.eventId] }),
    index("webhook_deliveries_pending_idx").on(t.endpointId).where(sql`${t.status} = 'pending'`),
  ],
);
export type WebhookDeliveryRow = typeof webhookDeliveries.$inferSelect;
