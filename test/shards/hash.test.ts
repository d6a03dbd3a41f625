import { describe, expect, it } from "vitest";
import { hash53, rendezvousShard, stripeOf } from "../../src/shards/hash";
import { mergePages, type Position } from "../../src/shards/merge";

describe("hash53", () => {
  // Frozen: a stored row's shard depends on these values never changing.
  it.each([
    ["", 3338908027751811],
    ["a", 7929297801672961],
    ["acct_demo", 3532343036539935],
    ["email_019e1972-e87e-7000-bf74-ba09e0ed0d62", 2810682415756402],
  ])("hash53(%j) is %d", (text, value) => {
    expect(hash53(text)).toBe(value);
  });
});

describe("rendezvousShard", () => {
  it.each([
    ["acct_demo", [0], 0],
    ["acct_demo", [0, 1, 2, 3], 2],
    ["acct_demo", [0, 1, 2, 3, 4, 5, 6, 7], 6],
    ["acct_bound", [0, 1, 2, 3], 1],
    ["acct_2", [0, 1, 2, 3], 3],
  ])("places %s over %j on %d, whatever the list's order", (account, shards, shard) => {
    expect(rendezvousShard(account, shards)).toBe(shard);
    expect(rendezvousShard(account, [...shards].reverse())).toBe(shard);
  });

  const accounts = Array.from({ length: 4000 }, (_, i) => `acct_${i.toString(36)}`);

  it("spreads accounts evenly over 4 shards", () => {
    const counts = [0, 0, 0, 0];
    for (const a of accounts) counts[rendezvousShard(a, [0, 1, 2, 3])]! += 1;
    for (const n of counts) expect(Math.abs(n - 1000)).toBeLessThan(100);
  });

  it("adding a shard moves only the accounts that now rank it first (about 1/5)", () => {
    let moved = 0;
    for (const a of accounts) {
      const before = rendezvousShard(a, [0, 1, 2, 3]);
      const after = rendezvousShard(a, [0, 1, 2, 3, 4]);
      if (before !== after) {
        moved += 1;
        expect(after).toBe(4);
      }
    }
    expect(moved / accounts.length).toBeGreaterThan(0.15);
    expect(moved / accounts.length).toBeLessThan(0.25);
  });

  it("removing a shard moves only its own accounts", () => {
    for (const a of accounts) {
      const before = rendezvousShard(a, [0, 1, 2, 3]);
      if (before !== 2) expect(rendezvousShard(a, [0, 1, 3])).toBe(before);
    }
  });
});

describe("stripeOf", () => {
  it("is 0 for one shard and spreads emails evenly over k stripes", () => {
    expect(stripeOf("email_x", 1)).toBe(0);
    const counts = [0, 0, 0];
    for (let i = 0; i < 3000; i++) counts[stripeOf(`email_${i}`, 3)]! += 1;
    for (const n of counts) expect(Math.abs(n - 1000)).toBeLessThan(100);
    expect(stripeOf("email_019e1972-e87e-7000-bf74-ba09e0ed0d62", 3)).toBe(2810682415756402 % 3);
  });
});

describe("mergePages", () => {
  const row = (at: number, id = `evt_${at}`) => ({ at, id });
  const pos = (r: Position) => r;

  it("merges shards newest first by (occurred_at, id) and continues below the last shown", () => {
    const merged = mergePages(
      [
        { rows: [row(9), row(5), row(4)], scannedTo: row(4) },
        { rows: [row(8), row(7, "evt_b"), row(7, "evt_a")], scannedTo: null },
      ],
      3,
      pos,
    );
    expect(merged.rows).toEqual([row(9), row(8), row(7, "evt_b")]);
    expect(merged.continueBelow).toEqual(row(7, "evt_b"));
  });

  it("holds back rows below where an unfinished shard stopped, and continues from there", () => {
    // Shard 1 ran out of budget at 6 with nothing found: shard 0's 5 and 4 wait for the next page.
    const merged = mergePages(
      [
        { rows: [row(9), row(5), row(4)], scannedTo: row(4) },
        { rows: [], scannedTo: row(6) },
      ],
      3,
      pos,
    );
    expect(merged.rows).toEqual([row(9)]);
    expect(merged.continueBelow).toEqual(row(6));
  });

  it("shows a row stored on two shards once, and ends when every shard is done", () => {
    const merged = mergePages(
      [
        { rows: [row(3), row(2)], scannedTo: null },
        { rows: [row(3), row(1)], scannedTo: null },
      ],
      10,
      pos,
    );
    expect(merged.rows).toEqual([row(3), row(2), row(1)]);
    expect(merged.continueBelow).toBeNull();
  });
});
