import * as z from "zod";
import type { AlertRuleRow } from "../db/alerts";
import type { Env } from "../env";
import { ApiError } from "../lib/errors";
import { hashId, toHex } from "../lib/ids";
import { cursorTime, openCursor, sealCursor } from "../lib/keyset-cursor";
import { pageOf } from "../lib/paging";
import type { RateMetric } from "../reputation/rates";
import {
  type AlertDbRow,
  type AlertFilters,
  type AlertWindow,
  DEFAULT_MIN_SENT,
  type PatchRule,
  toPublicAlert,
} from "./schema";

/** Alert rules and alerts in the control database (db/alerts.ts). */

/** The rules every account starts with (SPEC §19): bounce rate above 5 %, complaint rate above 0.1 %, 24 h. */
export const DEFAULT_RULES: { metric: RateMetric; threshold: number; description: string }[] = [
  {
    metric: "bounce_rate",
    threshold: 0.05,
    description: "Bounce rate above 5 % (Amazon SES reviews accounts here)",
  },
  {
    metric: "complaint_rate",
    threshold: 0.001,
    description: "Complaint rate above 0.1 % (Amazon SES reviews accounts here)",
  },
];

const defaultRuleId = async (accountId: string, metric: string) =>
  `alr_${(await hashId(accountId, "default-rule", metric)).slice(0, 24)}`;
const newRuleId = () => `alr_${toHex(crypto.getRandomValues(new Uint8Array(12)))}`;

/** The id of a rule's next alert: derived from its transition count, so a repeated evaluation names the same one. */
export const alertId = async (accountId: string, ruleId: string, transition: number) =>
  `alt_${(await hashId(accountId, ruleId, String(transition))).slice(0, 24)}`;

/**
 * The statements that give an account its default rules, once: the marker row in alert_defaults
 * keeps a default the account deleted from coming back. Idempotent; they write only the first time.
 */
export async function ensureDefaultsStatements(
  db: D1Database,
  accountId: string,
  now: number,
): Promise<D1PreparedStatement[]> {
  const statements: D1PreparedStatement[] = [];
  for (const [i, rule] of DEFAULT_RULES.entries()) {
    statements.push(
      db
        .prepare(
          `INSERT INTO alert_rules (account_id, id, metric, threshold, window, min_sent, filters, description, state,
             transitions, created_at, updated_at)
           SELECT ?1, ?2, ?3, ?4, '24h', ?5, '{}', ?6, 'ok', 0, ?7, ?7
           WHERE NOT EXISTS (SELECT 1 FROM alert_defaults WHERE account_id = ?1)
           ON CONFLICT DO NOTHING`,
        )
        .bind(
          accountId,
          await defaultRuleId(accountId, rule.metric),
          rule.metric,
          rule.threshold,
          DEFAULT_MIN_SENT,
          rule.description,
          // One millisecond apart, so the defaults list in a stable order (bounce, then complaint).
          now + i,
        ),
    );
  }
  statements.push(
    db
      .prepare("INSERT INTO alert_defaults (account_id, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING")
      .bind(accountId, now),
  );
  return statements;
}

export async function ensureDefaults(env: Env, accountId: string, now: number): Promise<void> {
  await env.DB.batch(await ensureDefaultsStatements(env.DB, accountId, now));
}

const RULE_COLUMNS = `account_id AS accountId, id, metric, threshold, window, min_sent AS minSent, filters,
  description, state, last_value AS lastValue, last_evaluated_at AS lastEvaluatedAt, transitions,
  created_at AS createdAt, updated_at AS updatedAt`;

export async function listRules(env: Env, accountId: string, now: number): Promise<AlertRuleRow[]> {
  const [, , , rules] = await env.DB.batch([
    ...(await ensureDefaultsStatements(env.DB, accountId, now)),
    env.DB.prepare(
      `SELECT ${RULE_COLUMNS} FROM alert_rules WHERE account_id = ?1 ORDER BY created_at, id`,
    ).bind(accountId),
  ]);
  return (rules?.results ?? []) as AlertRuleRow[];
}

export async function getRule(env: Env, accountId: string, id: string, now: number): Promise<AlertRuleRow> {
  const rules = await listRules(env, accountId, now);
  const rule = rules.find((r) => r.id === id);
  if (!rule) throw new ApiError("not_found", `no alert rule ${id}`);
  return rule;
}

export const MAX_RULES_PER_ACCOUNT = 50;

export interface NewRule {
  metric: RateMetric;
  threshold: number;
  window: AlertWindow;
  min_sent?: number | undefined;
  filters?: AlertFilters | undefined;
  description?: string | null | undefined;
}

export async function createRule(
  env: Env,
  accountId: string,
  input: NewRule,
  now: number,
): Promise<AlertRuleRow> {
  const id = newRuleId();
  const [, , , inserted] = await env.DB.batch([
    ...(await ensureDefaultsStatements(env.DB, accountId, now)),
    env.DB.prepare(
      `INSERT INTO alert_rules (account_id, id, metric, threshold, window, min_sent, filters, description, state,
         transitions, created_at, updated_at)
       SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'ok', 0, ?9, ?9
       WHERE (SELECT COUNT(*) FROM alert_rules WHERE account_id = ?1) < ?10`,
    ).bind(
      accountId,
      id,
      input.metric,
      input.threshold,
      input.window,
      input.min_sent ?? DEFAULT_MIN_SENT,
      JSON.stringify(input.filters ?? {}),
      input.description ?? null,
      now,
      MAX_RULES_PER_ACCOUNT,
    ),
  ]);
  if ((inserted?.meta.changes ?? 0) === 0) {
    throw new ApiError(
      "validation_error",
      `an account has at most ${MAX_RULES_PER_ACCOUNT} alert rules; delete one first`,
    );
  }
  return getRule(env, accountId, id, now);
}

/**
 * Changes a rule. A change to what it measures (metric, threshold, window, min_sent, filters) starts
 * it over in state `ok`: its earlier state was about another question.
 */
export async function updateRule(
  env: Env,
  accountId: string,
  id: string,
  changes: PatchRule,
  now: number,
): Promise<AlertRuleRow> {
  const current = await getRule(env, accountId, id, now);
  const measured =
    (changes.metric !== undefined && changes.metric !== current.metric) ||
    (changes.threshold !== undefined && changes.threshold !== current.threshold) ||
    (changes.window !== undefined && changes.window !== current.window) ||
    (changes.min_sent !== undefined && changes.min_sent !== current.minSent) ||
    (changes.filters !== undefined && JSON.stringify(changes.filters) !== current.filters);
  await env.DB.prepare(
    `UPDATE alert_rules SET metric = ?3, threshold = ?4, window = ?5, min_sent = ?6, filters = ?7, description = ?8,
       state = CASE WHEN ?9 THEN 'ok' ELSE state END,
       last_value = CASE WHEN ?9 THEN NULL ELSE last_value END,
       last_evaluated_at = CASE WHEN ?9 THEN NULL ELSE last_evaluated_at END,
       updated_at = ?10
     WHERE account_id = ?1 AND id = ?2`,
  )
    .bind(
      accountId,
      id,
      changes.metric ?? current.metric,
      changes.threshold ?? current.threshold,
      changes.window ?? current.window,
      changes.min_sent ?? current.minSent,
      changes.filters !== undefined ? JSON.stringify(changes.filters) : current.filters,
      changes.description !== undefined ? changes.description : current.description,
      measured ? 1 : 0,
      now,
    )
    .run();
  return getRule(env, accountId, id, now);
}

export async function deleteRule(env: Env, accountId: string, id: string, now: number): Promise<void> {
  const [, , , deleted] = await env.DB.batch([
    ...(await ensureDefaultsStatements(env.DB, accountId, now)),
    env.DB.prepare("DELETE FROM alert_rules WHERE account_id = ?1 AND id = ?2").bind(accountId, id),
  ]);
  if ((deleted?.meta.changes ?? 0) === 0) throw new ApiError("not_found", `no alert rule ${id}`);
}

const positionSchema = z.object({ t: cursorTime, id: z.string().max(64) });

/**
 * A rule's alerts, newest first, keyset on (occurred_at, id) (SPEC §9 paging). The history outlives
 * the rule: a deleted rule's alerts stay readable by its id for their 400 days.
 */
export async function ruleHistory(
  env: Env,
  accountId: string,
  ruleId: string,
  q: { limit: number; after?: string | undefined },
) {
  const fingerprint = await hashId("alert-history", accountId, ruleId);
  const after = q.after
    ? openCursor(q.after, fingerprint, positionSchema, "after belongs to another rule's history")
    : null;
  const { results } = await env.DB.prepare(
    `SELECT * FROM alerts INDEXED BY alerts_rule_idx
     WHERE account_id = ?1 AND rule_id = ?2 AND (?3 IS NULL OR (occurred_at, id) < (?3, ?4))
     ORDER BY occurred_at DESC, id DESC LIMIT ?5`,
  )
    .bind(accountId, ruleId, after?.t ?? null, after?.id ?? "", q.limit + 1)
    .all<AlertDbRow>();
  const page = pageOf(results, q.limit, (last) =>
    sealCursor(fingerprint, { t: last.occurred_at, id: last.id }),
  );
  return {
    object: "list" as const,
    data: page.shown.map(toPublicAlert),
    has_more: page.has_more,
    next_cursor: page.next_cursor,
  };
}

/** The account's latest alerts of every rule, newest first (the dashboard). */
export async function recentAlerts(env: Env, accountId: string, limit: number) {
  const { results } = await env.DB.prepare(
    "SELECT * FROM alerts WHERE account_id = ?1 ORDER BY occurred_at DESC, id DESC LIMIT ?2",
  )
    .bind(accountId, limit)
    .all<AlertDbRow>();
  return results.map(toPublicAlert);
}

/** The account's stored alerts among `ids` (a webhook replay by id; SPEC §14): each one's key and type. */
export async function alertsByIds(
  env: Env,
  accountId: string,
  ids: readonly string[],
): Promise<{ id: string; occurred_at: number; type: string }[]> {
  if (ids.length === 0) return [];
  // The account's alerts (its key prefix; few: transitions, kept 400 days), the ids looked up among them.
  const { results } = await env.DB.prepare(
    `SELECT id, occurred_at, type FROM alerts WHERE account_id = ?1 AND id IN (SELECT value FROM json_each(?2))`,
  )
    .bind(accountId, JSON.stringify(ids))
    .all<{ id: string; occurred_at: number; type: string }>();
  return results;
}
