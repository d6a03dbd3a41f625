import { HOUR_ROLLUP_MS } from "../db/metrics";
import type { EventType } from "../events/record";
import type { EventDbRow } from "../events/serialize";
import { shardTotalKey, totalOnce } from "../lib/totals";
import { mergePages } from "../shards/merge";
import { countRange, type HourCount, hourCounts, hourSplit, type Range } from "./hour-totals";
import { type AccessPath, countMatches, PAGE_ROW_BUDGET, type ScanRow, scanAll, typeMatch } from "./scan";

/**
 * Page-number and offset pagination over `events` (Numonic's `page`, Unosend's `offset`), as those
 * APIs define it: a page is `limit` rows after `offset` in the newest-first order of the account's
 * shards, with the total count of the window (SPEC §16, §18).
 *
 * On the time path (no email_id) the page is located with the hourly rollups (store/hour-totals.ts)
 * instead of walking the rows before it: the hours are walked newest first, summing the asked
 * types' counters over every shard, until the running sum passes `offset` (the partial newest hour
 * by an exact count); each shard then scans from that hour's end, skipping only the remainder. A
 * shard reads its hours (one row each), the partial edge hours' events and what the scan walks: the
 * remainder and the page, in events of the asked types, within the hour that holds the page.
 *
 * Every shard's scan keeps within PAGE_ROW_BUDGET rows with what was read before it. When an hour
 * is so dense in other types that the skip and the page do not fit, the page stops at the budget:
 * it holds the rows found up to there, in order, fewer than `limit` (possibly none), and `short` says
 * so; `total` stays exact. The same holds on the fallback path, which walks `offset + limit` matches
 * from the window's end: an email's events (email_id), or the window while an erasure may have
 * removed events the rollups still count (`byHours` false: erasures/since.ts).
 */

export interface OffsetQuery {
  window: Range;
  types: readonly EventType[];
  emailId: string | null;
  limit: number;
  offset: number;
  /**
   * SPEC §18: the total is counted at most once a minute per account and query; this names the
   * query (lib/totals.ts totalKey), each shard's part under its shardTotalKey. Null: count every time.
   */
  totalKey: string | null;
  /** The hourly rollups count the window's events exactly: no erasure may have removed some since its start. */
  byHours: boolean;
}

export interface OffsetPage {
  rows: EventDbRow[];
  total: number;
  /** D1 rows read, all shards together, and per shard (in the order given). */
  rowsRead: number;
  shardRowsRead: number[];
  /** The row budget stopped some shard before the page was whole: fewer than `limit` rows. */
  short: boolean;
}

/** Where a page's scan starts: the end of the range it reads, and how many matches to skip there. */
interface Start {
  end: number;
  skip: number;
}

export async function offsetPage(
  shards: readonly { shard: number; db: D1Database }[],
  accountId: string,
  query: OffsetQuery,
): Promise<OffsetPage> {
  const path: AccessPath =
    query.emailId !== null ? { kind: "email_id", value: query.emailId } : { kind: "time" };
  const match = typeMatch(query.types);
  // Each shard's total, counted at most once a minute per query and shard (a cached one reads nothing).
  const counted = async (shard: number, count: () => Promise<{ total: number; rowsRead: number }>) => {
    let rowsRead = 0;
    const run = async () => {
      const c = await count();
      rowsRead = c.rowsRead;
      return c.total;
    };
    const total =
      query.totalKey === null ? await run() : await totalOnce(shardTotalKey(query.totalKey, shard), run);
    return { total, rowsRead };
  };
  const scanFrom = (db: D1Database, start: Start, budget: number) =>
    scanAll(db, {
      accountId,
      window: { start: query.window.start, end: start.end },
      path,
      match,
      from: null,
      limit: start.skip + query.limit,
      budget,
    });

  if (path.kind !== "time" || !query.byHours) {
    // The fallback: each shard walks its first offset + limit matches, its count beside.
    const start = { end: query.window.end, skip: query.offset };
    const parts = await Promise.all(
      shards.map(async ({ shard, db }) => {
        const [page, total] = await Promise.all([
          scanFrom(db, start, PAGE_ROW_BUDGET),
          counted(shard, () => countMatches(db, accountId, query.window, path, match)),
        ]);
        return { page, total: total.total, read: page.rowsRead + total.rowsRead };
      }),
    );
    return assemble(parts, start.skip, query.limit);
  }

  const split = hourSplit(query.window);
  const located = await Promise.all(
    shards.map(async ({ shard, db }) => {
      const [hours, newest] = await Promise.all([
        split.hours === null
          ? { hours: [], rowsRead: 0 }
          : hourCounts(db, accountId, split.hours, query.types),
        countRange(db, accountId, split.newest, query.types),
      ]);
      const total = await counted(shard, async () => {
        const oldest = await countRange(db, accountId, split.oldest, query.types);
        const inHours = hours.hours.reduce((n, h) => n + h.n, 0);
        return { total: inHours + newest.total + oldest.total, rowsRead: oldest.rowsRead };
      });
      return {
        hours: hours.hours,
        newest: newest.total,
        total: total.total,
        read: hours.rowsRead + newest.rowsRead + total.rowsRead,
      };
    }),
  );
  const start = locate(
    query.window,
    split.hours,
    located.reduce((n, s) => n + s.newest, 0),
    located.map((s) => s.hours),
    query.offset,
  );
  const parts = await Promise.all(
    shards.map(async ({ db }, i) => {
      const before = located[i]?.read ?? 0;
      const page = await scanFrom(db, start, Math.max(1, PAGE_ROW_BUDGET - before));
      return { page, total: located[i]?.total ?? 0, read: before + page.rowsRead };
    }),
  );
  return assemble(parts, start.skip, query.limit);
}

/**
 * Where the page at `offset` starts: the partial newest hour (`newest` matches on all shards), then
 * the whole hours newest first (every shard's counts summed per hour), then the partial oldest hour.
 * The scan starts at the end of the first of these whose running sum passes `offset`.
 */
export function locate(
  window: Range,
  hours: Range | null,
  newest: number,
  shardHours: readonly (readonly HourCount[])[],
  offset: number,
): Start {
  if (hours === null)
    return offset < newest ? { end: window.end, skip: offset } : { end: window.start, skip: 0 };
  if (offset < newest) return { end: window.end, skip: offset };
  let skip = offset - newest;
  const perHour = new Map<number, number>();
  for (const list of shardHours)
    for (const h of list) perHour.set(h.bucket, (perHour.get(h.bucket) ?? 0) + h.n);
  for (const bucket of [...perHour.keys()].sort((a, b) => b - a)) {
    const n = perHour.get(bucket) ?? 0;
    if (skip < n) return { end: bucket + HOUR_ROLLUP_MS, skip };
    skip -= n;
  }
  return { end: hours.start, skip };
}

/** The shards' pages merged newest first (store/scan.ts order), the skip dropped, the totals summed. */
function assemble(
  parts: {
    page: { rows: ScanRow[]; hasMore: boolean; next: { occurredAt: number; id: string } | null };
    total: number;
    read: number;
  }[],
  skip: number,
  limit: number,
): OffsetPage {
  const merged = mergePages(
    parts.map(({ page }) => ({
      rows: page.rows,
      scannedTo: page.hasMore && page.next ? { at: page.next.occurredAt, id: page.next.id } : null,
    })),
    skip + limit,
    (row) => ({ at: row.occurred_at, id: row.id }),
  );
  const rows = merged.rows.slice(skip);
  return {
    rows,
    total: parts.reduce((n, p) => n + p.total, 0),
    rowsRead: parts.reduce((n, p) => n + p.read, 0),
    shardRowsRead: parts.map((p) => p.read),
    short: rows.length < limit && merged.continueBelow !== null,
  };
}
