import { describe, expect, it, vi } from "vitest";
import { stripeOf } from "../../src/shards/hash";
import { SOFT_BOUNCE_MS } from "../../src/suppressions/soft-bounce";
import { call, consume, event, eventMessage, freshAccount, json, mintToken } from "../helpers";
import { enc, suppressedReasons, tokensFor } from "../suppressions/support";
import { SHARDS, shardDbOf } from "./support";

/**
 * SPEC §17 with §10 and §20: an account striped over several shards keeps its suppressions, their
 * change records and journal on its home shard (the first of its list), while what grows per email
 * (events, deliveries, registrations) sits on each email's stripe. The soft_bounce rule reads the
 * address's outcomes on every stripe, an erasure deletes on every shard, an import writes home.
 */

async function place(account: string, shards: number[]) {
  const admin = await mintToken("operator", "admin");
  const res = await call("PUT", `/v1/admin/placements/${account}`, { token: admin, body: { shards } });
  expect(res.status).toBe(200);
}

/** Email ids of the account, `n` of them, landing on at least two different stripes of `k`. */
function emailIdsOverStripes(prefix: string, n: number, k: number): string[] {
  // The first n - 1 ids, then the first later one on another stripe than the first: never all on one
  // stripe, whatever the (random) account id hashes to.
  const ids = Array.from({ length: n - 1 }, (_, i) => `email_${prefix}_${i}`);
  const first = stripeOf(ids[0] as string, k);
  for (let i = n - 1; ids.length < n; i++) {
    const id = `email_${prefix}_${i}`;
    if (stripeOf(id, k) !== first) ids.push(id);
  }
  expect(new Set(ids.map((id) => stripeOf(id, k))).size).toBeGreaterThan(1);
  return ids;
}

const rowsOn = async (shard: number, sql: string, ...binds: unknown[]) =>
  (
    await shardDbOf(shard)
      .prepare(sql)
      .bind(...binds)
      .all<Record<string, unknown>>()
  ).results;

describe("suppressions of a striped account", () => {
  it("the soft_bounce rule counts the address's transient bounces on every stripe; the entry is written home", async () => {
    const account = freshAccount("stripesb");
    await place(account, [1, 2, 3]);
    const { send } = await tokensFor(account);
    const recipient = "flaky@example.com";
    const now = Date.now();
    const ids = emailIdsOverStripes(account, 5, 3);
    const bounces = ids.map((emailId, i) =>
      event({
        account_id: account,
        type: "email.bounced",
        bounce_type: "transient",
        email_id: emailId,
        recipient,
        occurred_at: now - (5 - i) * 60_000,
      }),
    );
    // Four, one batch each: not yet.
    for (const b of bounces.slice(0, 4)) await consume([eventMessage(b)]);
    expect(await suppressedReasons(send, [recipient])).toEqual({ [recipient]: null });
    // The fifth: suppressed, on the home shard only, with one suppression.created there.
    await consume([eventMessage(bounces[4]!)]);
    expect(await suppressedReasons(send, [recipient])).toEqual({ [recipient]: "soft_bounce" });
    const home = await rowsOn(
      1,
      "SELECT reason, suppressed_at, expires_at FROM suppressions WHERE account_id = ?1",
      account,
    );
    expect(home).toEqual([
      { reason: "soft_bounce", suppressed_at: now - 60_000, expires_at: now - 60_000 + SOFT_BOUNCE_MS },
    ]);
    for (const other of [2, 3])
      expect(await rowsOn(other, "SELECT 1 FROM suppressions WHERE account_id = ?1", account)).toEqual([]);
    expect(
      await rowsOn(1, "SELECT type, reason FROM suppression_changes WHERE account_id = ?1", account),
    ).toEqual([{ type: "suppression.created", reason: "soft_bounce" }]);
    // A redelivered batch changes nothing.
    await consume(
      bounces.map((b) => eventMessage(b)),
      2,
    );
    expect(await rowsOn(1, "SELECT 1 FROM suppression_changes WHERE account_id = ?1", account)).toHaveLength(
      1,
    );
  });

  it("a hard bounce on a stripe other than home suppresses on home, with its change record", async () => {
    const account = freshAccount("stripehb");
    await place(account, [2, 0]);
    const { send } = await tokensFor(account);
    // An email whose stripe is shard 0, not the home shard 2.
    const emailId = Array.from({ length: 50 }, (_, i) => `email_${account}_hb${i}`).find(
      (id) => stripeOf(id, 2) === 1,
    );
    expect(emailId).toBeDefined();
    const bounce = event({
      account_id: account,
      type: "email.bounced",
      bounce_type: "permanent",
      email_id: emailId,
      recipient: "gone@example.com",
    });
    await consume([eventMessage(bounce, { reason: "hard_bounce", topic: null })]);
    expect(await rowsOn(0, "SELECT id FROM events WHERE account_id = ?1", account)).toEqual([
      { id: bounce.id },
    ]);
    expect(await rowsOn(2, "SELECT reason FROM suppressions WHERE account_id = ?1", account)).toEqual([
      { reason: "hard_bounce" },
    ]);
    expect(await rowsOn(0, "SELECT 1 FROM suppressions WHERE account_id = ?1", account)).toEqual([]);
    expect(await rowsOn(2, "SELECT type FROM suppression_changes WHERE account_id = ?1", account)).toEqual([
      { type: "suppression.created" },
    ]);
    expect(await suppressedReasons(send, ["gone@example.com"])).toEqual({
      "gone@example.com": "hard_bounce",
    });
  });

  it("an erasure deletes the address's events on every stripe and keeps its hashed entry home", async () => {
    const account = freshAccount("stripeer");
    await place(account, [0, 2]);
    const { write, send } = await tokensFor(account);
    const email = "forget-me@example.com";
    const ids = emailIdsOverStripes(account, 6, 2);
    await consume(
      ids.map((emailId) => eventMessage(event({ account_id: account, email_id: emailId, recipient: email }))),
    );
    await consume([
      eventMessage(event({ account_id: account, email_id: ids[0], recipient: "keep@example.com" })),
    ]);
    expect((await call("PUT", `/v1/suppressions/${enc(email)}`, { token: write })).status).toBe(200);
    const count = async (shard: number, recipient: string) =>
      (
        await rowsOn(
          shard,
          "SELECT 1 FROM events WHERE account_id = ?1 AND recipient = ?2",
          account,
          recipient,
        )
      ).length;
    expect((await count(0, email)) + (await count(2, email))).toBe(6);

    const res = await call("POST", "/v1/erasures", { token: write, body: { email } });
    expect(res.status).toBe(202);
    const created = await json(res);
    let done: Record<string, any> = created;
    await vi.waitFor(
      async () => {
        done = await json(await call("GET", `/v1/erasures/${created.id}`, { token: write }));
        expect(done.status).toBe("completed");
      },
      { timeout: 10_000, interval: 100 },
    );
    expect(done.removed).toMatchObject({ events: 6, suppressions: 1 });
    for (const shard of SHARDS) {
      expect(await count(shard, email)).toBe(0);
      expect(
        await rowsOn(
          shard,
          "SELECT 1 FROM suppressions WHERE account_id = ?1 AND email = ?2",
          account,
          email,
        ),
      ).toEqual([]);
    }
    expect((await count(0, "keep@example.com")) + (await count(2, "keep@example.com"))).toBe(1);
    const hashed = await rowsOn(0, "SELECT email_hash FROM suppressions WHERE account_id = ?1", account);
    expect(hashed).toEqual([{ email_hash: done.email_hash }]);
    expect(await suppressedReasons(send, [email])).toEqual({ [email]: "manual" });
  });

  it("an import writes the entries on the home shard", async () => {
    const account = freshAccount("stripeim");
    await place(account, [3, 1]);
    const { write, read, send } = await tokensFor(account);
    const csv = ["email,reason", "a@example.com,hard_bounce", "b@example.com,complaint"].join("\n");
    const res = await call("POST", "/v1/suppressions/imports", {
      token: write,
      rawBody: csv,
      headers: { "content-type": "text/csv" },
    });
    expect(res.status).toBe(202);
    const created = await json(res);
    await vi.waitFor(
      async () => {
        const done = await json(await call("GET", `/v1/suppressions/imports/${created.id}`, { token: read }));
        expect(done.status).toBe("completed");
      },
      { timeout: 20_000, interval: 100 },
    );
    expect(
      await rowsOn(3, "SELECT email FROM suppressions WHERE account_id = ?1 ORDER BY email", account),
    ).toEqual([{ email: "a@example.com" }, { email: "b@example.com" }]);
    expect(await rowsOn(1, "SELECT 1 FROM suppressions WHERE account_id = ?1", account)).toEqual([]);
    expect(await suppressedReasons(send, ["a@example.com", "b@example.com"])).toEqual({
      "a@example.com": "hard_bounce",
      "b@example.com": "complaint",
    });
  });
});
