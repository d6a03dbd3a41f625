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
  const { index, seek, residual } = eventAccessPath(accountId, filters);
  const where = ["account_id = ?", "occurred_at >= ?", "occurred_at < ?", seek.sql, residual.sql].filter(
    (w) => w !== "",
  );
  const result = await db
    .prepare(`SELECT COUNT(*) AS total FROM events${index} WHERE ${where.join(" AND ")}`)
    .bind(accountId, window.start, window.end, ...seek.params, ...residual.params)
    .all<{ total: number }>();
  return { total: result.results[0]?.total ?? 0, rowsRead: result.meta.rows_read };
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
 * How a filter set reads `events`: the access path (an index and the equality that seeks it) and the
 * residual conditions tested on each row that path yields. Without stored statistics SQLite prefers
 * the primary-key range over an equality index, so the selective paths name their index.
 * - `email_id` → events_email_idx; `recipient` → events_recipient_idx.
 * - `message_id` → the emails the Message-ID map lists, through events_email_idx: an index seek per
 *   email instead of a scan of the window (`message_id = ?` is checked on those emails' rows, which
 *   carry it but for rare exceptions, so the seek reads about its matches).
 * - otherwise the primary key, (account_id, occurred_at, id), newest first.
 * The residual holds every other filter.
 */
export function eventAccessPath(
  accountId: string,
  filters: EventFilters,
): { index: string; seek: Fragment; residual: Fragment } {
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
  if (filters.emailId !== null)
    return {
      index: " INDEXED BY events_email_idx",
      seek: { sql: "email_id = ?", params: [filters.emailId] },
      residual,
    };
  if (filters.recipient !== null)
    return {
      index: " INDEXED BY events_recipient_idx",
      seek: { sql: "recipient = ?", params: [filters.recipient] },
      residual,
    };
  if (filters.messageId !== null)
    return {
      index: " INDEXED BY events_email_idx",
      seek: {
        sql: "email_id IN (SELECT email_id FROM message_ids WHERE account_id = ? AND message_id = ?) AND message_id = ?",
        params: [accountId, filters.messageId, filters.messageId],
      },
      residual,
    };
  return { index: "", seek: { sql: "", params: [] }, residual };
}
