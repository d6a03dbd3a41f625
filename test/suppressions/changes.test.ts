import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { deleteExpired } from "../../src/suppressions/store";
import { call, consume, event, eventMessage, freshAccount, json, mintToken } from "../helpers";
import { createEndpoint, hookName, hookUrl, type ReceivedCall, received, verify } from "../webhooks/support";
import { enc, tokensFor } from "./support";

/**
 * SPEC §10, §14: every add and remove of a suppression entry, whatever caused it, is pushed once as
 * suppression.created / suppression.deleted, webhook-id the change id (sch_…), data the §10 entry.
 * These run the real queues: the change → WEBHOOKS_QUEUE → delivery consumer → local receiver.
 */

async function subscribe(
  account: string,
  types: string[] | null = ["suppression.created", "suppression.deleted"],
) {
  const name = hookName();
  const endpoint = await createEndpoint(account, { url: hookUrl(name), event_types: types });
  return { name, secret: endpoint.secret, id: endpoint.id };
}

async function waitForCalls(name: string, n: number): Promise<ReceivedCall[]> {
  let calls: ReceivedCall[] = [];
  await vi.waitFor(
    async () => {
      calls = await received(name);
      expect(calls.length).toBeGreaterThanOrEqual(n);
    },
    { timeout: 15_000, interval: 200 },
  );
  return calls;
}

/** Long enough for the queues to deliver anything still pending (so "exactly n" is meaningful). */
const quiet = () => new Promise((r) => setTimeout(r, 3000));

describe("suppression webhooks", () => {
  it("the API's add and remove: one suppression.created and one suppression.deleted, signed, with the entry", async () => {
    const account = freshAccount();
    const hook = await subscribe(account);
    const { write } = await tokensFor(account);
    const email = "pushed@example.com";
    await call("PUT", `/v1/suppressions/${enc(email)}`, { token: write, body: { topic: "news" } });
    // A repeated PUT is not a change.
    await call("PUT", `/v1/suppressions/${enc(email)}`, { token: write, body: { topic: "news" } });
    await call("DELETE", `/v1/suppressions/${enc(email)}?topic=news`, { token: write });
    const calls = await waitForCalls(hook.name, 2);
    await quiet();
    const all = await received(hook.name);
    expect(all).toHaveLength(2);
    const bodies = all.map((c) => verify(hook.secret, c));
    const byType = Object.fromEntries(
      bodies.map((b, i) => [b.type, { body: b, call: all[i] as ReceivedCall }]),
    );
    expect(Object.keys(byType).sort()).toEqual(["suppression.created", "suppression.deleted"]);
    for (const { body, call: c } of Object.values(byType)) {
      expect(c.headers["webhook-id"]).toMatch(/^sch_[0-9a-f]{32}$/);
      expect(body.data).toMatchObject({
        id: expect.stringMatching(/^sup_/),
        email,
        email_hash: null,
        reason: "manual",
        topic: "news",
        email_id: null,
        expires_at: null,
      });
      expect(Date.parse(body.timestamp)).toBeGreaterThan(Date.now() - 60_000);
    }
    expect(calls[0]?.headers["webhook-id"]).not.toBe(calls[1]?.headers["webhook-id"]);
    // Visible in the deliveries list with their type.
    const token = await mintToken(account, "webhooks:read");
    const list = await json(await call("GET", `/v1/webhooks/${hook.id}/deliveries`, { token }));
    expect(list.data.map((d: { event_type: string }) => d.event_type).sort()).toEqual([
      "suppression.created",
      "suppression.deleted",
    ]);
  });

  it("an SES hard bounce and a one-click unsubscribe through the consumer: one suppression.created each, none on redelivery", async () => {
    const account = freshAccount();
    const hook = await subscribe(account, null);
    const bounce = event({
      account_id: account,
      type: "email.bounced",
      recipient: "bounced@example.com",
      bounce_type: "permanent",
    });
    const unsub = event({ account_id: account, type: "email.unsubscribed", recipient: "left@example.com" });
    const messages = [
      eventMessage(bounce, { reason: "hard_bounce", topic: null }),
      eventMessage(unsub, { reason: "unsubscribe", topic: "news" }),
    ];
    await consume(messages);
    await consume(messages, 2); // a redelivery of the same batch
    await waitForCalls(hook.name, 4); // two events + two changes
    await quiet();
    const bodies = (await received(hook.name)).map((c) => verify(hook.secret, c));
    const changes = bodies.filter((b) => b.type.startsWith("suppression."));
    expect(changes.map((b) => [b.type, b.data.email, b.data.reason, b.data.topic]).sort()).toEqual([
      ["suppression.created", "bounced@example.com", "hard_bounce", null],
      ["suppression.created", "left@example.com", "unsubscribe", "news"],
    ]);
  });

  it("expiry pushes suppression.deleted; an endpoint subscribed to events only gets no suppression change", async () => {
    const account = freshAccount();
    const hook = await subscribe(account, ["suppression.deleted"]);
    const eventsOnly = await subscribe(account, ["email.delivered"]);
    const email = "expiring@example.com";
    await env.DB.prepare(
      "INSERT INTO suppressions (account_id, email, topic, reason, email_id, suppressed_at, expires_at) VALUES (?1, ?2, '', 'soft_bounce', NULL, ?3, ?4)",
    )
      .bind(account, email, Date.now() - 100_000, Date.now() - 1000)
      .run();
    await deleteExpired(env, env.DB, Date.now());
    const [c] = await waitForCalls(hook.name, 1);
    const body = verify(hook.secret, c as ReceivedCall);
    expect(body).toMatchObject({
      type: "suppression.deleted",
      data: { email, reason: "soft_bounce" },
    });
    expect(body.data.expires_at).not.toBeNull();
    await quiet();
    expect(await received(hook.name)).toHaveLength(1);
    expect(await received(eventsOnly.name)).toHaveLength(0);
  });

  it("an import and an erasure: one change each, and none that carries the erased address", async () => {
    const account = freshAccount();
    const hook = await subscribe(account);
    const { write } = await tokensFor(account);
    const res = await call("POST", "/v1/suppressions/imports", {
      token: write,
      rawBody: "email,reason\nimported@example.com,complaint\nother@example.com,\n",
      headers: { "content-type": "text/csv" },
    });
    expect(res.status).toBe(202);
    const created = await waitForCalls(hook.name, 2);
    expect(
      created
        .map((c) => verify(hook.secret, c))
        .map((b) => [b.type, b.data.email, b.data.reason])
        .sort(),
    ).toEqual([
      ["suppression.created", "imported@example.com", "complaint"],
      ["suppression.created", "other@example.com", "manual"],
    ]);

    const erased = await call("POST", "/v1/erasures", {
      token: write,
      body: { email: "imported@example.com" },
    });
    expect(erased.status).toBe(202);
    const hash = (await json(erased)).email_hash;
    const all = await waitForCalls(hook.name, 4);
    await quiet();
    expect(await received(hook.name)).toHaveLength(4);
    const later = all.map((c) => verify(hook.secret, c)).filter((b) => b.data.email !== "other@example.com");
    const erasure = later.filter((b) => b.data.email_hash === hash);
    expect(erasure.map((b) => [b.type, b.data.email, b.data.reason]).sort()).toEqual([
      ["suppression.created", null, "complaint"],
      ["suppression.deleted", null, "complaint"],
    ]);
    for (const c of await received(hook.name)) {
      if (verify(hook.secret, c).data.email_hash === hash)
        expect(c.body).not.toContain("imported@example.com");
    }
  });

  it("a change left pending by a failed push is pushed by the scheduled work, once", async () => {
    const account = freshAccount();
    const hook = await subscribe(account);
    const { write } = await tokensFor(account);
    const send = vi.spyOn(env.WEBHOOKS_QUEUE, "sendBatch").mockRejectedValueOnce(new Error("queue down"));
    const res = await call("PUT", `/v1/suppressions/${enc("later@example.com")}`, { token: write });
    expect(res.status).toBe(200);
    send.mockRestore();
    const { results } = await env.DB.prepare("SELECT pending FROM suppression_changes WHERE account_id = ?1")
      .bind(account)
      .all<{ pending: number }>();
    expect(results).toEqual([{ pending: 1 }]);
    const { pushPendingChanges } = await import("../../src/suppressions/changes");
    expect(await pushPendingChanges(env, env.DB)).toBeGreaterThanOrEqual(1);
    const [c] = await waitForCalls(hook.name, 1);
    expect(verify(hook.secret, c as ReceivedCall).type).toBe("suppression.created");
    expect(await pushPendingChanges(env, env.DB)).toBe(0);
  });
});
