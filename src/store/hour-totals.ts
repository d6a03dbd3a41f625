import { HOUR_ROLLUP_MS, type MetricCounter } from "../db/metrics";
import type { EventType } from "../events/record";
import { countMatches, typeMatch } from "./scan";

/**
 * Totals of events by type from the hourly account totals (metric_rollups_hour, store/rollups.ts),
 * for the totals and offset pages whose only filters are the window and event types (SPEC §18).
 *
 * Within raw-event retention each counter of an hour is the number of stored events of its type in
 * that hour (the consumer writes both in one transaction, first arrivals only, scanner-burst
 * deletions taken back; SPEC §15), so a window's count is the counters of its whole UTC hours plus
 * an exact count of its two partial edge hours: at most one row per hour plus the edges' events,
 * instead of every event of the window. One exception: an erasure removes events and leaves the
 * counts (SPEC §20), so callers ask src/erasures/since.ts first and count the events instead while
 * an erasure that removed some could still show in the window.
 */

/** The rollup counter of each event type: every type has one (each counts its events once). */
export const COUNTER_OF_TYPE: Record<EventType, MetricCounter> = {
  "email.sent": "sent",
  "email.delivered": "delivered",
  "email.delayed": "delayed",
  "email.bounced": "bounced",
  "email.complained": "complained",
  "email.suppressed": "suppressed",
  "email.unsubscribed": "unsubscribed",
  "email.opened": "opened",
  "email.clicked": "clicked",
  "email.failed": "failed",
};

export interface Range {
  start: number;
  end: number;
}

/**
 * A window cut at UTC hours: the whole hours inside it (null when none) and the partial hours at
 * its edges, newest first (`newest` is [last whole hour's end, end), `oldest` [start, first whole
 * hour); either null when the window ends or starts on an hour). Without a whole hour the window is
 * its own one edge (`newest`).
 */
export function hourSplit(window: Range): {
  hours: Range | null;
  newest: Range | null;
  oldest: Range | null;
} {
  const H = HOUR_ROLLUP_MS;
  const first = Math.ceil(window.start / H) * H;
  const last = Math.floor(window.end / H) * H;
  if (first >= last) return { hours: null, newest: window.start < window.end ? window : null, oldest: null };
  return {
    hours: { start: first, end: last },
    newest: last < window.end ? { start: last, end: window.end } : null,
    oldest: window.start < first ? { start: window.start, end: first } : null,
  };
}

/** One hour's events of the asked types, by its rollup counters. */
export interface HourCount {
  /** Epoch ms of the UTC hour. */
  bucket: number;
  n: number;
}

/**
 * The asked types' counts of each whole hour of `hours` that has a rollup row, newest first: one
 * statement, one row read per hour stored.
 */
export async function hourCounts(
  db: D1Database,
  accountId: string,
  hours: Range,
  types: readonly EventType[],
): Promise<{ hours: HourCount[]; rowsRead: number }> {
  if (types.length === 0) return { hours: [], rowsRead: 0 };
  const sum = [...new Set(types.map((t) => COUNTER_OF_TYPE[t]))].join(" + ");
  const result = await db
    .prepare(
      `SELECT bucket, ${sum} AS n FROM metric_rollups_hour
        WHERE account_id = ? AND bucket >= ? AND bucket < ? ORDER BY bucket DESC`,
    )
    .bind(accountId, hours.start, hours.end)
    .all<HourCount>();
  return { hours: result.results, rowsRead: result.meta.rows_read };
}

/** The exact count of one range's events of the asked types (an edge of the window), on the time path. */
export async function countRange(
  db: D1Database,
  accountId: string,
  range: Range | null,
  types: readonly EventType[],
): Promise<{ total: number; rowsRead: number }> {
  if (range === null || types.length === 0) return { total: 0, rowsRead: 0 };
  return countMatches(db, accountId, range, { kind: "time" }, typeMatch(types));
}

/**
 * The window's events of the asked types on one database: its whole hours' counters plus the exact
 * counts of its partial edges. Equal to the events' count unless an erasure removed some (above).
 */
export async function countByHours(
  db: D1Database,
  accountId: string,
  window: Range,
  types: readonly EventType[],
): Promise<{ total: number; rowsRead: number }> {
  const split = hourSplit(window);
  const [hours, newest, oldest] = await Promise.all([
    split.hours === null ? { hours: [], rowsRead: 0 } : hourCounts(db, accountId, split.hours, types),
    countRange(db, accountId, split.newest, types),
    countRange(db, accountId, split.oldest, types),
  ]);
  return {
    total: hours.hours.reduce((n, h) => n + h.n, 0) + newest.total + oldest.total,
    rowsRead: hours.rowsRead + newest.rowsRead + oldest.rowsRead,
  };
}
