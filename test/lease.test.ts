import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { newApp } from "../src/app";
import { LeaseKeeper, renewLease, takeLease, tryTakeLease } from "../src/lib/lease";
import { call, consume, event, eventMessage, freshAccount, mintToken } from "./helpers";

/** SPEC §18: one export per account at a time, as a lease (src/lib/lease.ts). */

describe("leases", () => {
  it("gives a name to one holder at a time, frees it on release or expiry, and only the holder renews", async () => {
    const name = `test:${freshAccount()}`;
    const now = Date.now();
    const a = await takeLease(env.DB, name, { ttlMs: 60_000, now });
    const busy = await tryTakeLease(env.DB, name, { ttlMs: 60_000, now: now + 1000 });
    expect(busy).toEqual({ retryAfterSeconds: 59 });
    await expect(takeLease(env.DB, name, { ttlMs: 60_000, now: now + 1000 })).rejects.toMatchObject({
      type: "rate_limit_exceeded",
      headers: { "Retry-After": "59" },
    });
    // Renewal moves the expiry; after it, the old expiry no longer frees the slot.
    expect(await renewLease(env.DB, a, now + 30_000)).toBe(true);
    expect("retryAfterSeconds" in (await tryTakeLease(env.DB, name, { ttlMs: 1, now: now + 61_000 }))).toBe(
      true,
    );
    // Expired: another caller takes it over, and the old holder can no longer renew.
    const b = await takeLease(env.DB, name, { ttlMs: 60_000, now: now + 91_000 });
    expect(b.holder).not.toBe(a.holder);
    expect(await renewLease(env.DB, a, now + 92_000)).toBe(false);
    await new LeaseKeeper(env.DB, b).release();
    expect("holder" in (await tryTakeLease(env.DB, name, { ttlMs: 60_000, now: now + 93_000 }))).toBe(true);
  });
});

async function seed(account: string, n: number) {
  const now = Date.now();
  const records = Array.from({ length: n }, (_, i) =>
    event({ account_id: account, occurred_at: now - 60_000 - i * 1000 }),
  );
  for (let i = 0; i < records.length; i += 100)
    await consume(records.slice(i, i + 100).map((e) => eventMessage(e)));
}

const leaseRow = (account: string) =>
  env.DB.prepare("SELECT holder, expires_at FROM leases WHERE name = ?")
    .bind(`export:events:${account}`)
    .first<{ holder: string; expires_at: number }>();

describe("one export per account at a time", () => {
  it("answers a second export 429 with Retry-After while the first streams; a cancel or the end frees it", async () => {
    const account = freshAccount();
    await seed(account, 2500);
    const token = await mintToken(account, "events:read");
    // Straight to the app, so the client's cancel reaches the Worker's stream at once (through the
    // fetch entrypoint a cancel arrives only with the next chunk; otherwise the 5-minute expiry frees it).
    const ctx = createExecutionContext();
    const first = await newApp().fetch(
      new Request("https://mailtrail.test/v1/events/export?days=1", {
        headers: { authorization: `Bearer ${token}` },
      }),
      env,
      ctx,
    );
    expect(first.status).toBe(200);
    const reader = first.body!.getReader();
    expect((await reader.read()).done).toBe(false);

    const second = await call("GET", "/v1/events/export?days=1&format=csv", { token });
    expect(second.status).toBe(429);
    expect(Number(second.headers.get("retry-after"))).toBeGreaterThan(200);
    expect(((await second.json()) as { error: { type: string } }).error.type).toBe("rate_limit_exceeded");
    // Another account is not held back.
    const other = freshAccount();
    const otherRes = await call("GET", "/v1/events/export?days=1", {
      token: await mintToken(other, "events:read"),
    });
    expect(otherRes.status).toBe(200);
    await otherRes.arrayBuffer();

    // The client goes away: the slot frees.
    await reader.cancel();
    await waitOnExecutionContext(ctx);
    await vi.waitFor(async () => expect(await leaseRow(account)).toBeNull(), { timeout: 5000 });
    const third = await call("GET", "/v1/events/export?days=1", { token });
    expect(third.status).toBe(200);
    const text = new TextDecoder().decode(await third.arrayBuffer());
    expect(text.trim().split("\n")).toHaveLength(2500);
    // Read to the end: freed again.
    await vi.waitFor(async () => expect(await leaseRow(account)).toBeNull(), { timeout: 5000 });

    // A bad parameter is still a 400, and holds nothing.
    const bad = await call("GET", "/v1/events/export?days=1&limit=5", { token });
    expect(bad.status).toBe(400);
    expect(await leaseRow(account)).toBeNull();
  });

  it("takes over a slot whose holder stopped making progress for 5 minutes", async () => {
    const account = freshAccount();
    await seed(account, 10);
    const token = await mintToken(account, "events:read");
    const stale = Date.now() - 1;
    await env.DB.prepare(
      "INSERT INTO leases (name, holder, acquired_at, expires_at) VALUES (?, 'gone', ?, ?)",
    )
      .bind(`export:events:${account}`, stale - 300_000, stale)
      .run();
    const res = await call("GET", "/v1/events/export?days=1", { token });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  });
});
