import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { MAX_PENDING_PER_ENDPOINT } from "../../src/webhooks/replay";
import { call, freshAccount, json, mintToken } from "../helpers";
import { createEndpoint, event, hookName, hookUrl, storeEvents } from "./support";

/** SPEC §18: one replay in flight per endpoint, and at most 10,000 deliveries pending per endpoint. */

async function setup(n = 3) {
  const account = freshAccount();
  const t = Date.now();
  const events = Array.from({ length: n }, (_, i) =>
    event({ account_id: account, occurred_at: t - 60_000 - i }),
  );
  await storeEvents(events);
  const ep = await createEndpoint(account, { url: hookUrl(hookName()) });
  const token = await mintToken(account, "webhooks:write");
  const replay = (endpointId: string, ids: string[]) =>
    call("POST", `/v1/webhooks/${endpointId}/replay`, { token, body: { event_ids: ids } });
  return { account, ep, events, token, replay };
}

describe("replay caps", () => {
  it("answers a second replay of an endpoint 429 with Retry-After while the first is in flight", async () => {
    const { account, ep, events, replay } = await setup();
    const first = await replay(ep.id, [events[0]!.id]);
    expect(first.status).toBe(202);
    const second = await replay(ep.id, [events[1]!.id]);
    expect(second.status).toBe(429);
    expect(Number(second.headers.get("retry-after"))).toBeGreaterThan(0);
    expect((await json(second)).error.type).toBe("rate_limit_exceeded");
    // Another endpoint of the account is not held back.
    const other = await createEndpoint(account, { url: hookUrl(hookName()) });
    expect((await replay(other.id, [events[1]!.id])).status).toBe(202);
  });

  it("a replay that queues nothing does not hold the slot", async () => {
    const { ep, events, replay } = await setup();
    expect(await json(await replay(ep.id, ["evt_unknown0000"]))).toEqual({ queued: 0 });
    expect((await replay(ep.id, [events[0]!.id])).status).toBe(202);
  });

  it("refuses a replay that would take the endpoint past 10,000 pending deliveries, with 429", async () => {
    const { account, ep, events, replay } = await setup(2);
    // 9,999 deliveries already waiting for a retry.
    await env.DB.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?3)
       INSERT INTO webhook_deliveries (endpoint_id, event_occurred_at, event_id, account_id, event_type, status,
         attempts, first_attempt_at, last_attempt_at, next_attempt_at)
       SELECT ?1, 1000 + i, printf('evt_pend%06d', i), ?2, 'email.sent', 'pending', 1, 1, 1, 2 FROM n`,
    )
      .bind(ep.id, account, MAX_PENDING_PER_ENDPOINT - 1)
      .run();
    const over = await replay(
      ep.id,
      events.map((e) => e.id),
    );
    expect(over.status).toBe(429);
    expect(over.headers.get("retry-after")).toBe("300");
    expect((await json(over)).error.message).toContain("9,999 deliveries pending");
    // The refused replay freed its slot: one that fits goes.
    const fits = await replay(ep.id, [events[0]!.id]);
    expect(fits.status).toBe(202);
    expect(await json(fits)).toEqual({ queued: 1 });
  });
});
