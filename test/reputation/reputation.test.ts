import { describe, expect, it } from "vitest";
import type { EventRecord } from "../../src/events/record";
import { statusOf } from "../../src/reputation/reputation";
import { ROLLUP_ROWS_BUDGET, rebuildRollups } from "../../src/store";
import { call, consume, event, eventMessage, eventsDb, freshAccount, json, mintToken } from "../helpers";

const HOUR = 3_600_000;

async function store(account: string, n: number, domain: string, extra: Partial<EventRecord> = {}) {
  const messages = Array.from({ length: n }, (_, i) =>
    eventMessage(
      event({
        account_id: account,
        type: "email.sent",
        occurred_at: Date.now() - 2 * HOUR,
        email_id: `email_${crypto.randomUUID()}`,
        recipient: `p${i}@${domain}`,
        from_domain: "mail.acme.test",
        ...extra,
      }),
    ),
  );
  for (let i = 0; i < messages.length; i += 100) await consume(messages.slice(i, i + 100));
}

describe("statusOf", () => {
  it.each([
    [99, 0.5, 0.5, "insufficient_volume"],
    [100, 0, 0, "healthy"],
    [100, 0.049, 0.0009, "healthy"],
    [100, 0.05, 0, "warning"],
    [100, 0, 0.001, "warning"],
    [100, 0.1, 0, "at_risk"],
    [100, 0.02, 0.005, "at_risk"],
    [100, null, null, "healthy"],
  ] as const)("sent %d, bounce %s, complaint %s → %s", (sent, b, c, status) => {
    expect(statusOf(sent, b, c)).toBe(status);
  });
});

describe("GET /v1/reputation", () => {
  it("rates per mailbox provider, with complaint_rate null for Gmail, never a false 0", async () => {
    const account = freshAccount();
    await store(account, 100, "gmail.com");
    await store(account, 100, "gmail.com", { type: "email.delivered" });
    await store(account, 100, "yahoo.com");
    await store(account, 96, "yahoo.com", { type: "email.delivered" });
    await store(account, 4, "yahoo.com", { type: "email.bounced", bounce_type: "permanent" });
    await store(account, 2, "yahoo.com", { type: "email.bounced", bounce_type: "transient" });
    await store(account, 1, "yahoo.com", { type: "email.complained" });
    const token = await mintToken(account, "events:read");
    const res = await call("GET", "/v1/reputation", { token });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toMatchObject({
      object: "reputation",
      window: { sent: 200 },
      bounce_rate: 0.02, // 4 permanent of 200 sent; transient bounces do not count
      // Complaints over deliveries to providers that report them: 1 of Yahoo's 96, not of all 196.
      complaint_rate: 0.010417,
      status: "at_risk",
      thresholds: {
        bounce_warning: 0.05,
        bounce_at_risk: 0.1,
        complaint_warning: 0.001,
        complaint_at_risk: 0.005,
      },
    });
    expect(Date.parse(body.window.end) - Date.parse(body.window.start)).toBeGreaterThanOrEqual(7 * 24 * HOUR);
    expect(body.by_mailbox_provider).toEqual([
      { mailbox_provider: "google", sent: 100, bounce_rate: 0, complaint_rate: null },
      { mailbox_provider: "yahoo", sent: 100, bounce_rate: 0.04, complaint_rate: 0.010417 },
    ]);
  });

  it("insufficient_volume under 100 sent; a domain filter; days bounds", async () => {
    const account = freshAccount();
    await store(account, 20, "corp.example");
    await store(account, 5, "corp.example", { type: "email.bounced", bounce_type: "permanent" });
    const token = await mintToken(account, "events:read");
    const body = await json(await call("GET", "/v1/reputation?days=1&domain=mail.acme.test", { token }));
    expect(body).toMatchObject({ status: "insufficient_volume", bounce_rate: 0.25, complaint_rate: null });
    expect(body.by_mailbox_provider).toEqual([
      { mailbox_provider: "other", sent: 20, bounce_rate: 0.25, complaint_rate: null },
    ]);
    for (const [query, param] of [
      ["days=0", "days"],
      ["days=31", "days"],
      ["days=x", "days"],
      ["domain=never.example", "domain"],
      ["domain=not_a_host", "domain"],
      ["nope=1", "nope"],
    ]) {
      const res = await call("GET", `/v1/reputation?${query}`, { token });
      expect(res.status, query).toBe(400);
      expect((await json(res)).error.param, query).toBe(param);
    }
    // Another account sees its own (empty) window.
    const other = await mintToken(freshAccount(), "events:read");
    expect(await json(await call("GET", "/v1/reputation", { token: other }))).toMatchObject({
      window: { sent: 0 },
      bounce_rate: null,
      status: "insufficient_volume",
      by_mailbox_provider: [],
    });
  });

  it("answers 30 days of an account with more quarter-hour rows than one request reads, from the daily domain rows (SPEC §18, §19)", async () => {
    const account = freshAccount();
    const now = Date.now();
    const DAY = 24 * HOUR;
    const QUARTER = 15 * 60_000;
    const DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "corp.example"];
    // 12,000 events over the 20 days that end two days ago, each with its own quarter hour, recipient
    // domain and campaign (12,000 quarter-hour rows, 80 daily domain rows); every 50th a permanent
    // bounce. Written straight into D1, then rolled up by the consumer's own statements.
    const db = eventsDb(account);
    await db
      .prepare(
        `WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < 11999)
         INSERT INTO events (account_id, occurred_at, id, type, email_id, recipient, from_domain, campaign, bounce_type)
         SELECT ?1, ?2 - (i % 1920) * ${QUARTER}, printf('evt_rep%06d', i),
                CASE WHEN i % 50 = 0 THEN 'email.bounced' ELSE 'email.sent' END, printf('email_rep%06d', i),
                'p' || i || '@' || CASE (i / 1920) % 4 ${DOMAINS.map((d, n) => `WHEN ${n} THEN '${d}'`).join(" ")} END,
                'mail.acme.test', 'c' || (i / 1920), CASE WHEN i % 50 = 0 THEN 'permanent' END
         FROM k`,
      )
      .bind(account, now - 2 * DAY - 1_000)
      .run();
    await db.batch(rebuildRollups(db, account));
    const quarterRows = await db
      .prepare("SELECT COUNT(*) AS n FROM metric_rollups WHERE account_id = ?")
      .bind(account)
      .first<{ n: number }>();
    expect(quarterRows?.n).toBeGreaterThan(ROLLUP_ROWS_BUDGET);

    const want = DOMAINS.map((_, n) => {
      const ids = Array.from({ length: 12_000 }, (_, i) => i).filter((i) => Math.floor(i / 1920) % 4 === n);
      const bounced = ids.filter((i) => i % 50 === 0).length;
      return { sent: ids.length - bounced, bounced };
    });
    const token = await mintToken(account, "events:read");
    const res = await call("GET", "/v1/reputation?days=30", { token });
    expect(res.status).toBe(200);
    const body = await json(res);
    const sent = want.reduce((n, w) => n + w.sent, 0);
    const rate = (a: number, b: number) => Math.round((a / b) * 1e6) / 1e6;
    expect(body).toMatchObject({
      window: { sent },
      bounce_rate: rate(
        want.reduce((n, w) => n + w.bounced, 0),
        sent,
      ),
    });
    // Per provider, as the route orders them (most sent first, then by name); no deliveries, so no
    // complaint rate anywhere.
    const provider = ["google", "yahoo", "microsoft", "other"];
    expect(body.by_mailbox_provider).toEqual(
      want
        .map((w, n) => ({
          mailbox_provider: provider[n] as string,
          sent: w.sent,
          bounce_rate: rate(w.bounced, w.sent),
          complaint_rate: null,
        }))
        .sort((a, b) => b.sent - a.sent || (a.mailbox_provider < b.mailbox_provider ? -1 : 1)),
    );
    // The same question by the metrics route, grouped by provider over the month, agrees.
    const metrics = await call("GET", "/v1/metrics?days=30&interval=month&group_by=mailbox_provider", {
      token,
    });
    expect(metrics.status).toBe(200);
    expect((await json(metrics)).totals).toMatchObject({
      sent,
      bounced_permanent: want.reduce((n, w) => n + w.bounced, 0),
    });
  });
});
