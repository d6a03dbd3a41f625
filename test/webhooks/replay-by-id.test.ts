import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { EVENTS_BY_ID_BUDGET, eventsByIds } from "../../src/store";
import { replayEventId } from "../../src/tracking/interaction";
import { call, freshAccount, json, mintToken } from "../helpers";
import { createEndpoint, hookName, hookUrl } from "./support";

/**
 * SPEC §18 (finding 1): replay by event id reads at most 10,000 rows, however large the window:
 * it used to walk the account's whole retained window to find one id.
 */

async function bulk(account: string, n: number, newest: number) {
  await env.DB.prepare(
    `WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < ?3 - 1)
     INSERT INTO events (account_id, occurred_at, id, type, email_id, recipient)
     SELECT ?1, ?2 - i * 1000, printf('evt_bulk%08d', i), 'email.sent', 'email_bulk', 'r@example.com' FROM k`,
  )
    .bind(account, newest, n)
    .run();
}

/** env.DB, summing D1's rows_read of every statement it runs. */
function counting() {
  const total = { rowsRead: 0 };
  const wrap = (stmt: D1PreparedStatement): D1PreparedStatement =>
    new Proxy(stmt, {
      get(t, prop) {
        if (prop === "bind") return (...args: unknown[]) => wrap(t.bind(...args));
        if (prop === "all")
          return async () => {
            const r = await t.all();
            total.rowsRead += r.meta.rows_read;
            return r;
          };
        const v = Reflect.get(t, prop, t);
        return typeof v === "function" ? v.bind(t) : v;
      },
    });
  const db = new Proxy(env.DB, {
    get(t, prop) {
      if (prop === "prepare") return (sql: string) => wrap(t.prepare(sql));
      if (prop === "batch")
        return async (statements: D1PreparedStatement[]) => {
          const results = await t.batch(statements);
          for (const r of results) total.rowsRead += r.meta.rows_read;
          return results;
        };
      const v = Reflect.get(t, prop, t);
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
  return { db, total };
}

describe("replay by event id", () => {
  it("reads at most 10,000 rows: recent ids are found, ids past the budget are not", async () => {
    const account = freshAccount();
    const now = Date.now();
    await bulk(account, 12_000, now - 60_000);
    const since = now - 3 * 86_400_000;
    const a = counting();
    const recent = await eventsByIds(a.db, account, since, ["evt_bulk00000005", "evt_bulk00009000"]);
    expect(recent.map((e) => e.id).sort()).toEqual(["evt_bulk00000005", "evt_bulk00009000"]);
    expect(a.total.rowsRead).toBeLessThanOrEqual(EVENTS_BY_ID_BUDGET);
    const b = counting();
    const old = await eventsByIds(b.db, account, since, ["evt_bulk00011999"]);
    expect([...old]).toEqual([]);
    expect(old.exhausted).toBe(true);
    expect(b.total.rowsRead).toBeLessThanOrEqual(EVENTS_BY_ID_BUDGET);
    expect(b.total.rowsRead).toBeGreaterThan(EVENTS_BY_ID_BUDGET * 0.9);
  });

  it("finds a tracking event by its replay id's bucket, however old, with one key-range read", async () => {
    const account = freshAccount();
    const now = Date.now();
    await bulk(account, 12_000, now - 60_000);
    const at = now - 12_500_000; // older than every bulk event
    const id = replayEventId("00112233445566778899aabb", "email.opened", at);
    await env.DB.prepare(
      "INSERT INTO events (account_id, occurred_at, id, type, email_id, recipient) VALUES (?, ?, ?, 'email.opened', 'email_x', 'r@example.com')",
    )
      .bind(account, at, id)
      .run();
    const { replayIdWindow } = await import("../../src/tracking/interaction");
    const hint = replayIdWindow(id);
    expect(hint).not.toBeNull();
    const c = counting();
    const found = await eventsByIds(c.db, account, now - 3 * 86_400_000, [id], new Map([[id, hint!]]));
    expect(found.map((e) => e.id)).toEqual([id]);
    expect(c.total.rowsRead).toBeLessThan(10);
  });

  it("through the route: 202 with what it found, within the budget", async () => {
    const account = freshAccount();
    const now = Date.now();
    await bulk(account, 12_000, now - 60_000);
    const ep = await createEndpoint(account, { url: hookUrl(hookName()) });
    const token = await mintToken(account, "webhooks:write");
    const res = await call("POST", `/v1/webhooks/${ep.id}/replay`, {
      token,
      body: { event_ids: ["evt_bulk00000001", "evt_bulk00011998"] },
    });
    expect(res.status).toBe(202);
    expect(await json(res)).toEqual({ queued: 1 });
  });
});
