import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { dropDrainedPlacements, recordShardSet } from "../../src/shards/placements";
import { accountShards, shardOfEmail } from "../../src/shards/route";
import { call, freshAccount, json, mintToken } from "../helpers";
import { hashedShard, otherShard, SHARDS, shardDbOf } from "./support";

const admin = () => mintToken("operator", "admin");
const placement = (account: string) => `/v1/admin/placements/${account}`;

async function put(account: string, shards: unknown) {
  return call("PUT", placement(account), { token: await admin(), body: { shards } });
}

describe("GET /v1/admin/placements/{account_id}", () => {
  it("answers the hashed shard alone for an account without a placement", async () => {
    const account = freshAccount();
    const res = await call("GET", placement(account), { token: await admin() });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({
      account_id: account,
      shards: [hashedShard(account)],
      previous: null,
      since: null,
    });
  });
});

describe("PUT /v1/admin/placements/{account_id}", () => {
  it("moves new writes at once, keeps the old shard as previous, and is idempotent", async () => {
    const account = freshAccount();
    const hashed = hashedShard(account);
    const target = otherShard(hashed);
    const res = await put(account, [target]);
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toMatchObject({ account_id: account, shards: [target], previous: [hashed] });
    expect(Date.parse(body.since)).toBeGreaterThan(Date.now() - 60_000);
    // This isolate routes by it at once.
    const routed = await accountShards(env, account);
    expect(routed).toMatchObject({
      shards: [target],
      previous: [hashed],
      read: [target, hashed],
      home: target,
    });
    // The same list again changes nothing.
    expect(await json(await put(account, [target]))).toEqual(body);
    expect(await json(await call("GET", placement(account), { token: await admin() }))).toEqual(body);
  });

  it("stripes an account: each email goes to hash(email_id) mod k of the list, suppressions to the first", async () => {
    const account = freshAccount();
    const res = await put(account, [3, 1, 2]);
    expect(res.status).toBe(200);
    const routed = await accountShards(env, account);
    expect(routed.home).toBe(3);
    const used = new Set<number>();
    for (let i = 0; i < 60; i++) used.add(shardOfEmail(routed, `email_${i}`));
    expect([...used].sort()).toEqual([1, 2, 3]);
    // Previous keeps only the shards the new list leaves out.
    expect(routed.previous).toEqual(
      SHARDS.filter((i) => i === hashedShard(account) && ![3, 1, 2].includes(i)),
    );
  });

  it.each([
    [[], "shards"],
    [[0, 1, 2, 3, 0, 1, 2, 3, 0], "shards"],
    [[9], "shards"],
    [[1, 1], "shards"],
    [[-1], "shards"],
    [[1.5], "shards"],
    ["1", "shards"],
  ])("refuses %j with 400 naming %s, and changes nothing", async (shards, param) => {
    const account = freshAccount();
    const res = await put(account, shards);
    expect(res.status).toBe(400);
    expect((await json(res)).error).toMatchObject({ type: "validation_error", param });
    const after = await json(await call("GET", placement(account), { token: await admin() }));
    expect(after).toEqual({
      account_id: account,
      shards: [hashedShard(account)],
      previous: null,
      since: null,
    });
  });

  it("moves the account's suppressions, their journal and its sending domains to the new home", async () => {
    const account = freshAccount();
    const hashed = hashedShard(account);
    const target = otherShard(hashed);
    const from = shardDbOf(hashed);
    await from.batch([
      from
        .prepare(
          "INSERT INTO suppressions (account_id, email, topic, reason, email_id, suppressed_at) VALUES (?1, 'a@example.com', '', 'manual', NULL, 1), (?1, 'b@example.com', 'news', 'unsubscribe', 'email_1', 2)",
        )
        .bind(account),
      from
        .prepare(
          "INSERT INTO mirror_pending (account_id, email, token, since) VALUES (?, 'a@example.com', 't', 1)",
        )
        .bind(account),
      from
        .prepare(
          "INSERT INTO sending_domains (account_id, domain, first_seen_at) VALUES (?, 'mail.example.com', 1)",
        )
        .bind(account),
    ]);
    expect((await put(account, [target])).status).toBe(200);
    const count = (db: D1Database, table: string) =>
      db.prepare(`SELECT COUNT(*) AS n FROM ${table} WHERE account_id = ?`).bind(account).first<number>("n");
    for (const table of ["suppressions", "mirror_pending", "sending_domains"]) {
      expect(await count(from, table), table).toBe(0);
    }
    expect(await count(shardDbOf(target), "suppressions")).toBe(2);
    expect(await count(shardDbOf(target), "mirror_pending")).toBe(1);
    expect(await count(shardDbOf(target), "sending_domains")).toBe(1);
    const moved = await shardDbOf(target)
      .prepare(
        "SELECT email, topic, reason, email_id, suppressed_at FROM suppressions WHERE account_id = ? ORDER BY email",
      )
      .bind(account)
      .all();
    expect(moved.results).toEqual([
      { email: "a@example.com", topic: "", reason: "manual", email_id: null, suppressed_at: 1 },
      { email: "b@example.com", topic: "news", reason: "unsubscribe", email_id: "email_1", suppressed_at: 2 },
    ]);
  });
});

describe("DELETE /v1/admin/placements/{account_id}", () => {
  it("returns the account to its hashed shard the same way, and the scheduled work then drops previous", async () => {
    const account = freshAccount();
    const hashed = hashedShard(account);
    const target = otherShard(hashed);
    await put(account, [target]);
    // Something of the account on the shard it leaves: previous stays until it is gone.
    await shardDbOf(target)
      .prepare(
        "INSERT INTO events (account_id, occurred_at, id, type, email_id, recipient, tags) VALUES (?, 1, 'evt_x', 'email.sent', 'email_x', 'a@example.com', '[]')",
      )
      .bind(account)
      .run();
    const res = await call("DELETE", placement(account), { token: await admin() });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ account_id: account, shards: [hashed], previous: [target] });

    await dropDrainedPlacements(env);
    expect((await accountShards(env, account)).previous).toEqual([target]);

    await shardDbOf(target).prepare("DELETE FROM events WHERE account_id = ?").bind(account).run();
    await dropDrainedPlacements(env);
    // Back on the hashed shard with nothing previous: the row itself is gone.
    expect(await json(await call("GET", placement(account), { token: await admin() }))).toEqual({
      account_id: account,
      shards: [hashed],
      previous: null,
      since: null,
    });
    expect(
      await env.DB.prepare("SELECT COUNT(*) AS n FROM shard_placements WHERE account_id = ?")
        .bind(account)
        .first("n"),
    ).toBe(0);
  });

  it("drops a drained previous shard but keeps a striped placement", async () => {
    const account = freshAccount();
    await put(account, [0, 1]);
    await put(account, [2, 3]);
    const before = await accountShards(env, account);
    expect(before.previous.length).toBeGreaterThan(0);
    await dropDrainedPlacements(env);
    expect(await json(await call("GET", placement(account), { token: await admin() }))).toMatchObject({
      shards: [2, 3],
      previous: null,
    });
  });
});

describe("EVENT_SHARDS changes", () => {
  it("records the list, and reads keep visiting the shard an older list hashed an account to", async () => {
    await recordShardSet(env, Date.now());
    const older = [0, 1];
    await env.DB.prepare("INSERT INTO shard_sets (shards, first_seen_at, retired_at) VALUES ('0,1', 0, ?)")
      .bind(Date.now() - 1000)
      .run();
    // Find an account the two lists place differently.
    let account = freshAccount();
    const { rendezvousShard } = await import("../../src/shards/hash");
    while (rendezvousShard(account, older) === hashedShard(account)) account = freshAccount();
    const { forgetDirectory } = await import("../../src/shards/directory");
    forgetDirectory(env);
    const routed = await accountShards(env, account);
    expect(routed.shards).toEqual([hashedShard(account)]);
    expect(routed.previous).toEqual([rendezvousShard(account, older)]);
    expect(await recordShardSet(env, Date.now())).toEqual({ changed: false });
  });
});

describe("GET /v1/admin/shards", () => {
  it("lists every bound shard with its accounts, events and size", async () => {
    const account = freshAccount();
    const db = shardDbOf(2);
    await db
      .prepare(
        "INSERT INTO events (account_id, occurred_at, id, type, email_id, recipient, tags) VALUES (?1, 1, 'evt_a', 'email.sent', 'email_x', 'a@example.com', '[]'), (?1, 2, 'evt_b', 'email.sent', 'email_x', 'a@example.com', '[]')",
      )
      .bind(account)
      .run();
    const res = await call("GET", "/v1/admin/shards", { token: await admin() });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.object).toBe("list");
    expect(body.data.map((s: { shard: number }) => s.shard)).toEqual(SHARDS);
    for (const shard of body.data) {
      expect(shard).toMatchObject({ active: true, estimated: false, size_limit_bytes: 10_000_000_000 });
      expect(shard.bytes).toBeGreaterThan(0);
    }
    const two = body.data[2];
    const direct = await db.prepare("SELECT COUNT(*) AS n FROM events").first<number>("n");
    const accounts = await db
      .prepare("SELECT COUNT(DISTINCT account_id) AS n FROM events")
      .first<number>("n");
    expect(two.events).toBe(direct);
    expect(two.accounts).toBe(accounts);
    expect(two.events).toBeGreaterThanOrEqual(2);
  });
});
