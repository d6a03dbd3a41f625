import { describe, expect, it } from "vitest";
import type { EventRecord } from "../../src/events/record";
import { removedClicksRollup } from "../../src/store";
import { call, consume, event, eventMessage, eventsDb, freshAccount, json, mintToken } from "../helpers";

const HOUR = 3_600_000;
let seq = 0;

function click(
  account: string,
  url: string,
  overrides: Partial<EventRecord> = {},
  proxy = false,
): EventRecord {
  seq += 1;
  return event({
    account_id: account,
    id: `evt_link${seq.toString(36).padStart(8, "0")}`,
    type: "email.clicked",
    occurred_at: Date.now() - 2 * HOUR - seq * 60_000, // a minute apart: never a scanner burst
    email_id: "email_links_1",
    recipient: "ann@gmail.com",
    campaign: "spring",
    from_domain: "mail.acme.test",
    tracking: {
      user_agent: "Mozilla/5.0",
      ip_address: "203.0.113.9",
      url,
      link_name: url.endsWith("/buy") ? "cta" : null,
      geo: null,
      bot: proxy ? { kind: "proxy", source: "microsoft" } : null,
    },
    ...overrides,
  });
}

describe("GET /v1/metrics/links", () => {
  it("counts clicks, unique and person clicks per link, most clicked first, through redelivery and removal", async () => {
    const account = freshAccount();
    const A = "https://acme.test/buy";
    const B = "https://acme.test/blog";
    const C = "https://acme.test/faq";
    const clicks = [
      click(account, A),
      click(account, A), // same recipient and email: not unique again
      click(account, A, { recipient: "bob@corp.example" }),
      click(account, A, { recipient: "cy@corp.example" }, true),
      click(account, B, { email_id: "email_links_2" }),
      click(account, B, { email_id: "email_links_3", campaign: "summer" }),
      click(account, C, { campaign: "summer" }),
    ];
    await consume(clicks.map((e) => eventMessage(e)));
    await consume(
      clicks.map((e) => eventMessage(e)),
      2,
    ); // redelivered: counts nothing twice
    const token = await mintToken(account, "events:read");
    const res = await call("GET", "/v1/metrics/links?days=2", { token });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.object).toBe("list");
    expect(body.window.start).toMatch(/T00:00:00\.000Z$/);
    expect(body.data).toEqual([
      { url: A, link_name: "cta", clicked: 4, unique_clicked: 3, clicked_by_person: 3 },
      { url: B, link_name: null, clicked: 2, unique_clicked: 2, clicked_by_person: 2 },
      { url: C, link_name: null, clicked: 1, unique_clicked: 1, clicked_by_person: 1 },
    ]);
    expect(body.totals).toEqual({ clicked: 7, unique_clicked: 6 });

    const summer = await json(await call("GET", "/v1/metrics/links?campaign=summer&limit=1", { token }));
    expect(summer.data).toEqual([
      { url: B, link_name: null, clicked: 1, unique_clicked: 1, clicked_by_person: 1 },
    ]);
    expect(summer.totals).toEqual({ clicked: 2, unique_clicked: 2 });
    const google = await json(await call("GET", "/v1/metrics/links?mailbox_provider=google", { token }));
    expect(google.totals.clicked).toBe(5);

    // Scanner clicks removed for good: their counts go; the pair keeps its unique credit while a click remains.
    const removed = [clicks[0], clicks[3]].map((e) => ({
      account_id: account,
      occurred_at: (e as EventRecord).occurred_at,
      id: (e as EventRecord).id,
    }));
    await eventsDb(account).batch([
      removedClicksRollup(eventsDb(account), removed),
      eventsDb(account)
        .prepare(
          `DELETE FROM events WHERE (account_id, occurred_at, id) IN
           (SELECT value->>'account_id', value->>'occurred_at', value->>'id' FROM json_each(?))`,
        )
        .bind(JSON.stringify(removed)),
    ]);
    const after = await json(await call("GET", "/v1/metrics/links", { token }));
    // A tie with B (2 clicks, 2 unique) is ordered by URL: blog before buy.
    expect(after.data.map((l: { url: string }) => l.url)).toEqual([B, A, C]);
    expect(after.data[1]).toEqual({
      url: A,
      link_name: "cta",
      clicked: 2,
      unique_clicked: 2,
      clicked_by_person: 2,
    });

    // Unosend's shape over the same rollups.
    const uno = await json(await call("GET", "/compat/unosend/v1/metrics/links?days=7&limit=2", { token }));
    expect(uno.success).toBe(true);
    expect(uno.data.links).toEqual([
      { url: B, count: 2 },
      { url: A, count: 2 },
    ]);
    expect(uno.data.total_clicks).toBe(5);
    expect(uno.data.period.days).toBe(7);

    // Another account sees none of it.
    const other = await mintToken(freshAccount(), "events:read");
    expect((await json(await call("GET", "/v1/metrics/links", { token: other }))).data).toEqual([]);
  });

  it.each([
    ["limit=0", "limit"],
    ["limit=1001", "limit"],
    ["days=401", "days"],
    ["interval=day", "interval"],
    ["group_by=campaign", "group_by"],
    ["mailbox_provider=aol", "mailbox_provider"],
    ["domain=never.example", "domain"],
    ["nope=1", "nope"],
  ])("refuses %s naming %s", async (query, param) => {
    const token = await mintToken(freshAccount(), "events:read");
    const res = await call("GET", `/v1/metrics/links?${query}`, { token });
    expect(res.status).toBe(400);
    expect((await json(res)).error.param).toBe(param);
  });
});

describe("which rollups a metrics query reads", () => {
  it("the hourly totals when nothing filters or groups in a zone of whole hours, the coarse daily rows for whole UTC days by day, week or month in UTC, the daily domain rows when it needs the recipient domain and nothing else but the sending domain, the quarter-hour rows at the edges and otherwise", async () => {
    const { metricsWindow, parseMetricsParams: parseMetricsQuery } = await import("../../src/metrics/query");
    const { buildMetricsStatements } = await import("../../src/store");
    const { ZoneOffsets } = await import("../../src/metrics/buckets");
    const now = Date.parse("2026-04-05T12:07:00Z");
    /** The rollup tables a query's statement reads, sorted. */
    const tablesOf = (query: string) => {
      const q = parseMetricsQuery(new URLSearchParams(query));
      const w = metricsWindow(q, now);
      const { sql } = buildMetricsStatements("acct", q, w, new ZoneOffsets(q.tz, w.start, w.end));
      return [...new Set([...sql.matchAll(/FROM (metric_rollups\w*)/g)].map((m) => m[1]))].sort();
    };
    const QUARTER = "metric_rollups";
    const DAY = "metric_rollups_day";
    const DOMAINS = "metric_rollups_day_domains";
    const HOUR = "metric_rollups_hour";
    expect(tablesOf("days=30&group_by=campaign")).toEqual([QUARTER, DAY]);
    expect(tablesOf("days=400&interval=month&campaign=spring")).toEqual([QUARTER, DAY]);
    for (const unfiltered of [
      "days=400&interval=month",
      "days=400&interval=hour",
      "days=30&interval=hour&tz=America/New_York",
      "days=30&interval=week&tz=Europe/Paris",
    ]) {
      expect(tablesOf(unfiltered), unfiltered).toEqual([QUARTER, HOUR]);
    }
    // The recipient domain and nothing else but the sending domain, in UTC days, weeks or months.
    for (const byDomain of [
      "days=30&group_by=recipient_domain",
      "days=30&group_by=mailbox_provider",
      "days=30&mailbox_provider=google",
      "days=30&interval=month&group_by=mailbox_provider&domain=news.acme.com",
      "days=30&group_by=domain&mailbox_provider=microsoft",
      "days=7&interval=week&group_by=recipient_domain&mailbox_provider=yahoo",
    ]) {
      expect(tablesOf(byDomain), byDomain).toEqual([QUARTER, DOMAINS]);
    }
    // A zone at a half hour, a filter or a grouping: never the account totals.
    expect(tablesOf("days=30&interval=day&tz=Asia/Kolkata")).toEqual([QUARTER]);
    expect(tablesOf("days=30&interval=hour&campaign=spring")).toEqual([QUARTER]);
    expect(tablesOf("days=30&group_by=topic")).toEqual([QUARTER, DAY]);
    expect(tablesOf("days=30&interval=hour&group_by=topic")).toEqual([QUARTER]);
    expect(tablesOf("days=30&tz=America/New_York&group_by=campaign")).toEqual([QUARTER]);
    // The recipient domain with another dimension, by the hour, outside UTC, or within one day.
    expect(tablesOf("days=30&group_by=mailbox_provider&campaign=spring")).toEqual([QUARTER]);
    expect(tablesOf("days=30&group_by=recipient_domain&tags=vip")).toEqual([QUARTER]);
    expect(tablesOf("days=30&group_by=campaign&mailbox_provider=google")).toEqual([QUARTER]);
    expect(tablesOf("days=30&interval=hour&group_by=mailbox_provider")).toEqual([QUARTER]);
    expect(tablesOf("days=30&tz=Europe/Paris&group_by=mailbox_provider")).toEqual([QUARTER]);
    expect(tablesOf("days=1&group_by=mailbox_provider")).toEqual([QUARTER]);
  });
});

describe("GET /v1/metrics within the §18 budget", () => {
  it("answers 400 days by the hour from the hourly totals, however many quarter-hour rows the account has", async () => {
    const account = freshAccount();
    const HOUR = 3_600_000;
    const now = Date.now();
    const first = Math.ceil((now - 400 * 86_400_000) / HOUR) * HOUR;
    const last = Math.floor(now / HOUR) * HOUR - HOUR;
    const db = eventsDb(account);
    // One sent per whole hour of the window in the hourly totals, and 10,001 quarter-hour rows of
    // distinct campaigns 20 days ago (the dimensions the totals fold away).
    await db
      .prepare(
        `WITH RECURSIVE h(b) AS (SELECT ?2 UNION ALL SELECT b + ${HOUR} FROM h WHERE b < ?3)
         INSERT INTO metric_rollups_hour (account_id, bucket, sent) SELECT ?1, b, 1 FROM h`,
      )
      .bind(account, first, last)
      .run();
    const mid = Math.floor((now - 20 * 86_400_000) / HOUR) * HOUR;
    await db
      .prepare(
        `WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < 10000)
         INSERT INTO metric_rollups (account_id, bucket, campaign, template_id, topic, from_domain, recipient_domain, tags, delivered)
         SELECT ?1, ?2 + (i % 4) * 900000, 'c' || i, '', '', 'mail.acme.test', 'x.test', '[]', 1 FROM k`,
      )
      .bind(account, mid)
      .run();
    const token = await mintToken(account, "events:read");
    const res = await call("GET", "/v1/metrics?days=400&interval=hour", { token });
    expect(res.status).toBe(200);
    const body = await json(res);
    const hours = (last - first) / HOUR + 1;
    expect(body.totals.sent).toBe(hours);
    expect(body.data.length).toBe(hours);
    // The quarter hours of the middle of the window are not read (the totals hold them); by campaign
    // (which the totals cannot answer) the quarter hours are read and the request refused.
    expect(body.totals.delivered).toBe(0);
    const byCampaign = await call("GET", "/v1/metrics?days=400&interval=hour&group_by=campaign", { token });
    expect(byCampaign.status).toBe(400);
  });

  it("refuses a query that would read more than 10,000 rollup rows, naming days", async () => {
    const account = freshAccount();
    const start = Math.floor((Date.now() - 20 * 86_400_000) / 900_000) * 900_000;
    // 10,001 quarter-hour rows (one campaign each), written straight into the table.
    await eventsDb(account)
      .prepare(
        `WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < 10000)
       INSERT INTO metric_rollups (account_id, bucket, campaign, template_id, topic, from_domain, recipient_domain, tags, sent)
       SELECT ?1, ?2 + (i % 1000) * 900000, 'c' || i, '', '', 'mail.acme.test', 'x.test', '[]', 1 FROM k`,
      )
      .bind(account, start)
      .run();
    const token = await mintToken(account, "events:read");
    // Quarter hours: a zone at a half hour reads them (the hourly totals do not align with its hours).
    const res = await call("GET", "/v1/metrics?days=30&interval=hour&tz=Asia/Kolkata", { token });
    expect(res.status).toBe(400);
    expect((await json(res)).error.param).toBe("days");
    const byTag = await call("GET", "/v1/metrics?days=30&group_by=tag&tz=Europe/Paris", { token });
    expect(byTag.status).toBe(400);
    // A shorter window fits.
    const short = await call("GET", "/v1/metrics?days=1&interval=hour", { token });
    expect(short.status).toBe(200);
  });
});
