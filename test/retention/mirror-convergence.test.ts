import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/env";
import worker from "../../src/index";
import { handleEventsBatch } from "../../src/queue/consumer";
import {
  DEFAULT_RECONCILE_BUDGET,
  PENDING_AGE_MS,
  RECONCILE_CURSOR_KEY,
  reconcileMirror,
} from "../../src/retention/reconcile";
import { mirrorFingerprint, mirrorKey } from "../../src/suppressions/mirror";
import { addManual, removeEntries } from "../../src/suppressions/store";
import { BASE, event, eventMessage, freshAccount } from "../helpers";
import { d1Rows, enc, mirrorOf, suppressedReasons, tokensFor } from "../suppressions/support";

/**
 * The KV mirror under races and failures (SPEC §12): real D1 and KV throughout. Races are produced by
 * holding one writer's KV write at a gate while another writer runs to completion, then letting the
 * first one finish; failures by a KV binding wrapped so that writes reject.
 */

/** KV whose first put or delete waits until released: the writer is caught between its D1 read and its KV write. */
function gatedKv() {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let reached!: () => void;
  const blocked = new Promise<void>((resolve) => {
    reached = resolve;
  });
  let held = false;
  const kv = new Proxy(env.SUPPRESSIONS, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== "function") return value;
      const fn = (value as (...a: unknown[]) => Promise<unknown>).bind(target);
      if (prop !== "put" && prop !== "delete") return fn;
      return async (...args: unknown[]) => {
        if (!held) {
          held = true;
          reached();
          await gate;
        }
        return fn(...args);
      };
    },
  });
  return { env: { ...env, SUPPRESSIONS: kv } as Env, release, blocked };
}

/** KV whose writes and deletes reject, as during a KV incident; reads still work. */
function failingKvEnv(): Env {
  const kv = new Proxy(env.SUPPRESSIONS, {
    get(target, prop) {
      if (prop === "put" || prop === "delete")
        return async () => {
          throw new Error("KV PUT failed: 503 Service Unavailable");
        };
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { ...env, SUPPRESSIONS: kv } as Env;
}

let seq = 0;
/** A hard bounce for the address, through the real consumer with the given env. */
async function bounce(e: Env, account: string, email: string) {
  seq += 1;
  const record = event({
    account_id: account,
    type: "email.bounced",
    recipient: email,
    bounce_type: "permanent",
    email_id: `email_race_${seq}`,
  });
  const batch = createMessageBatch<unknown>("mailtrail-events", [
    {
      id: `race-${seq}`,
      timestamp: new Date(),
      attempts: 1,
      body: eventMessage(record, { reason: "hard_bounce", topic: null }),
    },
  ]);
  const ctx = createExecutionContext();
  await handleEventsBatch(batch, e);
  return getQueueResult(batch, ctx);
}

async function pendingRows(account: string) {
  const { results } = await env.DB.prepare("SELECT email FROM mirror_pending WHERE account_id = ?")
    .bind(account)
    .all<{ email: string }>();
  return results.map((r) => r.email);
}

/** What KV should hold for the address, from D1. */
async function expectedMirror(account: string, email: string) {
  const rows = await d1Rows(account, email);
  if (rows.length === 0) return null;
  return rows.map((r) => ({
    topic: r.topic === "" ? null : r.topic,
    reason: r.reason,
    suppressed_at: r.suppressed_at,
  }));
}

describe("the mirror converges under races (no reconcile involved)", () => {
  it("an automatic suppression whose KV write lands after an API remove does not resurrect the entry", async () => {
    const account = freshAccount();
    const { send } = await tokensFor(account);
    const email = "race-remove@example.com";
    const consumer = gatedKv();
    // The consumer commits the bounce's suppression to D1, reads it, and is held before its KV put.
    const consumed = bounce(consumer.env, account, email);
    await consumer.blocked;
    expect(await d1Rows(account, email)).toHaveLength(1);
    // Meanwhile the API removes it: D1 and KV both say "not suppressed".
    expect(await removeEntries(env, env.DB, account, email, null)).toBe(1);
    expect(await mirrorOf(account, email)).toBeNull();
    // Now the consumer's stale put lands; it must notice D1 changed and undo it.
    consumer.release();
    await consumed;
    expect(await d1Rows(account, email)).toEqual([]);
    expect(await mirrorOf(account, email)).toBeNull();
    expect(await suppressedReasons(send, [email])).toEqual({ [email]: null });
    expect(await pendingRows(account)).toEqual([]);
  });

  it("an API remove whose KV delete lands after an automatic suppression does not erase it", async () => {
    const account = freshAccount();
    const { send } = await tokensFor(account);
    const email = "race-add@example.com";
    await addManual(env, env.DB, account, email, "news", undefined, Date.now());
    const route = gatedKv();
    const removing = removeEntries(route.env, route.env.DB, account, email, null);
    await route.blocked; // D1 has no entry; the KV delete is held
    await bounce(env, account, email); // a hard bounce suppresses every topic: D1 then KV
    expect(await mirrorOf(account, email)).toHaveLength(1);
    route.release();
    expect(await removing).toBe(1);
    expect(await mirrorOf(account, email)).toEqual(await expectedMirror(account, email));
    expect(await suppressedReasons(send, [email])).toEqual({ [email]: "hard_bounce" });
    expect(await pendingRows(account)).toEqual([]);
  });

  it("two adds racing for different topics end with both entries in KV", async () => {
    const account = freshAccount();
    const { send } = await tokensFor(account);
    const email = "race-topics@example.com";
    const route = gatedKv();
    const adding = addManual(route.env, route.env.DB, account, email, "news", undefined, Date.now());
    await route.blocked; // KV about to receive [news] only
    await bounce(env, account, email); // D1 and KV: [every topic, news]
    route.release();
    await adding;
    const mirror = await mirrorOf(account, email);
    expect(mirror?.map((e) => e.topic)).toEqual([null, "news"]);
    expect(mirror).toEqual(await expectedMirror(account, email));
    expect(await suppressedReasons(send, [email], "news")).toEqual({ [email]: "hard_bounce" });
  });
});

describe("a failed KV write is repaired by the next reconcile run", () => {
  const later = () => Date.now() + PENDING_AGE_MS + 1000;

  it("from the API: the PUT answers 200, the journal keeps the address, the reconcile mirrors it", async () => {
    const account = freshAccount();
    const { write, send } = await tokensFor(account);
    const email = "kv-down@example.com";
    const res = await worker.fetch(
      new Request(`${BASE}/v1/suppressions/${enc(email)}`, {
        method: "PUT",
        headers: { authorization: `Bearer ${write}` },
      }),
      failingKvEnv(),
      createExecutionContext(),
    );
    expect(res.status).toBe(200);
    expect(await d1Rows(account, email)).toHaveLength(1);
    // This is the finding: D1 holds an every-topic entry while the check answers "not suppressed".
    expect(await suppressedReasons(send, [email])).toEqual({ [email]: null });
    expect(await pendingRows(account)).toEqual([email]);

    const result = await reconcileMirror(env, DEFAULT_RECONCILE_BUDGET, later());
    expect(result.pendingRepaired).toBeGreaterThanOrEqual(1);
    expect(await suppressedReasons(send, [email])).toEqual({ [email]: "manual" });
    expect(await pendingRows(account)).toEqual([]);
  });

  it("from the API: a remove whose KV delete failed stops suppressing after the next run", async () => {
    const account = freshAccount();
    const { send } = await tokensFor(account);
    const email = "kv-down-remove@example.com";
    await addManual(env, env.DB, account, email, "", undefined, Date.now());
    expect(await removeEntries(failingKvEnv(), failingKvEnv().DB, account, email, null)).toBe(1);
    expect(await suppressedReasons(send, [email])).toEqual({ [email]: "manual" }); // stale
    await reconcileMirror(env, DEFAULT_RECONCILE_BUDGET, later());
    expect(await suppressedReasons(send, [email])).toEqual({ [email]: null });
    expect(await pendingRows(account)).toEqual([]);
  });

  it("from the consumer: the batch is acknowledged once D1 holds it, and the reconcile mirrors it", async () => {
    const account = freshAccount();
    const { send } = await tokensFor(account);
    const email = "kv-down-bounce@example.com";
    const result = await bounce(failingKvEnv(), account, email);
    expect(result.explicitAcks).toHaveLength(1);
    expect(await suppressedReasons(send, [email])).toEqual({ [email]: null });
    expect(await pendingRows(account)).toEqual([email]);
    // A journal row younger than PENDING_AGE_MS may belong to a write under way: left alone.
    await reconcileMirror(env, { ...DEFAULT_RECONCILE_BUDGET, pageSize: 1, kvOps: 3 }, Date.now());
    expect(await pendingRows(account)).toEqual([email]);
    const run = await reconcileMirror(env, DEFAULT_RECONCILE_BUDGET, later());
    expect(run.pendingWaiting).toBe(0);
    expect(await suppressedReasons(send, [email])).toEqual({ [email]: "hard_bounce" });
  });

  it("a successful write leaves no journal row behind", async () => {
    const account = freshAccount();
    await addManual(env, env.DB, account, "fine@example.com", "", undefined, Date.now());
    await bounce(env, account, "fine2@example.com");
    expect(await pendingRows(account)).toEqual([]);
    expect(await mirrorOf(account, "fine2@example.com")).not.toBeNull();
  });
});

describe("the sweep over a large list", () => {
  it("finds every drifted address among 3,000 in one pass, at a thousand addresses per KV list", {
    timeout: 180_000,
  }, async () => {
    await env.SUPPRESSIONS.delete(RECONCILE_CURSOR_KEY);
    const account = freshAccount("big");
    const emails = Array.from({ length: 3000 }, (_, i) => `user${String(i).padStart(5, "0")}@example.com`);
    const rows = emails.map((email, i) => [account, email, i % 7 === 0 ? "news" : "", 1_000 + i]);
    await env.DB.prepare(
      `INSERT INTO suppressions (account_id, email, topic, reason, email_id, suppressed_at)
       SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), 'complaint', NULL,
              json_extract(value, '$[3]') FROM json_each(?)`,
    )
      .bind(JSON.stringify(rows))
      .run();
    // The mirror as its writers leave it: every value with its fingerprint.
    for (let i = 0; i < emails.length; i += 200) {
      await Promise.all(
        emails.slice(i, i + 200).map(async (email, k) => {
          const n = i + k;
          const value = JSON.stringify([
            { topic: n % 7 === 0 ? "news" : null, reason: "complaint", suppressed_at: 1_000 + n },
          ]);
          await env.SUPPRESSIONS.put(mirrorKey(account, email), value, {
            metadata: { h: mirrorFingerprint(value) },
          });
        }),
      );
    }
    // Drift behind the mirror's back: keys deleted, values changed, orphan keys added, spread out.
    const deleted = [emails[3], emails[1500], emails[2999]] as string[];
    const changed = [emails[10], emails[1001]] as string[];
    const orphans = ["user01000x@example.com", "zz-orphan@example.com"];
    for (const email of deleted) await env.SUPPRESSIONS.delete(mirrorKey(account, email));
    for (const email of changed)
      await env.SUPPRESSIONS.put(mirrorKey(account, email), "[]", { metadata: { h: "0" } });
    for (const email of orphans) await env.SUPPRESSIONS.put(mirrorKey(account, email), "[]");

    const started = Date.now();
    let checked = 0;
    let runs = 0;
    let repaired = 0;
    for (;;) {
      const result = await reconcileMirror(env);
      runs += 1;
      checked += result.addressesChecked;
      repaired += result.rewritten + result.deleted; // orphans may fall to the orphan walk first
      if (result.d1Complete || runs > 10) break;
    }
    const ms = Date.now() - started;
    // The whole list fits one run's budget: 3 list calls of 1,000 keys for this account.
    expect(runs).toBe(1);
    expect(checked).toBeGreaterThanOrEqual(3000);
    expect(repaired).toBeGreaterThanOrEqual(deleted.length + changed.length + orphans.length);
    for (const email of [...deleted, ...changed]) {
      expect(await mirrorOf(account, email), email).toEqual(await expectedMirror(account, email));
    }
    for (const email of orphans) expect(await mirrorOf(account, email)).toBeNull();
    // The measured rate, for the capacity arithmetic in BENCHMARKS.md.
    console.log(
      JSON.stringify({
        sweep_addresses: checked,
        sweep_ms: ms,
        per_second: Math.round((checked * 1000) / ms),
      }),
    );

    // A second pass finds nothing to do.
    const again = await reconcileMirror(env);
    expect(again.rewritten + again.deleted).toBe(0);
  });
});

describe("the per-run budget", () => {
  it("repairs a mass loss of KV over several runs, never using more KV operations per run than allowed", async () => {
    await env.SUPPRESSIONS.delete(RECONCILE_CURSOR_KEY);
    const account = freshAccount("lost");
    const emails = Array.from({ length: 120 }, (_, i) => `lost${String(i).padStart(3, "0")}@example.com`);
    await env.DB.prepare(
      `INSERT INTO suppressions (account_id, email, topic, reason, email_id, suppressed_at)
       SELECT ?1, value, '', 'manual', NULL, 5 FROM json_each(?2)`,
    )
      .bind(account, JSON.stringify(emails))
      .run();
    let ops = 0;
    const counted = new Proxy(env.SUPPRESSIONS, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target) as unknown;
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          ops += 1;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const budget = { ...DEFAULT_RECONCILE_BUDGET, kvOps: 50 };
    const perRun: number[] = [];
    for (let run = 0; run < 40; run += 1) {
      ops = 0;
      await reconcileMirror({ ...env, SUPPRESSIONS: counted } as Env, budget);
      perRun.push(ops);
      const mirrored = await Promise.all(emails.map((email) => mirrorOf(account, email)));
      if (mirrored.every((m) => m !== null)) break;
    }
    expect(perRun.length).toBeGreaterThan(2); // 120 writes cannot fit one run of 50 operations
    // The budget, plus the cursor's own read and write (and a verify round's rewrite, if any).
    for (const n of perRun) expect(n).toBeLessThanOrEqual(budget.kvOps + 2);
    for (const email of emails)
      expect(await mirrorOf(account, email)).toEqual(await expectedMirror(account, email));
  });
});
