import { describe, expect, it } from "vitest";
import { d1Bindings, eventShards, hashedShard, hash53 as scriptHash } from "../../scripts/lib.mjs";
import { hash53, rendezvousShard } from "../../src/shards/hash";

describe("the scripts' copy of the shard hash", () => {
  it("routes every account as the Worker does", () => {
    for (let i = 0; i < 500; i++) {
      const id = `acct_${i.toString(36)}_${"x".repeat(i % 7)}`;
      expect(scriptHash(id)).toBe(hash53(id));
      expect(hashedShard(id, [0, 1, 2, 3])).toBe(rendezvousShard(id, [0, 1, 2, 3]));
      expect(hashedShard(id, [0, 2, 5])).toBe(rendezvousShard(id, [0, 2, 5]));
    }
  });

  it("reads wrangler.toml's D1 bindings and EVENT_SHARDS", () => {
    expect(d1Bindings()).toEqual(["DB", "EVENTS_0", "EVENTS_1", "EVENTS_2", "EVENTS_3"]);
    expect(eventShards()).toEqual([0, 1, 2, 3]);
  });
});
