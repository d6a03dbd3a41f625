import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import worker from "../../src/index";
import { PURGE_CURSOR_KEY } from "../../src/retention/purge";
import {
  DEFAULT_RECONCILE_BUDGET,
  RECONCILE_CURSOR_KEY,
  type ReconcileBudget,
  reconcileMirror,
} from "../../src/retention/reconcile";
import { mirrorKey } from "../../src/suppressions/mirror";
import { eventsDb, freshAccount } from "../helpers";
import { insertRow, mirrorOf, suppress, suppressedReasons, tokensFor } from "../suppressions/support";

/** Runs reconcile slices until both passes have wrapped around once; returns the summed counts. */
async function reconcileFully(budget: ReconcileBudget = DEFAULT_RECONCILE_BUDGET) {
  const total = { addressesChecked: 0, rewritten: 0, keysChecked: 0, deleted: 0, runs: 0 };
  let d1Done = false;
  let kvDone = false;
  while (!(d1Done && kvDone)) {
    if (total.runs > 200) throw new Error("the reconcile never completed a cycle");
    const result = await reconcileMirror(env, budget);
    total.runs += 1;
    total.addressesChecked += result.addressesChecked;
    total.rewritten += result.rewritten;
    total.keysChecked += result.keysChecked;
    total.deleted += result.deleted;
    d1Done ||= result.d1Complete;
    kvDone ||= result.kvComplete;
  }
  return total;
}

beforeEach(async () => {
  await env.SUPPRESSIONS.delete(RECONCILE_CURSOR_KEY);
});

describe("reconcileMirror", () => {
  it("rewrites a KV entry deleted behind the mirror's back", async () => {
    const account = freshAccount();
    const { write, send } = await tokensFor(account);
    await suppress(write, "lost@example.com");
    await suppress(write, "lost@example.com", "news");
    const before = await mirrorOf(account, "lost@example.com");
    await env.SUPPRESSIONS.delete(mirrorKey(account, "lost@example.com"));
    expect(await suppressedReasons(send, ["lost@example.com"])).toEqual({ "lost@example.com": null });

    const result = await reconcileFully();
    expect(result.rewritten).toBeGreaterThanOrEqual(1);
    expect(await mirrorOf(account, "lost@example.com")).toEqual(before);
    expect(await suppressedReasons(send, ["lost@example.com"])).toEqual({ "lost@example.com": "manual" });
  });

  it("rewrites a wrong or corrupt KV value and mirrors a row written to D1 alone", async () => {
    const account = freshAccount();
    const { send } = await tokensFor(account);
    await insertRow(account, "direct@example.com", "", "complaint", 1_000);
    await insertRow(account, "wrong@example.com", "news", "unsubscribe", 2_000);
    await env.SUPPRESSIONS.put(
      mirrorKey(account, "wrong@example.com"),
      JSON.stringify([{ topic: null, reason: "manual", suppressed_at: 1 }]),
    );
    await insertRow(account, "corrupt@example.com", "", "hard_bounce", 3_000);
    await env.SUPPRESSIONS.put(mirrorKey(account, "corrupt@example.com"), "{not json");

    await reconcileFully();
    expect(await mirrorOf(account, "direct@example.com")).toEqual([
      { topic: null, reason: "complaint", suppressed_at: 1_000 },
    ]);
    expect(await mirrorOf(account, "wrong@example.com")).toEqual([
      { topic: "news", reason: "unsubscribe", suppressed_at: 2_000 },
    ]);
    expect(await mirrorOf(account, "corrupt@example.com")).toEqual([
      { topic: null, reason: "hard_bounce", suppressed_at: 3_000 },
    ]);
    expect(await suppressedReasons(send, ["direct@example.com", "wrong@example.com"])).toEqual({
      "direct@example.com": "complaint",
      "wrong@example.com": null,
    });
  });

  it("deletes a KV entry with no D1 row, and keys this layout never writes", async () => {
    const account = freshAccount();
    const { write, send } = await tokensFor(account);
    await suppress(write, "kept@example.com");
    const ghost = mirrorKey(account, "ghost@example.com");
    await env.SUPPRESSIONS.put(ghost, JSON.stringify([{ topic: null, reason: "manual", suppressed_at: 1 }]));
    await env.SUPPRESSIONS.put("sup:no-address-here", "[]");
    expect(await suppressedReasons(send, ["ghost@example.com"])).toEqual({ "ghost@example.com": "manual" });

    const result = await reconcileFully();
    expect(result.deleted).toBeGreaterThanOrEqual(2);
    expect(await env.SUPPRESSIONS.get(ghost)).toBeNull();
    expect(await env.SUPPRESSIONS.get("sup:no-address-here")).toBeNull();
    expect(await mirrorOf(account, "kept@example.com")).not.toBeNull();
    expect(await suppressedReasons(send, ["ghost@example.com", "kept@example.com"])).toEqual({
      "ghost@example.com": null,
      "kept@example.com": "manual",
    });
  });

  it("leaves a mirror that matches D1 alone, including an account id with ':'", async () => {
    const account = `org:${freshAccount()}`;
    const { write } = await tokensFor(account);
    await suppress(write, "fine@example.com");
    await reconcileFully(); // repair whatever earlier tests left
    const result = await reconcileFully();
    expect(result).toMatchObject({ rewritten: 0, deleted: 0 });
    expect(await mirrorOf(account, "fine@example.com")).not.toBeNull();
  });

  it("skips an address too long for a KV key instead of failing its slice", async () => {
    const account = freshAccount();
    await insertRow(account, `${"x".repeat(300)}@${"y".repeat(200)}.com`);
    await insertRow(account, "normal@example.com");
    await reconcileFully();
    expect(await mirrorOf(account, "normal@example.com")).not.toBeNull();
  });

  it("works through the list in bounded slices, resuming from its cursor", async () => {
    const account = freshAccount();
    const emails = Array.from({ length: 7 }, (_, i) => `slice${i}@example.com`);
    for (const email of emails) await insertRow(account, email);
    const orphans = Array.from({ length: 5 }, (_, i) => mirrorKey(account, `orphan${i}@example.com`));
    for (const key of orphans) await env.SUPPRESSIONS.put(key, "[]");

    const small = { ...DEFAULT_RECONCILE_BUDGET, pageSize: 2, orphanPages: 1, kvOps: 26 };
    const first = await reconcileMirror(env, small);
    expect(first.keysChecked).toBe(2);
    expect(first.d1Complete).toBe(false);
    expect(await env.SUPPRESSIONS.get(RECONCILE_CURSOR_KEY, "json")).toMatchObject({
      orphans: expect.any(String),
    });

    const result = await reconcileFully(small);
    expect(result.runs).toBeGreaterThan(2);
    for (const email of emails) expect(await mirrorOf(account, email)).not.toBeNull();
    for (const key of orphans) expect(await env.SUPPRESSIONS.get(key)).toBeNull();
  });
});

describe("scheduled()", () => {
  it("purges expired events and reconciles the mirror", async () => {
    await env.SUPPRESSIONS.delete(PURGE_CURSOR_KEY);
    const account = freshAccount();
    const now = Date.now();
    const insert = eventsDb(account).prepare(
      "INSERT INTO events (account_id, occurred_at, id, type, email_id, recipient) VALUES (?, ?, ?, 'email.sent', 'e', 'r@x.com')",
    );
    await eventsDb(account).batch([
      insert.bind(account, now - 10 * 86_400_000, "evt_old"),
      insert.bind(account, now - 60_000, "evt_new"),
    ]);
    const orphan = mirrorKey(account, "cron-orphan@example.com");
    await env.SUPPRESSIONS.put(orphan, "[]");

    const controller = createScheduledController({ scheduledTime: new Date(now), cron: "*/15 * * * *" });
    await worker.scheduled(controller, env, createExecutionContext());

    const { results } = await eventsDb(account)
      .prepare("SELECT id FROM events WHERE account_id = ?")
      .bind(account)
      .all();
    expect(results).toEqual([{ id: "evt_new" }]);
    expect(await env.SUPPRESSIONS.get(orphan)).toBeNull();
  });
});
