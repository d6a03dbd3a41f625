import * as z from "zod";
import { actingAccount, principalOf, requireScope } from "../../auth/middleware";
import type { Env } from "../../env";
import { validationError } from "../../lib/errors";
import { type App, jsonContent, route } from "../../lib/openapi";
import { accountIdParam, DAY_MS, integerParam, limitParam } from "../../lib/params";
import { ZoneOffsets } from "../../metrics/buckets";
import { getLinkMetrics } from "../../metrics/links";
import {
  addCounters,
  type Counters,
  GROUP_BY,
  metricsWindow,
  parseMetricsParams,
  zeroCounters,
} from "../../metrics/query";
import { accountShards, readDbs } from "../../shards/route";
import { ROLLUP_ROWS_BUDGET, rollupStatements } from "../../store";
import { successFalseErrorSchema, surfaceErrorResponses } from "../errors";

/**
 * Unosend's metrics (SPEC §16, what `@unosend/node`'s `metrics.get()` reads), from mailtrail's
 * rollups: `total` and `sent` are emails SES accepted (`email.sent`), `bounced` every bounce,
 * `opens`/`clicks` every open and click, `unique_*` mailtrail's unique counters; Unosend's `queued`
 * has no counterpart (mailtrail sees mail after it left the sender) and is always 0.
 */

const UNOSEND = "/compat/unosend/v1";
const tags = ["compat: Unosend"];
const errorSchema = successFalseErrorSchema("UnosendError");

const unosendCounters = (c: Counters) => ({
  total: c.sent,
  sent: c.sent,
  delivered: c.delivered,
  bounced: c.bounced,
  failed: c.failed,
  queued: 0,
  opens: c.opened,
  unique_opens: c.unique_opened,
  clicks: c.clicked,
  unique_clicks: c.unique_clicked,
});

const countersSchema = z.object({
  total: z.number().int(),
  sent: z.number().int(),
  delivered: z.number().int(),
  bounced: z.number().int(),
  failed: z.number().int(),
  queued: z.number().int(),
  opens: z.number().int(),
  unique_opens: z.number().int(),
  clicks: z.number().int(),
  unique_clicks: z.number().int(),
});

export async function unosendMetrics(
  env: Env,
  accountId: string,
  params: { days: number; group_by?: string | undefined },
  now = Date.now(),
) {
  const days = params.days;
  const search = new URLSearchParams({
    start: new Date(now - days * DAY_MS).toISOString(),
    end: new Date(now).toISOString(),
    interval: "month",
  });
  if (params.group_by !== undefined) search.set("group_by", params.group_by);
  const query = parseMetricsParams(search);
  const window = metricsWindow(query, now);
  // Every shard the account is read from answers the same statements (SPEC §17); rows and totals add up.
  const zone = new ZoneOffsets("UTC", window.start, window.end);
  const perShard = await Promise.all(
    readDbs(env, await accountShards(env, accountId)).map(async ({ db }) => {
      const { rows, sum } = rollupStatements(db, accountId, query, window, zone);
      return sum(await rows.all());
    }),
  );
  // §18's budget holds per shard: the most rollup rows one shard read.
  const scanned = Math.max(0, ...perShard.map((s) => s.scanned));
  if (scanned > ROLLUP_ROWS_BUDGET) {
    throw validationError(
      "days",
      "this window holds more rollup rows than one request reads; ask for fewer days",
    );
  }
  const sum = zeroCounters();
  const groups = new Map<string | null, Counters>();
  for (const shard of perShard) {
    // A tag grouping counts an event in each of its tags: the total is the shard's own.
    if (shard.totals) addCounters(sum, shard.totals);
    for (const row of shard.rows) {
      if (!shard.totals) addCounters(sum, row);
      const g = groups.get(row.grp) ?? zeroCounters();
      addCounters(g, row);
      groups.set(row.grp, g);
    }
  }
  return {
    success: true as const,
    data: {
      ...unosendCounters(sum),
      ...(query.group_by
        ? {
            groups: [...groups.entries()]
              .sort(([a], [b]) => (a === b ? 0 : a === null ? -1 : b === null ? 1 : a < b ? -1 : 1))
              .map(([group, c]) => ({ group, ...unosendCounters(c) })),
          }
        : {}),
    },
  };
}

export function registerUnosendMetricsRoute(app: App): void {
  route(
    app,
    {
      method: "get",
      path: `${UNOSEND}/metrics`,
      operationId: "unosendGetMetrics",
      summary: "Email metrics (Unosend)",
      description:
        "Counts over the last `days` (1-400, default 30) from mailtrail's rollups, kept 400 days on every plan. " +
        "`total` and `sent` count emails SES accepted, `bounced` every bounce, `opens`/`clicks` every open and click, " +
        "`unique_opens`/`unique_clicks` each (email, recipient) once; `queued` is always 0. With `group_by` (as in " +
        "GET /v1/metrics), `groups` adds the same counters per group.",
      tags,
      security: [{ bearer: [] }],
      request: {
        query: z.object({
          days: integerParam(1, 400).default(30).meta({ description: "1-400, default 30" }),
          group_by: z
            .enum(GROUP_BY, { error: `must be one of ${GROUP_BY.join(", ")}` })
            .optional()
            .meta({ description: "as in GET /v1/metrics" }),
          account_id: accountIdParam,
        }),
      },
      responses: {
        200: jsonContent(
          z
            .object({
              success: z.literal(true),
              data: countersSchema.extend({
                groups: z.array(countersSchema.extend({ group: z.string().nullable() })).optional(),
              }),
            })
            .meta({ id: "UnosendMetrics" }),
          "The counters",
        ),
        ...surfaceErrorResponses(errorSchema),
      },
    },
    requireScope("events:read"),
    async (c, { query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      return c.json(await unosendMetrics(c.env, accountId, query));
    },
  );

  route(
    app,
    {
      method: "get",
      path: `${UNOSEND}/metrics/links`,
      operationId: "unosendGetLinkMetrics",
      summary: "Clicks per link (Unosend)",
      description:
        "The most clicked URLs of the last `days` (1-400, default 30), `limit` 1-100 (default 10), from mailtrail's " +
        "link rollups (the window widened to whole UTC days). `count` counts a URL's clicks under any link name; " +
        "`total_clicks` counts every click of the period, whatever `limit`.",
      tags,
      security: [{ bearer: [] }],
      request: {
        query: z.object({
          days: integerParam(1, 400).default(30).meta({ description: "1-400, default 30" }),
          limit: limitParam(100, 10),
          account_id: accountIdParam,
        }),
      },
      responses: {
        200: jsonContent(
          z
            .object({
              success: z.literal(true),
              data: z.object({
                period: z.object({ days: z.number().int(), start: z.string(), end: z.string() }),
                links: z.array(z.object({ url: z.string(), count: z.number().int() })),
                total_clicks: z.number().int(),
              }),
            })
            .meta({ id: "UnosendLinkMetrics" }),
          "The most clicked links",
        ),
        ...surfaceErrorResponses(errorSchema),
      },
    },
    requireScope("events:read"),
    async (c, { query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      return c.json(await unosendLinks(c.env, accountId, query));
    },
  );
}

export async function unosendLinks(
  env: Env,
  accountId: string,
  params: { days: number; limit: number },
  now = Date.now(),
) {
  const { days, limit } = params;
  // Unosend counts a URL's clicks whatever its link name: the names of one URL are merged.
  const byUrl = new Map<string, number>();
  const all = await getLinkMetrics(env, accountId, { days, limit: 1000 }, now);
  for (const l of all.data) byUrl.set(l.url, (byUrl.get(l.url) ?? 0) + l.clicked);
  return {
    success: true as const,
    data: {
      period: { days, start: all.window.start, end: all.window.end },
      links: [...byUrl.entries()]
        .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
        .slice(0, limit)
        .map(([url, count]) => ({ url, count })),
      total_clicks: all.totals.clicked,
    },
  };
}
