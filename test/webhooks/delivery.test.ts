import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DELIVERY_WINDOW_MS } from "../../src/webhooks/schedule";
import { call, freshAccount, json, mintToken } from "../helpers";
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
  verify,
} from "./support";

/**
 * The delivery consumer, driven directly (createMessageBatch) so the clock and the attempt number
 * are the test's: a real local receiver answers, the real D1 records.
 */

afterEach(() => {
  vi.useRealTimers();
});

async function setup(endpointBody: Record<string, unknown> = {}) {
  const account = freshAccount();
  const e = event({
    account_id: account,
    type: "email.bounced",
    recipient: "gone@example.com",
    smtp_code: 550,
  });
  await storeEvents([e]);
  const name = hookName();
  const ep = await createEndpoint(account, { url: hookUrl(name), ...endpointBody });
  return { account, e, name, ep, msg: deliverMessage(ep.id, e) };
}

const endpointRow = (id: string) =>
  env.DB.prepare("SELECT status, disabled_reason, failing_since FROM webhook_endpoints WHERE id = ?")
    .bind(id)
    .first<{ status: string; disabled_reason: string | null; failing_since: number | null }>();

describe("webhook delivery", () => {
  it("retries a receiver that fails with 500 and delivers once it succeeds, with the same webhook-id", async () => {
    const { account, e, name, ep, msg } = await setup();
    await script(name, [{ status: 500 }]);

    const first = await deliver([msg]);
    expect(first.retryMessages).toEqual([{ msgId: expect.any(String), delaySeconds: 5 }]);
    expect(first.explicitAcks).toEqual([]);
    const pending = await deliveries(account, ep.id);
    expect(pending.data).toEqual([
      {
        id: expect.stringMatching(/^wdl_[0-9a-f]{32}$/),
        event_id: e.id,
        event_type: "email.bounced",
        status: "pending",
        attempts: 1,
        last_attempt_at: expect.any(String),
        next_attempt_at: expect.any(String),
        response_status: 500,
        error: "HTTP 500",
      },
    ]);
    const gap = Date.parse(pending.data[0].next_attempt_at) - Date.parse(pending.data[0].last_attempt_at);
    expect(gap).toBe(5000);

    const second = await deliver([msg], { attempts: 2 });
    expect(second.explicitAcks).toHaveLength(1);
    expect(second.retryMessages).toEqual([]);

    const calls = await received(name);
    expect(calls).toHaveLength(2);
    expect(calls[0]?.headers["webhook-id"]).toBe(e.id);
    expect(calls[1]?.headers["webhook-id"]).toBe(e.id);
    expect(calls[1]?.headers["user-agent"]).toBe("mailtrail-webhooks/1");
    expect(calls[1]?.headers["content-type"]).toBe("application/json");
    const payload = verify(ep.secret, calls[1]!);
    expect(payload.type).toBe("email.bounced");
    expect(payload.timestamp).toBe(new Date(e.occurred_at).toISOString());
    // The body's data is the §8 event exactly as GET /v1/events returns it.
    const listed = await json(
      await call("GET", `/v1/events?email_id=${e.email_id}`, {
        token: await mintToken(account, "events:read"),
      }),
    );
    expect(payload.data).toEqual(listed.data[0]);

    const done = await deliveries(account, ep.id);
    expect(done.data[0]).toMatchObject({
      status: "succeeded",
      attempts: 2,
      response_status: 200,
      error: null,
      next_attempt_at: null,
    });
    // A late duplicate of the message (Queues is at least once) delivers nothing again.
    await deliver([msg], { attempts: 3 });
    expect(await received(name)).toHaveLength(2);
  });

  it("counts a response slower than the timeout as a failure", async () => {
    const { account, name, ep, msg } = await setup();
    await script(name, [{ status: 200, delayMs: 2000 }]);
    const started = Date.now();
    const result = await deliver([msg], { timeoutMs: 300 });
    expect(Date.now() - started).toBeLessThan(1800);
    expect(result.retryMessages).toHaveLength(1);
    expect((await deliveries(account, ep.id)).data[0]).toMatchObject({
      status: "pending",
      response_status: null,
      error: "no response within 300 ms",
    });
  });

  it("does not follow redirects", async () => {
    const { account, name, ep, msg } = await setup();
    const elsewhere = hookName();
    await script(name, [{ status: 302, location: hookUrl(elsewhere) }]);
    const result = await deliver([msg]);
    expect(result.retryMessages).toHaveLength(1);
    expect(await received(elsewhere)).toEqual([]);
    expect((await deliveries(account, ep.id)).data[0]).toMatchObject({
      status: "pending",
      response_status: 302,
      error: "redirect (302) not followed",
    });
  });

  it("disables the endpoint at once on 410 Gone, and delivers nothing more to it", async () => {
    const { account, e, name, ep, msg } = await setup();
    await script(name, [{ status: 410 }]);
    const result = await deliver([msg]);
    expect(result.explicitAcks).toHaveLength(1);
    expect(result.retryMessages).toEqual([]);
    const shown = await json(
      await call("GET", `/v1/webhooks/${ep.id}`, { token: await mintToken(account, "webhooks:read") }),
    );
    expect(shown).toMatchObject({ status: "disabled", disabled_reason: "gone" });
    expect((await deliveries(account, ep.id)).data[0]).toMatchObject({
      status: "failed",
      response_status: 410,
    });

    const other = event({ account_id: account, email_id: e.email_id });
    await storeEvents([other]);
    await deliver([deliverMessage(ep.id, other)]);
    expect(await received(name)).toHaveLength(1);
    // Re-enabling clears the reason; replay recovers what was missed.
    const enabled = await call("PATCH", `/v1/webhooks/${ep.id}`, {
      token: await mintToken(account, "webhooks:write"),
      body: { status: "enabled" },
    });
    expect(await json(enabled)).toMatchObject({ status: "enabled", disabled_reason: null });
  });

  it("retries on the §14 schedule and disables an endpoint without a success for 72 hours", async () => {
    const { account, ep, name, msg } = await setup();
    const t0 = Date.now();
    await script(
      name,
      Array.from({ length: 20 }, () => ({ status: 503 })),
    );
    const delays: number[] = [];
    let now = t0;
    let attempts = 1;
    for (;;) {
      const result = await deliver([msg], { attempts, now: () => now });
      const retry = result.retryMessages[0];
      if (!retry) break;
      delays.push(retry.delaySeconds ?? 0);
      const row = await endpointRow(ep.id);
      expect(row).toMatchObject({ status: "enabled", failing_since: t0 });
      now += (retry.delaySeconds ?? 0) * 1000;
      attempts += 1;
    }
    expect(delays).toEqual([5, 300, 1800, 7200, 18_000, 36_000, 43_200, 43_200, 43_200, 43_200, 23_095]);
    expect(now - t0).toBe(DELIVERY_WINDOW_MS);
    expect(await endpointRow(ep.id)).toMatchObject({ status: "disabled", disabled_reason: "failing" });
    expect((await deliveries(account, ep.id)).data[0]).toMatchObject({
      status: "failed",
      attempts: 12,
      next_attempt_at: null,
      response_status: 503,
    });
    expect(await received(name)).toHaveLength(12);
  });

  it("a success ends a failure streak, so later failures start a new 72 hours", async () => {
    const { account, e, ep, name, msg } = await setup();
    const t0 = Date.now();
    await script(name, [{ status: 500 }]);
    await deliver([msg], { now: () => t0 });
    expect((await endpointRow(ep.id))?.failing_since).toBe(t0);
    await deliver([msg], { attempts: 2, now: () => t0 + 5000 });
    expect((await endpointRow(ep.id))?.failing_since).toBeNull();

    const later = event({ account_id: account, email_id: e.email_id });
    await storeEvents([later]);
    await script(name, [{ status: 500 }]);
    const late = t0 + DELIVERY_WINDOW_MS + 3600_000;
    const result = await deliver([deliverMessage(ep.id, later)], { now: () => late });
    expect(result.retryMessages).toHaveLength(1);
    expect(await endpointRow(ep.id)).toMatchObject({ status: "enabled", failing_since: late });
  });

  it("signs with both secrets for 24 hours after a rotation, then with the new one only", async () => {
    const { account, name, ep, msg, e } = await setup();
    const token = await mintToken(account, "webhooks:write");
    const rotated = await json(await call("POST", `/v1/webhooks/${ep.id}/secret`, { token }));
    await deliver([msg]);
    const [during] = await received(name);
    expect(during?.headers["webhook-signature"]?.split(" ")).toHaveLength(2);
    expect(verify(ep.secret, during!).data.id).toBe(e.id);
    expect(verify(rotated.secret, during!).data.id).toBe(e.id);

    // 25 hours later (the consumer's clock and the receiver's): only the new secret verifies.
    const later = Date.now() + 25 * 3600_000;
    const next = event({ account_id: account, email_id: e.email_id });
    await storeEvents([next]);
    await deliver([deliverMessage(ep.id, next)], { now: () => later });
    const after = (await received(name))[1]!;
    expect(after.headers["webhook-signature"]?.split(" ")).toHaveLength(1);
    vi.useFakeTimers({ now: later, toFake: ["Date"] });
    expect(verify(rotated.secret, after).data.id).toBe(next.id);
    expect(() => verify(ep.secret, after)).toThrow(/No matching signature/);
  });

  it("a first-run message for a pair already delivered is a duplicate and is dropped", async () => {
    const { account, name, ep, msg } = await setup();
    await deliver([msg]);
    await deliver([msg]);
    await deliver([msg, msg]);
    expect(await received(name)).toHaveLength(1);
    expect((await deliveries(account, ep.id)).data[0]).toMatchObject({ status: "succeeded", attempts: 1 });
  });

  it("stops a pending run when the endpoint is disabled, deleted, or no longer subscribes", async () => {
    const { account, name, ep, msg } = await setup();
    await script(name, [{ status: 500 }]);
    await deliver([msg]);
    const token = await mintToken(account, "webhooks:write");
    await call("PATCH", `/v1/webhooks/${ep.id}`, { token, body: { event_types: ["email.opened"] } });
    const result = await deliver([msg], { attempts: 2 });
    expect(result.explicitAcks).toHaveLength(1);
    expect(await received(name)).toHaveLength(1);
    expect((await deliveries(account, ep.id)).data[0]).toMatchObject({
      status: "failed",
      attempts: 1,
      error: "stopped: the endpoint no longer subscribes to this event",
    });
  });

  it("delivers a batch concurrently; a slow endpoint holds at most three fetches and never the others", async () => {
    const account = freshAccount();
    const events = [1, 2, 3, 4].map(() => event({ account_id: account }));
    await storeEvents(events);
    const slow = hookName();
    const fast = hookName();
    const slowEp = await createEndpoint(account, { url: hookUrl(slow) });
    const fastEp = await createEndpoint(account, { url: hookUrl(fast) });
    await script(
      slow,
      [1, 2, 3, 4].map(() => ({ status: 200, delayMs: 1000 })),
    );
    const started = Date.now();
    const result = await deliver([
      ...events.map((e) => deliverMessage(slowEp.id, e)),
      deliverMessage(fastEp.id, events[0]!),
    ]);
    expect(result, JSON.stringify(result)).toMatchObject({ retryMessages: [] });
    expect(result.explicitAcks, JSON.stringify(result)).toHaveLength(5);
    const [fastCall] = await received(fast);
    const slowCalls = (await received(slow)).map((c) => c.at).sort((a, b) => a - b);
    expect(fastCall!.at - started).toBeLessThan(900);
    expect(slowCalls).toHaveLength(4);
    expect(slowCalls[2]! - slowCalls[0]!).toBeLessThan(700);
    expect(slowCalls[3]! - slowCalls[0]!).toBeGreaterThanOrEqual(900);
  });

  it("re-enqueues a run that would outlive the message's queue retention", async () => {
    const { account, name, ep, msg } = await setup();
    await script(name, [{ status: 500 }, { status: 500 }, { status: 500 }]);
    const old = new Date(Date.now() - 3.9 * 86_400_000);
    const result = await deliver([msg], { timestamp: old });
    expect(result.retryMessages).toEqual([]);
    expect(result.explicitAcks).toHaveLength(1);
    expect((await deliveries(account, ep.id)).data[0]).toMatchObject({ status: "pending", attempts: 1 });
    // The continuation arrives through the real queue 5 s later and carries the run on.
    await vi.waitFor(async () => expect((await received(name)).length).toBeGreaterThanOrEqual(2), {
      timeout: 15_000,
      interval: 250,
    });
    await vi.waitFor(
      async () => expect((await deliveries(account, ep.id)).data[0].attempts).toBeGreaterThanOrEqual(2),
      {
        timeout: 5000,
      },
    );
  });
});
