import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/env";
import { ApiError } from "../../src/lib/errors";
import { accountShards } from "../../src/shards/route";
import { replay } from "../../src/webhooks/replay";
import { getEndpoint } from "../../src/webhooks/store";
import { eventsBindingOf, eventsDb, freshAccount, rollUpHours } from "../helpers";
import { measuringEnv } from "../shards/support";
import { createEndpoint, hookName, hookUrl } from "./support";

/**
 * SPEC §18 for POST /v1/webhooks/{id}/replay by window: a window of more than 10,000 events is
 * refused from the hourly rollups (a row per hour and the edge hours' events), not by reading its
 * 10,001st event; where the rollups cannot answer (an erasure in the window) the capped read of
 * the events still refuses it.
 */

const e = env as unknown as Env;
const HOUR = 3_600_000;

/** The env with every D1 binding summing D1's rows_read, and the rows read on the account's shard. */
function countingEnv(accountId: string) {
  const measured = measuringEnv(e);
  return {
    env: measured.env,
    total: {
      get rowsRead() {
        return measured.rowsRead.get(eventsBindingOf(accountId)) ?? 0;
      },
    },
  };
}

/** `n` sent events, one every 3 seconds back from `newest`, straight into D1 with their hourly rollups. */
async function seed(accountId: string, n: number, newest: number) {
  const db = eventsDb(accountId);
  await db
    .prepare(
      `WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < ?3 - 1)
       INSERT INTO events (account_id, occurred_at, id, type, email_id, recipient)
       SELECT ?1, ?2 - i * 3000, printf('evt_win%08d', i), 'email.sent', 'email_win', 'r@example.com' FROM k`,
    )
    .bind(accountId, newest, n)
    .run();
  await rollUpHours(db, accountId);
}

async function setUp(n: number) {
  const account = freshAccount("rwin");
  const now = Date.now();
  await seed(account, n, now - 60_000);
  const created = await createEndpoint(account, { url: hookUrl(hookName()) });
  const endpoint = await getEndpoint(e, account, created.id);
  if (!endpoint) throw new Error("no endpoint");
  // The window reaches past the oldest event and ends between events, in no hour's boundary.
  const window = { start: now - 12 * HOUR - 17 * 60_000, end: now - 7_000 };
  return { account, now, endpoint, window };
}

async function refusal(promise: Promise<unknown>): Promise<ApiError> {
  const err = await promise.then(
    () => null,
    (error: unknown) => error,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

describe("a replay window past 10,000 events", () => {
  it("is refused from the hourly rollups, reading a fraction of its events", async () => {
    const { account, now, endpoint, window } = await setUp(12_000);
    expect(await accountShards(e, account)).toMatchObject({ read: [expect.any(Number)] });
    const counted = countingEnv(account);
    const err = await refusal(
      replay(counted.env, endpoint, { kind: "window", ...window, eventTypes: null }, now),
    );
    expect(err).toMatchObject({ type: "validation_error", param: "start" });
    // 10 whole hours' rows and the two edge hours' events (at most 1,200 each), not 10,001 events.
    expect(counted.total.rowsRead).toBeGreaterThan(0);
    expect(counted.total.rowsRead).toBeLessThan(3_000);
  });

  it("counts only the replayed types: the same window of opens is within the limit", async () => {
    const { now, endpoint, window } = await setUp(12_000);
    const queued = await replay(
      e,
      endpoint,
      { kind: "window", ...window, eventTypes: ["email.opened"] },
      now,
    );
    expect(queued).toBe(0);
  });

  it("is refused by reading its events while an erasure may have removed some the rollups still count", async () => {
    const { account, now, endpoint, window } = await setUp(12_000);
    await e.DB.prepare(
      `INSERT INTO erasures (id, account_id, status, email_hash, removed, created_at, completed_at)
       VALUES (?, ?, 'running', 'x', '{}', ?, NULL)`,
    )
      .bind(`era_${account}`, account, now)
      .run();
    const counted = countingEnv(account);
    const err = await refusal(
      replay(counted.env, endpoint, { kind: "window", ...window, eventTypes: null }, now),
    );
    expect(err).toMatchObject({ type: "validation_error", param: "start" });
    expect(counted.total.rowsRead).toBeGreaterThan(10_000);
  });
});
