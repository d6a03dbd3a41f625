import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import type { QueueMessage } from "../src/pipeline/messages";
import { retryDelaySeconds } from "../src/queue/consumer";
import {
  call,
  consume,
  event,
  eventMessage,
  eventsDb,
  execOnShards,
  freshAccount,
  json,
  mintToken,
} from "./helpers";

const countEvents = async (account: string) =>
  (
    await eventsDb(account)
      .prepare("SELECT COUNT(*) AS n FROM events WHERE account_id = ?")
      .bind(account)
      .first<{ n: number }>()
  )?.n;

const register = (
  account: string,
  email_id: string,
  dims: Partial<Record<string, unknown>> = {},
): QueueMessage => ({
  type: "register",
  account_id: account,
  registered_at: Date.now(),
  message: {
    email_id,
    message_id: null,
    from: "news@mail.example.com",
    from_domain: "mail.example.com",
    subject: "Spring sale",
    topic: "newsletter",
    campaign: "spring",
    template_id: "tpl-1",
    tags: ["promo", "q2"],
    ...dims,
  },
});

async function page(account: string, query: string) {
  const token = await mintToken(account, "events:read");
  return json(await call("GET", `/v1/events?${query}`, { token }));
}

describe("queue consumer", () => {
  it("writes a batch of events and acknowledges every message", async () => {
    const account = freshAccount();
    const messages = Array.from({ length: 30 }, (_, i) =>
      eventMessage(event({ account_id: account, recipient: `u${i}@x.com` })),
    );
    const result = await consume(messages);
    expect(result.explicitAcks).toHaveLength(30);
    expect(result.retryMessages).toHaveLength(0);
    expect(await countEvents(account)).toBe(30);
  });

  it("writes nothing twice when the same batch is delivered again", async () => {
    const account = freshAccount();
    const messages = Array.from({ length: 5 }, (_, i) =>
      eventMessage(event({ account_id: account, recipient: `r${i}@x.com` })),
    );
    await consume(messages);
    const again = await consume(messages, 2);
    expect(again.explicitAcks).toHaveLength(5);
    expect(await countEvents(account)).toBe(5);
  });

  it.each([
    ["in separate batches", false],
    ["in the same batch", true],
  ])("stores one email.suppressed per check id when repeated checks arrive %s", async (_name, sameBatch) => {
    const account = freshAccount();
    const first = event({
      account_id: account,
      type: "email.suppressed",
      email_id: "email_dup",
      occurred_at: Date.now() - 5000,
    });
    const repeat = { ...first, occurred_at: Date.now() - 1000 };
    if (sameBatch) await consume([eventMessage(first), eventMessage(repeat)]);
    else for (const e of [first, repeat]) await consume([eventMessage(e)]);
    expect(await countEvents(account)).toBe(1);
  });

  it("never brings back a removed suppression when the bounce that caused it is redelivered", async () => {
    const account = freshAccount();
    const bounce = eventMessage(
      event({ account_id: account, type: "email.bounced", recipient: "gone@example.com" }),
      {
        reason: "hard_bounce",
        topic: null,
      },
    );
    await consume([bounce]);
    const suppressed = () =>
      eventsDb(account)
        .prepare("SELECT COUNT(*) AS n FROM suppressions WHERE account_id = ?")
        .bind(account)
        .first<{ n: number }>();
    expect((await suppressed())?.n).toBe(1);
    const token = await mintToken(account, "suppressions:write");
    expect((await call("DELETE", "/v1/suppressions/gone%40example.com", { token })).status).toBe(200);
    await consume([bounce], 2);
    expect((await suppressed())?.n).toBe(0);
    expect(await env.SUPPRESSIONS.get(`sup:${account}:gone@example.com`)).toBeNull();
    expect(await countEvents(account)).toBe(1);
  });

  it("acknowledges and logs a message that can never be written, and still writes the rest", async () => {
    const account = freshAccount();
    const logged = vi.spyOn(console, "error");
    const result = await consume([
      { type: "event", event: { id: "nope" } },
      { hello: 1 },
      eventMessage(event({ account_id: account })),
    ]);
    expect(result.explicitAcks).toHaveLength(3);
    expect(result.retryMessages).toHaveLength(0);
    expect(await countEvents(account)).toBe(1);
    expect(logged.mock.calls.some(([line]) => String(line).includes("invalid queue message dropped"))).toBe(
      true,
    );
    logged.mockRestore();
  });

  it("retries the batch with backoff when D1 fails, then writes it once D1 recovers", async () => {
    const account = freshAccount();
    const messages = [eventMessage(event({ account_id: account })), register(account, "email_retry")];
    // A real D1 failure: the table the statement needs is gone for the duration of the first delivery.
    await execOnShards("ALTER TABLE events RENAME TO events_away");
    let failed: Awaited<ReturnType<typeof consume>>;
    try {
      failed = await consume(messages, 3);
    } finally {
      await execOnShards("ALTER TABLE events_away RENAME TO events");
    }
    expect(failed.explicitAcks).toHaveLength(0);
    expect(failed.retryMessages).toHaveLength(2);
    expect(await countEvents(account)).toBe(0);
    // Nothing of the failed transaction is half-written: the registration rolled back too.
    const reg = await eventsDb(account)
      .prepare("SELECT 1 FROM messages WHERE account_id = ?")
      .bind(account)
      .first();
    expect(reg).toBeNull();

    const ok = await consume(messages, 4);
    expect(ok.explicitAcks).toHaveLength(2);
    expect(await countEvents(account)).toBe(1);
  });

  it("writes dead-lettered messages when D1 answers again, and drops (logged) what can never be written", async () => {
    // Parking in R2 while D1 is still down: test/reliability/dead-letters.test.ts.
    const account = freshAccount();
    const logged = vi.spyOn(console, "error");
    const result = await consume(
      [eventMessage(event({ account_id: account })), { garbage: true }],
      6,
      "mailtrail-events-dlq",
    );
    expect(result.explicitAcks).toHaveLength(2);
    expect(result.retryMessages).toHaveLength(0);
    expect(await countEvents(account)).toBe(1);
    const lines = logged.mock.calls.map(([line]) => JSON.parse(String(line)));
    expect(lines.filter((l) => l.msg === "invalid dead-lettered queue message dropped")).toHaveLength(1);
    logged.mockRestore();
  });

  it("backs off exponentially up to five minutes", () => {
    expect([1, 2, 3, 4, 5, 10].map(retryDelaySeconds)).toEqual([5, 10, 20, 40, 80, 300]);
  });

  it("enriches an event that arrives after its registration", async () => {
    const account = freshAccount();
    await consume([register(account, "email_a")]);
    await consume([eventMessage(event({ account_id: account, email_id: "email_a", type: "email.opened" }))]);
    const body = await page(account, "");
    expect(body.data[0]).toMatchObject({
      email_id: "email_a",
      from: "news@mail.example.com",
      from_domain: "mail.example.com",
      subject: "Spring sale",
      topic: "newsletter",
      campaign: "spring",
      template_id: "tpl-1",
      tags: ["promo", "q2"],
    });
  });

  it("back-fills an event that arrived before its registration, without overwriting its own values", async () => {
    const account = freshAccount();
    await consume([
      eventMessage(
        event({ account_id: account, email_id: "email_b", subject: "Own subject", message_id: "<own@x>" }),
      ),
    ]);
    await consume([register(account, "email_b")]);
    const body = await page(account, "");
    expect(body.data[0]).toMatchObject({
      subject: "Own subject",
      message_id: "<own@x>",
      campaign: "spring",
      topic: "newsletter",
      tags: ["promo", "q2"],
    });
    // The back-filled dimensions are filterable like any other.
    expect((await page(account, "campaign=spring")).data).toHaveLength(1);
    expect((await page(account, "tags=q2")).data).toHaveLength(1);
  });

  it("suppresses every topic for a topic-less unsubscribe, and the registered topic only when asked to inherit it", async () => {
    const account = freshAccount();
    await consume([register(account, "email_t", { topic: "weekly" })]);
    const unsub = (recipient: string, inherit: boolean) =>
      eventMessage(
        event({ account_id: account, email_id: "email_t", type: "email.unsubscribed", recipient }),
        {
          reason: "unsubscribe",
          topic: null,
          ...(inherit ? { inherit_topic: true } : {}),
        },
      );
    await consume([unsub("token@x.com", false), unsub("ses@x.com", true)]);
    const { results } = await eventsDb(account)
      .prepare("SELECT email, topic FROM suppressions WHERE account_id = ? ORDER BY email")
      .bind(account)
      .all();
    expect(results).toEqual([
      { email: "ses@x.com", topic: "weekly" },
      { email: "token@x.com", topic: "" },
    ]);
  });

  it("enriches within one batch whatever the order of registration and event", async () => {
    const account = freshAccount();
    await consume([
      eventMessage(event({ account_id: account, email_id: "email_c" })),
      register(account, "email_c", { campaign: "same-batch" }),
    ]);
    expect((await page(account, "")).data[0].campaign).toBe("same-batch");
  });

  it("carries a registration from POST /v1/messages through the real queue to the consumer", async () => {
    const account = freshAccount();
    const token = await mintToken(account, "send");
    const res = await call("POST", "/v1/messages", {
      token,
      body: {
        messages: [
          { email_id: "email_q", from: "Shop <shop@send.example.org>", campaign: "queued", tags: ["a", "a"] },
        ],
      },
    });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ object: "registration", accepted: 1 });
    await vi.waitFor(
      async () => {
        const row = await eventsDb(account)
          .prepare("SELECT * FROM messages WHERE account_id = ? AND email_id = 'email_q'")
          .bind(account)
          .first<Record<string, unknown>>();
        expect(row).toMatchObject({
          campaign: "queued",
          from_address: "shop@send.example.org",
          from_domain: "send.example.org",
          tags: '["a"]',
        });
      },
      { timeout: 10_000, interval: 100 },
    );
  });
});
