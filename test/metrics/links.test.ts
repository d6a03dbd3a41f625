import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { EventRecord } from "../../src/events/record";
import { removedClicksRollup } from "../../src/store";
import { call, consume, event, eventMessage, freshAccount, json, mintToken } from "../helpers";

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
    await env.DB.batch([
      removedClicksRollup(env.DB, removed),
      env.DB.prepare(
        `DELETE FROM events WHERE (account_id, occurred_at, id) IN
           (SELECT value->>'account_id', value->>'occurred_at', value->>'id' FROM json_each(?))`,
      ).bind(JSON.stringify(removed)),
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
  it("the coarse daily rows for whole UTC days by day, week or month in UTC, the quarter-hour rows at the edges and otherwise", async () => {
    const { metricsWindow, parseMetricsParams: parseMetricsQuery } = await import("../../src/metrics/query");
    const { buildMetricsStatements } = await import("../../src/store");
    const { ZoneOffsets } = await import("../../src/metrics/buckets");
    const now = Date.parse("2026-04-05T12:07:00Z");
    const sqlOf = (query: string) => {
      const q = parseMetricsQuery(new URLSearchParams(query));
      const w = metricsWindow(q, now);
      return buildMetricsStatements("acct", q, w, new ZoneOffsets(q.tz, w.start, w.end)).rows.sql;
    };
    expect(sqlOf("days=30&group_by=campaign")).toContain("metric_rollups_day");
    expect(sqlOf("days=400&interval=month")).toContain("metric_rollups_day");
    expect(sqlOf("days=30&interval=hour")).not.toContain("metric_rollups_day");
    expect(sqlOf("days=30&tz=America/New_York")).not.toContain("metric_rollups_day");
    expect(sqlOf("days=30&group_by=recipient_domain")).not.toContain("metric_rollups_day");
    expect(sqlOf("days=30&mailbox_provider=google")).not.toContain("metric_rollups_day");
  });
});

describe("GET /v1/metrics within the §18 budget", () => {
  it("refuses a query that would read more than 10,000 rollup rows, naming days", async () => {
    const account = freshAccount();
    const start = Math.floor((Date.now() - 20 * 86_400_000) / 900_000) * 900_000;
    // 10,001 quarter-hour rows (one campaign each), written straight into the table.
    await env.DB.prepare(
      `WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < 10000)
       INSERT INTO metric_rollups (account_id, bucket, campaign, template_id, topic, from_domain, recipient_domain, tags, sent)
       SELECT ?1, ?2 + (i % 1000) * 900000, 'c' || i, '', '', 'mail.acme.test', 'x.test', '[]', 1 FROM k`,
    )
      .bind(account, start)
      .run();
    const token = await mintToken(account, "events:read");
    const res = await call("GET", "/v1/metrics?days=30&interval=hour", { token });
    expect(res.status).toBe(400);
    expect((await json(res)).error.param).toBe("days");
    const byTag = await call("GET", "/v1/metrics?days=30&group_by=tag&tz=Europe/Paris", { token });
    expect(byTag.status).toBe(400);
    // A shorter window fits.
    const short = await call("GET", "/v1/metrics?days=1&interval=hour", { token });
    expect(short.status).toBe(200);
  });
});
