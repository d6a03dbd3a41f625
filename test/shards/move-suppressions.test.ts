import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DAY_MS } from "../../src/lib/params";
import { runScheduledWork } from "../../src/scheduled";
import { mirrorKey } from "../../src/suppressions/mirror";
import { call, freshAccount, json, mintToken } from "../helpers";
import { enc, erase, mirrorOf, suppressedReasons, tokensFor } from "../suppressions/support";
import { hashedShard, otherShard, SHARDS, shardDbOf } from "./support";

/**
 * SPEC §17 "Suppressions move with the account" with §10 (expiry) and §20 (erasure): an account
 * moved while it holds an expiring entry and the hashed entry an erasure left. Check, list and get
 * answer the same before, during (previous placement still read) and after (previous dropped) the
 * move; the expiring entry keeps its expiry on the new home shard and in KV and still leaves both
 * when it passes; the hashed entry still suppresses `check`.
 */

afterEach(() => {
  vi.useRealTimers();
});

const BRIEF = "brief@example.com";
const FORGOTTEN = "forget.me@example.com";
const KEPT = "kept@example.com";
const NEVER = "never@example.com";

/** What a client sees of the account's suppressions: the list, each address's entries, and check. */
async function suppressionsView(account: string) {
  const { read, send } = await tokensFor(account);
  const list = await json(await call("GET", "/v1/suppressions?limit=100", { token: read }));
  const get: Record<string, unknown> = {};
  for (const email of [BRIEF, FORGOTTEN, KEPT, NEVER]) {
    const res = await call("GET", `/v1/suppressions/${enc(email)}`, { token: read });
    get[email] = [res.status, await res.json()];
  }
  const check = await suppressedReasons(send, [BRIEF, FORGOTTEN, KEPT, NEVER]);
  return { list: list.data, get, check };
}

/** The account's suppression rows on each shard (only the home shard should hold any). */
async function rowsByShard(account: string) {
  const out: Record<number, Record<string, unknown>[]> = {};
  for (const shard of SHARDS) {
    const { results } = await shardDbOf(shard)
      .prepare(
        "SELECT email, topic, reason, expires_at, email_hash FROM suppressions WHERE account_id = ?1 ORDER BY email, topic",
      )
      .bind(account)
      .all<Record<string, unknown>>();
    if (results.length > 0) out[shard] = results;
  }
  return out;
}

const kvExpiration = async (account: string, email: string) =>
  (await env.SUPPRESSIONS.list({ prefix: mirrorKey(account, email) })).keys.find(
    (k) => k.name === mirrorKey(account, email),
  )?.expiration;

describe("moving an account that holds an expiring and a hashed suppression", () => {
  it("answers the same before, during and after, and the expiring entry still expires on the new home", async () => {
    const account = freshAccount("movesup");
    const admin = await mintToken("operator", "admin");
    expect(
      (await call("PUT", `/v1/accounts/${account}`, { token: admin, body: { plan: "scale" } })).status,
    ).toBe(200);
    const before = hashedShard(account);
    const after = otherShard(before);
    const { write } = await tokensFor(account);

    // An entry that expires in 30 days (after the previous placement drains: its change records
    // stay on the old shard for 7), a permanent one, and an erased address's hashed entry.
    const expires = Date.now() + 30 * DAY_MS;
    const iso = new Date(expires).toISOString();
    const put = async (email: string, body: Record<string, unknown>) => {
      const res = await call("PUT", `/v1/suppressions/${enc(email)}`, { token: write, body });
      expect(res.status).toBe(200);
      return json(res);
    };
    expect((await put(BRIEF, { expires_at: iso })).expires_at).toBe(iso);
    await put(KEPT, {});
    await put(FORGOTTEN, {});
    const { done: erased } = await erase(write, FORGOTTEN);
    const hashedKey = `#${erased.email_hash}`;

    const rows = [
      { email: hashedKey, topic: "", reason: "manual", expires_at: null, email_hash: erased.email_hash },
      { email: BRIEF, topic: "", reason: "manual", expires_at: expires, email_hash: null },
      { email: KEPT, topic: "", reason: "manual", expires_at: null, email_hash: null },
    ];
    expect(await rowsByShard(account)).toEqual({ [before]: rows });
    expect(await kvExpiration(account, BRIEF)).toBe(Math.ceil(expires / 1000));
    const view = await suppressionsView(account);
    expect(view.check).toEqual({ [BRIEF]: "manual", [FORGOTTEN]: "manual", [KEPT]: "manual", [NEVER]: null });
    expect(view.list).toHaveLength(3);
    expect(view.list).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ email: BRIEF, expires_at: iso, email_hash: null }),
        expect.objectContaining({ email: null, email_hash: erased.email_hash, reason: "manual" }),
      ]),
    );
    expect(view.get[FORGOTTEN]).toEqual([
      200,
      { object: "list", data: [expect.objectContaining({ email: null, email_hash: erased.email_hash })] },
    ]);
    expect(view.get[NEVER]).toEqual([404, expect.anything()]);

    // The move: the entries go to the new home in the same request, columns and expiry as they were.
    const moved = await json(
      await call("PUT", `/v1/admin/placements/${account}`, { token: admin, body: { shards: [after] } }),
    );
    expect(moved).toMatchObject({ shards: [after], previous: [before] });
    expect(await rowsByShard(account)).toEqual({ [after]: rows });
    expect(await kvExpiration(account, BRIEF)).toBe(Math.ceil(expires / 1000));
    expect(await suppressionsView(account)).toEqual(view);

    // During: the previous shard still holds the account's change records, so it is still read.
    await runScheduledWork(env, Date.now());
    const during = await json(await call("GET", `/v1/admin/placements/${account}`, { token: admin }));
    expect(during.previous).toEqual([before]);
    expect(await rowsByShard(account)).toEqual({ [after]: rows });
    expect(await suppressionsView(account)).toEqual(view);

    // After: 8 days on the change records are purged, the previous shard is dropped, nothing expired yet.
    await runScheduledWork(env, Date.now() + 8 * DAY_MS);
    const drained = await json(await call("GET", `/v1/admin/placements/${account}`, { token: admin }));
    expect(drained).toMatchObject({ shards: [after], previous: null });
    expect(await rowsByShard(account)).toEqual({ [after]: rows });
    expect(await kvExpiration(account, BRIEF)).toBe(Math.ceil(expires / 1000));
    expect(await suppressionsView(account)).toEqual(view);

    // The expiring entry stops suppressing at expires_at (KV still holds it until the scheduled run)…
    vi.useFakeTimers({ toFake: ["Date"], now: expires - 1 });
    expect((await suppressionsView(account)).check[BRIEF]).toBe("manual");
    vi.setSystemTime(expires);
    const expired = await suppressionsView(account);
    expect(expired.check).toEqual({ [BRIEF]: null, [FORGOTTEN]: "manual", [KEPT]: "manual", [NEVER]: null });
    expect(expired.get[BRIEF]).toEqual([404, expect.anything()]);
    expect(expired.list).toEqual(view.list.filter((e: { email: string | null }) => e.email !== BRIEF));
    expect(await mirrorOf(account, BRIEF)).not.toBeNull();
    vi.useRealTimers();

    // …and the scheduled expiry removes it from D1 on the new home and from KV, with its suppression.deleted there.
    await runScheduledWork(env, expires);
    expect(await rowsByShard(account)).toEqual({
      [after]: rows.filter((r) => r.email !== BRIEF),
    });
    expect(await mirrorOf(account, BRIEF)).toBeNull();
    const { results: deletions } = await shardDbOf(after)
      .prepare(
        "SELECT email FROM suppression_changes WHERE account_id = ?1 AND type = 'suppression.deleted' AND email = ?2",
      )
      .bind(account, BRIEF)
      .all();
    expect(deletions).toHaveLength(1);

    // The hashed entry still suppresses the erased address, from the new home's KV mirror.
    const { send } = await tokensFor(account);
    expect(await suppressedReasons(send, [FORGOTTEN, KEPT, BRIEF])).toEqual({
      [FORGOTTEN]: "manual",
      [KEPT]: "manual",
      [BRIEF]: null,
    });
    expect(await env.SUPPRESSIONS.get(mirrorKey(account, hashedKey), "json")).toEqual([
      expect.objectContaining({ topic: null, reason: "manual" }),
    ]);
  });
});
