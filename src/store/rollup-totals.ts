import { DAY_ROLLUP_MS, ROLLUP_BUCKET_MS } from "../db/metrics";
import type { EventType } from "../events/record";
import { COUNTER_OF_TYPE, type Range } from "./hour-totals";
import { foldedWithin, ROLLUP_ROWS_BUDGET } from "./rollup-reads";
import { sqlLiteral } from "./scan";

/**
 * Totals filtered by the dimensions the metrics rollups hold (campaign, template, topic, sending
 * domain, tags), counted from the rollups instead of the window's events (SPEC §18): the coarse day
 * rows for the window's whole UTC days, the quarter-hour rows for its other whole quarter hours, and
 * an exact count of the events of its two partial quarter hours. On the largest benchmark account a
 * 30-day window is about 5,200 day rows and one day's 2,300 quarter-hour rows, where its events are
 * 233,753.
 *
 * Within raw-event retention each rollup row counts exactly the stored events of its key (the
 * consumer writes both in one transaction, first arrivals only; back-fills and scanner-burst
 * deletions move or take back their counts; SPEC §15). Three cases do not hold, and the caller
 * counts the events instead: an erasure since the window's start (its counts stay, SPEC §20; the
 * caller asks erasures/since.ts), a value folded into "(other)" on a day of the window (its own
 * count is gone; rollup_folds says so), and a window with more than the budget of rollup rows.
 */

/** A total's filters as the rollups hold them. */
export interface RollupFilter {
  /** The event types counted (each is one rollup counter). */
  types: readonly EventType[];
  /** An SQL boolean over a rollup row's columns (campaign, template_id, topic, from_domain, tags), literals inlined. */
  where: string;
}

/** A value a rollup row holds for an absent dimension ('') can't be asked for: only real values. */
const usable = (value: string) => value !== "";

/** `column = 'value'` over a rollup row ('' there is "none", never asked for). */
export function rollupEquals(column: string, value: string): string | null {
  return usable(value) ? `${column} = ${sqlLiteral(value)}` : null;
}

/**
 * A rollup row's tag set (a compact JSON array written by SQLite's json_group_array) holds any of
 * `tags`: each looked up as an element, `["tag"` or `,"tag"`, by instr() rather than json_each(),
 * whose rows D1 counts as rows read (tripling a count's reads). Null when a tag holds a character
 * JSON escapes (a quote, a backslash, a control character): its element's text is not the plain one.
 */
export function rollupTagsAnyOf(tags: readonly string[]): string | null {
  const element = (t: string) => JSON.stringify(t);
  // Escaped by JSON (and by SQLite's JSON alike): the element's text is not `"tag"`.
  if (tags.length === 0 || tags.some((t) => !usable(t) || element(t) !== `"${t}"`)) return null;
  return `(${tags
    .map(
      (t) =>
        `instr(tags, ${sqlLiteral(`[${element(t)}`)}) > 0 OR instr(tags, ${sqlLiteral(`,${element(t)}`)}) > 0`,
    )
    .join(" OR ")})`;
}

/**
 * The window split for a rollup count: whole UTC days (day rows), the ranges of whole quarter hours
 * around them (quarter-hour rows), and the partial quarter hours at the edges (events).
 */
export function rollupSplit(window: Range): { days: Range | null; quarters: Range[]; edges: Range[] } {
  const Q = ROLLUP_BUCKET_MS;
  const qStart = Math.ceil(window.start / Q) * Q;
  const qEnd = Math.floor(window.end / Q) * Q;
  if (qStart >= qEnd) return { days: null, quarters: [], edges: window.start < window.end ? [window] : [] };
  const dStart = Math.ceil(qStart / DAY_ROLLUP_MS) * DAY_ROLLUP_MS;
  const dEnd = Math.floor(qEnd / DAY_ROLLUP_MS) * DAY_ROLLUP_MS;
  const days = dStart < dEnd ? { start: dStart, end: dEnd } : null;
  const quarters = (
    days
      ? [
          { start: qStart, end: dStart },
          { start: dEnd, end: qEnd },
        ]
      : [{ start: qStart, end: qEnd }]
  ).filter((r) => r.start < r.end);
  const edges: Range[] = [];
  if (window.start < qStart) edges.push({ start: window.start, end: qStart });
  if (qEnd < window.end) edges.push({ start: qEnd, end: window.end });
  return { days, quarters, edges };
}

/**
 * The window's events of `filter` on one database, from its rollups and the exact count of the
 * partial quarter hours (`edge`, the caller's own count of a range). Null when the rollups cannot
 * answer (a value folded on a day of the window, or more than ROLLUP_ROWS_BUDGET rollup rows); the
 * rows read so far are in `rowsRead` either way.
 */
export async function countByRollups(
  db: D1Database,
  accountId: string,
  window: Range,
  filter: RollupFilter,
  edge: (range: Range) => Promise<{ total: number; rowsRead: number }>,
): Promise<{ total: number | null; rowsRead: number }> {
  const counters = [...new Set(filter.types.map((t) => COUNTER_OF_TYPE[t]))];
  if (counters.length === 0) return { total: 0, rowsRead: 0 };
  const folded = await foldedWithin(db, accountId, window.start, window.end);
  if (folded.folded) return { total: null, rowsRead: folded.rowsRead };
  const split = rollupSplit(window);
  const parts: string[] = [];
  const params: (string | number)[] = [];
  // Every row of the ranges is read once (the filter is tested on the capped rows, not in the ranges,
  // so that LIMIT caps what is read); the sum is the matching rows' counters.
  const sum = counters.join(" + ");
  if (split.days) {
    parts.push(`SELECT ${sum} AS n, (${filter.where}) AS hit FROM metric_rollups_day
      WHERE account_id = ? AND bucket >= ? AND bucket < ?`);
    params.push(accountId, split.days.start, split.days.end);
  }
  // Each range its own SELECT: a seek on the key, where `bucket IN (…)` made D1 count a probe per
  // value and two ranges joined by OR walked every row of the account.
  for (const quarters of split.quarters) {
    parts.push(`SELECT ${sum} AS n, (${filter.where}) AS hit FROM metric_rollups
      WHERE account_id = ? AND bucket >= ? AND bucket < ?`);
    params.push(accountId, quarters.start, quarters.end);
  }
  let total = 0;
  let rowsRead = folded.rowsRead;
  if (parts.length > 0) {
    const result = await db
      .prepare(
        `SELECT COALESCE(SUM(CASE WHEN r.hit THEN r.n END), 0) AS total, COUNT(*) AS rows
         FROM (${parts.join(" UNION ALL ")} LIMIT ${ROLLUP_ROWS_BUDGET + 1}) AS r`,
      )
      .bind(...params)
      .all<{ total: number; rows: number }>();
    rowsRead += result.meta.rows_read;
    const [row] = result.results;
    if ((row?.rows ?? 0) > ROLLUP_ROWS_BUDGET) return { total: null, rowsRead };
    total += row?.total ?? 0;
  }
  for (const counted of await Promise.all(split.edges.map(edge))) {
    total += counted.total;
    rowsRead += counted.rowsRead;
  }
  return { total, rowsRead };
}
