import { describe, expect, it } from "vitest";
import bounceTransient from "../../../shared/fixtures/ses/event-publishing/bounce-transient.json?raw";
import delivery from "../../../shared/fixtures/ses/event-publishing/delivery.json?raw";
import type { EventRecord } from "../../src/events/record";
import { parseSesMessage } from "../../src/ses/parse";
import { SOFT_BOUNCE_MS } from "../../src/suppressions/soft-bounce";
import { consume, eventMessage, eventsDb, freshAccount } from "../helpers";
import { d1Rows, mirrorOf, suppressedReasons, tokensFor } from "./support";

/** SPEC §10's soft_bounce rule, from the real SES transient-bounce sample (shared/fixtures/ses). */

const HOUR = 3600_000;

/** The fixture's events for one account, at a given time, with its own SNS MessageId. */
async function sesEvents(raw: string, account: string, at: number, snsId: string): Promise<EventRecord[]> {
  const record = JSON.parse(raw);
  const iso = new Date(at).toISOString();
  record.mail.timestamp = iso;
  if (record.bounce) record.bounce.timestamp = iso;
  if (record.delivery) record.delivery.timestamp = iso;
  const parsed = await parseSesMessage(JSON.stringify(record), { snsMessageId: snsId });
  if (parsed.kind !== "events") throw new Error("fixture not parsed");
  return parsed.items.map((i) => ({ ...i.event, account_id: account }));
}

async function ingest(raw: string, account: string, at: number, snsId: string) {
  const events = await sesEvents(raw, account, at, snsId);
  await consume(events.map((e) => eventMessage(e)));
  return events;
}

describe("the soft_bounce rule", () => {
  it("suppresses for 72 hours after 5 transient bounces in a row within 7 days, once", async () => {
    const account = freshAccount();
    const { send } = await tokensFor(account);
    const now = Date.now();
    let last: EventRecord[] = [];
    for (let i = 4; i >= 1; i -= 1)
      await ingest(bounceTransient, account, now - i * HOUR, `sns-tb-${account}-${i}`);
    const recipient = "user@company.com";
    expect(await suppressedReasons(send, [recipient])).toEqual({ [recipient]: null });
    last = await ingest(bounceTransient, account, now - 1000, `sns-tb-${account}-0`);
    expect(last[0]?.bounce_type).toBe("transient");

    expect(await suppressedReasons(send, [recipient])).toEqual({ [recipient]: "soft_bounce" });
    const rows = await eventsDb(account)
      .prepare("SELECT reason, email_id, suppressed_at, expires_at FROM suppressions WHERE account_id = ?1")
      .bind(account)
      .all();
    expect(rows.results).toEqual([
      {
        reason: "soft_bounce",
        email_id: last[0]?.email_id,
        suppressed_at: now - 1000,
        expires_at: now - 1000 + SOFT_BOUNCE_MS,
      },
    ]);
    expect((await mirrorOf(account, recipient))?.[0]).toMatchObject({
      expires_at: now - 1000 + SOFT_BOUNCE_MS,
    });

    // A redelivery and a sixth bounce change nothing: one entry, one suppression.created.
    await consume(
      last.map((e) => eventMessage(e)),
      2,
    );
    await ingest(bounceTransient, account, now - 500, `sns-tb-${account}-6`);
    const changes = await eventsDb(account)
      .prepare("SELECT type, reason FROM suppression_changes WHERE account_id = ?1")
      .bind(account)
      .all();
    expect(changes.results).toEqual([{ type: "suppression.created", reason: "soft_bounce" }]);
  });

  it("does not suppress when a delivery comes between, or when the run is older than 7 days", async () => {
    const now = Date.now();
    const recipient = "user@company.com";

    const interrupted = freshAccount();
    for (let i = 5; i >= 3; i -= 1)
      await ingest(bounceTransient, interrupted, now - i * HOUR, `sns-a-${interrupted}-${i}`);
    const delivered = await sesEvents(delivery, interrupted, now - 2.5 * HOUR, `sns-d-${interrupted}`);
    await consume(delivered.map((e) => eventMessage({ ...e, recipient })));
    for (let i = 2; i >= 1; i -= 1)
      await ingest(bounceTransient, interrupted, now - i * HOUR, `sns-a-${interrupted}-${i}`);
    expect(await d1Rows(interrupted)).toEqual([]);

    const stale = freshAccount();
    await ingest(bounceTransient, stale, now - 8 * 24 * HOUR, `sns-s-${stale}-old`);
    for (let i = 4; i >= 1; i -= 1)
      await ingest(bounceTransient, stale, now - i * HOUR, `sns-s-${stale}-${i}`);
    expect(await d1Rows(stale)).toEqual([]);
    // A fifth within the window completes the run.
    await ingest(bounceTransient, stale, now - 1000, `sns-s-${stale}-0`);
    expect((await d1Rows(stale)).map((r) => r.reason)).toEqual(["soft_bounce"]);
  });
});
