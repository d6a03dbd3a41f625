import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { blankEvent, type EventRecord } from "../../src/events/record";
import { DAY_MS } from "../../src/lib/params";
import { runScheduledWork } from "../../src/scheduled";
import { call, consume, eventMessage, freshAccount, json, mintToken } from "../helpers";
import { hashedShard, otherShard, shardDbOf } from "./support";

/**
 * SPEC §17 "Moving without copying": an account moved while a client pages through its events.
 * Every cursor stays valid, no event is repeated or skipped, reads merge the new and the previous
 * placement until the previous one holds nothing of the account, the scheduled work then drops it,
 * and suppressions answer the same before, during and after.
 */

const NOW = Date.now();

function mail(account: string, n: number, from: number, suffix: string, step = 3_600_000): EventRecord[] {
  return Array.from({ length: n }, (_, i) =>
    blankEvent({
      id: `evt_move${suffix}${String(i).padStart(3, "0")}`,
      account_id: account,
      type: i % 3 === 0 ? "email.sent" : "email.delivered",
      occurred_at: from - i * step,
      email_id: `email_move_${suffix}_${i % 17}`,
      recipient: `r${i % 5}@example.com`,
    }),
  );
}

async function suppressionsView(account: string) {
  const token = await mintToken(account, "suppressions:read send");
  const list = await json(await call("GET", "/v1/suppressions?limit=100", { token }));
  const one = await call("GET", "/v1/suppressions/r1%40example.com", { token });
  const check = await json(
    await call("POST", "/v1/suppressions/check", {
      token,
      body: { emails: ["r0@example.com", "r1@example.com", "r2@example.com"] },
    }),
  );
  return { list: list.data, one: [one.status, await one.json()], check };
}

describe("moving an account in the middle of paging", () => {
  it("keeps every cursor valid, merges until the previous shard empties, then drops it", async () => {
    const account = freshAccount("move");
    const admin = await mintToken("operator", "admin");
    await call("PUT", `/v1/accounts/${account}`, { token: admin, body: { plan: "scale" } });
    const before = hashedShard(account);
    const after = otherShard(before);

    // 40 events over the last days on the hashed shard, and two suppressions.
    const old = mail(account, 40, NOW - 2 * 3_600_000, "old");
    await consume(old.map((e) => eventMessage(e)));
    const bounce = blankEvent({
      id: "evt_movebounce",
      account_id: account,
      type: "email.bounced",
      occurred_at: NOW - 30 * 60_000,
      email_id: "email_move_b",
      recipient: "r1@example.com",
    });
    await consume([
      eventMessage({ ...bounce, bounce_type: "permanent" }, { reason: "hard_bounce", topic: null }),
    ]);
    const writer = await mintToken(account, "suppressions:write");
    expect((await call("PUT", "/v1/suppressions/r2%40example.com", { token: writer, body: {} })).status).toBe(
      200,
    );
    const suppressionsBefore = await suppressionsView(account);
    expect(suppressionsBefore.list, JSON.stringify(suppressionsBefore)).toHaveLength(2);

    const token = await mintToken(account, "events:read");
    const query = `start=${new Date(NOW - 20 * DAY_MS).toISOString()}&end=${new Date(NOW).toISOString()}&limit=6`;
    const page = async (after?: string) =>
      json(
        await call("GET", `/v1/events?${query}${after ? `&after=${encodeURIComponent(after)}` : ""}`, {
          token,
        }),
      );
    const seen: string[] = [];
    let current = await page();
    seen.push(...current.data.map((e: { id: string }) => e.id));
    current = await page(current.next_cursor);
    seen.push(...current.data.map((e: { id: string }) => e.id));
    const cursor = current.next_cursor as string;
    const lowest = current.data.at(-1).occurred_at as string;

    // The move: new writes go to the new shard at once.
    const moved = await json(
      await call("PUT", `/v1/admin/placements/${account}`, { token: admin, body: { shards: [after] } }),
    );
    expect(moved).toMatchObject({ shards: [after], previous: [before] });
    expect(await suppressionsView(account)).toEqual(suppressionsBefore);

    // Late arrivals below the cursor, and new mail above the first page (paging down never meets
    // it), both on the new shard.
    const late = mail(account, 10, Date.parse(lowest) - 1_800_000, "late");
    const fresh = mail(account, 3, NOW - 60_000, "fresh", 1_000);
    await consume([...late, ...fresh].map((e) => eventMessage(e)));
    const onNew = await shardDbOf(after)
      .prepare("SELECT COUNT(*) AS n FROM events WHERE account_id = ?")
      .bind(account)
      .first<number>("n");
    expect(onNew).toBe(13);

    // The cursor issued before the move continues.
    current = await page(cursor);
    for (;;) {
      seen.push(...current.data.map((e: { id: string }) => e.id));
      if (!current.has_more) break;
      current = await page(current.next_cursor);
    }
    // Every event below the first page's top exactly once, from both shards: nothing repeated or skipped.
    expect(new Set(seen).size).toBe(seen.length);
    expect([...seen].sort()).toEqual([...old, bounce, ...late].map((e) => e.id).sort());

    // The previous shard still holds the account: the scheduled work keeps it.
    await runScheduledWork(env, Date.now());
    const during = await json(await call("GET", `/v1/admin/placements/${account}`, { token: admin }));
    expect(during.previous).toEqual([before]);
    expect(await suppressionsView(account)).toEqual(suppressionsBefore);

    // 401 days on, the purges have left nothing on the previous shard: the scheduled work drops it.
    await runScheduledWork(env, Date.now() + 401 * DAY_MS);
    const drained = await json(await call("GET", `/v1/admin/placements/${account}`, { token: admin }));
    expect(drained).toMatchObject({ shards: [after], previous: null });
    expect(await suppressionsView(account)).toEqual(suppressionsBefore);
  });

  it("stores a redelivered event once and enriches an email registered before the move", async () => {
    const account = freshAccount("move");
    const admin = await mintToken("operator", "admin");
    const before = hashedShard(account);
    const after = otherShard(before);
    const sent = blankEvent({
      id: "evt_moveredelivered",
      account_id: account,
      type: "email.sent",
      occurred_at: NOW - 60_000,
      email_id: "email_move_reg",
      recipient: "r@example.com",
    });
    await consume([
      {
        type: "register",
        account_id: account,
        registered_at: NOW - 120_000,
        message: {
          email_id: "email_move_reg",
          message_id: null,
          from: "news@mail.example.com",
          from_domain: "mail.example.com",
          subject: "Before the move",
          topic: null,
          campaign: "moved",
          template_id: null,
          tags: ["kept"],
        },
      },
      eventMessage(sent),
    ]);
    await call("PUT", `/v1/admin/placements/${account}`, { token: admin, body: { shards: [after] } });
    // SES redelivers the send, and the delivery arrives, both after the move.
    const delivered = blankEvent({
      ...sent,
      id: "evt_movedelivered",
      type: "email.delivered",
      occurred_at: NOW - 30_000,
    });
    await consume([eventMessage(sent), eventMessage(delivered)], 2);
    const token = await mintToken(account, "events:read");
    const page = await json(await call("GET", "/v1/events?limit=10&count=true", { token }));
    expect(page.data.map((e: { id: string }) => e.id)).toEqual(["evt_movedelivered", "evt_moveredelivered"]);
    expect(page.total).toBe(2);
    expect(page.data[0]).toMatchObject({ campaign: "moved", subject: "Before the move", tags: ["kept"] });
  });
});
