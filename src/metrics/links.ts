import * as z from "zod";
import { actingAccount, principalOf, requireScope } from "../auth/middleware";
import type { Env } from "../env";
import { sendingDomainKnown } from "../events/list";
import { checkWindowParams } from "../events/query";
import { validationError } from "../lib/errors";
import { type App, commonErrors, jsonContent, route } from "../lib/openapi";
import { DAY_MS, limitParam } from "../lib/params";
import { accountShards, readDbs } from "../shards/route";
import { mergeLinkSums, ROLLUP_ROWS_BUDGET, sumLinkRollups } from "../store";
import { MAX_DAYS, metricsQuerySchema, metricsWindow } from "./query";

/**
 * GET /v1/metrics/links (SPEC §15): clicks per link over a window, from link_rollups (kept 400
 * days), most clicked first. The window is widened outwards to whole UTC days (the rollups' grid)
 * and clamped to the last 400 days. One statement reads at most ROWS_BUDGET rollup rows (§18): a
 * window and filters that would need more are a 400 naming the window (a shorter one answers).
 */

/** Link rows one query reads at most: the request's 10,000 rows less its look-ups (store/rollup-reads.ts). */
export const ROWS_BUDGET = ROLLUP_ROWS_BUDGET;

export const linksQuerySchema = metricsQuerySchema
  .pick({
    start: true,
    end: true,
    days: true,
    campaign: true,
    template_id: true,
    topic: true,
    domain: true,
    tags: true,
    mailbox_provider: true,
    account_id: true,
  })
  .extend({
    limit: limitParam(1000, 100),
  });
export type LinksQuery = z.output<typeof linksQuerySchema>;

const linkSchema = z.object({
  url: z.string(),
  link_name: z.string().nullable(),
  clicked: z.number().int(),
  unique_clicked: z.number().int(),
  clicked_by_person: z.number().int(),
});

export const linksSchema = z
  .object({
    object: z.literal("list"),
    window: z.object({ start: z.string(), end: z.string(), clamped: z.boolean() }),
    data: z.array(linkSchema),
    totals: z.object({ clicked: z.number().int(), unique_clicked: z.number().int() }),
  })
  .meta({ id: "LinkMetrics" });

export async function getLinkMetrics(
  env: Env,
  accountId: string,
  query: LinksQuery,
  now = Date.now(),
): Promise<z.infer<typeof linksSchema> & { rowsRead: number }> {
  checkWindowParams(query);
  const { limit } = query;
  const q = query;
  const account = await accountShards(env, accountId);
  if (q.domain !== undefined && !(await sendingDomainKnown(env, account, q.domain))) {
    throw validationError("domain", `domain ${q.domain} is not one this account has sent from`);
  }
  const grid = metricsWindow({ ...q, interval: "day", tz: "UTC" }, now);
  const earliest = Math.floor((now - MAX_DAYS * DAY_MS) / DAY_MS) * DAY_MS;
  const start = Math.max(Math.floor(grid.start / DAY_MS) * DAY_MS, earliest);
  const end = Math.max(Math.ceil(grid.end / DAY_MS) * DAY_MS, start);

  // Every shard holding the account's link rollups sums its own; the sums add up (SPEC §17).
  const result = mergeLinkSums(
    await Promise.all(
      readDbs(env, account).map(({ db }) =>
        sumLinkRollups(db, accountId, { start, end, ...q }, ROWS_BUDGET + 1),
      ),
    ),
  );
  if (result.scanned > ROWS_BUDGET) {
    throw validationError(
      q.start !== undefined ? "start" : "days",
      `this window holds more than ${ROWS_BUDGET} link rows; ask for a shorter window or a narrower filter`,
    );
  }
  const links = result.results
    .filter((r) => r.clicked !== 0)
    .sort(
      (a, b) =>
        b.clicked - a.clicked ||
        b.unique_clicked - a.unique_clicked ||
        (a.url < b.url ? -1 : a.url > b.url ? 1 : a.link_name < b.link_name ? -1 : 1),
    );
  const totals = { clicked: 0, unique_clicked: 0 };
  for (const r of links) {
    totals.clicked += r.clicked;
    totals.unique_clicked += r.unique_clicked;
  }
  return {
    object: "list",
    window: {
      start: new Date(start).toISOString(),
      end: new Date(end).toISOString(),
      clamped: grid.clamped || start > Math.floor(grid.start / DAY_MS) * DAY_MS,
    },
    data: links.slice(0, limit).map((r) => ({
      url: r.url,
      link_name: r.link_name === "" ? null : r.link_name,
      clicked: r.clicked,
      unique_clicked: r.unique_clicked,
      clicked_by_person: r.clicked_by_person,
    })),
    totals,
    rowsRead: result.meta.rows_read,
  };
}

const DESCRIPTION = `Clicks per link over a window, from rollups kept 400 days on every plan, most clicked first.

The window (\`start\`, \`end\`, \`days\` 1-400; default the last 7 days) is widened outwards to whole UTC days
and clamped to the last 400 days; \`window\` says what was counted. Filters as in GET /v1/metrics.
\`unique_clicked\` counts each (email_id, recipient) once per link; \`clicked_by_person\` leaves out mailbox
proxies. \`totals\` cover every link of the window, whatever \`limit\`. A request reads at most 10,000 D1 rows
(SPEC §18): a window that would need more than 9,990 rollup rows (the rest is left for its look-ups) is a 400
naming \`days\` (or \`start\`).`;

export function registerLinkMetricsRoute(app: App): void {
  route(
    app,
    {
      method: "get",
      path: "/v1/metrics/links",
      operationId: "getLinkMetrics",
      summary: "Clicks per link",
      description: DESCRIPTION,
      tags: ["metrics"],
      security: [{ bearer: ["events:read"] }],
      request: { query: linksQuerySchema },
      responses: { 200: jsonContent(linksSchema, "Links, most clicked first"), ...commonErrors },
    },
    requireScope("events:read"),
    async (c, { query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      const { rowsRead: _rowsRead, ...links } = await getLinkMetrics(c.env, accountId, query);
      return c.json(links);
    },
  );
}
