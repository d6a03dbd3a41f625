import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Env } from "../src/env";
import { listEvents } from "../src/events/list";
import { totalKey } from "../src/lib/totals";
import { offsetPage } from "../src/store";
import { call, consume, event, eventMessage, freshAccount, json, mintToken } from "./helpers";

/**
 * SPEC §18 (finding 1): totals are counted once per paging chain, or at most once a minute per
 * account and query; never on every page.
 */

async function seed(account: string, n: number) {
  const now = Date.now();
  const records = Array.from({ length: n }, (_, i) =>
    event({ account_id: account, occurred_at: now - 60_000 - i * 1000 }),
  );
  for (let i = 0; i < records.length; i += 100)
    await consume(records.slice(i, i + 100).map((e) => eventMessage(e)));
}

describe("totals", () => {
  it("GET /v1/events count=true counts on the first page; later pages carry the total in the cursor", async () => {
    const account = freshAccount();
    await seed(account, 250);
    const e = env as unknown as Env;
    const first = await listEvents(e, account, new URLSearchParams("days=1&limit=100&count=true"));
    expect(first.total).toBe(250);
    expect(first.countRowsRead).toBeGreaterThan(0);
    const next = await listEvents(
      e,
      account,
      new URLSearchParams(`days=1&limit=100&count=true&after=${encodeURIComponent(first.next_cursor ?? "")}`),
    );
    expect(next.total).toBe(250);
    expect(next.countRowsRead).toBe(0);
    // Through the route the same: `total` on every page that asks for it.
    const token = await mintToken(account, "events:read");
    const page = await json(
      await call(
        "GET",
        `/v1/events?days=1&limit=100&count=true&after=${encodeURIComponent(first.next_cursor ?? "")}`,
        {
          token,
        },
      ),
    );
    expect(page.total).toBe(250);
    // A first page asked again within the minute is not counted again.
    const again = await listEvents(e, account, new URLSearchParams("days=1&limit=10&count=true"));
    expect(again.total).toBe(250);
    expect(again.countRowsRead).toBe(0);
  });

  it("Numonic and Unosend totals are counted at most once a minute per account and query", async () => {
    const account = freshAccount();
    await seed(account, 120);
    const now = Date.now();
    const query = (offset: number) => ({
      window: { start: now - 86_400_000, end: now },
      types: ["email.delivered" as const],
      emailId: null,
      limit: 50,
      offset,
      totalKey: totalKey(account, "numonic/events", [["type", "Delivery"]]),
    });
    const p1 = await offsetPage(env.DB, account, query(0));
    const p2 = await offsetPage(env.DB, account, query(50));
    expect(p1.total).toBe(120);
    expect(p2.total).toBe(120);
    // The second page read only its rows, not the window again.
    expect(p2.rowsRead).toBeLessThan(p1.rowsRead);
    expect(p2.rowsRead).toBeLessThanOrEqual(101 + 2);
  });
});
