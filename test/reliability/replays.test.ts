import { describe, expect, it } from "vitest";
import type { QueueMessage } from "../../src/pipeline/messages";
import { REPLAY_BUCKET_MS, replayEventId } from "../../src/tracking/interaction";
import { tokenNonce } from "../../src/tracking/token";
import { call, consume, eventsDb, freshAccount, json, mintToken } from "../helpers";
import { serve, tokenFor, trackingRequest } from "../tracking/support";

/**
 * Finding 2 (SPEC §5 "Replays"): a token records at most one email.opened per minute, one
 * email.clicked per 10 seconds and one email.unsubscribed per day, however often it is requested.
 * Each test hands the consumer exactly what the routes queued, in separate batches and in one.
 */

/** Start inside a bucket with room to spare, so the requests of one test share it. */
async function freshBucket(ms: number) {
  const left = ms - (Date.now() % ms);
  if (left < 3000) await new Promise((r) => setTimeout(r, left + 50));
}

async function countOf(account: string, type: string) {
  const row = await eventsDb(account)
    .prepare("SELECT COUNT(*) AS n FROM events WHERE account_id = ? AND type = ?")
    .bind(account, type)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

async function requestTimes(path: string, times: number, init: Parameters<typeof trackingRequest>[1] = {}) {
  const queued: QueueMessage[] = [];
  for (let i = 0; i < times; i++) queued.push(...(await serve(trackingRequest(path, init))).queued);
  return queued;
}

const oneClick = {
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded" },
  body: "List-Unsubscribe=One-Click",
};

describe("replayed tracking tokens", () => {
  it("records one open per token per minute however often the pixel is fetched", async () => {
    const account = freshAccount();
    await freshBucket(REPLAY_BUCKET_MS["email.opened"]);
    const token = await tokenFor("open", { account_id: account });
    const queued = await requestTimes(`/o/${token}`, 25);
    // SPEC §18: repeats inside the bucket are dropped at the edge; only the first reaches the queue.
    expect(queued).toHaveLength(1);
    for (const message of queued.slice(0, 12)) await consume([message]); // one batch each
    await consume(queued.slice(12)); // and the rest in one batch
    expect(await countOf(account, "email.opened")).toBe(1);

    // Another token of the same email is another link: recorded on its own.
    const second = await tokenFor("open", { account_id: account });
    await consume(await requestTimes(`/o/${second}`, 3));
    expect(await countOf(account, "email.opened")).toBe(2);

    // The next minute's open of the first token is a new event.
    const [first] = queued;
    if (first?.type !== "event") throw new Error("expected an event");
    const later = first.event.occurred_at + REPLAY_BUCKET_MS["email.opened"];
    const nonce = tokenNonce(token) ?? "";
    await consume([
      {
        ...first,
        event: { ...first.event, occurred_at: later, id: replayEventId(nonce, "email.opened", later) },
      },
    ]);
    expect(await countOf(account, "email.opened")).toBe(3);
  });

  it("records one click per token per 10 seconds, and still redirects every time", async () => {
    const account = freshAccount();
    await freshBucket(REPLAY_BUCKET_MS["email.clicked"]);
    const token = await tokenFor("click", { account_id: account });
    const queued: QueueMessage[] = [];
    for (let i = 0; i < 5; i++) {
      const { res, queued: q } = await serve(trackingRequest(`/c/${token}`, { ip: `2001:db8:${i}::1` }));
      expect(res.status).toBe(302);
      queued.push(...q);
    }
    // Whatever addresses the repeats come from, one message reaches the queue (SPEC §18).
    expect(queued).toHaveLength(1);
    for (const message of queued) await consume([message]);
    expect(await countOf(account, "email.clicked")).toBe(1);
  });

  it("records one unsubscribe per token per day: a retried one-click POST neither doubles it nor restores a removed suppression", async () => {
    const account = freshAccount();
    // The day's bucket must not end between the first POST and its retries (UTC midnight).
    await freshBucket(REPLAY_BUCKET_MS["email.unsubscribed"]);
    const token = await tokenFor("unsubscribe", { account_id: account, recipient: "leaver@example.com" });
    const [first] = await requestTimes(`/u/${token}`, 1, oneClick);
    await consume([first]);
    expect(await countOf(account, "email.unsubscribed")).toBe(1);

    // The customer removes the suppression; then the mail provider retries its POST.
    const write = await mintToken(account, "suppressions:write suppressions:read");
    expect((await call("DELETE", "/v1/suppressions/leaver%40example.com", { token: write })).status).toBe(
      200,
    );
    const retries = await requestTimes(`/u/${token}`, 2, oneClick);
    expect(retries).toHaveLength(0); // dropped at the edge: this isolate queued today's already
    for (const message of retries) await consume([message]);
    expect(await countOf(account, "email.unsubscribed")).toBe(1);
    const entry = await call("GET", "/v1/suppressions/leaver%40example.com", { token: write });
    expect(entry.status).toBe(404);
    expect((await json(entry)).error.type).toBe("not_found");
  });

  it("derives the id from the token's nonce, the type and the bucket only", () => {
    const nonce = "00112233445566778899aabb";
    const t = Date.UTC(2026, 0, 1, 12, 0, 0);
    expect(replayEventId(nonce, "email.opened", t)).toBe(replayEventId(nonce, "email.opened", t + 59_999));
    expect(replayEventId(nonce, "email.opened", t)).not.toBe(
      replayEventId(nonce, "email.opened", t + 60_000),
    );
    expect(replayEventId(nonce, "email.clicked", t)).toBe(replayEventId(nonce, "email.clicked", t + 9_999));
    expect(replayEventId(nonce, "email.clicked", t)).not.toBe(
      replayEventId(nonce, "email.clicked", t + 10_000),
    );
    expect(replayEventId(nonce, "email.unsubscribed", t)).toBe(
      replayEventId(nonce, "email.unsubscribed", t + 11 * 3600_000 - 1),
    );
    expect(replayEventId(nonce, "email.opened", t)).not.toBe(replayEventId(nonce, "email.clicked", t));
    expect(replayEventId(nonce, "email.opened", t)).toMatch(/^evt_[0-9a-z]{8,64}$/);
  });
});
