import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { nextState } from "../../src/alerts/decide";
import { evaluateAlerts } from "../../src/alerts/evaluate";
import type { EventRecord } from "../../src/events/record";
import { call, consume, event, eventMessage, freshAccount, json, mintToken } from "../helpers";
import { createEndpoint, hookName, hookUrl, received, verify } from "../webhooks/support";

const HOUR = 3_600_000;

/** Stores `n` events of one kind for an account, an hour ago, from mail.acme.test. */
async function send(
  account: string,
  n: number,
  extra: Partial<EventRecord> = {},
  recipientDomain = "corp.example",
) {
  const messages = Array.from({ length: n }, (_, i) =>
    eventMessage(
      event({
        account_id: account,
        type: "email.sent",
        occurred_at: Date.now() - HOUR,
        email_id: `email_${crypto.randomUUID()}`,
        recipient: `r${i}@${recipientDomain}`,
        from_domain: "mail.acme.test",
        ...extra,
      }),
    ),
  );
  for (let i = 0; i < messages.length; i += 100) await consume(messages.slice(i, i + 100));
}
const bounce = { type: "email.bounced", bounce_type: "permanent", bounce_classification: "General" } as const;

async function waitForCalls(name: string, n: number) {
  let calls: Awaited<ReturnType<typeof received>> = [];
  await vi.waitFor(
    async () => {
      calls = await received(name);
      expect(calls.length).toBeGreaterThanOrEqual(n);
    },
    { timeout: 15_000, interval: 200 },
  );
  return calls;
}
const quiet = () => new Promise((r) => setTimeout(r, 4000));

describe("nextState (hysteresis and min_sent)", () => {
  const bounceRule = { metric: "bounce_rate", threshold: 0.05, minSent: 100 } as const;
  const openRule = { metric: "open_rate", threshold: 0.2, minSent: 100 } as const;
  it.each([
    ["above the threshold with volume: fires", bounceRule, "ok", 0.06, 100, "firing"],
    ["at the threshold: not above", bounceRule, "ok", 0.05, 500, "ok"],
    ["above the threshold under min_sent: quiet", bounceRule, "ok", 0.5, 99, "ok"],
    ["no value: unchanged", bounceRule, "firing", null, 500, "firing"],
    ["firing, back under but not by 20 %", bounceRule, "firing", 0.045, 500, "firing"],
    ["firing, back inside by 20 %: resolves", bounceRule, "firing", 0.04, 500, "ok"],
    ["firing, too little volume to say: unchanged", bounceRule, "firing", 0.0, 10, "firing"],
    ["below-rules fire under the threshold", openRule, "ok", 0.19, 200, "firing"],
    ["below-rules resolve at 120 % of it", openRule, "firing", 0.239, 200, "firing"],
    ["below-rules resolve at 120 % of it (reached)", openRule, "firing", 0.24, 200, "ok"],
  ] as const)("%s", (_name, rule, state, value, sent, expected) => {
    expect(nextState({ ...rule, state }, value, sent)).toBe(expected);
  });
});

describe("alert rules (SPEC §19)", () => {
  it("every account starts with the two default rules, which it may delete for good", async () => {
    const account = freshAccount();
    const read = await mintToken(account, "events:read");
    const write = await mintToken(account, "alerts:write");
    const list = await json(await call("GET", "/v1/alerts", { token: read }));
    expect(list.object).toBe("list");
    expect(
      list.data.map((r: Record<string, unknown>) => [r.metric, r.threshold, r.window, r.min_sent, r.state]),
    ).toEqual([
      ["bounce_rate", 0.05, "24h", 100, "ok"],
      ["complaint_rate", 0.001, "24h", 100, "ok"],
    ]);
    expect(list.data[0]).toMatchObject({
      object: "alert_rule",
      id: expect.stringMatching(/^alr_[0-9a-f]{24}$/),
      filters: {},
      last_value: null,
      last_evaluated_at: null,
      created_at: expect.any(String),
    });
    const del = await call("DELETE", `/v1/alerts/${list.data[0].id}`, { token: write });
    expect(await json(del)).toEqual({ deleted: true, id: list.data[0].id });
    const again = await json(await call("GET", "/v1/alerts", { token: read }));
    expect(again.data.map((r: { metric: string }) => r.metric)).toEqual(["complaint_rate"]);
  });

  it("creates, reads, changes and deletes a rule; another account's rule is 404", async () => {
    const account = freshAccount();
    const write = await mintToken(account, "alerts:write");
    const read = await mintToken(account, "events:read");
    const created = await call("POST", "/v1/alerts", {
      token: write,
      body: {
        metric: "delivery_rate",
        threshold: 0.9,
        window: "1h",
        filters: { campaign: "spring", mailbox_provider: "google" },
        description: "deliveries to Gmail",
      },
    });
    expect(created.status).toBe(201);
    const rule = await json(created);
    expect(rule).toMatchObject({
      object: "alert_rule",
      metric: "delivery_rate",
      threshold: 0.9,
      window: "1h",
      min_sent: 100,
      filters: { campaign: "spring", mailbox_provider: "google" },
      description: "deliveries to Gmail",
      state: "ok",
      last_value: null,
    });
    expect(await json(await call("GET", `/v1/alerts/${rule.id}`, { token: read }))).toEqual(rule);
    const patched = await json(
      await call("PATCH", `/v1/alerts/${rule.id}`, { token: write, body: { threshold: 0.8, min_sent: 500 } }),
    );
    expect(patched).toMatchObject({ threshold: 0.8, min_sent: 500, description: "deliveries to Gmail" });

    const stranger = freshAccount();
    const theirs = await mintToken(stranger, "alerts:write events:read");
    expect((await call("GET", `/v1/alerts/${rule.id}`, { token: theirs })).status).toBe(404);
    expect(
      (await call("PATCH", `/v1/alerts/${rule.id}`, { token: theirs, body: { threshold: 0.1 } })).status,
    ).toBe(404);
    expect((await call("DELETE", `/v1/alerts/${rule.id}`, { token: theirs })).status).toBe(404);
    expect((await call("GET", `/v1/alerts/${rule.id}/history`, { token: theirs })).status).toBe(404);
    // events:read reads, it does not change.
    expect(
      (
        await call("POST", "/v1/alerts", {
          token: read,
          body: { metric: "bounce_rate", threshold: 0.1, window: "1h" },
        })
      ).status,
    ).toBe(403);

    expect((await call("DELETE", `/v1/alerts/${rule.id}`, { token: write })).status).toBe(200);
    expect((await call("GET", `/v1/alerts/${rule.id}`, { token: read })).status).toBe(404);
    expect((await call("DELETE", `/v1/alerts/${rule.id}`, { token: write })).status).toBe(404);
  });

  it.each([
    [{ metric: "spam_rate", threshold: 0.1, window: "1h" }, "metric"],
    [{ metric: "bounce_rate", threshold: 5, window: "1h" }, "threshold"],
    [{ metric: "bounce_rate", threshold: -0.1, window: "1h" }, "threshold"],
    [{ metric: "bounce_rate", threshold: 0.1, window: "2h" }, "window"],
    [{ metric: "bounce_rate", threshold: 0.1, window: "1h", min_sent: 0 }, "min_sent"],
    [{ metric: "bounce_rate", threshold: 0.1, window: "1h", min_sent: 1.5 }, "min_sent"],
    [
      { metric: "bounce_rate", threshold: 0.1, window: "1h", filters: { mailbox_provider: "aol" } },
      "filters",
    ],
    [{ metric: "bounce_rate", threshold: 0.1, window: "1h", filters: { topic: "x" } }, "filters"],
    [{ metric: "bounce_rate", threshold: 0.1, window: "1h", extra: 1 }, "body"],
    [{ threshold: 0.1, window: "1h" }, "metric"],
  ])("refuses %j naming %s, and creates nothing", async (body, param) => {
    const account = freshAccount();
    const write = await mintToken(account, "alerts:write events:read");
    const res = await call("POST", "/v1/alerts", { token: write, body });
    expect(res.status).toBe(400);
    expect((await json(res)).error).toMatchObject({ type: "validation_error", param });
    expect((await json(await call("GET", "/v1/alerts", { token: write }))).data).toHaveLength(2);
  });
});

describe("alert evaluation (scheduled)", () => {
  it("fires once above the threshold with enough volume, stays quiet under min_sent, resolves once inside the band; each transition is delivered once, signed", async () => {
    const account = freshAccount("alerting");
    const name = hookName();
    const ep = await createEndpoint(account, {
      url: hookUrl(name),
      event_types: ["alert.triggered", "alert.resolved"],
    });
    const read = await mintToken(account, "events:read");
    const rules = await json(await call("GET", "/v1/alerts", { token: read }));
    const bounceRule = rules.data.find((r: { metric: string }) => r.metric === "bounce_rate");

    // 50 sent, 10 permanent bounces (20 %): under min_sent (100), nothing fires.
    await send(account, 50);
    await send(account, 10, bounce);
    await evaluateAlerts(env, Date.now());
    let rule = await json(await call("GET", `/v1/alerts/${bounceRule.id}`, { token: read }));
    expect(rule).toMatchObject({ state: "ok", last_value: 0.2 });
    expect(rule.last_evaluated_at).not.toBeNull();

    // 150 sent, 10 bounces (6.7 %): fires, once, however often it is evaluated.
    await send(account, 100);
    await evaluateAlerts(env, Date.now());
    await evaluateAlerts(env, Date.now());
    rule = await json(await call("GET", `/v1/alerts/${bounceRule.id}`, { token: read }));
    expect(rule).toMatchObject({ state: "firing", last_value: 0.066667 });
    const [call1] = await waitForCalls(name, 1);
    const triggered = verify(ep.secret, call1 as never);
    expect(triggered.type).toBe("alert.triggered");
    expect(call1?.headers["webhook-id"]).toMatch(/^alt_[0-9a-f]{24}$/);
    expect(triggered.data).toMatchObject({
      id: call1?.headers["webhook-id"],
      object: "alert",
      rule_id: bounceRule.id,
      type: "alert.triggered",
      metric: "bounce_rate",
      value: 0.066667,
      threshold: 0.05,
      window: { sent: 150 },
      filters: {},
    });

    // 222 sent (4.5 %): back under the threshold, not by 20 % of it: still firing.
    await send(account, 72);
    await evaluateAlerts(env, Date.now());
    expect(await json(await call("GET", `/v1/alerts/${bounceRule.id}`, { token: read }))).toMatchObject({
      state: "firing",
    });
    // 250 sent (4 %): inside the band, resolves once.
    await send(account, 28);
    await evaluateAlerts(env, Date.now());
    await evaluateAlerts(env, Date.now());
    expect(await json(await call("GET", `/v1/alerts/${bounceRule.id}`, { token: read }))).toMatchObject({
      state: "ok",
      last_value: 0.04,
    });
    const calls = await waitForCalls(name, 2);
    await quiet();
    expect(await received(name)).toHaveLength(2);
    const resolved = verify(ep.secret, calls[1] as never);
    expect(resolved).toMatchObject({ type: "alert.resolved", data: { type: "alert.resolved", value: 0.04 } });

    // The history, newest first, paged.
    const page1 = await json(
      await call("GET", `/v1/alerts/${bounceRule.id}/history?limit=1`, { token: read }),
    );
    expect(page1.data.map((a: { type: string }) => a.type)).toEqual(["alert.resolved"]);
    expect(page1.has_more).toBe(true);
    const page2 = await json(
      await call("GET", `/v1/alerts/${bounceRule.id}/history?limit=1&after=${page1.next_cursor}`, {
        token: read,
      }),
    );
    expect(page2.data.map((a: { id: string }) => a.id)).toEqual([triggered.data.id]);
    expect(page2.has_more).toBe(false);
    // The complaint rule never fired: nothing was delivered, and the delivery rows name the alerts.
    const deliveries = await json(
      await call("GET", `/v1/webhooks/${ep.id}/deliveries`, {
        token: await mintToken(account, "webhooks:read"),
      }),
    );
    expect(
      deliveries.data.map((d: { event_type: string; status: string }) => [d.event_type, d.status]),
    ).toEqual([
      ["alert.resolved", "succeeded"],
      ["alert.triggered", "succeeded"],
    ]);
  }, 90_000);

  it("an alert written while the queue was refusing is pushed by the next run, not dropped", async () => {
    const account = freshAccount("outage");
    const name = hookName();
    const ep = await createEndpoint(account, { url: hookUrl(name), event_types: ["alert.triggered"] });
    await send(account, 100);
    await send(account, 20, bounce);
    const sendBatch = vi.spyOn(env.WEBHOOKS_QUEUE, "sendBatch").mockRejectedValue(new Error("queue down"));
    await expect(evaluateAlerts(env, Date.now())).rejects.toThrow("queue down");
    sendBatch.mockRestore();
    const pending = await env.DB.prepare(
      "SELECT COUNT(*) AS n FROM alerts WHERE account_id = ? AND pushed_at IS NULL",
    )
      .bind(account)
      .first<{ n: number }>();
    expect(pending?.n).toBe(1);
    await evaluateAlerts(env, Date.now());
    const [c] = await waitForCalls(name, 1);
    expect(verify(ep.secret, c as never).type).toBe("alert.triggered");
    await quiet();
    expect(await received(name)).toHaveLength(1);
  }, 60_000);

  it("an endpoint subscribed to email events only receives no alert", async () => {
    const account = freshAccount("noalerts");
    const name = hookName();
    await createEndpoint(account, {
      url: hookUrl(name),
      event_types: ["email.bounced"],
      filters: { campaign: "x" },
    });
    await send(account, 100);
    await evaluateAlerts(env, Date.now());
    await send(account, 20, bounce);
    await evaluateAlerts(env, Date.now());
    await quiet();
    expect(await received(name)).toHaveLength(0);
  }, 60_000);
});

describe("replay by id of alerts and suppression changes (SPEC §14)", () => {
  it("delivers an alert and a suppression change again with their own webhook-id, signed, and skips what the endpoint does not take", async () => {
    const account = freshAccount("replaynotes");
    const name = hookName();
    const ep = await createEndpoint(account, {
      url: hookUrl(name),
      event_types: ["alert.triggered", "suppression.created"],
    });
    // An alert: 100 sent and 20 permanent bounces fire the default bounce rule.
    await send(account, 100);
    await send(account, 20, bounce);
    await evaluateAlerts(env, Date.now());
    // A suppression change: an address added by hand.
    const supp = await mintToken(account, "suppressions:write suppressions:read");
    const added = await call("PUT", "/v1/suppressions/gone@example.com", { token: supp });
    expect(added.status).toBe(200);
    const first = await waitForCalls(name, 2);
    const ids = first.map((c) => c.headers["webhook-id"] as string).sort();
    expect(ids[0]).toMatch(/^alt_[0-9a-f]{24}$/);
    expect(ids[1]).toMatch(/^sch_/);
    const bodies = new Map(first.map((c) => [c.headers["webhook-id"], verify(ep.secret, c as never)]));

    const write = await mintToken(account, "webhooks:write");
    const res = await call("POST", `/v1/webhooks/${ep.id}/replay`, {
      token: write,
      // An unknown alert id and another account's-looking change id are skipped like unknown events.
      body: { event_ids: [...ids, "alt_000000000000000000000000", "sch_unknown"] },
    });
    expect(res.status).toBe(202);
    expect(await json(res)).toEqual({ queued: 2 });
    const all = await waitForCalls(name, 4);
    await quiet();
    expect(await received(name)).toHaveLength(4);
    for (const again of all.slice(2)) {
      const id = again.headers["webhook-id"] as string;
      expect(ids).toContain(id);
      // The same notification, signed again: data unchanged, a new attempt's timestamp.
      expect(verify(ep.secret, again as never).data).toEqual(bodies.get(id)?.data);
    }

    // Another account's endpoint cannot replay them: its ids are not found there.
    const other = freshAccount("replayother");
    const otherName = hookName();
    const otherEp = await createEndpoint(other, { url: hookUrl(otherName), event_types: null });
    const stranger = await call("POST", `/v1/webhooks/${otherEp.id}/replay`, {
      token: await mintToken(other, "webhooks:write"),
      body: { event_ids: ids },
    });
    expect(await json(stranger)).toEqual({ queued: 0 });

    // An endpoint that takes suppression changes only replays the change alone.
    const changesOnly = await createEndpoint(account, {
      url: hookUrl(hookName()),
      event_types: ["suppression.created"],
    });
    const onlyChange = await call("POST", `/v1/webhooks/${changesOnly.id}/replay`, {
      token: write,
      body: { event_ids: ids },
    });
    expect(await json(onlyChange)).toEqual({ queued: 1 });
  }, 90_000);
});
