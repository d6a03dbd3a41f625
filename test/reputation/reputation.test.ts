import { describe, expect, it } from "vitest";
import type { EventRecord } from "../../src/events/record";
import { statusOf } from "../../src/reputation/reputation";
import { call, consume, event, eventMessage, freshAccount, json, mintToken } from "../helpers";

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
});
