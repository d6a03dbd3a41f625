import { config } from "../config";
import type { Env } from "../env";
import { ApiError } from "../lib/errors";

/**
 * The event shards this Worker has bound (`EVENTS_0 … EVENTS_{n-1}`, SPEC §17). A Worker that binds
 * none keeps everything in `DB`: shard 0 is then the control database, which is also the upgrade path
 * of a deployment from before shards (bind `EVENTS_0` to the same database and nothing moves).
 */
const SHARD_BINDING = /^EVENTS_(\d+)$/;
const bound = new WeakMap<object, number[]>();

/** Indexes of every bound event shard, ascending: what the scheduled work and `GET /v1/admin/shards` walk. */
export function boundShards(env: Env): number[] {
  let shards = bound.get(env);
  if (!shards) {
    shards = Object.keys(env)
      .map((key) => SHARD_BINDING.exec(key)?.[1])
      .filter((index): index is string => index !== undefined && env[`EVENTS_${Number(index)}`] !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    if (shards.length === 0) shards = [0];
    bound.set(env, shards);
  }
  return shards;
}

/** The D1 database of event shard `index`. */
export function shardDb(env: Env, index: number): D1Database {
  const db = env[`EVENTS_${index}`];
  if (db) return db;
  if (index === 0 && boundShards(env).length === 1 && boundShards(env)[0] === 0) return env.DB;
  throw new ApiError(
    "configuration_error",
    `EVENTS_${index} is not bound (EVENT_SHARDS or a placement names it)`,
  );
}

/** The shards that take new accounts (`EVENT_SHARDS`), each checked to be bound. */
export function activeShards(env: Env): number[] {
  const shards = config(env, "EVENT_SHARDS");
  const available = new Set(boundShards(env));
  const missing = shards.find((i) => !available.has(i));
  if (missing !== undefined) {
    throw new ApiError(
      "configuration_error",
      `EVENT_SHARDS names shard ${missing}, but EVENTS_${missing} is not bound`,
    );
  }
  return shards;
}
