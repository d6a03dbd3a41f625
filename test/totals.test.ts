import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Env } from "../src/env";
import { listEvents } from "../src/events/list";
import { totalKey } from "../src/lib/totals";
import { offsetPage } from "../src/store";
import { call, consume, event, eventMessage, eventsDb, freshAccount, json, mintToken } from "./helpers";

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
    const p1 = await offsetPage(eventsDb(account), account, query(0));
    const p2 = await offsetPage(eventsDb(account), account, query(50));
    expect(p1.total).toBe(120);
    expect(p2.total).toBe(120);
    // The second page read only its rows, not the window again.
    expect(p2.rowsRead).toBeLessThan(p1.rowsRead);
    expect(p2.rowsRead).toBeLessThanOrEqual(101 + 2);
  });

  it("the Numonic and Unosend suppression lists count their total at most once a minute per account and query", async () => {
    const account = freshAccount();
    const write = await mintToken(account, "suppressions:write suppressions:read");
    const add = async (email: string, reason?: string) =>
      expect(
        (await call("POST", "/compat/unosend/v1/suppressions", { token: write, body: { email, reason } }))
          .status,
      ).toBe(201);
    await add("ann@example.com");
    await add("bob@example.com", "complaint");
    const numonic = async () =>
      json(await call("GET", "/compat/numonic/api/v1/suppression?limit=10", { token: write }));
    const unosend = async (query = "") =>
      json(await call("GET", `/compat/unosend/v1/suppressions?per_page=10${query}`, { token: write }));
    expect((await numonic()).pagination.total).toBe(2);
    expect((await unosend()).meta.total).toBe(2);
    expect((await unosend("&reason=complaint")).meta.total).toBe(1);
    // A third entry: the pages show it at once, the totals are not counted again within the minute.
    await add("cat@example.com", "complaint");
    const n = await numonic();
    expect(n.data).toHaveLength(3);
    expect(n.pagination.total).toBe(2);
    const u = await unosend();
    expect(u.data).toHaveLength(3);
    expect(u.meta.total).toBe(2);
    expect((await unosend("&reason=complaint")).meta.total).toBe(1);
    // Another query (another reason) is its own total, counted now.
    expect((await unosend("&reason=manual")).meta.total).toBe(1);
  });
});
