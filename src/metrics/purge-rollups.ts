import type { Env } from "../env";
import { DAY_MS } from "../lib/params";
import { readCursor, writeCursor } from "../retention/task-cursor";
import { budgetedWalk, expiredRollupsWalk } from "../store";
import { MAX_DAYS } from "./query";

/**
 * Keeps metric rollups for 400 days (SPEC §12), whatever the plan's event retention: the event
 * purge never touches them, and this deletes the rows older than 400 days, walking accounts by an
 * index seek and deleting in chunks through the primary key (account_id, bucket, …), like the
 * event purge. Bounded per run; resumes from a KV cursor.
 */

export const ROLLUP_PURGE_CURSOR_KEY = "meta:purge-rollups";

export interface RollupPurgeBudget {
  chunk: number;
  statements: number;
}

export async function purgeExpiredRollups(
  env: Env,
  now: number,
  budget: RollupPurgeBudget = { chunk: 1000, statements: 200 },
): Promise<{ deleted: number; complete: boolean }> {
  const after = (await readCursor<{ after: string }>(env, ROLLUP_PURGE_CURSOR_KEY))?.after ?? "";
  const walk = expiredRollupsWalk(env.DB, now - MAX_DAYS * DAY_MS);
  const run = await budgetedWalk(
    walk,
    { after },
    { ...budget, rows: Number.POSITIVE_INFINITY, timeMs: Number.POSITIVE_INFINITY },
  );
  await writeCursor(env, ROLLUP_PURGE_CURSOR_KEY, run.complete ? null : { after: run.after });
  return { deleted: run.deleted, complete: run.complete };
}
