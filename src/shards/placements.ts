import type { Env } from "../env";
import { validationError } from "../lib/errors";
import { holdsAccount, moveAccountRows } from "../store/shard-rows";
import { activeShards, boundShards, shardDb } from "./bindings";
import { forgetDirectory, loadDirectory, shardListText } from "./directory";
import { rendezvousShard } from "./hash";
import { type AccountShards, routeAccount } from "./route";

/**
 * Placements (SPEC §17): `PUT`, `GET` and `DELETE /v1/admin/placements/{account_id}`. A change
 * copies no event: new writes go to the new shards at once, reads merge the previous ones until the
 * scheduled work finds nothing of the account left there and drops them. Suppressions (few per
 * account) and what else is kept per account rather than per email move in the same request
 * (store/shard-rows.ts).
 */

export const MAX_PLACEMENT_SHARDS = 8;

export interface PlacementView {
  account_id: string;
  shards: number[];
  previous: number[] | null;
  since: string | null;
}

const view = (account: AccountShards): PlacementView => ({
  account_id: account.accountId,
  shards: [...account.shards],
  previous: account.previous.length > 0 ? [...account.previous] : null,
  since: account.since === null ? null : new Date(account.since).toISOString(),
});

/** The account's current placement, read from the control database (not the cache). */
export async function getPlacement(env: Env, accountId: string): Promise<PlacementView> {
  forgetDirectory(env);
  return view(routeAccount(env, accountId, await loadDirectory(env)));
}

/**
 * Places the account on `shards` (null: back on its hashed shard). Idempotent: the same list again
 * changes nothing, and any suppression left on a shard other than the new home (a request that
 * failed midway, an isolate that routed by a stale copy) is moved again.
 */
export async function putPlacement(
  env: Env,
  accountId: string,
  shards: number[] | null,
): Promise<PlacementView> {
  const bound = new Set(boundShards(env));
  if (shards) {
    const unbound = shards.find((i) => !bound.has(i));
    if (unbound !== undefined)
      throw validationError("shards", `shard ${unbound} is not bound (no EVENTS_${unbound})`);
    if (new Set(shards).size !== shards.length)
      throw validationError("shards", "shards must not repeat a shard");
  }
  forgetDirectory(env);
  const current = routeAccount(env, accountId, await loadDirectory(env));
  const hashed = rendezvousShard(accountId, activeShards(env));
  const target = shards ?? [hashed];
  const now = Date.now();
  let next = current;
  if (shardListText(target) !== shardListText(current.shards)) {
    const previous = current.read.filter((i) => !target.includes(i));
    const backHome = target.length === 1 && target[0] === hashed && previous.length === 0;
    await (backHome
      ? env.DB.prepare("DELETE FROM shard_placements WHERE account_id = ?").bind(accountId)
      : env.DB.prepare(
          `INSERT INTO shard_placements (account_id, shards, previous, since, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)
           ON CONFLICT (account_id) DO UPDATE SET shards = ?2, previous = ?3, since = ?4, updated_at = ?4`,
        ).bind(accountId, JSON.stringify(target), previous.length > 0 ? JSON.stringify(previous) : null, now)
    ).run();
    forgetDirectory(env);
    next = routeAccount(env, accountId, await loadDirectory(env));
  }
  await moveToHome(env, accountId, next.home, [...new Set([...current.read, ...next.read])]);
  return view(next);
}

async function moveToHome(env: Env, accountId: string, home: number, shards: number[]): Promise<void> {
  for (const shard of shards) {
    if (shard !== home) await moveAccountRows(shardDb(env, shard), shardDb(env, home), accountId);
  }
}

/**
 * The scheduled work's part (SPEC §17): a previous shard that holds nothing of the account any more
 * is dropped from its placement, and a placement that is back on the hashed shard with nothing
 * previous is deleted. Reads one row per table per previous shard; placements are few.
 */
export async function dropDrainedPlacements(env: Env): Promise<{ dropped: number; deleted: number }> {
  forgetDirectory(env);
  const directory = await loadDirectory(env);
  let dropped = 0;
  let deleted = 0;
  for (const [accountId, placement] of directory.placements) {
    if (!placement.previous) continue;
    const remaining: number[] = [];
    for (const shard of placement.previous) {
      if (placement.shards.includes(shard) || (await holdsAccount(shardDb(env, shard), accountId))) {
        remaining.push(shard);
      }
    }
    if (remaining.length === placement.previous.length) continue;
    dropped += placement.previous.length - remaining.length;
    const hashed = rendezvousShard(accountId, activeShards(env));
    if (remaining.length === 0 && placement.shards.length === 1 && placement.shards[0] === hashed) {
      await env.DB.prepare("DELETE FROM shard_placements WHERE account_id = ? AND previous = ?")
        .bind(accountId, JSON.stringify(placement.previous))
        .run();
      deleted += 1;
    } else {
      // Guarded by the list read: a PUT that changed the row meanwhile is not overwritten.
      await env.DB.prepare(
        "UPDATE shard_placements SET previous = ?1, updated_at = ?2 WHERE account_id = ?3 AND previous = ?4",
      )
        .bind(
          remaining.length > 0 ? JSON.stringify(remaining) : null,
          Date.now(),
          accountId,
          JSON.stringify(placement.previous),
        )
        .run();
    }
  }
  forgetDirectory(env);
  return { dropped, deleted };
}

/**
 * Records the `EVENT_SHARDS` list in the control database when it changed, retiring the one before
 * (whose shards reads keep visiting for the accounts it hashed elsewhere). Run by the scheduled work.
 */
export async function recordShardSet(env: Env, now: number): Promise<{ changed: boolean }> {
  const current = shardListText(activeShards(env));
  const directory = await loadDirectory(env);
  if (directory.storedCurrent === current) return { changed: false };
  await env.DB.batch([
    env.DB.prepare("UPDATE shard_sets SET retired_at = ?1 WHERE retired_at IS NULL AND shards <> ?2").bind(
      now,
      current,
    ),
    env.DB.prepare(
      `INSERT INTO shard_sets (shards, first_seen_at, retired_at) VALUES (?1, ?2, NULL)
       ON CONFLICT (shards) DO UPDATE SET retired_at = NULL`,
    ).bind(current, now),
  ]);
  forgetDirectory(env);
  return { changed: directory.storedCurrent !== null };
}
