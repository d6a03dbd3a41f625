import type { CursorPosition, EventFilters } from "../events/query";
import type { EventDbRow } from "../events/serialize";

/**
 * The one bounded scanner over `events` (SPEC §9 "Bounded work", §18), behind GET /v1/events and the
 * export, SparkPost, Numonic, Unosend and webhook replay. Callers say what to read (an access path, a
 * residual SQL match, a JS residual, a row budget); they write no SQL.
 *
 * A scan reads at most `budget` rows of D1 (its statements' meta.rows_read; 10,000 by default)
 * however rare the match. It walks the access path (accessPathSql) newest first from `from`, in
 * chunks: each chunk is one statement that reads at most `chunk` rows in index order and returns only
 * those the SQL match accepts, stopping as soon as it has enough:
 *
 *   SELECT * FROM (SELECT * FROM events … ORDER BY occurred_at DESC, id DESC LIMIT chunk)
 *    WHERE <match> LIMIT want + 1
 *
 * Without a match every row read is returned, so the last one is where the scan stands. With one,
 * a chunk that yields fewer than `want + 1` rows read all of its `chunk` rows (or the window ended),
 * and a second statement reads the chunk's last key (`LIMIT 1 OFFSET chunk - 1`, the same rows
 * again, so such a chunk is at most half the remaining budget). No row there means the window is
 * exhausted. Otherwise the scan goes on from that key while budget remains, then stops with
 * `hasMore` and `next` = that key: the next page continues where this one stopped, never repeating
 * or skipping a row, and may itself hold no event.
 *
 * Costs: a page without a match reads what it returns (plus one row to see that more follow, plus
 * the row a keyset seek lands on); a common match reads about want ÷ (share of matching events)
 * rows; a match with an index (email_id, recipient, message_id) reads about its matches; a rare
 * match reads at most `budget` and comes back short with a cursor. Results are ordered by
 * (occurred_at, id) descending and resume from a position, so scans of several databases merge by
 * that key (SPEC §17).
 */

export const PAGE_ROW_BUDGET = 10_000;
/**
 * At most this many rows per statement. Each statement after the first also reads the row its keyset
 * seek lands on (D1 counts it), so fewer, larger chunks leave more of the budget for results: a
 * 10,000-row page without a match returns 9,999 rows. Memory holds one chunk.
 */
export const SCAN_CHUNK = 5_000;

/**
 * The rows a first page may read after its total was counted (SPEC §18: a request's rows per
 * shard): what the count left of the budget. A count that alone read more than the budget (the
 * events' own count, for a filter no rollup holds) leaves the page half of it, so that the page is
 * still of use; the request is past the budget either way.
 */
export function pageBudgetAfterCount(budget: number, countRowsRead: number): number {
  return countRowsRead <= budget ? budget - countRowsRead : Math.floor(budget / 2);
}
/** The first chunk of a match that reads a JSON array, before its cost per row is known (at most 12 rows read a row). */
const PROBE_ROWS = 400;

/** A string as an SQL literal, for lists inlined past D1's 100 bound parameters. */
export const sqlLiteral = (value: string) => `'${value.replaceAll("'", "''")}'`;

/** Where a scan walks: the primary key (time) or one filter's index (accessPathSql). */
export type AccessPath =
  | { kind: "time" }
  | { kind: "email_id"; value: string }
  | { kind: "recipient"; value: string }
  | { kind: "message_id"; value: string }
  // Counts only (countMatches): several values, each a seek on its index (inlined literals: D1
  // binds at most 100 parameters).
  | { kind: "recipients"; values: readonly string[] }
  | { kind: "email_ids"; values: readonly string[] };

export interface ScanRequest {
  accountId: string;
  window: { start: number; end: number };
  path: AccessPath;
  /** An SQL boolean over one events row, with its parameters; null: every row matches. */
  match: Fragment | null;
  /** A row test beyond the SQL match (a keyword search). */
  residual?: (row: ScanRow) => boolean;
  /** Extra computed columns (`expr AS name`), parameterless. */
  columns?: string;
  /** The position to continue from (exclusive); null: the window's end. */
  from: CursorPosition | null;
  /** Matching rows wanted at most. */
  limit: number;
  /** D1 rows the scan may read; default PAGE_ROW_BUDGET. */
  budget?: number;
}

export interface ScanRow extends EventDbRow {
  [computed: string]: unknown;
}

export interface ScanEnd {
  /** Whether rows may remain below `next` (then `next` is set). */
  hasMore: boolean;
  /** The position to continue from (exclusive): the last row returned, or where the budget ran out; null when the window is exhausted. */
  next: CursorPosition | null;
  /** D1 rows read by the scan's statements. */
  rowsRead: number;
}

/**
 * The scan as an async generator: it yields each chunk's matching rows (possibly none) as it reads
 * them, so a caller streaming a response holds one chunk at a time, and returns where it stopped.
 */
export async function* scan(db: D1Database, req: ScanRequest): AsyncGenerator<ScanRow[], ScanEnd> {
  const budget = req.budget ?? PAGE_ROW_BUDGET;
  const { index, seek } = accessPathSql(req.accountId, req.path);
  const match = req.match?.sql ? req.match : null;
  const columns = req.columns ? `, ${req.columns}` : "";
  const range = (from: CursorPosition | null) => {
    const where = ["account_id = ?", "occurred_at >= ?"];
    const params: (string | number)[] = [req.accountId, req.window.start];
    if (from) {
      where.push("(occurred_at, id) < (?, ?)");
      params.push(from.occurredAt, from.id);
    } else {
      where.push("occurred_at < ?");
      params.push(req.window.end);
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

  let returned = 0;
  let rowsRead = 0;
  let at = req.from;
  // D1 rows read per row a matched chunk walks: 1 for a column test, more when the match reads a JSON
  // array (`tags` through json_each counts its elements, up to 10 an event). Measured on each chunk
  // read to its end, with a margin; until then the first chunk is a small probe, so a scan stays
  // within its budget whatever the match costs.
  let costPerRow = 1;
  let measured = !match?.sql.includes("json_each");
  for (;;) {
    const want = req.limit - returned;
    // Without a match a chunk costs its rows plus the row its keyset seek lands on. A matched chunk
    // costs its statement (costPerRow a row) plus the boundary seek (1 a row), plus one row each for
    // the seeks; the first stays small until the match's cost is known.
    const room = budget - rowsRead - (match === null ? (at ? 1 : 0) : 2);
    const chunk = Math.min(
      SCAN_CHUNK,
      Math.floor(
        match === null ? room : measured ? room / (costPerRow * 1.25 + 1) : Math.min(room / 2, PROBE_ROWS),
      ),
    );
    if (chunk < 1 && at !== null) return { hasMore: true, next: at, rowsRead };
    const size = Math.max(1, chunk);
    const r = range(at);
    const statement =
      match === null
        ? db.prepare(`SELECT *${columns} ${r.sql} LIMIT MIN(?, ?)`).bind(...r.params, size, want + 1)
        : db
            .prepare(
              `SELECT *${columns} FROM (SELECT * ${r.sql} LIMIT ?) AS events WHERE ${match.sql} LIMIT ?`,
            )
            .bind(...r.params, size, ...match.params, want + 1);
    const page = await statement.all<ScanRow>();
    rowsRead += page.meta.rows_read;
    const candidates = page.results;
    const out: ScanRow[] = [];
    let full = false;
    for (const row of candidates) {
      if (req.residual && !req.residual(row)) continue;
      // A match beyond a full page: there is more, and the page ends at its last row.
      if (returned === req.limit) {
        full = true;
        break;
      }
      out.push(row);
      returned += 1;
    }
    if (out.length > 0) yield out;
    if (full) return { hasMore: true, next: positionOf(out.at(-1)) ?? at, rowsRead };
    if (candidates.length === want + 1) {
      // SQL had more rows than wanted, so the scan covered everything down to the last of them (only
      // a JS residual can have rejected some and left the page short or just full).
      at = positionOf(candidates.at(-1));
      if (returned === req.limit) return { hasMore: true, next: at, rowsRead };
      continue;
    }
    if (match === null) {
      // Every row read was returned: fewer than asked for means the path has ended.
      if (candidates.length < Math.min(size, want + 1)) return { hasMore: false, next: null, rowsRead };
      at = positionOf(candidates.at(-1));
      if (returned === req.limit) return { hasMore: true, next: at, rowsRead };
      continue;
    }
    // A chunk that read fewer rows than it may hold ran out of path: the inner LIMIT stops only
    // after `chunk` rows, each of them read.
    if (page.meta.rows_read < size) return { hasMore: false, next: null, rowsRead };
    // Otherwise the chunk was read to its end (or the window's): what each walked row cost is known.
    costPerRow = Math.max(costPerRow, page.meta.rows_read / size);
    measured = true;
    // Where did it end?
    const boundary = await db
      .prepare(`SELECT occurred_at, id ${r.sql} LIMIT 1 OFFSET ?`)
      .bind(...r.params, size - 1)
      .all<{ occurred_at: number; id: string }>();
    rowsRead += boundary.meta.rows_read;
    const end = boundary.results[0];
    if (!end) return { hasMore: false, next: null, rowsRead };
    at = { occurredAt: end.occurred_at, id: end.id };
    if (returned === req.limit) return { hasMore: true, next: at, rowsRead };
  }
}

/** Every chunk of a scan, gathered: its rows and where it stopped. */
export async function scanAll(db: D1Database, req: ScanRequest): Promise<ScanEnd & { rows: ScanRow[] }> {
  const rows: ScanRow[] = [];
  const walk = scan(db, req);
  for (;;) {
    const step = await walk.next();
    if (step.done) return { ...step.value, rows };
    rows.push(...step.value);
  }
}

/** GET /v1/events's filters as a scan request: the access path and the residual match (eventAccessPath). */
export function eventScan(
  accountId: string,
  filters: EventFilters,
  window: { start: number; end: number },
): Pick<ScanRequest, "accountId" | "window" | "path" | "match"> {
  const { path, residual } = eventAccessPath(accountId, filters);
  return { accountId, window, path, match: residual.sql === "" ? null : residual };
}

/**
 * A filter on the event's type as a match; null: every type. `CASE type WHEN …` rather than an IN
 * list: SQLite answers an IN list of three or more by probing an ephemeral table, and D1 counts
 * each probe as a row read.
 */
export function typeMatch(types: readonly string[] | null): Fragment | null {
  if (types === null) return null;
  if (types.length === 0) return { sql: "0", params: [] };
  return { sql: `(CASE type ${types.map(() => "WHEN ? THEN 1").join(" ")} ELSE 0 END)`, params: [...types] };
}

/** GET /v1/events's page: the scan of its filters (eventScan), gathered. */
export async function scanEvents(
  db: D1Database,
  accountId: string,
  filters: EventFilters,
  window: { start: number; end: number },
  position: CursorPosition | null,
  options: { limit: number; rowBudget?: number; residual?: (row: EventDbRow) => boolean },
): Promise<ScanEnd & { rows: EventDbRow[] }> {
  return scanAll(db, {
    ...eventScan(accountId, filters, window),
    from: position,
    limit: options.limit,
    ...(options.rowBudget !== undefined ? { budget: options.rowBudget } : {}),
    ...(options.residual ? { residual: options.residual } : {}),
  });
}

/** The count of what `eventScan` reads, over its whole window (count=true; its cost is in BENCHMARKS.md). */
export async function countEvents(
  db: D1Database,
  accountId: string,
  filters: EventFilters,
  window: { start: number; end: number },
): Promise<{ total: number; rowsRead: number }> {
  const req = eventScan(accountId, filters, window);
  return countMatches(db, accountId, window, req.path, req.match);
}

function positionOf(row: EventDbRow | undefined): CursorPosition | null {
  return row ? { occurredAt: row.occurred_at, id: row.id } : null;
}

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
    case "recipients":
      return {
        index: " INDEXED BY events_recipient_idx",
        seek: { sql: `recipient IN (${path.values.map(sqlLiteral).join(", ")})`, params: [] },
      };
    case "email_ids":
      return {
        index: " INDEXED BY events_email_idx",
        seek: { sql: `email_id IN (${path.values.map(sqlLiteral).join(", ")})`, params: [] },
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
