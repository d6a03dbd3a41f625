import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/env";
import { parseQuery } from "../../src/lib/validate";
import { getLinkMetrics, linksQuerySchema, ROWS_BUDGET } from "../../src/metrics/links";
import { parseMetricsParams } from "../../src/metrics/query";
import { getMetrics } from "../../src/metrics/routes";
import { REQUEST_ROWS_BUDGET, ROLLUP_ROWS_BUDGET } from "../../src/store";
import { eventsDb, freshAccount } from "../helpers";

const QUARTER = 900_000;
const DAY = 86_400_000;
/** The rollup rows a query may read (9,990): the request's 10,000 D1 rows less its look-ups. */
const BUDGET = ROLLUP_ROWS_BUDGET;

/**
 * SPEC §18 counts D1's own rows read. A GROUP BY in SQL sorts its rows and D1 counts each again as
 * it leaves the sorter: 10,000 rollup rows (the budget) read about 20,000. The reads sum in the
 * Worker, so D1's meter stays at the rollup rows read plus the placement and fold look-ups.
 */
describe("metrics and links read each rollup row once by D1's meter", () => {
  it("a budget of quarter-hour rows by campaign and by tag, each within 10,000 rows read, a tag set's events counted once in the totals", async () => {
    const account = freshAccount();
    const start = Math.floor((Date.now() - 28 * DAY) / QUARTER) * QUARTER;
    // 9,990 quarter-hour rows over 2,498 quarter hours: 4 campaigns each (2 in the last), every row
    // tagged a and b.
    await eventsDb(account)
      .prepare(
        `WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < ${BUDGET - 1})
         INSERT INTO metric_rollups (account_id, bucket, campaign, template_id, topic, from_domain, recipient_domain, tags, delivered)
         SELECT ?1, ?2 + (i / 4) * ${QUARTER}, 'c' || (i % 4), '', '', 'mail.acme.test', 'x.test', '["a","b"]', 1 FROM k`,
      )
      .bind(account, start)
      .run();
    const ask = (qs: string) => getMetrics(env as Env, account, parseMetricsParams(new URLSearchParams(qs)));

    const byCampaign = await ask("days=30&interval=hour&group_by=campaign");
    expect(byCampaign.totals.delivered).toBe(BUDGET);
    expect(new Set(byCampaign.data.map((b) => b.group))).toEqual(new Set(["c0", "c1", "c2", "c3"]));
    expect(byCampaign.rowsRead).toBeGreaterThanOrEqual(BUDGET);
    expect(byCampaign.rowsRead).toBeLessThanOrEqual(REQUEST_ROWS_BUDGET);

    const byTag = await ask("days=30&interval=hour&group_by=tag");
    // An event tagged a and b counts in both groups, once in the totals.
    expect(byTag.totals.delivered).toBe(BUDGET);
    const perTag = new Map<string | null, number>();
    for (const b of byTag.data) perTag.set(b.group, (perTag.get(b.group) ?? 0) + b.delivered);
    expect(Object.fromEntries(perTag)).toEqual({ a: BUDGET, b: BUDGET });
    expect(byTag.rowsRead).toBeLessThanOrEqual(REQUEST_ROWS_BUDGET);

    // One row more than the budget is still refused, having read the budget and one.
    await eventsDb(account)
      .prepare(
        `INSERT INTO metric_rollups (account_id, bucket, campaign, template_id, topic, from_domain, recipient_domain, tags, delivered)
         VALUES (?1, ?2, 'c9', '', '', 'mail.acme.test', 'x.test', '[]', 1)`,
      )
      .bind(account, start)
      .run();
    await expect(ask("days=30&interval=hour&group_by=campaign")).rejects.toMatchObject({ status: 400 });
  });

  it("a budget of link rows over 400 days within 10,000 rows read, summed per link", async () => {
    const account = freshAccount();
    // 25 links on each of 399 days: 9,975 link rows, within the 9,990 a query may read.
    const days = Math.floor(ROWS_BUDGET / 25);
    const first = Math.floor((Date.now() - (days - 1) * DAY) / DAY) * DAY;
    await eventsDb(account)
      .prepare(
        `WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < ${days * 25 - 1})
         INSERT INTO link_rollups (account_id, day, url, link_name, campaign, template_id, topic, from_domain, tags, mailbox_provider, clicked, unique_clicked, clicked_by_person)
         SELECT ?1, ?2 + (i / 25) * ${DAY}, 'https://acme.test/' || (i % 25), '', '', '', '', 'mail.acme.test', '[]', 'google', 1 + (i % 25 = 0), 1, 0 FROM k`,
      )
      .bind(account, first)
      .run();
    const links = await getLinkMetrics(
      env as Env,
      account,
      parseQuery(linksQuerySchema, new URLSearchParams("days=400")),
    );
    expect(links.data).toHaveLength(25);
    // The first link has two clicks a day, every other one.
    expect(links.data[0]).toMatchObject({
      url: "https://acme.test/0",
      clicked: 2 * days,
      unique_clicked: days,
    });
    expect(links.data.slice(1).every((l) => l.clicked === days)).toBe(true);
    expect(links.totals.clicked).toBe(25 * days + days);
    expect(links.rowsRead).toBeLessThanOrEqual(REQUEST_ROWS_BUDGET);
  });
});
