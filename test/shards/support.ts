import { env } from "cloudflare:workers";
import { rendezvousShard } from "../../src/shards/hash";

/** The event shards bound in tests (wrangler.toml: EVENTS_0 … EVENTS_3, all in EVENT_SHARDS). */
export const SHARDS = [0, 1, 2, 3];

export function shardDbOf(index: number): D1Database {
  const db = env[`EVENTS_${index}`];
  if (!db) throw new Error(`EVENTS_${index} is not bound in tests`);
  return db;
}

/** The shard an account without a placement lives on. */
export const hashedShard = (accountId: string): number => rendezvousShard(accountId, SHARDS);

/** A shard other than `not` (the next one round). */
export const otherShard = (not: number): number => (not + 1) % SHARDS.length;
