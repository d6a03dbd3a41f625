import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/env";
import { listEvents } from "../../src/events/routes";
import { PAGE_ROW_BUDGET } from "../../src/store";
import { call, freshAccount, mintToken } from "../helpers";
import { hashedShard, measuringEnv, SHARDS, shardDbOf } from "./support";

/**
 * SPEC §17 "reading at most the stripes' sum of one page's budget" and §18 "10,000 D1 rows per
 * shard it touches": a rare filter over a striped account whose every stripe holds more than a
 * page's budget. Each stripe's scan stops at its own 10,000 rows (the control database's reads of
 * the request are counted apart), and paging to the end finds every match once.
 */

const PER_STRIPE = 14_000;

/** Events written straight to one shard (the consumer is not what this file measures), 2,000 a statement. */
async function bulkInsert(shard: number, account: string, rows: { id: string; at: number; type: string }[]) {
  for (let i = 0; i < rows.length; i += 2000) {
    await shardDbOf(shard)
      .prepare(
        `INSERT INTO events (account_id, occurred_at, id, type, email_id, recipient)
         SELECT ?1, json_extract(value, '$.at'), json_extract(value, '$.id'), json_extract(value, '$.type'),
                'email_stripe' || ?3, 'bulk@example.com'
         FROM json_each(?2)`,
      )
      .bind(account, JSON.stringify(rows.slice(i, i + 2000)), shard)
      .run();
  }
}

describe("a rare filter on a striped account", () => {
  it("reads at most one page's budget on each stripe, whatever the control database reads", async () => {
    const now = Date.now();
    const account = freshAccount("stripebudget");
    // Two stripes away from the account's hashed shard, which stays in its reads as `previous` until
    // the scheduled work finds it empty (as in the benchmark, which places accounts before ingest).
    const STRIPES = SHARDS.filter((s) => s !== hashedShard(account)).slice(0, 2);
    const admin = await mintToken("operator", "admin");
    const placed = await call("PUT", `/v1/admin/placements/${account}`, {
      token: admin,
      body: { shards: STRIPES },
    });
    expect(placed.status).toBe(200);
    const previous: number[] = (await placed.json<{ previous: number[] | null }>()).previous ?? [];
    expect(previous).toEqual([hashedShard(account)]);
    const touched = [...STRIPES, ...previous].map((s) => `EVENTS_${s}`);
    // Each stripe interleaves its events with the other's in time, and holds three complaints.
    const rare: string[] = [];
    for (const [k, shard] of STRIPES.entries()) {
      const marks = new Set([11, 9_500, PER_STRIPE - 4]);
      const rows = Array.from({ length: PER_STRIPE }, (_, i) => {
        const id = `evt_s${shard}_${String(i).padStart(6, "0")}`;
        if (marks.has(i)) rare.push(id);
        return {
          id,
          at: now - 1000 - (2 * i + k) * 1000,
          type: marks.has(i) ? "email.complained" : "email.delivered",
        };
      });
      await bulkInsert(shard, account, rows);
    }
    const expected = [...rare].sort((a, b) => {
      const at = (id: string) => {
        const [, s, i] = /^evt_s(\d)_(\d+)$/.exec(id) ?? [];
        return 2 * Number(i) + STRIPES.indexOf(Number(s));
      };
      return at(a) - at(b);
    });

    const seen: string[] = [];
    const pages: Record<string, number>[] = [];
    let after = "";
    for (let n = 0; n < 50; n++) {
      const measured = measuringEnv(env as Env);
      const page = await listEvents(
        measured.env,
        account,
        new URLSearchParams(`days=1&event_type=email.complained&limit=100${after}`),
        now,
      );
      seen.push(...page.data.map((e) => e.id));
      const perBinding = Object.fromEntries(measured.rowsRead);
      pages.push(perBinding);
      for (const binding of touched)
        expect(perBinding[binding] ?? 0, `page ${n}: ${JSON.stringify(perBinding)}`).toBeLessThanOrEqual(
          PAGE_ROW_BUDGET,
        );
      // No other shard is read, and the page's own count is the shards' reads, the control database apart.
      for (const name of Object.keys(perBinding)) expect(["DB", ...touched]).toContain(name);
      expect(page.rowsRead).toBe(touched.reduce((sum, b) => sum + (perBinding[b] ?? 0), 0));
      if (!page.has_more) break;
      after = `&after=${page.next_cursor}`;
    }
    expect(seen).toEqual(expected);
    // The first page spent each stripe's whole budget: the bound is what stopped it.
    const first = pages[0] ?? {};
    for (const shard of STRIPES) expect(first[`EVENTS_${shard}`]).toBeGreaterThan(PAGE_ROW_BUDGET - 100);
  });
});
