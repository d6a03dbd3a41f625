import * as z from "zod";
import { actingAccount, principalOf, requireScope } from "../auth/middleware";
import {
  FOLD_CAP,
  FOLDED_DIMENSIONS,
  FOLDED_VALUE,
  METRIC_COUNTERS,
  type MetricCounter,
} from "../db/metrics";
import type { Env } from "../env";
import { sendingDomainKnown } from "../events/list";
import { validationError } from "../lib/errors";
import { type App, commonErrors, jsonContent, route } from "../lib/openapi";
import { accountShards, readDbs } from "../shards/route";
import { foldedWithin, ROLLUP_ROWS_BUDGET, sumRollups } from "../store";
import { ZoneOffsets } from "./buckets";
import { registerLinkMetricsRoute } from "./links";
import { mergeRollupSums } from "./merge-sums";
import {
  addCounters,
  type Counters,
  checkMetricsQuery,
  GROUP_BY,
  isEmpty,
  type MetricsQuery,
  metricsQuerySchema,
  metricsWindow,
  RATES,
  ratesOf,
  zeroCounters,
} from "./query";

const countersShape = Object.fromEntries(METRIC_COUNTERS.map((c) => [c, z.number().int()])) as Record<
  MetricCounter,
  z.ZodNumber
>;
const ratesShape = Object.fromEntries(Object.keys(RATES).map((r) => [r, z.number().nullable()])) as Record<
  keyof typeof RATES,
  z.ZodNullable<z.ZodNumber>
>;

const metricsSchema = z
  .object({
    object: z.literal("metrics"),
    window: z.object({ start: z.string(), end: z.string(), clamped: z.boolean() }),
    interval: z.enum(["hour", "day", "week", "month"]),
    tz: z.string(),
    group_by: z.enum(GROUP_BY).nullable(),
    folded: z.boolean().meta({
      description: `true when the answer groups or filters by a campaign, template, topic or tag and the rollups of its window folded values past ${FOLD_CAP} per dimension, account and UTC day into "${FOLDED_VALUE}" (a tag set into ["${FOLDED_VALUE}"]): those events count in the "${FOLDED_VALUE}" group and match no filter on their own value`,
    }),
    data: z.array(z.object({ bucket: z.string(), group: z.string().nullable(), ...countersShape })),
    totals: z.object({ ...countersShape, ...ratesShape }),
  })
  .meta({ id: "Metrics" });
export type MetricsResponse = z.infer<typeof metricsSchema>;

const DESCRIPTION = `Counts over time from rollups kept 400 days on every plan, long after raw events are purged.

One request reads at most 10,000 D1 rows (SPEC §18), 9,990 of them rollup rows: a window and grouping that would need more is a 400
naming \`days\` (or \`start\`). Without a filter or a grouping, in a zone whose offsets are whole hours (UTC, the
Americas, Europe), whole UTC hours are read from hourly account totals: any interval over 400 days reads at
most 9,600 rows. By day, week or month in UTC without \`recipient_domain\` or \`mailbox_provider\`, whole UTC
days are read from daily rollups (one row per day and dimension combination, not per 15 minutes).

Folding: past ${FOLD_CAP} distinct campaigns, templates, topics or tag sets of one account on one UTC day, further
values are counted as \`"${FOLDED_VALUE}"\` (a tag set as \`["${FOLDED_VALUE}"]\`), so that one account's rollups stay
bounded; \`folded\` is true when the answer groups or filters by one of those and its window holds a folded
day. Totals and ungrouped answers are exact either way. Sending and recipient domains are not folded.

Buckets are aligned to \`tz\` exactly (rollups are stored per 15 minutes of UTC; every zone offset is a
multiple of 15 minutes). The window is widened outwards to that 15-minute grid and clamped to the last
400 days; \`window\` says what was counted. \`bucket\` is the ISO start of the bucket with the zone's offset.
Buckets without events are left out. An event with several tags counts once in each tag's group; totals
count it once.

Unique counters count an (email_id, recipient) once, in the bucket of its earliest such event.

Rule between fields: \`days\` is not combined with \`start\`, and \`start\` is not after \`end\` (400 naming it).

Rates in \`totals\` (null when the denominator is 0):
- \`delivery_rate\` = delivered / sent
- \`bounce_rate\` = bounced / sent
- \`complaint_rate\` = complained / delivered
- \`open_rate\` = unique_opened / delivered
- \`person_open_rate\` = unique_opened_by_person / delivered (opens by people, not mailbox proxies)
- \`click_rate\` = unique_clicked / delivered`;

export interface MetricsResult extends MetricsResponse {
  /** D1's rows_read, for tests and the benchmark only. */
  rowsRead: number;
}

export async function getMetrics(
  env: Env,
  accountId: string,
  query: MetricsQuery,
  now = Date.now(),
): Promise<MetricsResult> {
  const q = checkMetricsQuery(query);
  const window = metricsWindow(q, now);
  const account = await accountShards(env, accountId);
  if (q.domain !== undefined && !(await sendingDomainKnown(env, account, q.domain))) {
    throw validationError("domain", `domain ${q.domain} is not one this account has sent from`);
  }
  const zone = new ZoneOffsets(q.tz, window.start, window.end);
  // Every shard holding the account's rollups (stripes, a previous placement) sums its own; the
  // sums add up, a (bucket, group) present on several shards included (SPEC §17).
  // Folded values (SPEC §15) matter only to an answer by, or filtered on, a folded dimension.
  // The query's filters are named as the dimensions; `group_by=tag` groups the tag sets.
  const byFolded = FOLDED_DIMENSIONS.some(
    (d) => q[d] !== undefined || q.group_by === (d === "tags" ? "tag" : d),
  );
  const dbs = readDbs(env, account);
  const [sums, folds] = await Promise.all([
    Promise.all(dbs.map(({ db }) => sumRollups(db, accountId, q, window, zone))),
    byFolded ? Promise.all(dbs.map(({ db }) => foldedWithin(db, accountId, window.start, window.end))) : [],
  ]);
  const summed = mergeRollupSums(sums);
  summed.rowsRead += folds.reduce((s, f) => s + f.rowsRead, 0);
  if (summed.scanned > ROLLUP_ROWS_BUDGET) {
    throw validationError(
      q.start !== undefined ? "start" : "days",
      `this query needs more than ${ROLLUP_ROWS_BUDGET} rollup rows (SPEC §18); ask for a shorter window, or by day, week or month in UTC without recipient_domain or mailbox_provider (those read the daily rollups)`,
    );
  }
  const totals = q.group_by === "tag";

  // SQL summed each local bucket; its start comes from its earliest instant.
  const starts = new Map<number, number>();
  const buckets: { start: number; group: string | null; counters: Counters }[] = [];
  const sum = zeroCounters();
  for (const row of summed.rows) {
    let start = starts.get(row.first);
    if (start === undefined) {
      start = zone.bucketStart(row.first, q.interval);
      starts.set(row.first, start);
    }
    const counters = zeroCounters();
    addCounters(counters, row);
    buckets.push({ start, group: row.grp, counters });
    if (!totals) addCounters(sum, row);
  }
  if (summed.totals) addCounters(sum, summed.totals);

  const data = buckets
    .filter((b) => !isEmpty(b.counters))
    .sort(
      (a, b) =>
        a.start - b.start ||
        (a.group === b.group ? 0 : a.group === null ? -1 : b.group === null ? 1 : a.group < b.group ? -1 : 1),
    )
    .map((b) => ({ bucket: zone.iso(b.start), group: b.group, ...b.counters }));
  return {
    object: "metrics",
    window: {
      start: new Date(window.start).toISOString(),
      end: new Date(window.end).toISOString(),
      clamped: window.clamped,
    },
    interval: q.interval,
    tz: q.tz,
    group_by: q.group_by ?? null,
    folded: folds.some((f) => f.folded),
    data,
    totals: { ...sum, ...ratesOf(sum) },
    rowsRead: summed.rowsRead,
  };
}

export function registerMetricsRoutes(app: App): void {
  registerLinkMetricsRoute(app);
  route(
    app,
    {
      method: "get",
      path: "/v1/metrics",
      operationId: "getMetrics",
      summary: "Counters and rates over time",
      description: DESCRIPTION,
      tags: ["metrics"],
      security: [{ bearer: [] }],
      request: { query: metricsQuerySchema },
      responses: {
        200: jsonContent(metricsSchema, "Counters per bucket and group, and totals"),
        ...commonErrors,
      },
    },
    requireScope("events:read"),
    async (c, { query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      const { rowsRead: _rowsRead, ...metrics } = await getMetrics(c.env, accountId, query);
      return c.json(metrics);
    },
  );
}
