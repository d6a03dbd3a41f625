import { sql } from "drizzle-orm";
import { index, integer, primaryKey, real, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * Alert rules (SPEC §19), in the control database. WITHOUT ROWID on (account_id, id): listing an
 * account's rules and loading one are primary-key range reads. A handful of rows per account.
 * Rows written: one per create/patch/delete, and one per evaluation that changes the rule's state
 * (a transition) or its last value; nothing per event.
 */
export const alertRules = sqliteTable(
  "alert_rules",
  {
    accountId: text("account_id").notNull(),
    id: text("id").notNull(),
    metric: text("metric").notNull(),
    threshold: real("threshold").notNull(),
    window: text("window").notNull(),
    minSent: integer("min_sent").notNull(),
    /** JSON object {domain?, campaign?, mailbox_provider?}; '{}' when none. */
    filters: text("filters").notNull().default("{}"),
    description: text("description"),
    state: text("state").notNull(),
    lastValue: real("last_value"),
    lastEvaluatedAt: integer("last_evaluated_at"),
    /** Transitions so far: the next alert's id is derived from it, so a repeated evaluation writes nothing twice. */
    transitions: integer("transitions").notNull().default(0),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.accountId, t.id] })],
);
export type AlertRuleRow = typeof alertRules.$inferSelect;

/**
 * Accounts whose two default rules were created (SPEC §19: every account starts with them and may
 * delete them; this row keeps a deleted default from coming back). One row per account, written
 * once, the first time its rules are read or evaluated.
 */
export const alertDefaults = sqliteTable("alert_defaults", {
  accountId: text("account_id").primaryKey(),
  createdAt: integer("created_at").notNull(),
});

/**
 * Alerts: one row per transition of a rule (alert.triggered / alert.resolved), kept 400 days.
 * WITHOUT ROWID on (account_id, occurred_at, id): the history (newest first, keyset on
 * (occurred_at, id)) is a backwards range read. `pushed_at` is null until the transition was handed
 * to the webhook queue; the partial index holds only those rows (normally none), so the scheduled
 * work finds what a failed run did not push with one index read. Rows written per transition: 1 (+1
 * in the partial index until pushed, +1 to set pushed_at, +1 in alerts_rule_idx, which serves a rule's
 * history, +1 in alerts_time_idx, which lets the 400-day purge read only what it deletes).
 */
export const alerts = sqliteTable(
  "alerts",
  {
    accountId: text("account_id").notNull(),
    occurredAt: integer("occurred_at").notNull(),
    id: text("id").notNull(),
    ruleId: text("rule_id").notNull(),
    type: text("type").notNull(),
    metric: text("metric").notNull(),
    value: real("value").notNull(),
    threshold: real("threshold").notNull(),
    windowStart: integer("window_start").notNull(),
    windowEnd: integer("window_end").notNull(),
    windowSent: integer("window_sent").notNull(),
    filters: text("filters").notNull(),
    pushedAt: integer("pushed_at"),
  },
  (t) => [
    primaryKey({ columns: [t.accountId, t.occurredAt, t.id] }),
    index("alerts_unpushed_idx").on(t.occurredAt).where(sql`pushed_at IS NULL`),
    index("alerts_rule_idx").on(t.accountId, t.ruleId, t.occurredAt),
    index("alerts_time_idx").on(t.occurredAt),
  ],
);
export type AlertRow = typeof alerts.$inferSelect;
