import type { Env } from "../env";
import type { PurgeWalk } from "../store/purge";
import { onEveryShard, sumResults } from "./across";
import { boundShards } from "./bindings";

/**
 * What the scheduled work on an event shard needs from the control database (SPEC §17): the plan
 * of an account (its retention) and whether a webhook endpoint still exists. The store's walks join
 * `accounts` and `webhook_endpoints` on the database they run on, which is right only when that
 * database is also the control one; these wrappers take the answer from DB instead.
 */

/**
 * A walk whose groups are completed from the control database as they are reached: `fill` reads
 * what the shard does not hold (one key look-up per group) and its fields replace the group's.
 */
function withControl<G extends { key: string }, P>(
  walk: PurgeWalk<G, P>,
  fill: (group: G) => Promise<Partial<G>>,
): PurgeWalk<G, P> {
  return {
    ...walk,
    next: async (after) => {
      const group = await walk.next(after);
      return group ? { ...group, ...(await fill(group)) } : null;
    },
  };
}

/** A walk over accounts whose groups carry, from the control database, each account's plan. */
export function withControlPlan<G extends { key: string; plan: string | null }, P>(
  env: Env,
  walk: PurgeWalk<G, P>,
): PurgeWalk<G, P> {
  return withControl(walk, async (group) => {
    const row = await env.DB.prepare("SELECT plan FROM accounts WHERE id = ?")
      .bind(group.key)
      .first<{ plan: string }>();
    return { plan: row?.plan ?? null } as Partial<G>;
  });
}

/** A walk over webhook endpoints whose groups say, from the control database, whether each still exists. */
export function withControlEndpoint<G extends { key: string; live: number; plan: string | null }, P>(
  env: Env,
  walk: PurgeWalk<G, P>,
): PurgeWalk<G, P> {
  return withControl(walk, async (group) => {
    const row = await env.DB.prepare(
      "SELECT a.plan AS plan FROM webhook_endpoints AS w LEFT JOIN accounts AS a ON a.id = w.account_id WHERE w.id = ?",
    )
      .bind(group.key)
      .first<{ plan: string | null }>();
    return { live: row ? 1 : 0, plan: row?.plan ?? null } as Partial<G>;
  });
}

/**
 * The KV key of a scheduled task's cursor on one shard. Shard 0 keeps the key of the single-database
 * layout, so a deployment that binds EVENTS_0 to its old database resumes where it was.
 */
export const shardCursorKey = (key: string, shard: number): string =>
  shard === 0 ? key : `${key}:shard-${shard}`;

/** A scheduled task run on every bound shard in parallel, its numeric results summed. */
export async function everyShard<T extends Record<string, unknown>>(
  env: Env,
  task: (db: D1Database, shard: number) => Promise<T>,
): Promise<T & { shards: number }> {
  const results = await onEveryShard(env, task);
  return { ...sumResults(results), shards: boundShards(env).length };
}
