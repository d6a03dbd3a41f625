import type { Env } from "../env";
import { erasedEventsSince } from "../erasures/since";
import { countAcross } from "../shards/across";
import { shardDb } from "../shards/bindings";
import { countByHours, type OffsetPage, type OffsetQuery, offsetPage } from "../store";
import type { EventFilters } from "./query";
import { EVENT_TYPES, type EventType } from "./record";

/**
 * Reads of the account's events that the hourly rollups (store/hour-totals.ts) answer in rows per
 * hour instead of rows per event, when only the window and event types filter them and no erasure
 * may have removed events they still count (erasures/since.ts; SPEC §18, §20).
 */

/**
 * The total of a window's events on the shards the account is read from, summed (SPEC §17, §18):
 * from the hourly rollups (store/hour-totals.ts: a row per hour plus the partial edge hours' events)
 * when only the window and event types filter it, and otherwise, or while an erasure may have
 * removed events counted there (erasures/since.ts), by `exact`, each shard's count of its events.
 * Both give the same number; the first reads hours instead of events.
 */
export async function windowTotal(
  env: Env,
  shards: readonly number[],
  accountId: string,
  window: { start: number; end: number },
  /** The types counted when nothing but them and the window filters; null: other filters too. */
  types: readonly EventType[] | null,
  exact: (db: D1Database, shard: number) => Promise<{ total: number; rowsRead: number }>,
): Promise<{ total: number; rowsRead: number; byHours: boolean }> {
  const byHours = types !== null && !(await erasedEventsSince(env, accountId, window.start));
  const counted = await countAcross(env, shards, (db, shard) =>
    byHours ? countByHours(db, accountId, window, types) : exact(db, shard),
  );
  return { ...counted, byHours };
}

/** GET /v1/events's filters when only event types narrow them (null types: every type), else null. */
export function typesOnly(filters: EventFilters): readonly EventType[] | null {
  const { types, ...others } = filters;
  return Object.values(others).every((v) => v === null) ? (types ?? EVENT_TYPES) : null;
}

/**
 * An offset page (Numonic's `page`, Unosend's `offset`) of the account's events on `shards`
 * (store/offset-page.ts): located by the hourly rollups on the time path unless an erasure may
 * have removed events since the window's start.
 */
export async function offsetEvents(
  env: Env,
  shards: readonly number[],
  accountId: string,
  query: Omit<OffsetQuery, "byHours">,
): Promise<OffsetPage> {
  const byHours = query.emailId === null && !(await erasedEventsSince(env, accountId, query.window.start));
  return offsetPage(
    shards.map((shard) => ({ shard, db: shardDb(env, shard) })),
    accountId,
    { ...query, byHours },
  );
}
