import { METRIC_COUNTERS } from "../db/metrics";
import { labelSql, type ZoneOffsets } from "../metrics/buckets";
import {
  type Counters,
  GROUP_COLUMN,
  type MetricsQuery,
  type MetricsWindow,
  type RollupRow,
} from "../metrics/query";

/**
 * Reads of metric_rollups (db/metric-rollups.ts) for GET /v1/metrics.
 */

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
): Promise<{ rows: RollupRow[]; totals: Counters | null; rowsRead: number }> {
  const where = ["r.account_id = ?", "r.bucket >= ?", "r.bucket < ?"];
  const params: (string | number)[] = [accountId, window.start, window.end];
  const eq = (column: string, value: string | undefined) => {
    if (value === undefined) return;
    where.push(`r.${column} = ?`);
    params.push(value);
  };
  eq("campaign", q.campaign);
  eq("template_id", q.template_id);
  eq("topic", q.topic);
  eq("from_domain", q.domain);
  if (q.tags) {
    where.push(
      `EXISTS (SELECT 1 FROM json_each(r.tags) AS f WHERE f.value IN (${q.tags.map(() => "?").join(", ")}))`,
    );
    params.push(...q.tags);
  }
  const sums = METRIC_COUNTERS.map((c) => `SUM(r.${c}) AS ${c}`).join(", ");
  const [label, labelOffset] = labelSql(zone, "r.bucket", q.interval);
  const group =
    q.group_by === undefined
      ? "NULL"
      : q.group_by === "tag"
        ? "t.value"
        : `NULLIF(r.${GROUP_COLUMN[q.group_by]}, '')`;
  const from =
    q.group_by === "tag" ? "metric_rollups AS r LEFT JOIN json_each(r.tags) AS t" : "metric_rollups AS r";
  const [rows, totals] = await Promise.all([
    db
      .prepare(
        `SELECT ${label} AS label, ${labelOffset} AS label_offset, MIN(r.bucket) AS first, ${group} AS grp, ${sums}
        FROM ${from} WHERE ${where.join(" AND ")} GROUP BY 1, 2, 4`,
      )
      .bind(...params)
      .all<RollupRow>(),
    q.group_by === "tag"
      ? db
          .prepare(`SELECT ${sums} FROM metric_rollups AS r WHERE ${where.join(" AND ")}`)
          .bind(...params)
          .all<Counters>()
      : null,
  ]);
  return {
    rows: rows.results,
    totals: totals ? (totals.results[0] ?? null) : null,
    rowsRead: rows.meta.rows_read + (totals?.meta.rows_read ?? 0),
  };
}
