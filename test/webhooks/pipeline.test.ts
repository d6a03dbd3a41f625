import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Env } from "../../src/env";
import type { EventRecord } from "../../src/events/record";
import worker from "../../src/index";
import { replayParkedMessages } from "../../src/queue/parked";
import { clearSigningKeyCache } from "../../src/ses/sns";
import { CLICK_DELAY_SECONDS } from "../../src/webhooks/enqueue";
import { fanOutNewEvents } from "../../src/webhooks/fanout";
import { call, consume, eventMessage, freshAccount, json, mintToken } from "../helpers";
import { AWS_CERT_URL, notification, signed, testCertPem } from "../ses/sns-fixtures";
import {
  createEndpoint,
  deliveries,
  event,
  hookName,
  hookUrl,
  received,
  storeEvents,
  verify,
} from "./support";

/**
 * The whole pipeline on the real local queues: events consumer → fan-out → WEBHOOKS_QUEUE →
 * delivery consumer → a real receiver. Nothing here calls a consumer by hand except to replay a
 * queue redelivery.
 */

afterEach(() => {
  vi.restoreAllMocks();
  clearSigningKeyCache();
});

async function waitForCalls(name: string, n: number, timeout = 15_000) {
  let calls: Awaited<ReturnType<typeof received>> = [];
  await vi.waitFor(
    async () => {
      calls = await received(name);
      expect(calls.length).toBeGreaterThanOrEqual(n);
    },
    { timeout, interval: 200 },
  );
  return calls;
}

/** Long enough for both queues (batch timeouts of 2 s and 1 s) to have delivered anything pending. */
const quiet = () => new Promise((r) => setTimeout(r, 4000));

describe("webhook pipeline", () => {
  it("delivers each new event to every matching enabled endpoint, once, with event_types and each filter applied", async () => {
    const account = freshAccount();
    const names = {
      all: hookName(),
      bounces: hookName(),
      topic: hookName(),
      campaign: hookName(),
      domain: hookName(),
      tags: hookName(),
      disabled: hookName(),
    };
    const ep = {
      all: await createEndpoint(account, { url: hookUrl(names.all) }),
      bounces: await createEndpoint(account, { url: hookUrl(names.bounces), event_types: ["email.bounced"] }),
      topic: await createEndpoint(account, { url: hookUrl(names.topic), filters: { topic: "news" } }),
      campaign: await createEndpoint(account, {
        url: hookUrl(names.campaign),
        filters: { campaign: "spring" },
      }),
      domain: await createEndpoint(account, {
        url: hookUrl(names.domain),
        filters: { domain: "mail.example.com" },
      }),
      tags: await createEndpoint(account, { url: hookUrl(names.tags), filters: { tags: ["vip", "beta"] } }),
      disabled: await createEndpoint(account, { url: hookUrl(names.disabled) }),
    };
    await call("PATCH", `/v1/webhooks/${ep.disabled.id}`, {
      token: await mintToken(account, "webhooks:write"),
      body: { status: "disabled" },
    });
    const other = freshAccount();
    const otherName = hookName();
    await createEndpoint(other, { url: hookUrl(otherName) });

    const e1 = event({ account_id: account, type: "email.bounced", topic: "news", tags: ["vip"] });
    const e2 = event({
      account_id: account,
      type: "email.delivered",
      campaign: "spring",
      from_domain: "mail.example.com",
    });
    const e3 = event({
      account_id: account,
      type: "email.delivered",
      campaign: "Spring",
      tags: ["beta", "x"],
    });
    await consume([e1, e2, e3].map((e) => eventMessage(e)));

    const allCalls = await waitForCalls(names.all, 3);
    await quiet();
    const idsAt = async (name: string) => (await received(name)).map((c) => c.headers["webhook-id"]).sort();
    expect(await idsAt(names.all)).toEqual([e1.id, e2.id, e3.id].sort());
    expect(await idsAt(names.bounces)).toEqual([e1.id]);
    expect(await idsAt(names.topic)).toEqual([e1.id]);
    expect(await idsAt(names.campaign)).toEqual([e2.id]);
    expect(await idsAt(names.domain)).toEqual([e2.id]);
    expect(await idsAt(names.tags)).toEqual([e1.id, e3.id].sort());
    expect(await idsAt(names.disabled)).toEqual([]);
    expect(await idsAt(otherName)).toEqual([]);
    for (const c of allCalls) expect(verify(ep.all.secret, c).data.id).toBe(c.headers["webhook-id"]);
    // One delivery row per (endpoint, event), succeeded at the first attempt.
    const rows = await deliveries(account, ep.all.id);
    expect(rows.data).toHaveLength(3);
    for (const r of rows.data)
      expect(r).toMatchObject({ status: "succeeded", attempts: 1, response_status: 200 });
  });

  it("a redelivered queue message (and a repeated event) delivers nothing twice", async () => {
    const account = freshAccount();
    const name = hookName();
    await createEndpoint(account, { url: hookUrl(name) });
    const e = event({ account_id: account });
    const message = eventMessage(e);
    await consume([message]);
    await waitForCalls(name, 1);
    // The same event again as a new message (a producer retry), then as a queue redelivery of the
    // batch (attempts 2: the fan-out runs again for safety, and the delivery side drops it).
    await consume([message]);
    await consume([message], 2);
    await quiet();
    expect(await received(name)).toHaveLength(1);
  });

  it("a fan-out the queue refused after D1 committed is not lost: the batch's retry delivers it, once", async () => {
    const account = freshAccount();
    const name = hookName();
    await createEndpoint(account, { url: hookUrl(name) });
    const e = event({ account_id: account });
    // A real queue cannot be made to refuse, so the binding is wrapped by a proxy whose sends reject.
    const refusing = new Proxy(env.WEBHOOKS_QUEUE, {
      get: (target, prop) =>
        prop === "send" || prop === "sendBatch"
          ? () => Promise.reject(new Error("queue unavailable"))
          : Reflect.get(target, prop),
    });
    const brokenEnv = { ...env, WEBHOOKS_QUEUE: refusing } as Env;
    const batch = createMessageBatch<unknown>("mailtrail-events", [
      { id: "fanout-fail-1", timestamp: new Date(), attempts: 1, body: eventMessage(e) },
    ]);
    const ctx = createExecutionContext();
    await worker.queue(batch, brokenEnv, ctx);
    const failed = await getQueueResult(batch, ctx);
    expect(failed.retryMessages).toHaveLength(1);
    expect(failed.explicitAcks).toEqual([]);
    const stored = await env.DB.prepare("SELECT COUNT(*) AS n FROM events WHERE account_id = ?")
      .bind(account)
      .first<{ n: number }>();
    expect(stored?.n).toBe(1);

    // Queues redelivers the batch: the INSERT returns nothing new, the fan-out runs from the stored event.
    const retried = await consume([eventMessage(e)], 2);
    expect(retried.explicitAcks).toHaveLength(1);
    await waitForCalls(name, 1);
    await consume([eventMessage(e)], 3);
    await quiet();
    expect(await received(name)).toHaveLength(1);
  });

  it("a redelivered SNS notification delivers nothing twice", async () => {
    const original = globalThis.fetch;
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const url = input instanceof Request ? input.url : String(input);
      // Only AWS is intercepted (its signing certificate); the webhook receiver is real.
      if (url === AWS_CERT_URL) return new Response(testCertPem);
      return original(input, init);
    });
    const account = "acct_bound"; // the test topic's bound account (vitest.config.ts)
    const name = hookName();
    const ep = await createEndpoint(account, { url: hookUrl(name), filters: { campaign: `c-${name}` } });
    const ses = {
      eventType: "Delivery",
      mail: {
        timestamp: new Date().toISOString(),
        source: "news@mail.example.com",
        messageId: `0100-${crypto.randomUUID()}`,
        destination: ["reader@example.com"],
        tags: { email_id: [`email_${crypto.randomUUID()}`], campaign: [`c-${name}`] },
      },
      delivery: {
        timestamp: new Date().toISOString(),
        recipients: ["reader@example.com"],
        smtpResponse: "250 ok",
      },
    };
    const sns = await signed(notification({ Message: JSON.stringify(ses), MessageId: crypto.randomUUID() }));
    for (let i = 0; i < 2; i++) {
      const res = await call("POST", "/webhooks/ses", {
        rawBody: JSON.stringify(sns),
        headers: { "content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification" },
      });
      expect(res.status).toBe(200);
    }
    const [first] = await waitForCalls(name, 1);
    await quiet();
    expect(await received(name)).toHaveLength(1);
    const payload = verify(ep.secret, first!);
    expect(payload).toMatchObject({
      type: "email.delivered",
      data: { campaign: `c-${name}`, smtp_code: 250 },
    });
  });

  it("nothing more is delivered to a deleted endpoint", async () => {
    const account = freshAccount();
    const name = hookName();
    const ep = await createEndpoint(account, { url: hookUrl(name) });
    const del = await call("DELETE", `/v1/webhooks/${ep.id}`, {
      token: await mintToken(account, "webhooks:write"),
    });
    expect(del.status).toBe(200);
    await consume([eventMessage(event({ account_id: account }))]);
    await quiet();
    expect(await received(name)).toEqual([]);
  });

  describe("replay", () => {
    /** What the slot's expiry would do later: the endpoint's replay slot is free again. */
    const freeReplaySlot = (id: string) =>
      env.DB.prepare("DELETE FROM leases WHERE name = ?").bind(`webhook-replay:${id}`).run();

    async function delivered() {
      const account = freshAccount();
      const name = hookName();
      const t = Date.now();
      const events: EventRecord[] = [
        event({ account_id: account, type: "email.sent", occurred_at: t - 50_000 }),
        event({ account_id: account, type: "email.delivered", occurred_at: t - 40_000 }),
        event({ account_id: account, type: "email.opened", occurred_at: t - 30_000 }),
      ];
      await storeEvents(events);
      const ep = await createEndpoint(account, {
        url: hookUrl(name),
        event_types: ["email.sent", "email.delivered"],
      });
      return { account, name, ep, events, token: await mintToken(account, "webhooks:write") };
    }

    it("by ids re-delivers with the same webhook-id; ids the endpoint does not take are skipped", async () => {
      const { account, name, ep, events, token } = await delivered();
      const [sent, deliveredEvent, opened] = events as [EventRecord, EventRecord, EventRecord];
      const res = await call("POST", `/v1/webhooks/${ep.id}/replay`, {
        token,
        body: { event_ids: [sent.id, opened.id, "evt_unknown00"] },
      });
      expect(res.status).toBe(202);
      expect(await json(res)).toEqual({ queued: 1 });
      const [first] = await waitForCalls(name, 1);
      expect(first?.headers["webhook-id"]).toBe(sent.id);
      // One replay per endpoint in flight (SPEC §18): a second one now is 429 until the slot frees.
      const busy = await call("POST", `/v1/webhooks/${ep.id}/replay`, {
        token,
        body: { event_ids: [sent.id] },
      });
      expect(busy.status).toBe(429);
      await freeReplaySlot(ep.id);
      // Again: a replay is an explicit re-delivery, so it is POSTed again, with the same id.
      await call("POST", `/v1/webhooks/${ep.id}/replay`, {
        token,
        body: { event_ids: [sent.id, deliveredEvent.id] },
      });
      const calls = await waitForCalls(name, 3);
      expect(calls.map((c) => c.headers["webhook-id"]).sort()).toEqual(
        [sent.id, sent.id, deliveredEvent.id].sort(),
      );
      for (const c of calls) verify(ep.secret, c);
      const rows = await deliveries(account, ep.id, `?event_id=${sent.id}`);
      expect(rows.data).toEqual([
        expect.objectContaining({ event_id: sent.id, status: "succeeded", attempts: 2 }),
      ]);
    });

    it("by window re-delivers the window's events the endpoint takes", async () => {
      const { name, ep, events, token } = await delivered();
      const start = new Date(events[0]!.occurred_at - 1000).toISOString();
      const res = await call("POST", `/v1/webhooks/${ep.id}/replay`, {
        token,
        body: { start, end: new Date().toISOString() },
      });
      expect(await json(res)).toEqual({ queued: 2 });
      const calls = await waitForCalls(name, 2);
      expect(calls.map((c) => c.headers["webhook-id"]).sort()).toEqual([events[0]!.id, events[1]!.id].sort());
      await freeReplaySlot(ep.id);
      const typed = await call("POST", `/v1/webhooks/${ep.id}/replay`, {
        token,
        body: { start, event_type: "email.delivered" },
      });
      expect(await json(typed)).toEqual({ queued: 1 });
    });

    it("refuses a window over 10,000 events with 400 naming start, and bad bodies", async () => {
      const account = freshAccount();
      const ep = await createEndpoint(account, { url: hookUrl(hookName()) });
      const token = await mintToken(account, "webhooks:write");
      const t = Date.now() - 3600_000;
      await env.DB.prepare(
        `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
         INSERT INTO events (account_id, occurred_at, id, type, email_id, recipient)
         SELECT ?1, ?2 + i, printf('evt_bulk%08d', i), 'email.sent', 'email_bulk', 'r@example.com' FROM n`,
      )
        .bind(account, t)
        .run();
      const over = await call("POST", `/v1/webhooks/${ep.id}/replay`, {
        token,
        body: { start: new Date(t).toISOString(), end: new Date().toISOString() },
      });
      expect(over.status).toBe(400);
      expect((await json(over)).error).toMatchObject({ type: "validation_error", param: "start" });
      const exactly = await call("POST", `/v1/webhooks/${ep.id}/replay`, {
        token,
        body: {
          start: new Date(t + 1).toISOString(),
          end: new Date().toISOString(),
          event_type: "email.opened",
        },
      });
      expect(await json(exactly)).toEqual({ queued: 0 });

      for (const [body, param] of [
        [{}, "start"],
        [{ event_ids: [] }, "event_ids"],
        [{ event_ids: Array.from({ length: 101 }, (_, i) => `evt_${i}`) }, "event_ids"],
        [{ event_ids: ["evt_a"], start: new Date(t).toISOString() }, "start"],
        [{ start: "yesterday" }, "start"],
        [{ start: new Date().toISOString(), end: new Date(t).toISOString() }, "start"],
        [{ start: new Date(t).toISOString(), event_type: "email.nope" }, "event_type"],
      ] as const) {
        const res = await call("POST", `/v1/webhooks/${ep.id}/replay`, { token, body });
        expect((await json(res)).error, JSON.stringify(body)).toMatchObject({
          type: "validation_error",
          param,
        });
      }
    });
  });
});

describe("fan-out details", () => {
  it("matches and delivers the stored event, enriched with its message's registration", async () => {
    const account = freshAccount();
    const name = hookName();
    const ep = await createEndpoint(account, {
      url: hookUrl(name),
      filters: { campaign: "spring", tags: ["vip"] },
    });
    const emailId = `email_${crypto.randomUUID()}`;
    await consume([
      {
        type: "register",
        account_id: account,
        registered_at: Date.now(),
        message: {
          email_id: emailId,
          message_id: null,
          from: "news@mail.example.com",
          from_domain: "mail.example.com",
          subject: "Spring sale",
          topic: null,
          campaign: "spring",
          template_id: null,
          tags: ["vip"],
        },
      },
    ]);
    // The event itself knows neither campaign nor tags: the consumer fills them from the registration.
    const e = event({ account_id: account, email_id: emailId });
    await consume([eventMessage(e)]);
    const [c] = await waitForCalls(name, 1);
    expect(verify(ep.secret, c!).data).toMatchObject({
      id: e.id,
      campaign: "spring",
      tags: ["vip"],
      subject: "Spring sale",
    });
  });

  it("holds clicks back a few seconds, so a scanner's burst can be removed first", async () => {
    const account = freshAccount();
    await createEndpoint(account, { url: hookUrl(hookName()) });
    const sent: MessageSendRequest[] = [];
    const capturing = new Proxy(env.WEBHOOKS_QUEUE, {
      get: (target, prop) =>
        prop === "sendBatch"
          ? async (batch: MessageSendRequest[]) => {
              sent.push(...batch);
            }
          : Reflect.get(target, prop),
    });
    const click = event({ account_id: account, type: "email.clicked" });
    const open = event({ account_id: account, type: "email.opened" });
    const stored = [click, open].map((e) => ({ ...e, from_domain: null, tags: "[]" }));
    const n = await fanOutNewEvents({ ...env, WEBHOOKS_QUEUE: capturing } as Env, [], stored);
    expect(n).toBe(2);
    const byEvent = Object.fromEntries(
      sent.map((s) => [(s.body as { event_id: string }).event_id, s.delaySeconds]),
    );
    expect(byEvent).toEqual({ [click.id]: CLICK_DELAY_SECONDS, [open.id]: undefined });
  });
});

describe("webhooks of events that waited in the dead-letter path", () => {
  const runDeadLetters = async (messages: { id: string; body: unknown }[], targetEnv: Env) => {
    const batch = createMessageBatch<unknown>(
      "mailtrail-events-dlq",
      messages.map((m) => ({ ...m, timestamp: new Date(), attempts: 1 })),
    );
    const ctx = createExecutionContext();
    await worker.queue(batch, targetEnv, ctx);
    return getQueueResult(batch, ctx);
  };

  it("delivers an event the dead-letter consumer writes on arrival, once", async () => {
    const account = freshAccount();
    const name = hookName();
    await createEndpoint(account, { url: hookUrl(name) });
    const e = event({ account_id: account });
    const result = await runDeadLetters([{ id: `dlq-${account}`, body: eventMessage(e) }], env);
    expect(result.explicitAcks).toHaveLength(1);
    const calls = await waitForCalls(name, 1);
    expect(JSON.parse(calls[0]?.body ?? "{}").data.id).toBe(e.id);
    // A redelivered dead letter writes nothing new and delivers nothing again.
    await runDeadLetters([{ id: `dlq-${account}`, body: eventMessage(e) }], env);
    await quiet();
    expect(await received(name)).toHaveLength(1);
  });

  it("delivers an event parked in R2 during a D1 outage once the cron writes it", async () => {
    const account = freshAccount();
    const name = hookName();
    await createEndpoint(account, { url: hookUrl(name) });
    const e = event({ account_id: account });
    await env.DB.exec("ALTER TABLE events RENAME TO events_away");
    try {
      const parked = await runDeadLetters([{ id: `park-${account}`, body: eventMessage(e) }], env);
      expect(parked.explicitAcks).toHaveLength(1);
    } finally {
      await env.DB.exec("ALTER TABLE events_away RENAME TO events");
    }
    expect(await received(name)).toHaveLength(0);
    await replayParkedMessages(env);
    const calls = await waitForCalls(name, 1);
    expect(JSON.parse(calls[0]?.body ?? "{}").data.id).toBe(e.id);
  });

  it("keeps a written message parked (never stuck) while the webhook queue refuses, and delivers it on the next run", async () => {
    const account = freshAccount();
    const name = hookName();
    await createEndpoint(account, { url: hookUrl(name) });
    const events = [event({ account_id: account }), event({ account_id: account })];
    await env.DB.exec("ALTER TABLE events RENAME TO events_away");
    try {
      await runDeadLetters(
        events.map((e, i) => ({ id: `park2-${account}-${i}`, body: eventMessage(e) })),
        env,
      );
    } finally {
      await env.DB.exec("ALTER TABLE events_away RENAME TO events");
    }
    const refusing = new Proxy(env.WEBHOOKS_QUEUE, {
      get: (target, prop) =>
        prop === "send" || prop === "sendBatch"
          ? () => Promise.reject(new Error("queue unavailable"))
          : Reflect.get(target, prop),
    });
    const first = await replayParkedMessages({ ...env, WEBHOOKS_QUEUE: refusing } as Env);
    expect(first).toMatchObject({ replayed: 0, stuck: 0, fanout_failed: true });
    const stored = await env.DB.prepare("SELECT COUNT(*) AS n FROM events WHERE account_id = ?")
      .bind(account)
      .first<{ n: number }>();
    expect(stored?.n).toBe(2);
    const parkedNow = await env.PARKED.list({ prefix: "parked/" });
    expect(parkedNow.objects.filter((o) => o.key.includes(`park2-${account}`))).toHaveLength(2);

    const second = await replayParkedMessages(env);
    expect(second.fanout_failed).toBe(false);
    await waitForCalls(name, 2);
    const left = await env.PARKED.list({ prefix: "parked/" });
    expect(left.objects.filter((o) => o.key.includes(`park2-${account}`))).toHaveLength(0);
    const stuck = await env.PARKED.list({ prefix: "stuck/" });
    expect(stuck.objects.filter((o) => o.key.includes(`park2-${account}`))).toHaveLength(0);
  });
});
