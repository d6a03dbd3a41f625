import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { runScheduledWork } from "../../src/scheduled";
import { purgeExpiredDeliveries } from "../../src/webhooks/purge";
import { freshAccount } from "../helpers";
import { createEndpoint, hookName, hookUrl } from "./support";

const DAY = 86_400_000;

async function insertDeliveries(account: string, endpointId: string, ages: number[], now: number) {
  const rows = ages.map((age, i) => [
    endpointId,
    now - age,
    `evt_purge${i}${crypto.randomUUID().slice(0, 8)}`,
    account,
  ]);
  await env.DB.prepare(
    `INSERT INTO webhook_deliveries (endpoint_id, event_occurred_at, event_id, account_id, event_type, status,
       attempts, first_attempt_at, last_attempt_at)
     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
            json_extract(value, '$[3]'), 'email.sent', 'succeeded', 1, ?2, ?2
     FROM json_each(?1)`,
  )
    .bind(JSON.stringify(rows), now)
    .run();
}

const remaining = async (endpointId: string, now: number) =>
  (
    await env.DB.prepare(
      "SELECT CAST((?2 - event_occurred_at) / 86400000 AS INTEGER) AS days FROM webhook_deliveries WHERE endpoint_id = ?1 ORDER BY 1",
    )
      .bind(endpointId, now)
      .all<{ days: number }>()
  ).results.map((r) => r.days);

describe("webhook deliveries purge", () => {
  it("removes deliveries older than their account's retention and every delivery of a deleted endpoint", async () => {
    const now = Date.now();
    const starter = freshAccount();
    const scale = freshAccount();
    await env.DB.prepare("INSERT INTO accounts (id, plan, created_at, updated_at) VALUES (?, 'scale', 0, 0)")
      .bind(scale)
      .run();
    const a = await createEndpoint(starter, { url: hookUrl(hookName()) });
    const b = await createEndpoint(scale, { url: hookUrl(hookName()) });
    const gone = "whk_00000000000000000000dead";
    await insertDeliveries(
      starter,
      a.id,
      [1, 2, 4, 10].map((d) => d * DAY + 1000),
      now,
    );
    await insertDeliveries(
      scale,
      b.id,
      [1, 10, 29, 31].map((d) => d * DAY + 1000),
      now,
    );
    await insertDeliveries(
      starter,
      gone,
      [0, 1].map((d) => d * DAY + 1000),
      now,
    );

    const result = await purgeExpiredDeliveries(env, now, {
      chunk: 1,
      rows: 1000,
      statements: 1000,
      timeMs: 60_000,
    });
    expect(result).toMatchObject({ complete: true, deleted: 5 });
    expect(await remaining(a.id, now)).toEqual([1, 2]);
    expect(await remaining(b.id, now)).toEqual([1, 10, 29]);
    expect(await remaining(gone, now)).toEqual([]);
  });

  it("stops at its budget and resumes where it stopped; the cron runs it", async () => {
    const now = Date.now();
    const account = freshAccount();
    const ep = await createEndpoint(account, { url: hookUrl(hookName()) });
    await insertDeliveries(
      account,
      ep.id,
      [5, 6, 7, 8].map((d) => d * DAY),
      now,
    );
    const first = await purgeExpiredDeliveries(env, now, {
      chunk: 1,
      rows: 2,
      statements: 1000,
      timeMs: 60_000,
    });
    expect(first).toMatchObject({ complete: false, deleted: 2 });
    await runScheduledWork(env, now);
    expect(await remaining(ep.id, now)).toEqual([]);
  });
});
