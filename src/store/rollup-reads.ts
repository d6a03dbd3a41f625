import { DAY_ROLLUP_MS, HOUR_ROLLUP_MS, METRIC_COUNTERS, ROLLUP_BUCKET_MS } from "../db/metrics";
import { consumerProviderSql } from "../mailbox/providers";
import { labelSql, type ZoneOffsets } from "../metrics/buckets";
import {
  type Counters,
  GROUP_COLUMN,
  type MetricsQuery,
  type MetricsWindow,
  type RollupRow,
} from "../metrics/query";

/** Rollup rows one metrics query reads at most (SPEC §18). */
export const ROLLUP_ROWS_BUDGET = 10_000;

/**
 * Reads of the metrics rollups (db/metric-rollups.ts) for GET /v1/metrics, the reputation and the
 * alert rules: the quarter-hour rows; the hourly account totals for the whole UTC hours of a query
 * with no filter and no grouping in a zone of whole hours; and the coarse daily rows for the whole
 * UTC days of a UTC query that needs no recipient domain.
 */

/**
 * The mailbox provider of a rollup row (SPEC §15), from its recipient domain: a consumer domain's
 * provider, else the one learned for the domain (db/mailbox-domains.ts, a key lookup), else other.
 * Attributed at query time, so a domain's whole history follows what was learned of it.
 */
const PROVIDER_OF = (domain: string) =>
  `COALESCE(${consumerProviderSql(domain)}, (SELECT md.provider FROM mailbox_domains AS md WHERE md.domain = ${domain}), 'other')`;

export interface Statement {
  sql: string;
  params: (string | number)[];
}

/**
 * The window's rollup rows, filtered, summed per local bucket of the zone and group in SQL (so
 * only the answer's rows leave D1); and, for tag groupings (where an event counts in several
 * groups), the totals from the ungrouped rows.
 */
export function buildMetricsStatements(
  accountId: string,
  q: MetricsQuery,
  window: MetricsWindow,
  zone: ZoneOffsets,
): { rows: Statement; totals: Statement | null } {
  // The filters, on a rollup table's own columns; each source below applies them.
  const filters: string[] = [];
  const filterParams: (string | number)[] = [];
  const eq = (column: string, value: string | undefined) => {
    if (value === undefined) return;
    filters.push(`${column} = ?`);
    filterParams.push(value);
  };
  eq("campaign", q.campaign);
  eq("template_id", q.template_id);
  eq("topic", q.topic);
  eq("from_domain", q.domain);
  if (q.mailbox_provider !== undefined) {
    filters.push(`${PROVIDER_OF("recipient_domain")} = ?`);
    filterParams.push(q.mailbox_provider);
  }
  if (q.tags) {
    filters.push(
      `EXISTS (SELECT 1 FROM json_each(tags) AS f WHERE f.value IN (${q.tags.map(() => "?").join(", ")}))`,
    );
    filterParams.push(...q.tags);
  }
  const providers = q.group_by === "mailbox_provider" || q.mailbox_provider !== undefined;
  const columns = ["bucket", "campaign", "template_id", "topic", "from_domain", "tags", ...METRIC_COUNTERS];
  // The whole UTC days of the window from the coarse rollups when nothing needs the recipient
  // domain and the buckets are unions of whole UTC days (days, weeks, months in a zone at UTC all
  // along); the partial days at the edges (and everything else) from the quarter-hour rollups.
  const dayStart = Math.ceil(window.start / DAY_ROLLUP_MS) * DAY_ROLLUP_MS;
  const dayEnd = Math.floor(window.end / DAY_ROLLUP_MS) * DAY_ROLLUP_MS;
  // An unfiltered, ungrouped question in a zone of whole hours: the account's hourly totals for the
  // whole UTC hours (at most 9,600 rows over 400 days, whatever the account's mix), the quarter
  // hours at the edges.
  const hourStart = Math.ceil(window.start / HOUR_ROLLUP_MS) * HOUR_ROLLUP_MS;
  const hourEnd = Math.floor(window.end / HOUR_ROLLUP_MS) * HOUR_ROLLUP_MS;
  const totalsOnly =
    q.group_by === undefined && filters.length === 0 && hourStart < hourEnd && zone.wholeHours();
  const coarse =
    !totalsOnly &&
    !providers &&
    q.group_by !== "recipient_domain" &&
    q.interval !== "hour" &&
    dayStart < dayEnd &&
    zone.alwaysUtc();
  const where = (range: string) => ["account_id = ?", range, ...filters].join(" AND ");
  let source: string;
  const params: (string | number)[] = [];
  // At most ROLLUP_ROWS_BUDGET + 1 rollup rows are read (SPEC §18): `n` counts them, and a caller
  // that sees more than the budget refuses the request instead of reading on.
  const cap = `LIMIT ${ROLLUP_ROWS_BUDGET + 1}`;
  // The quarter hours at a window's edges, by their buckets: `bucket IN (…)` seeks each on the key,
  // where two ranges joined by OR made SQLite walk every quarter-hour row of the account (measured:
  // 25,241 rows read for 720 wanted). Computed integers, inlined (D1 binds at most 100 parameters).
  const edges = (from: number, to: number, from2: number, to2: number) => {
    const list: number[] = [];
    for (let t = from; t < to; t += ROLLUP_BUCKET_MS) list.push(t);
    for (let t = from2; t < to2; t += ROLLUP_BUCKET_MS) list.push(t);
    return `bucket IN (${list.length ? list.join(", ") : "NULL"})`;
  };
  if (totalsOnly) {
    const counters = ["bucket", ...METRIC_COUNTERS].join(", ");
    source = `(SELECT ${counters} FROM metric_rollups_hour WHERE account_id = ? AND bucket >= ? AND bucket < ?
      UNION ALL
      SELECT ${counters} FROM metric_rollups
      WHERE account_id = ? AND ${edges(window.start, hourStart, hourEnd, window.end)} ${cap}) AS r`;
    params.push(accountId, hourStart, hourEnd, accountId);
  } else if (coarse) {
    source = `(SELECT ${columns.join(", ")} FROM metric_rollups_day WHERE ${where("bucket >= ? AND bucket < ?")}
      UNION ALL
      SELECT ${columns.join(", ")} FROM metric_rollups
      WHERE ${where(edges(window.start, dayStart, dayEnd, window.end))} ${cap}) AS r`;
    params.push(accountId, dayStart, dayEnd, ...filterParams);
    params.push(accountId, ...filterParams);
  } else {
    const cols = [...columns, "recipient_domain"];
    source = `(SELECT ${cols.join(", ")} FROM metric_rollups WHERE ${where("bucket >= ? AND bucket < ?")} ${cap}) AS r`;
    params.push(accountId, window.start, window.end, ...filterParams);
  }
  const sums = METRIC_COUNTERS.map((c) => `SUM(r.${c}) AS ${c}`).join(", ");
  const [label, labelOffset] = labelSql(zone, "r.bucket", q.interval);
  const group =
    q.group_by === undefined
      ? "NULL"
      : q.group_by === "tag"
        ? "t.value"
        : q.group_by === "mailbox_provider"
          ? PROVIDER_OF("r.recipient_domain")
          : `NULLIF(r.${GROUP_COLUMN[q.group_by]}, '')`;
  const from = q.group_by === "tag" ? `${source} LEFT JOIN json_each(r.tags) AS t` : source;
  return {
    rows: {
      sql: `SELECT ${label} AS label, ${labelOffset} AS label_offset, MIN(r.bucket) AS first, ${group} AS grp, ${sums},
          COUNT(*) AS n
        FROM ${from} GROUP BY 1, 2, 4`,
      params,
    },
    totals: q.group_by === "tag" ? { sql: `SELECT ${sums}, COUNT(*) AS n FROM ${source}`, params } : null,
  };
}

/**
 * Whether the rollups folded a value (FOLD_CAP, db/metrics.ts) on any UTC day of the account that
 * [start, end) touches: one key range of rollup_folds, marked only on days that folded.
 */
export async function foldedWithin(
  db: D1Database,
  accountId: string,
  start: number,
  end: number,
): Promise<{ folded: boolean; rowsRead: number }> {
  const found = await db
    .prepare("SELECT 1 AS found FROM rollup_folds WHERE account_id = ? AND day >= ? AND day < ? LIMIT 1")
    .bind(accountId, start - (start % DAY_ROLLUP_MS), end)
    .all();
  return { folded: found.results.length > 0, rowsRead: found.meta.rows_read };
}

/** The statements of buildMetricsStatements, prepared on `db`, for a caller's own batch. */
export function rollupStatements(
  db: D1Database,
  accountId: string,
  q: MetricsQuery,
  window: MetricsWindow,
  zone: ZoneOffsets,
): { rows: D1PreparedStatement; totals: D1PreparedStatement | null } {
  const { rows, totals } = buildMetricsStatements(accountId, q, window, zone);
  return {
    rows: db.prepare(rows.sql).bind(...rows.params),
    totals: totals ? db.prepare(totals.sql).bind(...totals.params) : null,
  };
}

/**
 * The window's rollup rows, filtered, summed per local bucket of the zone and group in SQL (so
 * only the answer's rows leave D1); and, for tag groupings (where an event counts in several
 * groups), the totals from the ungrouped rows.
 */
export async function sumRollups(
  db: D1Database,
  accountId: string,
  q: MetricsQuery,
  window: MetricsWindow,
  zone: ZoneOffsets,
): Promise<{ rows: RollupRow[]; totals: Counters | null; rowsRead: number; scanned: number }> {
  const { rows, totals } = rollupStatements(db, accountId, q, window, zone);
  const [rowsResult, totalsResult] = await Promise.all([
    rows.all<RollupRow & { n: number }>(),
    totals ? totals.all<Counters & { n: number }>() : null,
  ]);
  return {
    rows: rowsResult.results,
    totals: totalsResult ? (totalsResult.results[0] ?? null) : null,
    rowsRead: rowsResult.meta.rows_read + (totalsResult?.meta.rows_read ?? 0),
    // Rollup rows read: the tag grouping's rows are expanded per tag, its totals are not.
    scanned: totalsResult
      ? (totalsResult.results[0]?.n ?? 0)
      : rowsResult.results.reduce((s, r) => s + r.n, 0),
  };
}
