import { effectivePlan } from "../config";
import type { Env } from "../env";
import { DAY_MS } from "../lib/params";
import { readCursor, writeCursor } from "./task-cursor";

/**
 * The retention purge (SPEC §12): deletes events older than their account's plan retention.
 *
 * Accounts are found with an index seek per account (the next account_id after the last one), so
 * no statement ever scans the table, and each account's expired events go in chunks: one DELETE
 * removes at most `chunk` rows, the oldest first, picked through the primary key
 * (account_id, occurred_at, id). A statement therefore stays far below D1's 30 s limit however much
 * has expired. A run stops at its budget and records the last account it finished in KV; the next
 * run resumes after it, and a walk that reaches the last account starts over next time.
 *
 * Per-email rows (registrations, the Message-ID map) are purged by purge-registrations.ts once their
 * email has no event left. Per-event rows go with their event: webhook deliveries (SPEC §14, "kept as
 * long as their event") belong in this chunk's batch, deleted by the same (account_id, occurred_at,
 * id) range before the events themselves, so a chunk never leaves deliveries without their event.
 */

export interface PurgeBudget {
  /** Rows one DELETE removes at most. */
  chunk: number;
  /** Rows one run removes at most. */
  rows: number;
  /** D1 statements one run issues at most (Workers bound the queries of one invocation). */
  statements: number;
  /** Wall-clock milliseconds one run may take before it stops at the next statement boundary. */
  timeMs: number;
}

export const DEFAULT_PURGE_BUDGET: PurgeBudget = {
  chunk: 1000,
  rows: 200_000,
  statements: 400,
  timeMs: 60_000,
};

export interface PurgeResult {
  /** Accounts whose expired events were (fully) removed this run. */
  accounts: number;
  deleted: number;
  /** True when the walk reached the last account; false when the budget stopped it. */
  complete: boolean;
}

export const PURGE_CURSOR_KEY = "meta:purge";

const NEXT_ACCOUNT = `
SELECT e.account_id AS account_id, a.plan AS plan
FROM (SELECT account_id FROM events WHERE account_id > ?1 ORDER BY account_id LIMIT 1) AS e
LEFT JOIN accounts AS a ON a.id = e.account_id`;

const DELETE_CHUNK = `
DELETE FROM events WHERE (account_id, occurred_at, id) IN (
  SELECT account_id, occurred_at, id FROM events
  WHERE account_id = ?1 AND occurred_at < ?2 ORDER BY occurred_at LIMIT ?3)`;

export async function purgeExpiredEvents(
  env: Env,
  now: number,
  budget: PurgeBudget = DEFAULT_PURGE_BUDGET,
): Promise<PurgeResult> {
  const started = Date.now();
  let statements = 0;
  let deleted = 0;
  let accounts = 0;
  const exhausted = () =>
    statements >= budget.statements || deleted >= budget.rows || Date.now() - started >= budget.timeMs;

  let after = (await readCursor<{ after: string }>(env, PURGE_CURSOR_KEY))?.after ?? "";
  let complete = false;
  walk: while (!exhausted()) {
    statements += 1;
    const next = await env.DB.prepare(NEXT_ACCOUNT)
      .bind(after)
      .first<{ account_id: string; plan: string | null }>();
    if (!next) {
      complete = true;
      break;
    }
    const days = effectivePlan(env, next.plan).retention_days;
    const cutoff = now - days * DAY_MS;
    for (;;) {
      if (exhausted()) break walk; // `after` stays before this account, so the next run resumes it
      const limit = Math.min(budget.chunk, budget.rows - deleted);
      statements += 1;
      const { meta } = await env.DB.prepare(DELETE_CHUNK).bind(next.account_id, cutoff, limit).run();
      deleted += meta.changes;
      if (meta.changes < limit) break;
    }
    accounts += 1;
    after = next.account_id;
  }
  await writeCursor(env, PURGE_CURSOR_KEY, complete ? null : { after });
  return { accounts, deleted, complete };
}
