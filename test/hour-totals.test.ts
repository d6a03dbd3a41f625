import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { listNumonicEvents } from "../src/compat/numonic/routes";
import { openSparkPostPage, sparkPostQueryFrom } from "../src/compat/sparkpost/query";
import { listUnosendEvents } from "../src/compat/unosend/routes";
import type { Env } from "../src/env";
import { createErasure, runErasure } from "../src/erasures/run";
import { windowTotal } from "../src/events/hour-reads";
import { listEvents } from "../src/events/list";
import type { EventType } from "../src/events/record";
import { accountShards } from "../src/shards/route";
import { countByHours, countMatches, hourSplit, locate, PAGE_ROW_BUDGET, typeMatch } from "../src/store";
import {
  call,
  consume,
  event,
  eventMessage,
  eventsDb,
  freshAccount,
  mintToken,
  rollUpHours,
} from "./helpers";
import { shardDbOf } from "./shards/support";

/**
 * SPEC §18 "One request reads at most 10,000 D1 rows per shard it touches" for totals and offset
 * pages: a total filtered only by the window and event types is the hourly rollups' counters of the
 * window's whole hours plus an exact count of its partial edge hours (store/hour-totals.ts), and a
 * Numonic or Unosend page is located by those hours instead of walking every row before it
 * (store/offset-page.ts). Both fall back to the events' own count after an erasure (SPEC §20).
 */

const e = env as unknown as Env;
const HOUR = 3_600_000;
const TYPES: EventType[] = [
  "email.sent",
  "email.delivered",
  "email.opened",
  "email.delivered",
  "email.clicked",
  "email.bounced",
  "email.opened",
  "email.complained",
  "email.delayed",
  "email.failed",
];

async function place(account: string, shards: number[]) {
  const admin = await mintToken("operator", "admin");
  expect(
    (await call("PUT", `/v1/admin/placements/${account}`, { token: admin, body: { shards } })).status,
  ).toBe(200);
}

/** Events straight into a shard, 2,000 a statement (far faster than through the consumer). */
async function insertEvents(
  db: D1Database,
  account: string,
  rows: { id: string; at: number; type: EventType }[],
  emailId: string,
  recipient: string,
) {
  for (let i = 0; i < rows.length; i += 2000) {
    await db
      .prepare(
        `INSERT INTO events (account_id, occurred_at, id, type, email_id, recipient)
         SELECT ?1, json_extract(value, '$.at'), json_extract(value, '$.id'), json_extract(value, '$.type'), ?3, ?4
         FROM json_each(?2)`,
      )
      .bind(account, JSON.stringify(rows.slice(i, i + 2000)), emailId, recipient)
      .run();
  }
}

interface Seeded {
  at: number;
  type: EventType;
  recipient: string;
}

describe("totals by the hourly rollups", () => {
  const now = Date.now();
  const account = freshAccount("hours");
  const seeded: Seeded[] = [];
  let shards: number[] = [];

  beforeAll(async () => {
    await place(account, [1, 2, 3]);
    // 300 events through the consumer (which writes the rollups), one every 4 minutes over 20 hours,
    // on 37 emails striped over three shards.
    const records = Array.from({ length: 300 }, (_, i) => {
      const type = TYPES[i % TYPES.length] as EventType;
      const recipient = i % 23 === 0 ? "ann@example.com" : `user${i % 7}@example.com`;
      seeded.push({ at: now - 30 * 60_000 - i * 4 * 60_000, type, recipient });
      return event({
        account_id: account,
        type,
        email_id: `email_h${i % 37}`,
        recipient,
        occurred_at: now - 30 * 60_000 - i * 4 * 60_000,
      });
    });
    for (let i = 0; i < records.length; i += 50)
      await consume(records.slice(i, i + 50).map((r) => eventMessage(r)));
    shards = [...(await accountShards(e, account)).read];
    // Its stripes, and the hashed shard it was placed away from when that is another one.
    expect(shards).toEqual(expect.arrayContaining([1, 2, 3]));
  });

  /** Windows with partial hours at both edges (and one inside a single hour). */
  const windows = () => [
    { start: now - 17 * HOUR - 17 * 60_000, end: now - HOUR - 42 * 60_000 },
    { start: now - 21 * HOUR, end: now },
    { start: now - 5 * HOUR - 50 * 60_000, end: now - 5 * HOUR - 10 * 60_000 },
  ];
  const typeSets: EventType[][] = [
    ["email.delivered"],
    ["email.bounced", "email.complained"],
    ["email.opened", "email.clicked", "email.sent", "email.delayed", "email.failed"],
  ];
  /** The reference: each shard's COUNT of the window's events of those types, summed. */
  const exactCount = async (w: { start: number; end: number }, types: readonly EventType[]) =>
    (
      await Promise.all(
        shards.map((s) => countMatches(shardDbOf(s), account, w, { kind: "time" }, typeMatch(types))),
      )
    ).reduce((n, c) => n + c.total, 0);
  /** Rows an hour-based count may read: every shard's hour rows in the window, and the edges' events. */
  const bound = (w: { start: number; end: number }) => {
    const first = Math.ceil(w.start / HOUR) * HOUR;
    const last = Math.floor(w.end / HOUR) * HOUR;
    const hours = Math.max(0, (last - first) / HOUR);
    const edgeEvents = seeded.filter(
      (s) => s.at >= w.start && s.at < w.end && (s.at < first || s.at >= last || first >= last),
    ).length;
    // Each statement also reads the row its range stops at.
    return shards.length * hours + edgeEvents + 3 * shards.length;
  };

  it("equal the events' exact count on a striped account, for windows with partial edge hours and several types", async () => {
    for (const w of windows()) {
      for (const types of typeSets) {
        const want = await exactCount(w, types);
        expect(want).toBeGreaterThan(0);
        const byHours = await windowTotal(e, shards, account, w, { types, where: null }, () => {
          throw new Error("the exact count is the fallback only");
        });
        expect(byHours).toMatchObject({ total: want, byHours: true });
        expect(byHours.rowsRead).toBeLessThanOrEqual(bound(w));
      }
    }
  });

  it("answer count=true and SparkPost total_count reading hours and edges, not the window's events", async () => {
    const [w] = windows();
    if (!w) throw new Error("no window");
    const range = `start=${new Date(w.start).toISOString()}&end=${new Date(w.end).toISOString()}`;
    const page = await listEvents(
      e,
      account,
      new URLSearchParams(`${range}&event_type=email.bounced,email.complained&count=true&limit=1`),
      now,
    );
    expect(page.total).toBe(await exactCount(w, ["email.bounced", "email.complained"]));
    const inWindow = seeded.filter((s) => s.at >= w.start && s.at < w.end).length;
    expect(page.countRowsRead).toBeLessThanOrEqual(bound(w));
    expect(page.countRowsRead).toBeLessThan(inWindow);

    const query = sparkPostQueryFrom(
      new URLSearchParams(
        `events=bounce,spam_complaint,delivery&from=${new Date(w.start).toISOString()}&to=${new Date(w.end).toISOString()}`,
      ),
    );
    const sp = await openSparkPostPage(e, account, query, now);
    expect(sp.totalCount).toBe(await exactCount(w, ["email.bounced", "email.complained", "email.delivered"]));
    expect(sp.countRowsRead).toBeLessThanOrEqual(bound(w));
    expect(sp.countRowsRead).toBeLessThan(inWindow);
  });

  it("count several recipients through their index, not the window (SparkPost total_count)", async () => {
    const w = { start: now - 20 * HOUR - 30 * 60_000, end: now - 10 * 60_000 };
    const asked = ["user1@example.com", "user2@example.com", "nobody@example.com"];
    const query = sparkPostQueryFrom(
      new URLSearchParams(
        `recipients=${asked.join(",")}&from=${new Date(w.start).toISOString()}&to=${new Date(w.end).toISOString()}`,
      ),
    );
    const sp = await openSparkPostPage(e, account, query, now);
    const inWindow = seeded.filter((s) => s.at >= w.start && s.at < w.end);
    const expected = inWindow.filter((s) => asked.includes(s.recipient)).length;
    expect(expected).toBeGreaterThan(0);
    expect(sp.totalCount).toBe(expected);
    // Each shard reads the asked recipients' events, its list of three and the row past each seek,
    // never the window's rows.
    expect(sp.countRowsRead).toBeLessThanOrEqual(expected + shards.length * (2 * asked.length + 2));
    expect(sp.countRowsRead).toBeLessThan(inWindow.length / 2);
  });

  it("fall back to the events' count after an erasure removed events in the window", async () => {
    const w = { start: now - 20 * HOUR - 30 * 60_000, end: now - 10 * 60_000 };
    const types: EventType[] = ["email.sent", "email.opened", "email.delivered"];
    const before = await exactCount(w, types);
    const created = await createErasure(e, account, "ann@example.com", Date.now());
    expect((await runErasure(e, created.id))?.events).toBeGreaterThan(0);
    const erased = before - (await exactCount(w, types));
    expect(erased).toBeGreaterThan(0);
    // The rollups still count the erased events of the window's whole hours (SPEC §20: "Rollup counts stay").
    const hours = await Promise.all(shards.map((s) => countByHours(shardDbOf(s), account, w, types)));
    expect(hours.reduce((n, c) => n + c.total, 0)).toBeGreaterThan(before - erased);
    // The totals count the events instead.
    const total = await windowTotal(e, shards, account, w, { types, where: null }, (db, range) =>
      countMatches(db, account, range, { kind: "time" }, typeMatch(types)),
    );
    expect(total).toMatchObject({ total: before - erased, byHours: false });
    const page = await listEvents(
      e,
      account,
      new URLSearchParams(
        `start=${new Date(w.start).toISOString()}&end=${new Date(w.end).toISOString()}&event_type=${types.join(",")}&count=true`,
      ),
      now,
    );
    expect(page.total).toBe(before - erased);
    // A window that starts after the erasure completed counts by the hours again.
    const later = { start: Date.now() + 1, end: Date.now() + 2 * HOUR };
    expect(
      (await windowTotal(e, shards, account, later, { types, where: null }, () => Promise.reject())).byHours,
    ).toBe(true);
  });
});

describe("offset pages located by the hourly rollups", () => {
  const now = Date.now();
  const account = freshAccount("deep");
  /** Per shard: 12,000 events over 30 hours, mostly opens; a delivery every 50th, a complaint every 200th. */
  const PER_SHARD = 12_000;
  const rows: { id: string; at: number; type: EventType }[] = [];

  beforeAll(async () => {
    await place(account, [1, 2]);
    for (const [k, shard] of [1, 2].entries()) {
      const mine = Array.from({ length: PER_SHARD }, (_, i) => ({
        id: `evt_s${shard}_${String(i).padStart(6, "0")}`,
        at: now - 60_000 - i * 9000 - k * 4500,
        type: (i % 200 === 7
          ? "email.complained"
          : i % 50 === 3
            ? "email.delivered"
            : "email.opened") as EventType,
      }));
      rows.push(...mine);
      const db = shardDbOf(shard);
      await insertEvents(db, account, mine, `email_deep_${shard}`, "deep@example.com");
      await rollUpHours(db, account);
    }
    rows.sort((a, b) => b.at - a.at || (a.id < b.id ? 1 : -1));
  });

  /** The page as the slow path defines it: the matches newest first, `offset` skipped. */
  const slowPage = (types: EventType[], offset: number, limit: number) => {
    const matches = rows.filter((r) => types.includes(r.type));
    return { ids: matches.slice(offset, offset + limit).map((r) => r.id), total: matches.length };
  };

  it("a Numonic page deep in a sparse type reads at most 10,000 rows per shard and is the slow path's page", async () => {
    for (const [type, types, page, limit] of [
      ["Complaint", ["email.complained"], 11, 10],
      [undefined, ["email.delivered", "email.bounced", "email.complained", "email.suppressed"], 11, 50],
    ] as const) {
      const want = slowPage([...types], (page - 1) * limit, limit);
      // The slow path walks this many rows on each shard before the page ends.
      const deepest = rows.findIndex((r) => r.id === want.ids.at(-1));
      expect(deepest / 2).toBeGreaterThan(PAGE_ROW_BUDGET);
      const answer = await listNumonicEvents(e, account, { ...(type ? { type } : {}), page, limit }, now);
      expect(answer.body.data.events.map((ev) => ev.id)).toEqual(want.ids);
      expect(answer.body.data.pagination.total).toBe(want.total);
      expect(answer.short).toBe(false);
      // Its stripes, and the hashed shard it was placed away from (read until it holds nothing).
      expect(answer.shardRowsRead.length).toBeGreaterThanOrEqual(2);
      for (const read of answer.shardRowsRead) expect(read).toBeLessThanOrEqual(PAGE_ROW_BUDGET);
    }
  });

  it("a Unosend offset page the same, and an offset past the total is empty within the budget", async () => {
    const want = slowPage(["email.complained"], 100, 10);
    const answer = await listUnosendEvents(
      e,
      account,
      { event_type: "complained", days: 2, limit: 10, offset: 100 },
      now,
    );
    expect(answer.body.data.data.map((ev) => ev.id)).toEqual(want.ids);
    expect(answer.body.data.pagination).toMatchObject({ total: want.total, offset: 100, has_more: true });
    for (const read of answer.shardRowsRead) expect(read).toBeLessThanOrEqual(PAGE_ROW_BUDGET);

    const past = await listUnosendEvents(
      e,
      account,
      { event_type: "complained", days: 2, limit: 10, offset: 9990 },
      now,
    );
    expect(past.body.data.data).toEqual([]);
    expect(past.body.data.pagination).toMatchObject({ total: want.total, has_more: false });
    for (const read of past.shardRowsRead) expect(read).toBeLessThanOrEqual(PAGE_ROW_BUDGET);
  });

  it("an hour too dense for the budget answers a short page: the slow path's rows up to where it stopped", async () => {
    const dense = freshAccount("dense");
    // 30,000 events in one hour on one shard, 30 complaints spread through it.
    const hour = Math.floor((now - 2 * HOUR) / HOUR) * HOUR;
    const mine = Array.from({ length: 30_000 }, (_, i) => ({
      id: `evt_d_${String(i).padStart(6, "0")}`,
      at: hour + HOUR - 1 - i * 100,
      type: (i % 1000 === 500 ? "email.complained" : "email.opened") as EventType,
    }));
    const db = eventsDb(dense);
    await insertEvents(db, dense, mine, "email_dense", "dense@example.com");
    await rollUpHours(db, dense);
    const complaints = mine.filter((r) => r.type === "email.complained").map((r) => r.id);
    // The first page of 15 complaints needs 14,500 rows walked: the budget stops it at 10.
    const answer = await listNumonicEvents(e, dense, { type: "Complaint", page: 1, limit: 15 }, now);
    for (const read of answer.shardRowsRead) expect(read).toBeLessThanOrEqual(PAGE_ROW_BUDGET);
    expect(answer.short).toBe(true);
    expect(answer.body.data.pagination.total).toBe(30);
    const ids = answer.body.data.events.map((ev) => ev.id);
    expect(ids.length).toBeGreaterThan(0);
    expect(ids.length).toBeLessThan(15);
    expect(ids).toEqual(complaints.slice(0, ids.length));
  });
});

describe("hourSplit and locate (pure)", () => {
  const H = HOUR;
  it.each([
    [
      { start: 10 * H + 5, end: 14 * H + 7 },
      { start: 11 * H, end: 14 * H },
      [14 * H, 14 * H + 7],
      [10 * H + 5, 11 * H],
    ],
    [{ start: 10 * H, end: 14 * H }, { start: 10 * H, end: 14 * H }, null, null],
    [{ start: 10 * H + 5, end: 11 * H + 7 }, null, [10 * H + 5, 11 * H + 7], null],
    [{ start: 10 * H + 5, end: 10 * H + 7 }, null, [10 * H + 5, 10 * H + 7], null],
  ])("cuts %o at whole hours", (window, hours, newest, oldest) => {
    const split = hourSplit(window);
    expect(split.hours).toEqual(hours);
    expect(split.newest && [split.newest.start, split.newest.end]).toEqual(newest);
    expect(split.oldest && [split.oldest.start, split.oldest.end]).toEqual(oldest);
  });

  const window = { start: 10 * H + 5, end: 14 * H + 7 };
  const hours = { start: 11 * H, end: 14 * H };
  // Two shards: hour 13 holds 3 + 1, hour 12 none, hour 11 holds 2; the newest partial hour 4.
  const shardHours = [
    [
      { bucket: 13 * H, n: 3 },
      { bucket: 11 * H, n: 2 },
    ],
    [
      { bucket: 13 * H, n: 1 },
      { bucket: 12 * H, n: 0 },
    ],
  ];
  it.each([
    [0, { end: window.end, skip: 0 }],
    [3, { end: window.end, skip: 3 }],
    [4, { end: 14 * H, skip: 0 }],
    [7, { end: 14 * H, skip: 3 }],
    [8, { end: 12 * H, skip: 0 }],
    [9, { end: 12 * H, skip: 1 }],
    [10, { end: 11 * H, skip: 0 }],
    [50, { end: 11 * H, skip: 40 }],
  ])("locates offset %i", (offset, start) => {
    expect(locate(window, hours, 4, shardHours, offset)).toEqual(start);
  });
  it("without whole hours, the window is one edge", () => {
    expect(locate({ start: 5, end: 9 }, null, 3, [], 2)).toEqual({ end: 9, skip: 2 });
    expect(locate({ start: 5, end: 9 }, null, 3, [], 3)).toEqual({ end: 5, skip: 0 });
  });
});
