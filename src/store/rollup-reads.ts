import { DAY_ROLLUP_MS, HOUR_ROLLUP_MS, METRIC_COUNTERS, ROLLUP_BUCKET_MS } from "../db/metrics";
import { consumerProviderSql } from "../mailbox/providers";
import { labelSql, type ZoneOffsets } from "../metrics/buckets";
import {
  addCounters,
  type Counters,
  GROUP_COLUMN,
  type MetricsQuery,
  type MetricsWindow,
  type RollupRow,
  zeroCounters,
} from "../metrics/query";

/** D1 rows one request reads at most on a shard (SPEC §18). */
export const REQUEST_ROWS_BUDGET = 10_000;
/**
 * Rows a rollup read leaves for the request's look-ups on the same shard (the fold check, learned
 * mailbox domains), so that a refusal, which reads one rollup row past the budget to see it, still
 * reads at most REQUEST_ROWS_BUDGET.
 */
export const LOOKUP_ROWS = 10;
/** Rollup rows one metrics query reads at most (SPEC §18): 9,990. */
export const ROLLUP_ROWS_BUDGET = REQUEST_ROWS_BUDGET - LOOKUP_ROWS;

/**
 * Reads of the metrics rollups (db/metric-rollups.ts) for GET /v1/metrics, the reputation and the
 * alert rules: the quarter-hour rows; the hourly account totals for the whole UTC hours of a query
 * with no filter and no grouping in a zone of whole hours; the coarse daily rows for the whole UTC
 * days of a UTC query that needs no recipient domain; and the daily domain rows for the whole UTC
 * days of one that needs the recipient domain and no other dimension but the sending domain.
 */

/**
 * The mailbox provider of a rollup row (SPEC §15), from its recipient domain: a consumer domain's
 * provider, else the one learned for the domain (db/mailbox-domains.ts, a key lookup), else other.
 * Attributed at query time, so a domain's whole history follows what was learned of it.
 */
const PROVIDER_OF = (domain: string) =>
  `COALESCE(${consumerProviderSql(domain)}, (SELECT md.provider FROM mailbox_domains AS md WHERE md.domain = ${domain}), 'other')`;

/** The groupings the daily domain rows answer (metric_rollups_day_domains holds these columns alone). */
const DOMAIN_GROUPS: ReadonlySet<string> = new Set(["mailbox_provider", "recipient_domain", "domain"]);

export interface Statement {
  sql: string;
  params: (string | number)[];
}

/**
 * The window's rollup rows, filtered, with the local bucket of the zone each falls in and its group
 * (a tag grouping: its tag set); groupRollupRows sums them per local bucket and group. Unordered
 * groupings are not summed in SQL: a GROUP BY sorts its rows, and D1 counts each row again as it
 * leaves the sorter (measured on the largest account: 716 rows read for 715 hourly rows ungrouped,
 * 1,431 grouped), so §18's 10,000 rows read would hold only 5,000 rollup rows.
 */
export function buildMetricsStatements(
  accountId: string,
  q: MetricsQuery,
  window: MetricsWindow,
  zone: ZoneOffsets,
): Statement {
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
  // What needs the recipient domain (a provider or recipient-domain grouping, a provider filter) and
  // no dimension but the sending domain besides: the whole UTC days of a UTC query by day, week or
  // month from the daily domain rows (GET /v1/reputation, most alert rules), the partial days at the
  // edges from the quarter-hour rows.
  const byDomains =
    !totalsOnly &&
    (providers || q.group_by === "recipient_domain") &&
    (q.group_by === undefined || DOMAIN_GROUPS.has(q.group_by)) &&
    q.campaign === undefined &&
    q.template_id === undefined &&
    q.topic === undefined &&
    q.tags === undefined &&
    q.interval !== "hour" &&
    dayStart < dayEnd &&
    zone.alwaysUtc();
  const where = (range: string) => ["account_id = ?", range, ...filters].join(" AND ");
  let source: string;
  const params: (string | number)[] = [];
  // At most ROLLUP_ROWS_BUDGET + 1 rollup rows are read (SPEC §18): `n` counts them, and a caller
  // that sees more than the budget refuses the request instead of reading on.
  // Summed in SQL where the rows can arrive in the grouping's order (every rollup table's key begins
  // with the bucket, then the campaign): an ORDER BY the key inside the capped subquery lets the
  // GROUP BY below stream without a sorter, so D1 counts each row once (measured: 5,168 rows read
  // for 5,166 day rows, 10,334 through a sorter). Other groupings leave SQL a row each.
  const ordered = q.group_by === undefined || q.group_by === "campaign";
  const cap = `${ordered ? `ORDER BY bucket${q.group_by === "campaign" ? ", campaign" : ""} ` : ""}LIMIT ${ROLLUP_ROWS_BUDGET + 1}`;
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
  } else if (byDomains) {
    // The domain rows hold no other dimension: blanks in their columns, which nothing here reads.
    const blanks = [
      "bucket",
      "'' AS campaign",
      "'' AS template_id",
      "'' AS topic",
      "from_domain",
      "'[]' AS tags",
    ];
    source = `(SELECT ${[...blanks, ...METRIC_COUNTERS, "recipient_domain"].join(", ")} FROM metric_rollups_day_domains
      WHERE ${where("bucket >= ? AND bucket < ?")}
      UNION ALL
      SELECT ${[...columns, "recipient_domain"].join(", ")} FROM metric_rollups
      WHERE ${where(edges(window.start, dayStart, dayEnd, window.end))} ${cap}) AS r`;
    params.push(accountId, dayStart, dayEnd, ...filterParams);
    params.push(accountId, ...filterParams);
  } else {
    const cols = [...columns, "recipient_domain"];
    source = `(SELECT ${cols.join(", ")} FROM metric_rollups WHERE ${where("bucket >= ? AND bucket < ?")} ${cap}) AS r`;
    params.push(accountId, window.start, window.end, ...filterParams);
  }
  const [label, labelOffset] = labelSql(zone, "r.bucket", q.interval);
  const group =
    q.group_by === undefined
      ? "NULL"
      : q.group_by === "tag"
        ? "r.tags"
        : q.group_by === "mailbox_provider"
          ? PROVIDER_OF("r.recipient_domain")
          : `NULLIF(r.${GROUP_COLUMN[q.group_by]}, '')`;
  // Grouped by the bucket, each group's bucket is its first; unordered, each row is its own.
  const counters = METRIC_COUNTERS.map((c) => (ordered ? `SUM(r.${c}) AS ${c}` : `r.${c}`)).join(", ");
  return {
    sql: `SELECT ${label} AS label, ${labelOffset} AS label_offset, r.bucket AS first, ${group} AS grp, ${counters},
        ${ordered ? "COUNT(*)" : "1"} AS n FROM ${source}
        ${ordered ? `GROUP BY r.bucket${q.group_by === "campaign" ? ", r.campaign" : ""}` : ""}`,
    params,
  };
}

/** A row of buildMetricsStatements: a rollup bucket's sums (or one rollup row), its local bucket, its group. */
export interface LabelledRollupRow extends Counters {
  label: number;
  label_offset: number;
  first: number;
  grp: string | null;
  /** Rollup rows summed into it. */
  n: number;
}

/** A metrics read summed: per local bucket and group, the totals of a tag grouping, rows scanned. */
export interface RollupSums {
  rows: (RollupRow & { label: number; label_offset: number; n: number })[];
  /** A tag grouping's totals (an event counts once here, in every tag's group above); else null. */
  totals: Counters | null;
  /** Rollup rows read (§18's budget), each once whatever its tags. */
  scanned: number;
}

/**
 * Sums the rows of buildMetricsStatements per local bucket (its label and offset: two buckets of a
 * DST change may share a label) and group, each bucket starting at its earliest rollup bucket. A
 * tag grouping counts a row in each of its tags (none: the null group) and sums the totals once.
 */
export function groupRollupRows(results: LabelledRollupRow[], byTag: boolean): RollupSums {
  const groups = new Map<string, RollupSums["rows"][number]>();
  const totals = byTag ? zeroCounters() : null;
  const add = (row: LabelledRollupRow, grp: string | null) => {
    const key = `${row.label}/${row.label_offset}/${grp === null ? "" : `=${grp}`}`;
    let sum = groups.get(key);
    if (!sum) {
      sum = {
        label: row.label,
        label_offset: row.label_offset,
        first: row.first,
        grp,
        n: 0,
        ...zeroCounters(),
      };
      groups.set(key, sum);
    }
    addCounters(sum, row);
    sum.first = Math.min(sum.first, row.first);
    sum.n += row.n;
  };
  for (const row of results) {
    if (!byTag) {
      add(row, row.grp);
      continue;
    }
    addCounters(totals as Counters, row);
    const tags = row.grp === null ? [] : (JSON.parse(row.grp) as string[]);
    if (tags.length === 0) add(row, null);
    for (const tag of tags) add(row, tag);
  }
  return { rows: [...groups.values()], totals, scanned: results.reduce((n, r) => n + r.n, 0) };
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

/** The statement of buildMetricsStatements, prepared on `db` for a caller's own batch, and its summing. */
export function rollupStatements(
  db: D1Database,
  accountId: string,
  q: MetricsQuery,
  window: MetricsWindow,
  zone: ZoneOffsets,
): { rows: D1PreparedStatement; sum: (result: D1Result<unknown>) => RollupSums } {
  const { sql, params } = buildMetricsStatements(accountId, q, window, zone);
  return {
    rows: db.prepare(sql).bind(...params),
    sum: (result) => groupRollupRows(result.results as LabelledRollupRow[], q.group_by === "tag"),
  };
}

/** The window's rollups of one shard, summed per local bucket of the zone and group. */
export async function sumRollups(
  db: D1Database,
  accountId: string,
  q: MetricsQuery,
  window: MetricsWindow,
  zone: ZoneOffsets,
): Promise<RollupSums & { rowsRead: number }> {
  const { rows, sum } = rollupStatements(db, accountId, q, window, zone);
  const result = await rows.all();
  return { ...sum(result), rowsRead: result.meta.rows_read };
}
