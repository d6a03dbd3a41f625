import type { AlertRuleRow } from "../db/alerts";
import type { Env } from "../env";
import { log } from "../lib/log";
import { type RateMetric, rateOf, type WindowFilters, windowCountersStatement } from "../reputation/rates";
import { readCursor, writeCursor } from "../retention/task-cursor";
import { nextState } from "./decide";
import { pushPendingAlerts } from "./push";
import { type AlertWindow, WINDOW_MS } from "./schema";
import { alertId, ensureDefaultsStatements } from "./store";

/**
 * The scheduled evaluation of alert rules (SPEC §19), from the metrics rollups, every run.
 *
 * Which accounts: every account that has sent (sending_domains, written by the consumer once per
 * account and sending domain), walked in pages of PAGE accounts in id order, resuming where the last
 * run stopped when a run's time budget ran out. An account's default rules are created the first time
 * it is evaluated (or its rules are read), so every sending account has them without an account row.
 *
 * Per page, three D1 round trips: the default rules and every rule of the page's accounts; one
 * rollup statement per account and distinct (window, filters) of its rules (the two defaults share
 * one); and the writes. A rule's row is written only when its state changes (with the alert, in the
 * same transaction) or its value changed (or was last written over an hour ago).
 *
 * Idempotent and safe under a D1 outage: state lives in the rule row, so a failed run changes nothing
 * and the next run evaluates the same rollups again; an alert's id is derived from the rule's
 * transition count and both writes are guarded by it, so a repeated run never records one transition
 * twice. Alerts are pushed to webhooks after they are written (push.ts): one that a failed run
 * wrote but did not push is pushed by the next run, never dropped silently.
 */

const PAGE = 100;
const CURSOR_KEY = "meta:alerts-evaluation";
/** A value is rewritten when it changed, or at least this often (last_evaluated_at). */
const REFRESH_MS = 3_600_000;

export interface EvaluationResult {
  accounts: number;
  rules: number;
  transitions: number;
  pushed: number;
  rows_read: number;
  complete: boolean;
}

export async function evaluateAlerts(
  env: Env,
  now: number,
  options: { budgetMs?: number; pageSize?: number } = {},
): Promise<EvaluationResult> {
  const started = Date.now();
  const budget = options.budgetMs ?? 20_000;
  const pageSize = options.pageSize ?? PAGE;
  const result: EvaluationResult = {
    accounts: 0,
    rules: 0,
    transitions: 0,
    pushed: 0,
    rows_read: 0,
    complete: false,
  };
  // What an earlier run wrote but could not push goes first.
  result.pushed += await pushPendingAlerts(env, now);

  let after = (await readCursor<{ after: string }>(env, CURSOR_KEY))?.after ?? "";
  for (;;) {
    const page = await env.DB.prepare(
      "SELECT DISTINCT account_id FROM sending_domains WHERE account_id > ?1 ORDER BY account_id LIMIT ?2",
    )
      .bind(after, pageSize)
      .all<{ account_id: string }>();
    result.rows_read += page.meta.rows_read;
    const accounts = page.results.map((r) => r.account_id);
    if (accounts.length > 0) {
      const one = await evaluateAccounts(env, accounts, now);
      result.accounts += accounts.length;
      result.rules += one.rules;
      result.transitions += one.transitions;
      result.rows_read += one.rowsRead;
      after = accounts[accounts.length - 1] as string;
    }
    if (accounts.length < pageSize) {
      result.complete = true;
      await writeCursor(env, CURSOR_KEY, null);
      break;
    }
    if (Date.now() - started > budget) {
      await writeCursor(env, CURSOR_KEY, { after });
      break;
    }
  }
  if (result.transitions > 0) result.pushed += await pushPendingAlerts(env, now);
  return result;
}

const RULE_COLUMNS = `account_id AS accountId, id, metric, threshold, window, min_sent AS minSent, filters,
  description, state, last_value AS lastValue, last_evaluated_at AS lastEvaluatedAt, transitions,
  created_at AS createdAt, updated_at AS updatedAt`;

/** Evaluates every rule of these accounts against the rollups, now. */
export async function evaluateAccounts(
  env: Env,
  accounts: string[],
  now: number,
): Promise<{ rules: number; transitions: number; rowsRead: number }> {
  const db = env.DB;
  const defaults: D1PreparedStatement[] = [];
  for (const a of accounts) defaults.push(...(await ensureDefaultsStatements(db, a, now)));
  const loaded = await db.batch([
    ...defaults,
    db
      .prepare(
        `SELECT ${RULE_COLUMNS} FROM alert_rules WHERE account_id IN (SELECT value FROM json_each(?1))
         ORDER BY account_id, id`,
      )
      .bind(JSON.stringify(accounts)),
  ]);
  const rulesResult = loaded[loaded.length - 1] as D1Result<AlertRuleRow>;
  let rowsRead = loaded.reduce((n, r) => n + r.meta.rows_read, 0);
  const rules = rulesResult.results;

  // One rollup read per account and distinct (window, filters).
  const groups = new Map<
    string,
    { rules: AlertRuleRow[]; query: ReturnType<typeof windowCountersStatement> }
  >();
  for (const rule of rules) {
    const key = `${rule.accountId}\u0000${rule.window}\u0000${rule.filters}`;
    let group = groups.get(key);
    if (!group) {
      const filters = JSON.parse(rule.filters) as WindowFilters;
      group = {
        rules: [],
        query: windowCountersStatement(
          db,
          rule.accountId,
          WINDOW_MS[rule.window as AlertWindow],
          filters,
          now,
        ),
      };
      groups.set(key, group);
    }
    group.rules.push(rule);
  }
  const list = [...groups.values()];
  const counted = list.length > 0 ? await db.batch(list.map((g) => g.query.statement)) : [];

  const writes: D1PreparedStatement[] = [];
  let transitions = 0;
  for (const [i, group] of list.entries()) {
    const r = counted[i];
    if (!r) continue;
    const w = group.query.read(r);
    rowsRead += w.rowsRead;
    if (w.truncated) {
      // Partial counters would give a false rate: these rules keep their state until a window fits.
      log("warn", "alert rules not evaluated: their window holds more rollup rows than the budget", {
        account_id: group.rules[0]?.accountId,
        rules: group.rules.length,
      });
      continue;
    }
    for (const rule of group.rules) {
      const metric = rule.metric as RateMetric;
      const value = rateOf(metric, w.totals);
      const state = rule.state as "ok" | "firing";
      const next = nextState(
        { metric, threshold: rule.threshold, minSent: rule.minSent, state },
        value,
        w.totals.sent,
      );
      if (next !== state && value !== null) {
        transitions++;
        const id = await alertId(rule.accountId, rule.id, rule.transitions + 1);
        // Both guarded by the transition count: a repeated or concurrent run writes nothing twice.
        writes.push(
          db
            .prepare(
              `INSERT INTO alerts (account_id, occurred_at, id, rule_id, type, metric, value, threshold, window_start,
                 window_end, window_sent, filters, pushed_at)
               SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, NULL
               WHERE EXISTS (SELECT 1 FROM alert_rules WHERE account_id = ?1 AND id = ?4 AND transitions = ?13)`,
            )
            .bind(
              rule.accountId,
              now,
              id,
              rule.id,
              next === "firing" ? "alert.triggered" : "alert.resolved",
              metric,
              value,
              rule.threshold,
              w.window.start,
              w.window.end,
              w.totals.sent,
              rule.filters,
              rule.transitions,
            ),
          db
            .prepare(
              `UPDATE alert_rules SET state = ?3, transitions = transitions + 1, last_value = ?4, last_evaluated_at = ?5
               WHERE account_id = ?1 AND id = ?2 AND transitions = ?6`,
            )
            .bind(rule.accountId, rule.id, next, value, now, rule.transitions),
        );
      } else if (
        value !== rule.lastValue ||
        rule.lastEvaluatedAt === null ||
        now - rule.lastEvaluatedAt >= REFRESH_MS
      ) {
        writes.push(
          db
            .prepare(
              `UPDATE alert_rules SET last_value = ?3, last_evaluated_at = ?4
               WHERE account_id = ?1 AND id = ?2 AND transitions = ?5`,
            )
            .bind(rule.accountId, rule.id, value, now, rule.transitions),
        );
      }
    }
  }
  if (writes.length > 0) await db.batch(writes);
  return { rules: rules.length, transitions, rowsRead };
}
