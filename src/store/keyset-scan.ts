import type { CursorPosition, Window } from "../events/query";
import type { EventDbRow } from "../events/serialize";

/**
 * A bounded keyset scan over `events` for the compatibility surfaces (SPEC §9 "bounded work").
 *
 * Rows are read newest first, in chunks, along the primary key (account_id, occurred_at, id) or, for
 * a single email_id or recipient, along that filter's index (both end with occurred_at and carry id,
 * so the keyset order is the index's own). The filters are one SQL expression evaluated per row as a
 * column (`_match`), never in WHERE: WHERE holds only the range, so each chunk's LIMIT bounds the
 * rows D1 reads (plus the row a keyset seek lands on), and a page never reads more than its budget
 * (counted with D1's own rows_read) however rare the filter. The
 * page ends when `limit` rows matched or the budget is spent; the position of the last row *read*
 * (matched or not) is where the next page starts.
 */

export const SCAN_BUDGET = 10_000;
/**
 * At most this many rows per statement. Each statement after the first also reads the row its keyset
 * seek lands on (D1 counts it), so fewer, larger chunks leave more of the budget for results: at 5,000
 * a 10,000-row page returns 9,999 rows (9,998 after the first page). Memory holds one chunk. A page
 * that needs fewer rows reads fewer: a 20-event page without filters reads 21.
 */
export const SCAN_CHUNK = 5_000;

export type AccessPath =
  | { kind: "time" }
  | { kind: "email_id"; value: string }
  | { kind: "recipient"; value: string };

export interface ScanFilter {
  /** An SQL boolean over one events row; null: every row matches. */
  sql: string | null;
  params: (string | number)[];
  /** Extra computed columns (`expr AS name`) the caller maps, with their parameters. */
  columns: string;
  columnParams: (string | number)[];
  access: AccessPath;
}

export interface ScanRow extends EventDbRow {
  [computed: string]: unknown;
}

export interface KeysetScanResult {
  /** Where the next page starts; null when the window is exhausted. */
  next: CursorPosition | null;
  rowsScanned: number;
  /** D1's meta.rows_read summed over the chunk statements. */
  rowsRead: number;
  matched: number;
}

const INDEX = {
  time: "",
  email_id: " INDEXED BY events_email_idx",
  recipient: " INDEXED BY events_recipient_idx",
};

/** The access path's part of WHERE (the account, and the indexed value when there is one). */
function rangeSql(filter: ScanFilter) {
  const access = filter.access;
  const where = ["account_id = ?"];
  const params: (string | number)[] = [];
  if (access.kind !== "time") {
    where.push(`${access.kind} = ?`);
    params.push(access.value);
  }
  return { where, params, index: INDEX[access.kind] };
}

/**
 * Scans one page as an async generator: it yields each chunk's matched rows (possibly none) as it
 * reads them, so a caller streaming a response holds one chunk at a time, and returns where the
 * next page starts.
 */
export async function* scanPage(
  db: D1Database,
  accountId: string,
  window: Window,
  position: CursorPosition | null,
  limit: number,
  filter: ScanFilter,
  budget = SCAN_BUDGET,
): AsyncGenerator<ScanRow[], KeysetScanResult> {
  const { where, params, index } = rangeSql(filter);
  const match = filter.sql === null ? "1" : `COALESCE((${filter.sql}), 0)`;
  const columns = filter.columns ? `, ${filter.columns}` : "";
  let at = position;
  let scanned = 0;
  let rowsRead = 0;
  let matched = 0;
  // Rows D1 counts per statement beyond those it returns and the seek's (none with literal filters;
  // measured, so that a filter costing more per statement still never overruns the budget).
  let overhead = 0;
  let lastChunk = 0;
  for (;;) {
    // Size the chunk to what the page still needs at the match rate seen so far (all of it, plus one
    // row to learn whether more exist, when nothing is known yet), never past the budget: the budget
    // is D1's own rows_read, and a keyset seek costs the row it lands on.
    const wanted = limit - matched;
    const rate = scanned > 0 ? matched / scanned : 1;
    const estimate = rate > 0 ? Math.ceil((wanted / rate) * (scanned > 0 ? 1.25 : 1)) + 1 : lastChunk * 2;
    const seek = at ? 1 : 0;
    // With a filter the rate is a guess: at least 100 rows a statement keeps rare filters from crawling.
    const floor = filter.sql === null ? 1 : 100;
    const chunk = Math.min(SCAN_CHUNK, budget - rowsRead - seek - overhead, Math.max(estimate, floor));
    if (chunk <= 0 || wanted <= 0) break;
    lastChunk = chunk;
    const upper = at ? "(occurred_at, id) < (?, ?)" : "occurred_at < ?";
    const sql =
      `SELECT *, ${match} AS _match${columns} FROM events${index} ` +
      `WHERE ${[...where, "occurred_at >= ?", upper].join(" AND ")} ORDER BY occurred_at DESC, id DESC LIMIT ?`;
    const result = await db
      .prepare(sql)
      .bind(
        ...filter.params,
        ...filter.columnParams,
        accountId,
        ...params,
        window.start,
        ...(at ? [at.occurredAt, at.id] : [window.end]),
        chunk,
      )
      .all<ScanRow>();
    rowsRead += result.meta.rows_read;
    const rows = result.results;
    overhead = Math.max(overhead, result.meta.rows_read - rows.length - seek);
    const out: ScanRow[] = [];
    let consumed = 0;
    for (const row of rows) {
      consumed += 1;
      if (row._match) {
        out.push(row);
        matched += 1;
        if (matched === limit) break;
      }
    }
    scanned += consumed;
    const last = rows[consumed - 1];
    if (last) at = { occurredAt: last.occurred_at, id: last.id };
    yield out;
    // A short chunk read the window to its end: unless the page stopped inside it, nothing is left.
    if (rows.length < chunk && consumed === rows.length)
      return { next: null, rowsScanned: scanned, rowsRead, matched };
  }
  return { next: at, rowsScanned: scanned, rowsRead, matched };
}

/** COUNT of the matching rows of the whole window (SparkPost's total_count), on the same access path. */
export async function countMatches(
  db: D1Database,
  accountId: string,
  window: Window,
  filter: ScanFilter,
): Promise<{ total: number; rowsRead: number }> {
  const { where, params, index } = rangeSql(filter);
  const conditions = [...where, "occurred_at >= ?", "occurred_at < ?"];
  if (filter.sql !== null) conditions.push(`COALESCE((${filter.sql}), 0)`);
  const result = await db
    .prepare(`SELECT COUNT(*) AS total FROM events${index} WHERE ${conditions.join(" AND ")}`)
    .bind(accountId, ...params, window.start, window.end, ...filter.params)
    .all<{ total: number }>();
  return { total: result.results[0]?.total ?? 0, rowsRead: result.meta.rows_read };
}
