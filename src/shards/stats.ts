import type { Env } from "../env";
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
      const [counted, accounts] = await db.batch<{ n: number }>([
        db.prepare(`SELECT COUNT(*) AS n FROM (SELECT 1 FROM events LIMIT ${COUNT_CAP + 1})`),
        db.prepare(
          `WITH RECURSIVE a(id) AS (
             SELECT (SELECT account_id FROM events ORDER BY account_id LIMIT 1)
             UNION ALL
             SELECT (SELECT account_id FROM events WHERE account_id > a.id ORDER BY account_id LIMIT 1)
             FROM a WHERE a.id IS NOT NULL LIMIT ${ACCOUNT_CAP + 1})
           SELECT COUNT(id) AS n FROM a`,
        ),
      ]);
      const bytes = await sizeOf(db, counted?.meta);
      const events = counted?.results[0]?.n ?? 0;
      const accountCount = accounts?.results[0]?.n ?? 0;
      const eventsEstimated = events > COUNT_CAP;
      return {
        shard,
        active: active.has(shard),
        accounts: accountCount,
        events: eventsEstimated ? Math.max(events, Math.round(bytes / BYTES_PER_EVENT)) : events,
        estimated: eventsEstimated || accountCount > ACCOUNT_CAP,
        bytes,
        size_limit_bytes: SIZE_LIMIT_BYTES,
      };
    }),
  );
}

async function sizeOf(db: D1Database, meta: D1Meta | undefined): Promise<number> {
  const reported = (meta as (D1Meta & { size_after?: number }) | undefined)?.size_after;
  if (typeof reported === "number" && reported > 0) return reported;
  const [count, size] = await db.batch<Record<string, number>>([
    db.prepare("PRAGMA page_count"),
    db.prepare("PRAGMA page_size"),
  ]);
  return (count?.results[0]?.page_count ?? 0) * (size?.results[0]?.page_size ?? 0);
}
