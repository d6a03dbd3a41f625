import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { fromBase64url } from "../../src/lib/base64";
import { mirrorKey } from "../../src/suppressions/mirror";
import {
  BASE,
  call,
  consume,
  event,
  eventMessage,
  eventsDb,
  freshAccount,
  json,
  mintToken,
} from "../helpers";
import { enc, erase, suppressedReasons, tokensFor } from "../suppressions/support";

/** SPEC §20: erasure removes every row of the address and keeps it suppressed under its HMAC. */

async function hmacHex(email: string): Promise<string> {
  const raw = Uint8Array.from(atob(env.ERASURE_KEY!.replace(/-/g, "+").replace(/_/g, "/")), (c) =>
    c.charCodeAt(0),
  );
  const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(email)));
  return [...mac].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A count on the shard of the account (the first bound value, SPEC §17). */
const count = async (sql: string, account: string, ...binds: unknown[]) =>
  (
    await eventsDb(account)
      .prepare(sql)
      .bind(account, ...binds)
      .first<{ n: number }>()
  )?.n ?? 0;

describe("POST /v1/erasures", () => {
  it("removes events, deliveries, registrations, parked messages and suppressions of the address, and keeps it suppressed", async () => {
    const account = freshAccount();
    const { write, read, send } = await tokensFor(account);
    const email = "forget.me@example.com";
    const other = "stays@example.com";
    const now = Date.now();
    // Two emails: one only to the address, one to the address and someone else.
    const mine = Array.from({ length: 5 }, (_, i) =>
      event({
        account_id: account,
        recipient: email,
        email_id: "email_only_her",
        occurred_at: now - 10_000 - i,
      }),
    );
    const shared = event({
      account_id: account,
      recipient: email,
      email_id: "email_shared",
      occurred_at: now - 9_000,
    });
    const theirs = event({
      account_id: account,
      recipient: other,
      email_id: "email_shared",
      occurred_at: now - 9_000,
    });
    const bounce = event({
      account_id: account,
      type: "email.bounced",
      bounce_type: "permanent",
      recipient: email,
      email_id: "email_only_her",
      occurred_at: now - 8_000,
    });
    await consume([
      {
        type: "register",
        account_id: account,
        registered_at: now - 20_000,
        message: registration("email_only_her"),
      },
      {
        type: "register",
        account_id: account,
        registered_at: now - 20_000,
        message: registration("email_shared"),
      },
      ...mine.map((e) => eventMessage(e)),
      eventMessage(shared),
      eventMessage(theirs),
      eventMessage(bounce, { reason: "hard_bounce", topic: null }),
    ]);
    await call("PUT", `/v1/suppressions/${enc(email)}`, { token: write, body: { topic: "news" } });
    // A delivery row for one of the address's events, and one for the other recipient's.
    const endpoint = await json(
      await call("POST", "/v1/webhooks", {
        token: await mintToken(account, "webhooks:write"),
        body: { url: "https://hooks.example.com/x", event_types: ["email.opened"] },
      }),
    );
    for (const e of [mine[0]!, theirs]) {
      await eventsDb(account)
        .prepare(
          `INSERT INTO webhook_deliveries (endpoint_id, event_occurred_at, event_id, account_id, event_type, status, attempts,
           first_attempt_at, last_attempt_at) VALUES (?1, ?2, ?3, ?4, 'email.delivered', 'succeeded', 1, ?5, ?5)`,
        )
        .bind(endpoint.id, e.occurred_at, e.id, account, now)
        .run();
    }
    // A parked (dead-lettered) message naming the address, and one naming someone else.
    const parked = (e: typeof theirs) =>
      JSON.stringify({ message_id: e.id, queue: "mailtrail-events", attempts: 5, body: eventMessage(e) });
    const parkedMine = `parked/${String(now).padStart(15, "0")}-erasure-${account}`;
    const parkedTheirs = `parked/${String(now).padStart(15, "0")}-kept-${account}`;
    await env.PARKED.put(parkedMine, parked(event({ account_id: account, recipient: email })));
    await env.PARKED.put(parkedTheirs, parked(event({ account_id: account, recipient: other })));
    expect(
      await count(
        "SELECT count(*) AS n FROM events WHERE account_id = ?1 AND recipient = ?2",
        account,
        email,
      ),
    ).toBe(7);

    const hash = await hmacHex(email);
    const { created, done } = await erase(write, "Forget.Me@EXAMPLE.com");
    expect(created).toMatchObject({
      id: expect.stringMatching(/^era_[0-9a-f]{32}$/),
      object: "erasure",
      email_hash: hash,
    });
    expect(done).toMatchObject({
      status: "completed",
      email_hash: hash,
      removed: { events: 7, deliveries: 1, registrations: 1, suppressions: 2, parked: 1 },
    });
    expect(done.completed_at).not.toBeNull();

    // Every row of the address is gone; the other recipient's stay.
    expect(
      await count(
        "SELECT count(*) AS n FROM events WHERE account_id = ?1 AND recipient = ?2",
        account,
        email,
      ),
    ).toBe(0);
    expect(
      await count(
        "SELECT count(*) AS n FROM events WHERE account_id = ?1 AND recipient = ?2",
        account,
        other,
      ),
    ).toBe(1);
    expect(await count("SELECT count(*) AS n FROM webhook_deliveries WHERE account_id = ?1", account)).toBe(
      1,
    );
    expect(
      await count(
        "SELECT count(*) AS n FROM messages WHERE account_id = ?1 AND email_id = 'email_only_her'",
        account,
      ),
    ).toBe(0);
    expect(
      await count(
        "SELECT count(*) AS n FROM messages WHERE account_id = ?1 AND email_id = 'email_shared'",
        account,
      ),
    ).toBe(1);
    expect(await env.PARKED.head(parkedMine)).toBeNull();
    expect(await env.PARKED.head(parkedTheirs)).not.toBeNull();
    await env.PARKED.delete(parkedTheirs);
    // No row anywhere holds the address.
    for (const table of ["suppressions", "suppression_changes", "mirror_pending"]) {
      expect(
        await count(
          `SELECT count(*) AS n FROM ${table} WHERE account_id = ?1 AND email = ?2`,
          account,
          email,
        ),
      ).toBe(0);
    }
    expect(
      (
        await env.DB.prepare(
          "SELECT count(*) AS n FROM erasures WHERE removed LIKE '%forget%' OR email_hash LIKE '%@%'",
        ).first<{ n: number }>()
      )?.n,
    ).toBe(0);

    // Still suppressed: check, the KV mirror under the hash, the list with email null, the compat route.
    expect(await suppressedReasons(send, [email])).toEqual({ [email]: "hard_bounce" });
    expect(await env.SUPPRESSIONS.get(mirrorKey(account, email))).toBeNull();
    expect(await env.SUPPRESSIONS.get(mirrorKey(account, `#${hash}`), "json")).toEqual([
      expect.objectContaining({ topic: null, reason: "hard_bounce" }),
      expect.objectContaining({ topic: "news", reason: "manual" }),
    ]);
    const list = await json(await call("GET", "/v1/suppressions", { token: read }));
    expect(list.data).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ email: null, email_hash: hash, reason: "hard_bounce", topic: null }),
        expect.objectContaining({ email: null, email_hash: hash, reason: "manual", topic: "news" }),
      ]),
    );
    expect(list.data).toHaveLength(2);
    const byAddress = await json(await call("GET", `/v1/suppressions/${enc(email)}`, { token: read }));
    expect(byAddress.data).toHaveLength(2);
    const numonic = await json(await call("GET", "/compat/numonic/api/v1/suppression", { token: read }));
    expect(numonic.data.map((e: { email: string | null }) => e.email)).toEqual([null, null]);
    const unosend = await json(await call("GET", "/compat/unosend/v1/suppressions", { token: read }));
    expect(unosend.data.map((e: { email: string | null }) => e.email)).toEqual([null, null]);
    for (const entry of unosend.data as { id: string }[]) {
      // The id carries the hashed key, never the address, and reads the entry back.
      expect(new TextDecoder().decode(fromBase64url(entry.id.slice("uns_".length)) ?? undefined)).toMatch(
        new RegExp(`^#${hash}\n(news)?$`),
      );
      const one = await json(
        await call("GET", `/compat/unosend/v1/suppressions/${entry.id}`, { token: read }),
      );
      expect(one.data).toEqual(expect.objectContaining({ id: entry.id, email: null }));
    }

    // A second erasure changes nothing.
    const before = await eventsDb(account)
      .prepare("SELECT * FROM suppressions WHERE account_id = ?1 ORDER BY email, topic")
      .bind(account)
      .all();
    const changesBefore = await count(
      "SELECT count(*) AS n FROM suppression_changes WHERE account_id = ?1",
      account,
    );
    const again = await erase(write, email);
    expect(again.done.removed).toEqual({
      events: 0,
      deliveries: 0,
      registrations: 0,
      suppressions: 0,
      parked: 0,
    });
    expect(again.done.id).not.toBe(created.id);
    const after = await eventsDb(account)
      .prepare("SELECT * FROM suppressions WHERE account_id = ?1 ORDER BY email, topic")
      .bind(account)
      .all();
    expect(after.results).toEqual(before.results);
    expect(await count("SELECT count(*) AS n FROM suppression_changes WHERE account_id = ?1", account)).toBe(
      changesBefore,
    );
  });

  it("an address with no data still gets a hashed manual suppression", async () => {
    const account = freshAccount();
    const { write, read, send } = await tokensFor(account);
    const email = "never.seen@example.com";
    const { done } = await erase(write, email);
    expect(done.removed.suppressions).toBe(0);
    const list = await json(await call("GET", "/v1/suppressions", { token: read }));
    expect(list.data).toEqual([
      expect.objectContaining({
        email: null,
        email_hash: await hmacHex(email),
        reason: "manual",
        topic: null,
      }),
    ]);
    expect(await suppressedReasons(send, [email, "someone@example.com"])).toEqual({
      [email]: "manual",
      "someone@example.com": null,
    });
  });

  it("another account's erasure is 404; a bad address is 400; without ERASURE_KEY it is 500 naming it", async () => {
    const account = freshAccount();
    const { write } = await tokensFor(account);
    const { created } = await erase(write, "mine@example.com");
    const stranger = await mintToken(freshAccount(), "suppressions:write");
    expect((await call("GET", `/v1/erasures/${created.id}`, { token: stranger })).status).toBe(404);

    const bad = await call("POST", "/v1/erasures", { token: write, body: { email: "not-an-address" } });
    expect(bad.status).toBe(400);
    expect((await json(bad)).error.param).toBe("email");

    const ctx = createExecutionContext();
    const res = await worker.fetch(
      new Request(`${BASE}/v1/erasures`, {
        method: "POST",
        headers: { authorization: `Bearer ${write}`, "content-type": "application/json" },
        body: JSON.stringify({ email: "x@example.com" }),
      }),
      { ...env, ERASURE_KEY: undefined },
      ctx,
    );
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(500);
    const body = await json(res);
    expect(body.error.type).toBe("configuration_error");
    expect(body.error.message).toContain("ERASURE_KEY");
  });
});

function registration(emailId: string) {
  return {
    email_id: emailId,
    message_id: null,
    from: "news@mail.example.com",
    from_domain: "mail.example.com",
    subject: "Hello",
    topic: null,
    campaign: null,
    template_id: null,
    tags: [],
  };
}
