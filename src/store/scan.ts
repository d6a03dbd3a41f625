import type { CursorPosition, EventFilters, Window } from "../events/query";
import type { EventDbRow } from "../events/serialize";

/**
 * The bounded scan behind GET /v1/events (SPEC §9 "Bounded work"), reusable by any list that filters
 * events (the compatibility endpoints add their own row test as `residual`).
 *
 * A page reads at most `rowBudget` rows of D1 (10,000 by default) however rare the filter. The scan
 * walks the access path (eventAccessPath) newest first from `position`, in chunks: each chunk is one
 * statement that reads at most `chunk` rows in index order and returns only those passing the SQL
 * filters, stopping as soon as it has enough:
 *
 *   SELECT * FROM (SELECT * FROM events … ORDER BY occurred_at DESC, id DESC LIMIT chunk)
 *    WHERE <residual filters> LIMIT want + 1
 *
 * When a chunk yields fewer than `want + 1` rows, it read all of its `chunk` rows (or the window
 * ended), and the scan needs to know where it stopped: a second statement reads the chunk's last key
 * (`LIMIT 1 OFFSET chunk - 1`, the same rows again, so a chunk is at most half the remaining budget).
 * No row there means the window is exhausted. Otherwise the scan goes on from that key while budget
 * remains, then stops with `hasMore` and `next` = that key: the next page continues where this one
 * stopped, never repeating or skipping a row, and may itself hold no event.
 *
 * Costs: a common filter reads about limit ÷ (share of matching events) rows, as before; a filter
 * with an index (email_id, recipient, message_id) reads about its matches; a rare residual filter
 * reads at most `rowBudget` and comes back short with a cursor.
 */

export const PAGE_ROW_BUDGET = 10_000;

/** Where a scan walks: the primary key (time) or one filter's index (accessPathSql). */
export type AccessPath =
  | { kind: "time" }
  | { kind: "email_id"; value: string }
  | { kind: "recipient"; value: string }
  | { kind: "message_id"; value: string };
/** The first chunk of a filtered scan, before its cost per row is known (at most 12 rows read a row). */
const PROBE_ROWS = 400;

export interface ScanOptions {
  /** Matching rows wanted at most. */
  limit: number;
  /** D1 rows the scan may read (rows_read of its statements); default PAGE_ROW_BUDGET. */
  rowBudget?: number;
  /** A row test beyond the SQL filters (the compatibility endpoints' keyword search). */
  residual?: (row: EventDbRow) => boolean;
}

export interface ScanResult {
  /** Matching rows, newest first, at most `limit`. */
  rows: EventDbRow[];
  /** Whether rows may remain below `next` (then `next` is set). */
  hasMore: boolean;
  /** The position to continue from (exclusive): the last row returned, or where the budget ran out. */
  next: CursorPosition | null;
  /** D1 rows read by the scan's statements. */
  rowsRead: number;
}

export async function scanEvents(
  db: D1Database,
  accountId: string,
  filters: EventFilters,
  window: Window,
  position: CursorPosition | null,
  options: ScanOptions,
): Promise<ScanResult> {
  const budget = options.rowBudget ?? PAGE_ROW_BUDGET;
  const { index, seek, residual } = eventAccessPath(accountId, filters);
  const range = (from: CursorPosition | null) => {
    const where = ["account_id = ?", "occurred_at >= ?"];
    const params: (string | number)[] = [accountId, window.start];
    if (from) {
      where.push("(occurred_at, id) < (?, ?)");
      params.push(from.occurredAt, from.id);
    } else {
      where.push("occurred_at < ?");
      params.push(window.end);
    }
    if (seek.sql) {
      where.push(seek.sql);
      params.push(...seek.params);
    }
    return {
      sql: `FROM events${index} WHERE ${where.join(" AND ")} ORDER BY occurred_at DESC, id DESC`,
      params,
    };
  };

  const rows: EventDbRow[] = [];
  let rowsRead = 0;
  let at = position;
  // D1 rows read per row a filtered chunk walks: 1 for a column filter, more when the residual SQL
  // reads a JSON array (`tags` through json_each counts its elements, up to 10 an event). Measured
  // on each chunk read to its end, with a margin; until then the first chunk is a small probe, so a
  // page stays within its budget whatever the filter costs.
  let costPerRow = 1;
  // Column filters cost exactly one row a row; only a JSON residual needs the probe.
  let measured = !residual.sql.includes("json_each");
  for (;;) {
    const want = options.limit - rows.length;
    // A chunk costs its filtered statement (costPerRow a row) plus the boundary seek (1 a row), plus
    // one row each for the seeks; the first one stays small until the filter's cost is known.
    const room = budget - rowsRead - 2;
    const chunk = Math.floor(measured ? room / (costPerRow * 1.25 + 1) : Math.min(room / 2, PROBE_ROWS));
    if (chunk < 1 && at !== null) return { rows, hasMore: true, next: at, rowsRead };
    const r = range(at);
    const filtered = residual.sql
      ? `SELECT * FROM (SELECT * ${r.sql} LIMIT ?) AS events WHERE ${residual.sql} LIMIT ?`
      : `SELECT * ${r.sql} LIMIT MIN(?, ?)`;
    const page = await db
      .prepare(filtered)
      .bind(...r.params, Math.max(1, chunk), ...residual.params, want + 1)
      .all<EventDbRow>();
    rowsRead += page.meta.rows_read;
    const candidates = page.results;
    for (const row of candidates) {
      if (options.residual && !options.residual(row)) continue;
      // A match beyond a full page: there is more, and the page ends at its last row.
      if (rows.length === options.limit)
        return { rows, hasMore: true, next: positionOf(rows.at(-1)), rowsRead };
      rows.push(row);
    }
    if (candidates.length === want + 1) {
      // SQL had more rows than wanted, so the scan covered everything down to the last of them (only
      // a JS residual can have rejected some and left the page short or just full).
      at = positionOf(candidates.at(-1));
      if (rows.length === options.limit) return { rows, hasMore: true, next: at, rowsRead };
      continue;
    }
    // Fewer. Without any residual every row of the path matched, so the path itself has ended.
    if (!residual.sql && !options.residual && chunk >= want + 1)
      return { rows, hasMore: false, next: null, rowsRead };
    // A chunk that read fewer rows than it may hold ran out of path: the inner LIMIT stops only
    // after `chunk` rows, each of them read.
    if (page.meta.rows_read < chunk) return { rows, hasMore: false, next: null, rowsRead };
    // Otherwise the chunk was read to its end (or the window's): what each walked row cost is known.
    costPerRow = Math.max(costPerRow, page.meta.rows_read / Math.max(1, chunk));
    measured = true;
    // Where did it end?
    const boundary = await db
      .prepare(`SELECT occurred_at, id ${r.sql} LIMIT 1 OFFSET ?`)
      .bind(...r.params, Math.max(1, chunk) - 1)
      .all<{ occurred_at: number; id: string }>();
    rowsRead += boundary.meta.rows_read;
    const end = boundary.results[0];
    if (!end) return { rows, hasMore: false, next: null, rowsRead };
    at = { occurredAt: end.occurred_at, id: end.id };
    if (rows.length === options.limit) return { rows, hasMore: true, next: at, rowsRead };
  }
}

/**
 * COUNT of the rows matching `filters` in the whole window, on the scan's access path (count=true;
 * its cost is in BENCHMARKS.md).
 */
export async function countEvents(
  db: D1Database,
  accountId: string,
  filters: EventFilters,
  window: Window,
): Promise<{ total: number; rowsRead: number }> {
  const { path, residual } = eventAccessPath(accountId, filters);
  return countMatches(db, accountId, window, path, residual.sql === "" ? null : residual);
}

function positionOf(row: EventDbRow | undefined): CursorPosition | null {
  return row ? { occurredAt: row.occurred_at, id: row.id } : null;
}

/** SQL text and its parameters. */
export interface Fragment {
  sql: string;
  params: (string | number)[];
}

/**
 * How GET /v1/events's filters read `events`: the access path (accessPathSql: email_id, else
 * recipient, else message_id, else time) and the residual conditions tested on each row that path
 * yields (every other filter).
 */
export function eventAccessPath(
  accountId: string,
  filters: EventFilters,
): { path: AccessPath; index: string; seek: Fragment; residual: Fragment } {
  const where: string[] = [];
  const params: (string | number)[] = [];
  const eq = (column: string, value: string | null) => {
    if (value === null) return;
    where.push(`${column} = ?`);
    params.push(value);
  };
  // email_id is always the seek when given, recipient when email_id is not: neither repeats as residual.
  if (filters.emailId !== null) eq("recipient", filters.recipient);
  if (filters.emailId !== null || filters.recipient !== null) eq("message_id", filters.messageId);
  eq("topic", filters.topic);
  eq("template_id", filters.templateId);
  eq("campaign", filters.campaign);
  eq("from_domain", filters.domain);
  // Recipients are stored lowercased, domains in their ASCII (punycode) spelling.
  eq("substr(recipient, instr(recipient, '@') + 1)", filters.recipientDomain);
  if (filters.types) {
    where.push(`type IN (${filters.types.map(() => "?").join(", ")})`);
    params.push(...filters.types);
  }
  if (filters.tags) {
    where.push(
      `EXISTS (SELECT 1 FROM json_each(events.tags) WHERE json_each.value IN (${filters.tags.map(() => "?").join(", ")}))`,
    );
    params.push(...filters.tags);
  }
  const residual = { sql: where.join(" AND "), params };
  const path: AccessPath =
    filters.emailId !== null
      ? { kind: "email_id", value: filters.emailId }
      : filters.recipient !== null
        ? { kind: "recipient", value: filters.recipient }
        : filters.messageId !== null
          ? { kind: "message_id", value: filters.messageId }
          : { kind: "time" };
  return { path, ...accessPathSql(accountId, path), residual };
}

/**
 * How a scan reads `events`: the index it names and the equality that seeks it (after
 * `account_id = ?`). Without stored statistics SQLite prefers the primary-key range over an equality
 * index, so the selective paths name their index.
 * - `email_id` → events_email_idx; `recipient` → events_recipient_idx.
 * - `message_id` → the emails the Message-ID map lists, through events_email_idx: an index seek per
 *   email instead of a scan of the window (`message_id = ?` is checked on those emails' rows, which
 *   carry it but for rare exceptions, so the seek reads about its matches).
 * - `time`: the primary key, (account_id, occurred_at, id), newest first.
 * Each index ends with occurred_at and carries id, so the keyset order is the index's own.
 */
export function accessPathSql(accountId: string, path: AccessPath): { index: string; seek: Fragment } {
  switch (path.kind) {
    case "time":
      return { index: "", seek: { sql: "", params: [] } };
    case "email_id":
      return { index: " INDEXED BY events_email_idx", seek: { sql: "email_id = ?", params: [path.value] } };
    case "recipient":
      return {
        index: " INDEXED BY events_recipient_idx",
        seek: { sql: "recipient = ?", params: [path.value] },
      };
    case "message_id":
      return {
        index: " INDEXED BY events_email_idx",
        seek: {
          sql: "email_id IN (SELECT email_id FROM message_ids WHERE account_id = ? AND message_id = ?) AND message_id = ?",
          params: [accountId, path.value, path.value],
        },
      };
  }
}

/**
 * COUNT of the rows of the window that `match` (an SQL boolean over an events row; null: all)
 * accepts, on the access path: count=true, SparkPost's total_count, Numonic's and Unosend's total.
 */
export async function countMatches(
  db: D1Database,
  accountId: string,
  window: { start: number; end: number },
  path: AccessPath,
  match: Fragment | null,
): Promise<{ total: number; rowsRead: number }> {
  const { index, seek } = accessPathSql(accountId, path);
  const where = ["account_id = ?", "occurred_at >= ?", "occurred_at < ?", seek.sql];
  if (match && match.sql !== "") where.push(`(${match.sql})`);
  const result = await db
    .prepare(
      `SELECT COUNT(*) AS total FROM events${index} WHERE ${where.filter((w) => w !== "").join(" AND ")}`,
    )
    .bind(accountId, window.start, window.end, ...seek.params, ...(match?.params ?? []))
    .all<{ total: number }>();
  return { total: result.results[0]?.total ?? 0, rowsRead: result.meta.rows_read };
}

// ---------------------------------------------------------------------------------------------
// The streaming form: the filter as a column, for pages that stream chunk by chunk (SparkPost) and
// for offset pages (Numonic, Unosend) and webhook replay.

/**
 * A bounded keyset scan for the streamed surfaces (SPEC §9 "bounded work"). Rows are read newest
 * first, in chunks, along the access path. The filters are one SQL expression evaluated per row as a
 * column (`_match`), never in WHERE: WHERE holds only the range, so each chunk's LIMIT bounds the
 * rows D1 reads (plus the row a keyset seek lands on), and a page never reads more than its budget
 * (counted with D1's own rows_read) however rare the filter. The page ends when `limit` rows matched
 * or the budget is spent; the position of the last row *read* (matched or not) is where the next
 * page starts.
 */
export const SCAN_BUDGET = PAGE_ROW_BUDGET;
/**
 * At most this many rows per statement. Each statement after the first also reads the row its keyset
 * seek lands on (D1 counts it), so fewer, larger chunks leave more of the budget for results: at 5,000
 * a 10,000-row page returns 9,999 rows (9,998 after the first page). Memory holds one chunk. A page
 * that needs fewer rows reads fewer: a 20-event page without filters reads 21.
 */
export const SCAN_CHUNK = 5_000;

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

/** The access path's part of WHERE (the account, and the indexed value when there is one). */
function rangeSql(accountId: string, filter: ScanFilter) {
  const { index, seek } = accessPathSql(accountId, filter.access);
  return { where: ["account_id = ?", ...(seek.sql ? [seek.sql] : [])], params: seek.params, index };
}

/**
 * Scans one page as an async generator: it yields each chunk's matched rows (possibly none) as it
 * reads them, so a caller streaming a response holds one chunk at a time, and returns where the
 * next page starts.
 */
export async function* scanPage(
  db: D1Database,
  accountId: string,
  window: { start: number; end: number },
  position: CursorPosition | null,
  limit: number,
  filter: ScanFilter,
  budget = SCAN_BUDGET,
): AsyncGenerator<ScanRow[], KeysetScanResult> {
  const { where, params, index } = rangeSql(accountId, filter);
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

/** Every chunk of a scan, gathered: the rows it matched and how it ended. */
export async function collectScan(
  scan: AsyncGenerator<ScanRow[], KeysetScanResult>,
): Promise<{ rows: ScanRow[]; result: KeysetScanResult }> {
  const rows: ScanRow[] = [];
  for (;;) {
    const step = await scan.next();
    if (step.done) return { rows, result: step.value };
    rows.push(...step.value);
  }
}

/** A filter on the event's type, as the streaming scan's `_match` (a literal list: no json_each per row). */
export function typeFilter(types: readonly string[] | null, access: AccessPath): ScanFilter {
  return {
    sql: types === null ? null : `type IN (${types.map(() => "?").join(", ")})`,
    params: [...(types ?? [])],
    columns: "",
    columnParams: [],
    access,
  };
}
