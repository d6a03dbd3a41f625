import { effectivePlan } from "../config";
import type { Env } from "../env";
import { DAY_MS } from "../lib/params";
import { budgetedWalk, expiredEventsWalk, type PurgeBudget } from "../store";
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

export type { PurgeBudget };

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

export async function purgeExpiredEvents(
  env: Env,
  now: number,
  budget: PurgeBudget = DEFAULT_PURGE_BUDGET,
): Promise<PurgeResult> {
  const after = (await readCursor<{ after: string }>(env, PURGE_CURSOR_KEY))?.after ?? "";
  const walk = expiredEventsWalk(
    env.DB,
    (account) => now - effectivePlan(env, account.plan).retention_days * DAY_MS,
  );
  // Stopped inside an account: `after` stays before it, so the next run resumes it.
  const run = await budgetedWalk(walk, { after }, budget);
  await writeCursor(env, PURGE_CURSOR_KEY, run.complete ? null : { after: run.after });
  return { accounts: run.groups, deleted: run.deleted, complete: run.complete };
}
