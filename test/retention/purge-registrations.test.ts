import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import {
  DEFAULT_REGISTRATION_PURGE_BUDGET,
  purgeStaleRegistrations,
  REGISTRATION_MARGIN_DAYS,
  REGISTRATION_PURGE_CURSOR_KEY,
} from "../../src/retention/purge-registrations";
import { shardCursorKey } from "../../src/shards/control";
import { eventsBindingOf, eventsDb, freshAccount } from "../helpers";

const DAY = 86_400_000;
const NOW = Date.parse("2026-06-01T12:00:00.000Z");
const STARTER_CUTOFF = (3 + REGISTRATION_MARGIN_DAYS) * DAY; // the default plan keeps 3 days

/** Registrations (and their Message-ID map rows) at `ageMs` before NOW, in one statement each. */
async function register(account: string, emailIds: string[], ageMs: number) {
  const rows = emailIds.map((id) => [account, id, `<${id}@mail>`, NOW - ageMs]);
  const json = JSON.stringify(rows);
  await eventsDb(account).batch([
    eventsDb(account)
      .prepare(
        `INSERT INTO messages (account_id, email_id, message_id, registered_at)
       SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), json_extract(value, '$[3]')
       FROM json_each(?)`,
      )
      .bind(json),
    eventsDb(account)
      .prepare(
        `INSERT INTO message_ids (account_id, message_id, email_id, first_seen_at)
       SELECT json_extract(value, '$[0]'), json_extract(value, '$[2]'), json_extract(value, '$[1]'), json_extract(value, '$[3]')
       FROM json_each(?)`,
      )
      .bind(json),
  ]);
}

async function addEvent(account: string, emailId: string, ageMs: number) {
  await eventsDb(account)
    .prepare(
      "INSERT INTO events (account_id, occurred_at, id, type, email_id, recipient) VALUES (?, ?, ?, 'email.opened', ?, 'r@x.com')",
    )
    .bind(account, NOW - ageMs, `evt_${crypto.randomUUID().replace(/-/g, "")}`, emailId)
    .run();
}

async function remaining(account: string) {
  const [messages, map] = await eventsDb(account).batch<{ email_id: string }>([
    eventsDb(account)
      .prepare("SELECT email_id FROM messages WHERE account_id = ? ORDER BY email_id")
      .bind(account),
    eventsDb(account)
      .prepare("SELECT email_id FROM message_ids WHERE account_id = ? ORDER BY email_id")
      .bind(account),
  ]);
  return {
    messages: messages?.results.map((r) => r.email_id) ?? [],
    map: map?.results.map((r) => r.email_id) ?? [],
  };
}

/**
 * The env with this file's own copy of the purge's cursors: the scheduled work that other test files
 * run (webhooks/purge, shards/move, retention/reconcile, reliability/dead-letters) walks with the
 * same KV keys, and a walk moved or restarted under this one kept it from completing under load.
 */
const CURSOR_PREFIX = `${REGISTRATION_PURGE_CURSOR_KEY}:${crypto.randomUUID()}`;
const ownKey = (key: string) =>
  key.startsWith(REGISTRATION_PURGE_CURSOR_KEY)
    ? CURSOR_PREFIX + key.slice(REGISTRATION_PURGE_CURSOR_KEY.length)
    : key;
const suppressions = env.SUPPRESSIONS;
const purgeEnv = {
  ...env,
  SUPPRESSIONS: {
    get: (key: string, type?: unknown) => suppressions.get(ownKey(key), type as "json"),
    put: (key: string, value: string) => suppressions.put(ownKey(key), value),
    delete: (key: string) => suppressions.delete(ownKey(key)),
  },
} as unknown as typeof env;

/**
 * purgeEnv with one event shard bound: a run reports a table complete only when every shard's walk
 * ended in that same run, and with walks of different lengths (other test files' rows on the other
 * shards) that can take more runs than any cap.
 */
const oneShardEnv = (binding: string) =>
  Object.fromEntries(
    Object.entries(purgeEnv).filter(([key]) => !/^EVENTS_\d+$/.test(key) || key === binding),
  ) as unknown as typeof env;

async function purgeAll(budget = DEFAULT_REGISTRATION_PURGE_BUDGET, on = purgeEnv) {
  const total: Record<string, number> = { messages: 0, message_ids: 0 };
  const done = new Set<string>();
  for (let run = 0; run < 500; run += 1) {
    const result = await purgeStaleRegistrations(on, NOW, budget);
    for (const [table, n] of Object.entries(result.deleted)) total[table] = (total[table] ?? 0) + n;
    for (const table of result.complete) done.add(table);
    if (done.size === 2)
      return { messages: total.messages ?? 0, message_ids: total.message_ids ?? 0, runs: run + 1 };
  }
  throw new Error("the registration purge never completed");
}

beforeEach(async () => {
  await purgeEnv.SUPPRESSIONS.delete(REGISTRATION_PURGE_CURSOR_KEY);
});

describe("purgeStaleRegistrations", () => {
  it("removes registrations and map rows past retention + margin whose email has no event left, and nothing else", async () => {
    const account = freshAccount();
    await register(account, ["email_old_gone"], STARTER_CUTOFF + DAY); // old, no events: removed
    await register(account, ["email_old_live"], STARTER_CUTOFF + DAY); // old, a late event remains: kept
    await addEvent(account, "email_old_live", DAY);
    await register(account, ["email_margin"], STARTER_CUTOFF - DAY); // past retention, within the margin: kept
    await register(account, ["email_new"], DAY); // recent, no events yet: kept
    const other = freshAccount();
    await register(other, ["email_old_gone"], DAY); // same email_id, another account, recent: kept

    await purgeAll();
    const expected = ["email_margin", "email_new", "email_old_live"];
    expect(await remaining(account)).toEqual({ messages: expected, map: expected });
    expect(await remaining(other)).toEqual({ messages: ["email_old_gone"], map: ["email_old_gone"] });
  });

  it("follows each account's plan retention", async () => {
    const scale = freshAccount("scale");
    await env.DB.prepare("INSERT INTO accounts (id, plan, created_at, updated_at) VALUES (?, 'scale', 0, 0)")
      .bind(scale)
      .run();
    await register(scale, ["email_20d"], 20 * DAY); // would be stale on starter, not on scale (30 days)
    await register(scale, ["email_40d"], (30 + REGISTRATION_MARGIN_DAYS + 3) * DAY);
    await purgeAll();
    expect((await remaining(scale)).messages).toEqual(["email_20d"]);
  });

  it("works in bounded chunks across runs, resuming from its cursor, over thousands of rows", async () => {
    const account = freshAccount();
    const shard = oneShardEnv(eventsBindingOf(account));
    await purgeAll(DEFAULT_REGISTRATION_PURGE_BUDGET, shard); // what earlier tests left
    const stale = Array.from({ length: 2500 }, (_, i) => `email_${String(i).padStart(5, "0")}`);
    const live = stale.filter((_, i) => i % 100 === 0);
    await register(account, stale, STARTER_CUTOFF + 2 * DAY);
    for (const id of live) await addEvent(account, id, DAY);

    const small = { ...DEFAULT_REGISTRATION_PURGE_BUDGET, chunk: 200, statements: 18 };
    const first = await purgeStaleRegistrations(shard, NOW, small);
    expect(first.complete).toEqual([]);
    expect(first.deleted.messages).toBeLessThanOrEqual(5 * 200); // 9 statements: a seek and 4 chunks of 2
    const index = Number(eventsBindingOf(account).slice("EVENTS_".length));
    expect(
      await purgeEnv.SUPPRESSIONS.get(shardCursorKey(REGISTRATION_PURGE_CURSOR_KEY, index), "json"),
    ).not.toBeNull();

    const rest = await purgeAll(small, shard);
    expect(rest.runs).toBeGreaterThan(2);
    expect((first.deleted.messages ?? 0) + (rest.messages ?? 0)).toBe(stale.length - live.length);
    expect(await remaining(account)).toEqual({ messages: live, map: live });
    // Nothing left to do: a new walk deletes nothing.
    expect(await purgeAll(DEFAULT_REGISTRATION_PURGE_BUDGET, shard)).toMatchObject({
      messages: 0,
      message_ids: 0,
    });
  }, 180_000);
});
