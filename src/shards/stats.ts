import type { Env } from "../env";
import { shardLoad } from "../store/shard-rows";
import { activeShards, boundShards, shardDb } from "./bindings";

/** What `GET /v1/admin/shards` shows of one event shard (SPEC §17). */
export interface ShardStats {
  shard: number;
  active: boolean;
  accounts: number;
  events: number;
  /** true when `events` (or `accounts`) is an estimate rather than a count. */
  estimated: boolean;
  bytes: number;
  size_limit_bytes: number;
}

/** D1's size limit per database, which Cloudflare does not raise. */
export const SIZE_LIMIT_BYTES = 10_000_000_000;
/**
 * Bytes one event occupies with everything that grows with mail (BENCHMARKS.md "Beyond one
 * database"): the estimate of `events` on a shard too large to count within the budget.
 */
export const BYTES_PER_EVENT = 1_000;
/** Counted exactly up to here (one page's row budget, SPEC §18); beyond, estimated from the size. */
const COUNT_CAP = 9_000;
/** Distinct accounts counted by skipping along the events key, one seek each. */
const ACCOUNT_CAP = 900;

/**
 * Each bound shard's size and load. `bytes` is D1's own figure (`meta.size_after`, or page_count ×
 * page_size where a runtime does not report it). At most COUNT_CAP + ACCOUNT_CAP × 2 rows read per shard.
 */
export async function shardStats(env: Env): Promise<ShardStats[]> {
  const active = new Set(activeShards(env));
  return Promise.all(
    boundShards(env).map(async (shard) => {
      const db = shardDb(env, shard);
      const load = await shardLoad(db, COUNT_CAP, ACCOUNT_CAP);
      const bytes = load.sizeAfter ?? (await pageBytes(db));
      const eventsEstimated = load.events > COUNT_CAP;
      return {
        shard,
        active: active.has(shard),
        accounts: load.accounts,
        events: eventsEstimated ? Math.max(load.events, Math.round(bytes / BYTES_PER_EVENT)) : load.events,
        estimated: eventsEstimated || load.accounts > ACCOUNT_CAP,
        bytes,
        size_limit_bytes: SIZE_LIMIT_BYTES,
      };
    }),
  );
}

/** page_count × page_size, where the runtime does not report `meta.size_after`. */
async function pageBytes(db: D1Database): Promise<number> {
  const [count, size] = await db.batch<Record<string, number>>([
    db.prepare("PRAGMA page_count"),
    db.prepare("PRAGMA page_size"),
  ]);
  return (count?.results[0]?.page_count ?? 0) * (size?.results[0]?.page_size ?? 0);
}
