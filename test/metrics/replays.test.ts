import { describe, expect, it } from "vitest";
import { consume, event, eventMessage, eventsDb, freshAccount } from "../helpers";

/**
 * A replayed tracking token within its bucket carries the first hit's id but its own request time
 * (SPEC §5): the events INSERT drops it through the email index, and the rollups must drop it the
 * same way, or §15's counters would exceed what GET /v1/events returns.
 */

async function sums(account: string) {
  return eventsDb(account)
    .prepare(
      `SELECT SUM(opened) AS opened, SUM(unique_opened) AS unique_opened, SUM(clicked) AS clicked,
            SUM(unsubscribed) AS unsubscribed
       FROM metric_rollups WHERE account_id = ?`,
    )
    .bind(account)
    .first<Record<string, number>>();
}

describe("metrics of replayed tracking hits", () => {
  it("count an open, a click and an unsubscribe once however often the same id arrives at other times", async () => {
    const account = freshAccount();
    const base = Date.now() - 30_000;
    const hits = (["email.opened", "email.clicked", "email.unsubscribed"] as const).map((type, i) => ({
      type,
      id: `evt_replay${account.slice(-8)}${i}`,
    }));
    for (const offset of [0, 4_000, 9_000]) {
      await consume(
        hits.map((h) =>
          eventMessage(event({ account_id: account, type: h.type, id: h.id, occurred_at: base + offset })),
        ),
      );
    }
    const stored = await eventsDb(account)
      .prepare("SELECT COUNT(*) AS n FROM events WHERE account_id = ?")
      .bind(account)
      .first<{ n: number }>();
    expect(stored?.n).toBe(3);
    expect(await sums(account)).toEqual({ opened: 1, unique_opened: 1, clicked: 1, unsubscribed: 1 });
  });
});
