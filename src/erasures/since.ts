import { and, eq, gte, isNull, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { erasures } from "../db/jobs";
import type { Env } from "../env";

/**
 * Whether an erasure may have removed events of the account at or after `since` (SPEC §20: the
 * events go, the rollup counts stay): one still running, or one completed since then that removed
 * at least one event. An erasure completed before `since` removed only events that had arrived by
 * then, so it cannot change a window starting at `since`. The totals and offset pages that count
 * by the hourly rollups (store/hour-totals.ts) count the events instead while this holds. Two
 * reads of erasures_account_idx in one round trip.
 */
export async function erasedEventsSince(env: Env, accountId: string, since: number): Promise<boolean> {
  const d = drizzle(env.DB);
  const one = { id: erasures.id };
  const [running, completed] = await d.batch([
    d
      .select(one)
      .from(erasures)
      .where(and(eq(erasures.accountId, accountId), isNull(erasures.completedAt)))
      .limit(1),
    d
      .select(one)
      .from(erasures)
      .where(
        and(
          eq(erasures.accountId, accountId),
          gte(erasures.completedAt, since),
          sql`json_extract(${erasures.removed}, '$.events') > 0`,
        ),
      )
      .limit(1),
  ]);
  return running.length > 0 || completed.length > 0;
}
