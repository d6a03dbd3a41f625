import {
  createExecutionContext,
  createMessageBatch,
  createScheduledController,
  getQueueResult,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import worker from "../../src/index";
import type { QueueMessage } from "../../src/pipeline/messages";
import { PARKED_PREFIX, replayParkedMessages, STUCK_PREFIX } from "../../src/queue/parked";
import { call, event, eventMessage, freshAccount, json, mintToken } from "../helpers";

/**
 * Finding 1: D1 fails through the whole retry budget, the messages reach the dead-letter queue,
 * D1 recovers, and the cron writes every event, suppression and registration exactly once.
 */

afterEach(() => vi.restoreAllMocks());

/** A batch as the Queues runtime delivers it, with stable ids so a redelivery is the same message. */
async function deliver(
  queue: string,
  messages: { id: string; timestamp: Date; body: unknown }[],
  attempts: number,
) {
  const batch = createMessageBatch<unknown>(
    queue,
    messages.map((m) => ({ ...m, attempts })),
  );
  const ctx = createExecutionContext();
  await worker.queue(batch, env, ctx);
  return getQueueResult(batch, ctx);
}

async function withD1Down<T>(work: () => Promise<T>): Promise<T> {
  await env.DB.exec("ALTER TABLE events RENAME TO events_away");
  try {
    return await work();
  } finally {
    await env.DB.exec("ALTER TABLE events_away RENAME TO events");
  }
}

async function runCron() {
  const controller = createScheduledController({ scheduledTime: new Date(), cron: "*/15 * * * *" });
  await worker.scheduled(controller, env, createExecutionContext());
}

async function rows(account: string) {
  const count = async (sql: string) =>
    (await env.DB.prepare(sql).bind(account).first<{ n: number }>())?.n ?? 0;
  return {
    events: await count("SELECT COUNT(*) AS n FROM events WHERE account_id = ?"),
    suppressions: await count("SELECT COUNT(*) AS n FROM suppressions WHERE account_id = ?"),
    registrations: await count("SELECT COUNT(*) AS n FROM messages WHERE account_id = ?"),
  };
}

async function parkedKeys() {
  return (await env.PARKED.list({ prefix: PARKED_PREFIX })).objects.map((o) => o.key);
}

async function keyOf(message: { id: string; timestamp: Date } | undefined) {
  if (!message) throw new Error("no message");
  return `${String(message.timestamp.getTime()).padStart(15, "0")}-${message.id}`;
}

async function clearParked() {
  const keys = await parkedKeys();
  if (keys.length > 0) await env.PARKED.delete(keys);
}

function scenario() {
  const account = freshAccount();
  const emailId = `email_${crypto.randomUUID()}`;
  const bounce = event({
    account_id: account,
    email_id: emailId,
    type: "email.bounced",
    recipient: "gone@example.com",
    bounce_type: "permanent",
  });
  const delivered = event({ account_id: account, email_id: emailId, recipient: "here@example.com" });
  const registration: QueueMessage = {
    type: "register",
    account_id: account,
    registered_at: Date.now(),
    message: {
      email_id: emailId,
      message_id: null,
      from: "news@mail.example.com",
      from_domain: "mail.example.com",
      subject: "Hello",
      topic: null,
      campaign: "spring",
      template_id: null,
      tags: [],
    },
  };
  const base = Date.now() - 3 * 60 * 60_000;
  const messages = [
    {
      id: `q-${account}-1`,
      timestamp: new Date(base),
      body: eventMessage(bounce, { reason: "hard_bounce", topic: null }),
    },
    { id: `q-${account}-2`, timestamp: new Date(base + 1000), body: eventMessage(delivered) },
    { id: `q-${account}-3`, timestamp: new Date(base + 2000), body: registration },
  ];
  return { account, messages, base };
}

describe("dead letters survive a long D1 outage", () => {
  it("parks what D1 refused through every retry, shows the backlog, and writes it exactly once when D1 answers", async () => {
    await clearParked();
    const { account, messages, base } = scenario();
    const admin = await mintToken(freshAccount("ops"), "admin");

    // The last retry fails: the Queues runtime dead-letters these (max_retries reached).
    const lastTry = await withD1Down(() => deliver("mailtrail-events", messages, 6));
    expect(lastTry.retryMessages).toHaveLength(3);

    // D1 is still down when the dead-letter consumer runs; delivered twice (at least once).
    for (let i = 0; i < 2; i++) {
      const dlq = await withD1Down(() => deliver("mailtrail-events-dlq", messages, 1));
      expect(dlq.explicitAcks).toHaveLength(3);
      expect(dlq.retryMessages).toHaveLength(0);
    }
    expect(await parkedKeys()).toHaveLength(3);
    expect(await rows(account)).toEqual({ events: 0, suppressions: 0, registrations: 0 });

    const backlog = await call("GET", "/v1/admin/parked", { token: admin });
    expect(backlog.status).toBe(200);
    expect(await json(backlog)).toEqual({
      object: "parked_messages",
      count: 3,
      count_exact: true,
      oldest_enqueued_at: new Date(base).toISOString(),
      stuck: 0,
    });

    // A cron run while D1 is still down writes nothing, loses nothing, and says so in its log line.
    const logs = vi.spyOn(console, "log");
    await withD1Down(() => runCron().catch(() => {}));
    expect(await parkedKeys()).toHaveLength(3);

    // D1 answers again: the next cron run writes everything, then deletes it from R2.
    await runCron();
    expect(await rows(account)).toEqual({ events: 2, suppressions: 1, registrations: 1 });
    expect(await parkedKeys()).toHaveLength(0);
    const replayLine = logs.mock.calls
      .map(([line]) => JSON.parse(String(line)))
      .filter((l) => l.msg === "parked replay finished")
      .at(-1);
    expect(replayLine).toMatchObject({ replayed: 3, stuck: 0, count: 0, d1_failed: false });

    // Enriched from the registration, as the consumer would have done.
    const stored = await env.DB.prepare("SELECT campaign FROM events WHERE account_id = ?")
      .bind(account)
      .all();
    expect(stored.results.every((r) => r.campaign === "spring")).toBe(true);
    // The KV mirror learned the suppression too.
    const check = await call("POST", "/v1/suppressions/check", {
      token: await mintToken(account, "send"),
      body: { emails: ["gone@example.com"] },
    });
    expect((await json(check)).data[0]).toMatchObject({ suppressed: true, reason: "hard_bounce" });

    // Exactly once: another run, and a late redelivery of the dead letters, write nothing new.
    await runCron();
    await deliver("mailtrail-events-dlq", messages, 2);
    expect(await rows(account)).toEqual({ events: 2, suppressions: 1, registrations: 1 });
    expect(await parkedKeys()).toHaveLength(0);
    expect(await json(await call("GET", "/v1/admin/parked", { token: admin }))).toMatchObject({
      count: 0,
      oldest_enqueued_at: null,
    });
  });

  it("moves a message D1 refuses on its own out of the way, so it cannot hold back the rest", async () => {
    await clearParked();
    const { account, messages } = scenario();
    await withD1Down(() => deliver("mailtrail-events-dlq", messages, 1));
    expect(await parkedKeys()).toHaveLength(3);
    // A real D1 refusal of one message only: a trigger aborts the insert of the delivered event.
    const poisoned = messages[1]?.body as { event: { id: string } };
    await env.DB.exec(
      `CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.id = '${poisoned.event.id}' BEGIN SELECT RAISE(ABORT, 'poison'); END`,
    );
    let result: Awaited<ReturnType<typeof replayParkedMessages>>;
    try {
      result = await replayParkedMessages(env);
    } finally {
      await env.DB.exec("DROP TRIGGER poison");
    }
    expect(result).toEqual({ replayed: 2, dropped: 0, stuck: 1, d1_failed: false, fanout_failed: false });
    expect(await rows(account)).toEqual({ events: 1, suppressions: 1, registrations: 1 });
    expect(await parkedKeys()).toHaveLength(0);
    const stuck = (await env.PARKED.list({ prefix: STUCK_PREFIX })).objects.map((o) => o.key);
    expect(stuck).toEqual([`${STUCK_PREFIX}${await keyOf(messages[1])}`]);
    const status = await json(
      await call("GET", "/v1/admin/parked", { token: await mintToken(freshAccount("ops"), "admin") }),
    );
    expect(status).toMatchObject({ count: 0, stuck: 1 });
    await env.PARKED.delete(stuck);
  });

  it("writes dead letters at once when D1 has already recovered, parking nothing", async () => {
    await clearParked();
    const { account, messages } = scenario();
    const dlq = await deliver("mailtrail-events-dlq", messages, 1);
    expect(dlq.explicitAcks).toHaveLength(3);
    expect(await parkedKeys()).toHaveLength(0);
    expect(await rows(account)).toEqual({ events: 2, suppressions: 1, registrations: 1 });
  });

  it("drops a dead letter that can never be written, logged whole", async () => {
    await clearParked();
    const logged = vi.spyOn(console, "error");
    const dlq = await deliver(
      "mailtrail-events-dlq",
      [{ id: "junk-1", timestamp: new Date(), body: { garbage: true } }],
      1,
    );
    expect(dlq.explicitAcks).toHaveLength(1);
    expect(await parkedKeys()).toHaveLength(0);
    const lines = logged.mock.calls.map(([line]) => JSON.parse(String(line)));
    expect(lines.some((l) => l.msg === "invalid dead-lettered queue message dropped" && l.body.garbage)).toBe(
      true,
    );
  });

  it("answers the backlog only to admin tokens", async () => {
    const res = await call("GET", "/v1/admin/parked", {
      token: await mintToken(freshAccount(), "events:read send"),
    });
    expect(res.status).toBe(403);
    expect((await call("GET", "/v1/admin/parked")).status).toBe(401);
  });
});
