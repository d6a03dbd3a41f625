import type { Env } from "../env";
import { describeError, log } from "../lib/log";
import { DAY_MS } from "../lib/params";
import { boundShards } from "./bindings";

/**
 * The control database's routing state (SPEC §17): the placement table and the `EVENT_SHARDS` lists
 * accounts were hashed over before. Read whole and cached per isolate for at most CACHE_MS, so that
 * routing costs no D1 read per request and a change made anywhere takes effect within 60 s (a change
 * made by this isolate, at once). When the control database fails, the last copy keeps serving.
 */

export interface Placement {
  shards: number[];
  previous: number[] | null;
  since: number;
}

export interface Directory {
  placements: ReadonlyMap<string, Placement>;
  /** Lists accounts were hashed over before (oldest first), still read: rows hashed there may remain. */
  olderSets: number[][];
  /** The list stored as current (null: none stored yet); the scheduled work records a change. */
  storedCurrent: string | null;
}

export const CACHE_MS = 30_000;
/** A retired list is read until nothing written under it can remain: the rollups' 400 days and a day. */
export const RETIRED_SET_READ_MS = 401 * DAY_MS;

const cache = new WeakMap<D1Database, { loadedAt: number; directory: Directory }>();

export async function loadDirectory(env: Env, now = Date.now()): Promise<Directory> {
  const cached = cache.get(env.DB);
  if (cached && now - cached.loadedAt < CACHE_MS) return cached.directory;
  try {
    const directory = await readDirectory(env, now);
    cache.set(env.DB, { loadedAt: now, directory });
    return directory;
  } catch (err) {
    if (!cached) throw err;
    log("warn", "shard placements not refreshed; using the cached copy", describeError(err));
    return cached.directory;
  }
}

/** Drops this isolate's copy: the next routing decision reads the control database again. */
export function forgetDirectory(env: Env): void {
  cache.delete(env.DB);
}

interface PlacementRow {
  account_id: string;
  shards: string;
  previous: string | null;
  since: number;
}

async function readDirectory(env: Env, now: number): Promise<Directory> {
  const [placed, sets] = await env.DB.batch([
    env.DB.prepare("SELECT account_id, shards, previous, since FROM shard_placements"),
    env.DB.prepare("SELECT shards, retired_at FROM shard_sets ORDER BY first_seen_at"),
  ]);
  const placements = new Map<string, Placement>();
  for (const row of (placed?.results ?? []) as unknown as PlacementRow[]) {
    placements.set(row.account_id, {
      shards: parseShardList(row.shards),
      previous: row.previous === null ? null : parseShardList(row.previous),
      since: row.since,
    });
  }
  const known = new Set(boundShards(env));
  const olderSets: number[][] = [];
  let storedCurrent: string | null = null;
  for (const row of (sets?.results ?? []) as unknown as { shards: string; retired_at: number | null }[]) {
    if (row.retired_at === null) storedCurrent = row.shards;
    if (row.retired_at === null || now - row.retired_at < RETIRED_SET_READ_MS) {
      // A list naming a shard no longer bound cannot be read; the operator unbinds one only once drained.
      const set = parseShardList(row.shards).filter((i) => known.has(i));
      if (set.length > 0) olderSets.push(set);
    }
  }
  return { placements, olderSets, storedCurrent };
}

export const parseShardList = (text: string): number[] =>
  text.startsWith("[") ? (JSON.parse(text) as number[]) : text.split(",").map(Number);
export const shardListText = (shards: readonly number[]): string => shards.join(",");
