import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/env";
import type { WebhookMessage } from "../../src/webhooks/messages";
import { freshAccount } from "../helpers";
import {
  createEndpoint,
  deliver,
  deliveries,
  deliverMessage,
  event,
  hookName,
  hookUrl,
  received,
  script,
  storeEvents,
} from "./support";

/**
 * SPEC §18: no endpoint's slowness delays another's deliveries, and §12: a D1 outage of 24 hours
 * loses and duplicates no webhook delivery. Real receiver, real local D1 and queue; the outage is
 * a D1 binding that refuses every statement.
 */

const SLOW_MS = 14_000;

describe("one slow endpoint in a batch", () => {
  it("does not hold back a fast endpoint's deliveries: each is recorded and settled as it finishes", async () => {
    const account = freshAccount();
    const events = [1, 2, 3, 4].map(() => event({ account_id: account }));
    await storeEvents(events);
    const slow = hookName();
    const fast = hookName();
    const slowEp = await createEndpoint(account, { url: hookUrl(slow) });
    const fastEp = await createEndpoint(account, { url: hookUrl(fast) });
    await script(
      slow,
      events.map(() => ({ status: 200, delayMs: SLOW_MS })),
    );
    // Slow deliveries first in the batch, as a backlog would put them.
    const messages = [
      ...events.map((e) => deliverMessage(slowEp.id, e)),
      ...events.map((e) => deliverMessage(fastEp.id, e)),
    ];
    const run = deliver(messages);

    // The fast endpoint's deliveries are recorded while the slow endpoint has not answered yet.
    let fastRows: { status: string; last_attempt_at: string }[] = [];
    for (let i = 0; i < 200 && fastRows.filter((r) => r.status === "succeeded").length < 4; i++) {
      await new Promise((r) => setTimeout(r, 100));
      fastRows = (await deliveries(account, fastEp.id)).data;
    }
    expect(fastRows.map((r) => r.status)).toEqual(["succeeded", "succeeded", "succeeded", "succeeded"]);
    expect((await deliveries(account, slowEp.id)).data).toEqual([]);

    const result = await run;
    const slowCalls = await received(slow);
    const fastCalls = await received(fast);
    expect(fastCalls).toHaveLength(4);
    // Three of the slow endpoint's four deliveries were attempted; the fourth could not start while
    // they held its slots, so it went back to the queue (not an attempt) instead of waiting 14 s.
    expect(slowCalls.length).toBeGreaterThanOrEqual(3);
    const firstSlowAnswer = Math.min(...slowCalls.map((c) => c.at)) + SLOW_MS;
    // Ordering on one clock: every fast delivery was POSTed, recorded and acknowledged before the
    // first slow answer came back.
    for (const c of fastCalls) expect(c.at).toBeLessThan(firstSlowAnswer);
    const ids = (from: number) =>
      messages.slice(from, from + 4).map((_, i) => `wh-${idPrefix(result)}-${from + i}`);
    const fastSettled = ids(4).map((id) => result.settledAt.get(id) ?? Number.POSITIVE_INFINITY);
    const slowSettled = ids(0).map((id) => result.settledAt.get(id) ?? Number.POSITIVE_INFINITY);
    expect(Math.max(...fastSettled)).toBeLessThan(firstSlowAnswer);
    expect(Math.max(...fastSettled)).toBeLessThan(Math.min(...slowSettled));
    // The attempt timestamps recorded: the fast attempts started before the slow endpoint answered.
    for (const r of fastRows) expect(Date.parse(r.last_attempt_at)).toBeLessThan(firstSlowAnswer);
    expect(result.explicitAcks).toHaveLength(8);
    expect(result.retryMessages).toEqual([]);
    const slowRows = (await deliveries(account, slowEp.id)).data;
    expect(slowRows.filter((r: { status: string }) => r.status === "succeeded")).toHaveLength(3);
  }, 40_000);
});

const idPrefix = (result: { settledAt: Map<string, number> }) =>
  [...result.settledAt.keys()][0]?.split("-")[1] ?? "";

/** The bindings with D1 refusing everything (or everything after `allowBatches` batches), and the webhook queue captured. */
function outage(allowBatches = 0) {
  const sent: { body: WebhookMessage; delaySeconds?: number }[] = [];
  let batches = 0;
  const refuse = () => {
    throw new Error("D1_ERROR: Network connection lost.");
  };
  const db = new Proxy(env.DB, {
    get(target, prop, receiver) {
      if (prop === "batch")
        return (statements: D1PreparedStatement[]) => {
          batches += 1;
          if (batches <= allowBatches) return target.batch(statements);
          return Promise.reject(new Error("D1_ERROR: Network connection lost."));
        };
      if (prop === "prepare" && allowBatches === 0) return refuse;
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const queue = {
    send: async (body: WebhookMessage, o?: { delaySeconds?: number }) => {
      sent.push({ body, delaySeconds: o?.delaySeconds });
    },
    sendBatch: async (messages: { body: WebhookMessage; delaySeconds?: number }[]) => {
      for (const m of messages) sent.push({ body: m.body, delaySeconds: m.delaySeconds });
    },
  };
  return { env: { ...env, DB: db, WEBHOOKS_QUEUE: queue } as unknown as Env, sent };
}

/**
 * Drives one delivery through an outage as Queues would: retries with their delay (attempts + 1),
 * continuations as new messages (attempts 1). Returns the message that is due when the outage ends.
 */
async function waitOut(start: WebhookMessage, hours: number, allowBatches = 0) {
  const MAX_RETRIES = 100; // wrangler.toml max_retries: Queues discards a message past it
  const RETENTION_MS = 4 * 86_400_000;
  let body = start;
  let attempts = 1;
  let elapsed = 0;
  let bornAt = 0;
  let steps = 0;
  while (elapsed < hours * 3600_000) {
    steps += 1;
    const { env: down, sent } = outage(allowBatches);
    allowBatches = 0;
    const result = await deliver([body], {
      env: down,
      attempts,
      timestamp: new Date(Date.now() - (elapsed - bornAt)),
      now: () => Date.now(),
    });
    if (result.retryMessages.length === 1) {
      expect(sent).toEqual([]);
      attempts += 1;
      elapsed += (result.retryMessages[0]?.delaySeconds ?? 0) * 1000;
    } else {
      // Acknowledged only because it continues in exactly one new message.
      expect(result.explicitAcks).toHaveLength(1);
      expect(sent).toHaveLength(1);
      body = sent[0]!.body;
      attempts = 1;
      bornAt = elapsed;
      elapsed += (sent[0]?.delaySeconds ?? 0) * 1000;
    }
    expect(attempts).toBeLessThanOrEqual(MAX_RETRIES);
    expect(elapsed - bornAt).toBeLessThan(RETENTION_MS);
  }
  return { body, attempts, steps, timestamp: new Date(Date.now() - (elapsed - bornAt)) };
}

describe("a 24-hour D1 outage", () => {
  it("loses no delivery waiting before its first attempt, and delivers it once afterwards", async () => {
    const account = freshAccount();
    const e = event({ account_id: account });
    await storeEvents([e]);
    const name = hookName();
    const ep = await createEndpoint(account, { url: hookUrl(name) });

    const due = await waitOut(deliverMessage(ep.id, e), 24);
    // Backing off: far fewer than Queues' 100 retries, and the receiver saw nothing meanwhile.
    expect(due.steps).toBeLessThan(60);
    expect(await received(name)).toEqual([]);

    const after = await deliver([due.body], { attempts: due.attempts, timestamp: due.timestamp });
    expect(after.explicitAcks).toHaveLength(1);
    expect(await received(name)).toHaveLength(1);
    expect((await deliveries(account, ep.id)).data).toMatchObject([{ status: "succeeded", attempts: 1 }]);
    // A late duplicate delivers nothing again.
    await deliver([due.body], { attempts: due.attempts + 1, timestamp: due.timestamp });
    expect(await received(name)).toHaveLength(1);
  }, 60_000);

  it("never POSTs twice when D1 refused the record of an attempt: the record waits in a new message", async () => {
    const account = freshAccount();
    const e = event({ account_id: account });
    await storeEvents([e]);
    const name = hookName();
    const ep = await createEndpoint(account, { url: hookUrl(name) });

    // D1 answers the batch's read, then fails: the POST is made, its record is refused.
    const due = await waitOut(deliverMessage(ep.id, e), 24, 1);
    expect(await received(name)).toHaveLength(1);
    expect(due.body.outcome).toMatchObject({ kind: "succeeded", status: 200, attempts: 1 });

    const after = await deliver([due.body], { attempts: due.attempts, timestamp: due.timestamp });
    expect(after.explicitAcks).toHaveLength(1);
    expect(await received(name)).toHaveLength(1);
    expect((await deliveries(account, ep.id)).data).toMatchObject([
      { status: "succeeded", attempts: 1, response_status: 200 },
    ]);
    // Queues redelivers the outcome message: the record already holds it, nothing is written or POSTed.
    const again = await deliver([due.body], { attempts: due.attempts + 1, timestamp: due.timestamp });
    expect(again.explicitAcks).toHaveLength(1);
    expect(await received(name)).toHaveLength(1);
  }, 60_000);

  it("a failed attempt whose record waited carries its run on without a second POST for it", async () => {
    const account = freshAccount();
    const e = event({ account_id: account });
    await storeEvents([e]);
    const name = hookName();
    const ep = await createEndpoint(account, { url: hookUrl(name) });
    await script(name, [{ status: 503 }]);
    const due = await waitOut(deliverMessage(ep.id, e), 2, 1);
    expect(due.body.outcome).toMatchObject({ kind: "failed", status: 503 });
    const { env: up, sent } = outage(1_000);
    const after = await deliver([due.body], { env: up, attempts: due.attempts, timestamp: due.timestamp });
    expect(after.explicitAcks).toHaveLength(1);
    // The run continues in one new message (no outcome: the next attempt is a real one).
    expect(sent).toHaveLength(1);
    expect(sent[0]?.body.outcome).toBeUndefined();
    expect(sent[0]?.body.continued).toBe(true);
    expect(await received(name)).toHaveLength(1);
    expect((await deliveries(account, ep.id)).data).toMatchObject([
      { status: "pending", attempts: 1, response_status: 503 },
    ]);
  }, 60_000);
});
