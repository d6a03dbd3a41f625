import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { suppressingEntry } from "../../src/suppressions/check";
import { mirrorExpiration, mirrorKey } from "../../src/suppressions/mirror";
import { deleteExpired } from "../../src/suppressions/store";
import { call, freshAccount, json } from "../helpers";
import { d1Rows, enc, mirrorOf, suppressedReasons, tokensFor } from "./support";

/** SPEC §10: expires_at on every entry, honoured by check at the instant it passes and gone from lists. */

afterEach(() => {
  vi.useRealTimers();
});

const iso = (ms: number) => new Date(ms).toISOString();

describe("expires_at", () => {
  it("is refused with 400 naming expires_at when less than 60 s ahead (KV's minimum) or malformed", async () => {
    const account = freshAccount();
    const { write, read } = await tokensFor(account);
    for (const expires_at of [iso(Date.now() + 30_000), iso(Date.now() - 1000), "tomorrow"]) {
      const res = await call("PUT", `/v1/suppressions/${enc("soon@example.com")}`, {
        token: write,
        body: { expires_at },
      });
      expect(res.status).toBe(400);
      expect((await json(res)).error.param).toBe("expires_at");
    }
    expect(await d1Rows(account)).toEqual([]);
    const list = await json(await call("GET", "/v1/suppressions", { token: read }));
    expect(list.data).toEqual([]);
  });

  it("is stored in D1 and in KV with the same expiration; a given expires_at replaces the old one", async () => {
    const account = freshAccount();
    const { write } = await tokensFor(account);
    const email = "later@example.com";
    const first = Date.now() + 3_600_000;
    let res = await call("PUT", `/v1/suppressions/${enc(email)}`, {
      token: write,
      body: { expires_at: iso(first) },
    });
    expect(res.status).toBe(200);
    const entry = await json(res);
    expect(entry.expires_at).toBe(iso(first));
    expect((await mirrorOf(account, email))?.[0]).toMatchObject({ reason: "manual", expires_at: first });
    const keys = await env.SUPPRESSIONS.list({ prefix: mirrorKey(account, email) });
    expect(keys.keys[0]?.expiration).toBe(Math.ceil(first / 1000));

    // A PUT without expires_at keeps it; a new one replaces it; null makes the entry permanent.
    res = await call("PUT", `/v1/suppressions/${enc(email)}`, { token: write });
    expect((await json(res)).expires_at).toBe(iso(first));
    const second = Date.now() + 7_200_000;
    res = await call("PUT", `/v1/suppressions/${enc(email)}`, {
      token: write,
      body: { expires_at: iso(second) },
    });
    const replaced = await json(res);
    expect(replaced.expires_at).toBe(iso(second));
    expect(replaced.suppressed_at).toBe(entry.suppressed_at);
    expect((await env.SUPPRESSIONS.list({ prefix: mirrorKey(account, email) })).keys[0]?.expiration).toBe(
      Math.ceil(second / 1000),
    );
    res = await call("PUT", `/v1/suppressions/${enc(email)}`, { token: write, body: { expires_at: null } });
    expect((await json(res)).expires_at).toBeNull();
    expect(
      (await env.SUPPRESSIONS.list({ prefix: mirrorKey(account, email) })).keys[0]?.expiration,
    ).toBeUndefined();
  });

  it("stops suppressing at the instant it passes, leaves every list at once and D1 and KV by the next run", async () => {
    const account = freshAccount();
    const { write, read, send } = await tokensFor(account);
    const email = "brief@example.com";
    const expires = Date.now() + 90_000;
    await call("PUT", `/v1/suppressions/${enc(email)}`, { token: write, body: { expires_at: iso(expires) } });
    await call("PUT", `/v1/suppressions/${enc("kept@example.com")}`, { token: write });
    expect(await suppressedReasons(send, [email])).toEqual({ [email]: "manual" });

    // One millisecond before, it still suppresses; at expires_at it does not (KV still holds the key).
    vi.useFakeTimers({ toFake: ["Date"], now: expires - 1 });
    expect(await suppressedReasons(send, [email])).toEqual({ [email]: "manual" });
    vi.setSystemTime(expires);
    expect(await suppressedReasons(send, [email, "kept@example.com"])).toEqual({
      [email]: null,
      "kept@example.com": "manual",
    });
    expect(await mirrorOf(account, email)).not.toBeNull();
    const list = await json(await call("GET", "/v1/suppressions", { token: read }));
    expect(list.data.map((e: { email: string }) => e.email)).toEqual(["kept@example.com"]);
    expect((await call("GET", `/v1/suppressions/${enc(email)}`, { token: read })).status).toBe(404);

    // The scheduled expiry deletes the row and the KV key.
    expect((await deleteExpired(env, env.DB, Date.now())).deleted).toBeGreaterThanOrEqual(1);
    vi.useRealTimers();
    expect((await d1Rows(account)).map((r) => r.email)).toEqual(["kept@example.com"]);
    expect(await mirrorOf(account, email)).toBeNull();
    const { results } = await env.DB.prepare(
      "SELECT type FROM suppression_changes WHERE account_id = ?1 ORDER BY occurred_at, type",
    )
      .bind(account)
      .all<{ type: string }>();
    expect(results.filter((r) => r.type === "suppression.deleted")).toHaveLength(1);
  });

  it("a PUT over an expired entry not yet deleted makes a new entry", async () => {
    const account = freshAccount();
    const { write } = await tokensFor(account);
    const email = "again@example.com";
    await env.DB.prepare(
      "INSERT INTO suppressions (account_id, email, topic, reason, email_id, suppressed_at, expires_at) VALUES (?1, ?2, '', 'soft_bounce', 'email_x', ?3, ?4)",
    )
      .bind(account, email, Date.now() - 100_000, Date.now() - 1000)
      .run();
    const entry = await json(await call("PUT", `/v1/suppressions/${enc(email)}`, { token: write }));
    expect(entry).toMatchObject({ reason: "manual", email_id: null, expires_at: null });
    expect(Date.parse(entry.suppressed_at)).toBeGreaterThan(Date.now() - 10_000);
  });
});

describe("the mirror's expiration", () => {
  it("is the latest expiry when every entry expires, none when one never does, and at least 60 s ahead", () => {
    const now = 1_000_000_000_000;
    expect(mirrorExpiration([], now)).toBeUndefined();
    expect(
      mirrorExpiration(
        [
          { topic: null, reason: "manual", suppressed_at: 1, expires_at: now + 120_000 },
          { topic: "a", reason: "manual", suppressed_at: 1, expires_at: now + 500_500 },
        ],
        now,
      ),
    ).toBe(Math.ceil((now + 500_500) / 1000));
    expect(
      mirrorExpiration(
        [
          { topic: null, reason: "manual", suppressed_at: 1, expires_at: now + 120_000 },
          { topic: "a", reason: "manual", suppressed_at: 1 },
        ],
        now,
      ),
    ).toBeUndefined();
    expect(
      mirrorExpiration([{ topic: null, reason: "manual", suppressed_at: 1, expires_at: now + 5_000 }], now),
    ).toBe((now + 60_000) / 1000);
  });

  it("suppressingEntry skips an expired entry for a live one of the topic", () => {
    const entries = [
      { topic: null, reason: "soft_bounce", suppressed_at: 1, expires_at: 100 },
      { topic: "news", reason: "unsubscribe", suppressed_at: 1 },
    ];
    expect(suppressingEntry(entries, "news", 99)?.reason).toBe("soft_bounce");
    expect(suppressingEntry(entries, "news", 100)?.reason).toBe("unsubscribe");
    expect(suppressingEntry(entries, null, 100)).toBeNull();
  });
});
