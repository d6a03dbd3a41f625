import type { Env } from "../env";
import type { EventType } from "../events/record";
import type { EventDbRow } from "../events/serialize";

/**
 * Page-number and offset pagination over `events` (Numonic's `page`, Unosend's `offset`), as those
 * APIs define it: a page is `limit` rows after `offset` in the newest-first order, with the total
 * count of the window. Page and count run in one D1 batch (one round trip).
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
}

export async function offsetPage(
  env: Env,
  accountId: string,
  query: OffsetQuery,
): Promise<{ rows: EventDbRow[]; total: number; rowsRead: number }> {
  const index = query.emailId !== null ? " INDEXED BY events_email_idx" : "";
  const where = [
    "account_id = ?",
    ...(query.emailId !== null ? ["email_id = ?"] : []),
    "occurred_at >= ?",
    "occurred_at < ?",
    "type IN (SELECT value FROM json_each(?))",
  ].join(" AND ");
  const params = [
    accountId,
    ...(query.emailId !== null ? [query.emailId] : []),
    query.window.start,
    query.window.end,
    JSON.stringify(query.types),
  ];
  const [page, count] = await env.DB.batch<unknown>([
    env.DB.prepare(
      `SELECT * FROM events${index} WHERE ${where} ORDER BY occurred_at DESC, id DESC LIMIT ? OFFSET ?`,
    ).bind(...params, query.limit, query.offset),
    env.DB.prepare(`SELECT COUNT(*) AS total FROM events${index} WHERE ${where}`).bind(...params),
  ]);
  return {
    rows: (page?.results ?? []) as EventDbRow[],
    total: ((count?.results ?? [])[0] as { total: number } | undefined)?.total ?? 0,
    rowsRead: (page?.meta.rows_read ?? 0) + (count?.meta.rows_read ?? 0),
  };
}

/** Offset paging serves `offset + limit` up to this many rows (SPEC §18): a page reads the rows before it. */
export const MAX_OFFSET_END = 10_000;
