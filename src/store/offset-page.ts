import type { EventType } from "../events/record";
import type { EventDbRow } from "../events/serialize";
import { totalOnce } from "../lib/totals";
import { type AccessPath, countMatches, scanAll, typeMatch } from "./scan";

/**
 * Page-number and offset pagination over `events` (Numonic's `page`, Unosend's `offset`), as those
 * APIs define it: a page is `limit` rows after `offset` in the newest-first order, with the total
 * count of the window. The page is the store's streaming scan (scan.ts) up to offset + limit matches;
 * the total is its count, run beside it.
 *
 * Cost, by the nature of offsets and totals: a page reads the rows before it (offset + limit, more
 * when the type filter skips rows) and the total reads every row of the window. Numonic and Unosend
 * clients page with small limits (≤ 100) over their own events; SparkPost's keyset search is the
 * bounded way to read a large window (BENCHMARKS.md).
 */

export interface OffsetQuery {
  window: { start: number; end: number };
  types: readonly EventType[];
  emailId: string | null;
  limit: number;
  offset: number;
  /**
   * SPEC §18: the total is counted at most once a minute per account and query; this names the
   * query (lib/totals.ts totalKey). Null: count every time.
   */
  totalKey: string | null;
}

export async function offsetPage(
  db: D1Database,
  accountId: string,
  query: OffsetQuery,
): Promise<{ rows: EventDbRow[]; total: number; rowsRead: number }> {
  const path: AccessPath =
    query.emailId !== null ? { kind: "email_id", value: query.emailId } : { kind: "time" };
  const match = typeMatch(query.types);
  // Offsets are the surfaces' own paging (at most 10,000 deep): the page reads what they ask for.
  const [page, count] = await Promise.all([
    scanAll(db, {
      accountId,
      window: query.window,
      path,
      match,
      from: null,
      limit: query.offset + query.limit,
      budget: Number.POSITIVE_INFINITY,
    }),
    (async () => {
      let rowsRead = 0;
      const count = async () => {
        const counted = await countMatches(db, accountId, query.window, path, match);
        rowsRead = counted.rowsRead;
        return counted.total;
      };
      const total = query.totalKey === null ? await count() : await totalOnce(query.totalKey, count);
      return { total, rowsRead };
    })(),
  ]);
  return {
    rows: page.rows.slice(query.offset),
    total: count.total,
    rowsRead: page.rowsRead + count.rowsRead,
  };
}
