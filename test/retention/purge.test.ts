import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_PURGE_BUDGET, PURGE_CURSOR_KEY, purgeExpiredEvents } from "../../src/retention/purge";
import { shardCursorKey } from "../../src/shards/control";
import { eventsBindingOf, eventsDb, freshAccount } from "../helpers";

const DAY = 86_400_000;
const NOW = Date.parse("2026-06-01T12:00:00.000Z");

/** Inserts `count` events for an account at `ageMs` before NOW (spread over the second before), in one statement. */
async function insertEvents(account: string, count: number, ageMs: number) {
  const rows = Array.from({ length: count }, (_, i) => [
    account,
    NOW - ageMs - (i % 1000),
    `evt_${crypto.randomUUID().replace(/-/g, "")}`,
  ]);
  await eventsDb(account)
    .prepare(
      `INSERT INTO events (account_id, occurred_at, id, type, email_id, recipient)
     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
            'email.delivered', 'email_x', 'r@example.com'
     FROM json_each(?)`,
    )
    .bind(JSON.stringify(rows))
    .run();
}

async function setPlan(account: string, plan: string) {
  await env.DB.prepare("INSERT INTO accounts (id, plan, created_at, updated_at) VALUES (?, ?, 0, 0)")
    .bind(account, plan)
    .run();
}

async function ages(account: string): Promise<Record<string, number>> {
  const { results } = await eventsDb(account)
    .prepare(
      "SELECT CAST((?1 - occurred_at) / 86400000 AS INTEGER) AS days, COUNT(*) AS n FROM events WHERE account_id = ?2 GROUP BY 1",
    )
    .bind(NOW, account)
    .all<{ days: number; n: number }>();
  return Object.fromEntries(results.map((r) => [`${r.days}d`, r.n]));
}

/** Runs the purge until a walk completes, returning the total deleted. */
async function purgeAll(budget = DEFAULT_PURGE_BUDGET) {
  let deleted = 0;
  for (let run = 0; run < 100; run += 1) {
    const result = await purgeExpiredEvents(env, NOW, budget);
    deleted += result.deleted;
    if (result.complete) return deleted;
  }
  throw new Error("the purge never completed");
}

beforeEach(async () => {
  await env.SUPPRESSIONS.delete(PURGE_CURSOR_KEY);
});

describe("purgeExpiredEvents", () => {
  it("removes exactly the events older than each account's plan retention, in chunks", async () => {
    const starter = freshAccount("starter"); // no row: DEFAULT_PLAN, 3 days
    const growth = freshAccount("growth");
    const scale = freshAccount("scale");
    const legacy = freshAccount("legacy"); // a plan no longer in PLANS: the default applies
    await setPlan(growth, "growth");
    await setPlan(scale, "scale");
    await setPlan(legacy, "legacy");

    await insertEvents(starter, 250, 4 * DAY);
    await insertEvents(starter, 40, 2 * DAY + 3600_000);
    await insertEvents(growth, 130, 8 * DAY);
    await insertEvents(growth, 60, 5 * DAY);
    await insertEvents(scale, 70, 31 * DAY);
    await insertEvents(scale, 80, 20 * DAY);
    await insertEvents(legacy, 30, 5 * DAY);
    await insertEvents(legacy, 10, DAY);

    const deleted = await purgeAll({ ...DEFAULT_PURGE_BUDGET, chunk: 100 });
    expect(deleted).toBeGreaterThanOrEqual(250 + 130 + 70 + 30);
    expect(await ages(starter)).toEqual({ "2d": 40 });
    expect(await ages(growth)).toEqual({ "5d": 60 });
    expect(await ages(scale)).toEqual({ "20d": 80 });
    expect(await ages(legacy)).toEqual({ "1d": 10 });

    // Nothing left to do: a second walk deletes nothing.
    expect(await purgeAll({ ...DEFAULT_PURGE_BUDGET, chunk: 100 })).toBe(0);
  });

  it("keeps an event exactly at the retention boundary and removes one a millisecond older", async () => {
    const account = freshAccount();
    await insertEvents(account, 1, 3 * DAY);
    await insertEvents(account, 1, 3 * DAY + 1);
    await purgeAll();
    const { results } = await eventsDb(account)
      .prepare("SELECT occurred_at FROM events WHERE account_id = ?")
      .bind(account)
      .all();
    expect(results).toEqual([{ occurred_at: NOW - 3 * DAY }]);
  });

  it("deletes more than one default chunk (1,000 rows) of one account in a run", async () => {
    const account = freshAccount();
    await insertEvents(account, 1000, 10 * DAY);
    await insertEvents(account, 1000, 9 * DAY);
    await insertEvents(account, 500, 8 * DAY);
    await insertEvents(account, 5, DAY);
    const result = await purgeExpiredEvents(env, NOW);
    expect(result.complete).toBe(true);
    expect(result.deleted).toBeGreaterThanOrEqual(2500);
    expect(await ages(account)).toEqual({ "1d": 5 });
  });

  it("stops at its budget and resumes where it stopped on the next run", async () => {
    // Two accounts on one shard: each shard runs on its own budget and cursor (SPEC §17).
    const first = freshAccount("a");
    let second = freshAccount("b");
    while (eventsBindingOf(second) !== eventsBindingOf(first)) second = freshAccount("b");
    const cursorKey = shardCursorKey(
      PURGE_CURSOR_KEY,
      Number(eventsBindingOf(first).slice("EVENTS_".length)),
    );
    await insertEvents(first, 300, 4 * DAY);
    await insertEvents(second, 300, 4 * DAY);
    await purgeAll(); // clear what earlier tests left, so the counts below are this test's own

    await insertEvents(first, 300, 4 * DAY);
    await insertEvents(second, 300, 4 * DAY);
    const budget = { ...DEFAULT_PURGE_BUDGET, chunk: 100, rows: 250 };
    const run1 = await purgeExpiredEvents(env, NOW, budget);
    expect(run1).toMatchObject({ deleted: 250, complete: false });
    expect(await env.SUPPRESSIONS.get(cursorKey, "json")).not.toBeNull();
    const run2 = await purgeExpiredEvents(env, NOW, budget);
    expect(run2).toMatchObject({ deleted: 250, complete: false });
    const run3 = await purgeExpiredEvents(env, NOW, budget);
    expect(run3).toMatchObject({ deleted: 100, complete: true });
    expect(await env.SUPPRESSIONS.get(cursorKey)).toBeNull();
    expect(await ages(first)).toEqual({});
    expect(await ages(second)).toEqual({});
  });

  it("bounds the statements of one run", async () => {
    const account = freshAccount();
    await insertEvents(account, 500, 4 * DAY);
    const run = await purgeExpiredEvents(env, NOW, { ...DEFAULT_PURGE_BUDGET, chunk: 50, statements: 4 });
    // One seek and three DELETEs of 50: the account is not finished, so the cursor stays before it.
    expect(run.deleted).toBeLessThanOrEqual(150);
    expect(run.complete).toBe(false);
    expect(await purgeAll()).toBeGreaterThanOrEqual(500 - run.deleted);
    expect(await ages(account)).toEqual({});
  });
});
