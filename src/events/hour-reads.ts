import { eventsCompleteFrom } from "../accounts/plans";
import type { Env } from "../env";
import { erasedEventsSince } from "../erasures/since";
import { countAcross } from "../shards/across";
import { shardDb } from "../shards/bindings";
import {
  countByHours,
  countByRollups,
  type OffsetPage,
  type OffsetQuery,
  offsetPage,
  type Range,
  rollupEquals,
  rollupTagsAnyOf,
} from "../store";
import type { EventFilters } from "./query";
import { EVENT_TYPES, type EventType } from "./record";

/**
 * Reads of the account's events that the hourly rollups (store/hour-totals.ts) answer in rows per
 * hour instead of rows per event, when only the window and event types filter them and no erasure
 * may have removed events they still count (erasures/since.ts; SPEC §18, §20).
 */

/**
 * How a total may be counted without reading the window's events: `types` alone (the hourly
 * rollups), or `types` and a filter on the dimensions the metrics rollups hold
 * (store/rollup-totals.ts). Null: only the events' own count answers it.
 */
export interface TotalByRollups {
  types: readonly EventType[];
  /** An SQL boolean over a rollup row's columns; null when only the types filter. */
  where: string | null;
}

/**
 * The total of a window's events on the shards the account is read from, summed (SPEC §17, §18):
 * from the hourly rollups (store/hour-totals.ts: a row per hour plus the partial edge hours' events)
 * when only the window and event types filter it, from the day and quarter-hour rollups when the
 * other filters are their dimensions (store/rollup-totals.ts), and otherwise, or while an erasure
 * may have removed events they still count (erasures/since.ts), by `exact`, each shard's count of
 * its events in a range. All give the same number; the rollups read rows per hour or key instead
 * of rows per event.
 */
export async function windowTotal(
  env: Env,
  shards: readonly number[],
  accountId: string,
  window: Range,
  byRollups: TotalByRollups | null,
  exact: (db: D1Database, range: Range) => Promise<{ total: number; rowsRead: number }>,
): Promise<{ total: number; rowsRead: number; byHours: boolean }> {
  const trust = byRollups === null ? null : await rollupsTrusted(env, accountId, window.start);
  if (byRollups === null || trust === null) {
    const counted = await countAcross(env, shards, (db) => exact(db, window));
    return { ...counted, byHours: false };
  }
  // The part of the window before the events are complete (a plan change's gap) counts its events.
  const cut = Math.min(trust.from, window.end);
  let byHours = true;
  const counted = await countAcross(env, shards, async (db) => {
    const [head, rest] = await Promise.all([
      cut > window.start ? exact(db, { start: window.start, end: cut }) : { total: 0, rowsRead: 0 },
      cut < window.end
        ? countRest(db, accountId, { start: cut, end: window.end }, byRollups, exact)
        : { total: 0, rowsRead: 0, byRollups: true },
    ]);
    if (!rest.byRollups) byHours = false;
    return { total: head.total + rest.total, rowsRead: head.rowsRead + rest.rowsRead };
  });
  return { ...counted, byHours };
}

/**
 * One shard's count of a range the rollups may answer: the hourly totals for types alone, the day
 * and quarter-hour rollups for their dimensions, or its events when those cannot (a folded value,
 * too many rollup rows; the rollup reads count too).
 */
async function countRest(
  db: D1Database,
  accountId: string,
  range: Range,
  byRollups: TotalByRollups,
  exact: (db: D1Database, range: Range) => Promise<{ total: number; rowsRead: number }>,
): Promise<{ total: number; rowsRead: number; byRollups: boolean }> {
  const { types, where } = byRollups;
  if (where === null) return { ...(await countByHours(db, accountId, range, types)), byRollups: true };
  const tried = await countByRollups(db, accountId, range, { types, where }, (edge) => exact(db, edge));
  if (tried.total !== null) return { total: tried.total, rowsRead: tried.rowsRead, byRollups: true };
  const events = await exact(db, range);
  return { total: events.total, rowsRead: tried.rowsRead + events.rowsRead, byRollups: false };
}

/**
 * Whether the rollups count exactly the account's stored events of a window starting at `start`,
 * and from when: null while an erasure may have removed events they still count (erasures/since.ts,
 * SPEC §20); else `from`, the time since which the stored events are complete (a plan change that
 * lengthened the retention leaves the purge's earlier removals before it; accounts/plans.ts), or
 * `start` itself. Two look-ups in the control database.
 */
async function rollupsTrusted(env: Env, accountId: string, start: number): Promise<{ from: number } | null> {
  const [erased, completeFrom] = await Promise.all([
    erasedEventsSince(env, accountId, start),
    eventsCompleteFrom(env, accountId),
  ]);
  return erased ? null : { from: Math.max(start, completeFrom ?? start) };
}

/** GET /v1/events's filters as the rollups hold them (types and dimensions), else null. */
export function eventTotalByRollups(filters: EventFilters): TotalByRollups | null {
  const { types, topic, templateId, campaign, domain, tags, ...others } = filters;
  // Recipients, emails and Message-IDs are counted through their own index; a recipient domain is
  // held by the quarter-hour rows only (a window's worth of them), so it counts its events.
  if (Object.values(others).some((v) => v !== null)) return null;
  const where: string[] = [];
  for (const [column, value] of [
    ["topic", topic],
    ["template_id", templateId],
    ["campaign", campaign],
    ["from_domain", domain],
  ] as const) {
    if (value === null) continue;
    const sql = rollupEquals(column, value);
    if (sql === null) return null;
    where.push(sql);
  }
  if (tags !== null) {
    const sql = rollupTagsAnyOf(tags);
    if (sql === null) return null;
    where.push(sql);
  }
  return { types: types ?? EVENT_TYPES, where: where.length > 0 ? where.join(" AND ") : null };
}

/**
 * An offset page (Numonic's `page`, Unosend's `offset`) of the account's events on `shards`
 * (store/offset-page.ts): located by the hourly rollups on the time path unless an erasure may
 * have removed events since the window's start, or a plan change left a gap in the window.
 */
export async function offsetEvents(
  env: Env,
  shards: readonly number[],
  accountId: string,
  query: Omit<OffsetQuery, "byHours">,
): Promise<OffsetPage> {
  // The rollups place the page only where they count the stored events from the window's start on.
  const trust = query.emailId === null ? await rollupsTrusted(env, accountId, query.window.start) : null;
  const byHours = trust !== null && trust.from <= query.window.start;
  return offsetPage(
    shards.map((shard) => ({ shard, db: shardDb(env, shard) })),
    accountId,
    { ...query, byHours },
  );
}
