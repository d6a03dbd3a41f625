import { describe, expect, it } from "vitest";
import {
  BURST_GAP_MS,
  type BurstClick,
  burstKeys,
  HUMAN_MIN_GAP_MS,
  linkOf,
  networkOf,
  planBursts,
} from "../../src/tracking/bursts";

const MS = "as8075";
const HOME = "as7922";
const T0 = 1_780_000_000_000;

/** Clicks from a compact notation: [seconds after T0, link, network?, prefix?] (one /24 by default). */
const clicks = (...spec: [number, string, string?, string?][]): BurstClick[] =>
  spec.map(([s, link, network, prefix], i) => ({
    key: `k${i}`,
    at: T0 + s * 1000,
    link,
    network: network ?? MS,
    prefix: prefix ?? "ip4:40.94.89",
  }));

describe("burstKeys: which clicks of one message and recipient are a burst", () => {
  it.each([
    // name, clicks, expected burst keys
    ["one click", clicks([0, "a"]), []],
    [
      "3 links in 1 s from one network (issue case)",
      clicks([0, "a"], [0.4, "b"], [0.9, "c"]),
      ["k0", "k1", "k2"],
    ],
    [
      "10 links in one sub-second sweep",
      clicks(...Array.from({ length: 10 }, (_, i) => [i * 0.05, `l${i}`] as [number, string])),
      Array.from({ length: 10 }, (_, i) => `k${i}`),
    ],
    ["2 links 20 s apart (issue case)", clicks([0, "a"], [20, "b"]), []],
    ["2 links 1.5 s apart: a person opening two tabs", clicks([0, "a"], [1.5, "b"]), []],
    ["2 links 0.3 s apart: faster than a person", clicks([0, "a"], [0.3, "b"]), ["k0", "k1"]],
    [
      "2 links 0.6 s apart from one ASN but two prefixes: two people behind one carrier (finding 7)",
      clicks([0, "a", HOME, "ip4:73.1.2"], [0.6, "b", HOME, "ip4:98.7.6"]),
      [],
    ],
    [
      "2 links 0.6 s apart from one ASN, prefix unknown: kept",
      clicks([0, "a", HOME, ""], [0.6, "b", HOME, ""]).map((c) => ({ ...c, prefix: null })),
      [],
    ],
    [
      "3 links in 1 s from one ASN across prefixes: still a scanner sweep",
      clicks([0, "a", MS, "ip4:40.94.89"], [0.4, "b", MS, "ip4:40.94.90"], [0.9, "c", MS, "ip4:40.94.91"]),
      ["k0", "k1", "k2"],
    ],
    ["3 links, each 1.8 s after the previous", clicks([0, "a"], [1.8, "b"], [3.6, "c"]), ["k0", "k1", "k2"]],
    ["3 links, 2.5 s apart: not chained", clicks([0, "a"], [2.5, "b"], [5, "c"]), []],
    [
      "one link three times in a second (a double click, replays)",
      clicks([0, "a"], [0.2, "a"], [0.5, "a"]),
      [],
    ],
    [
      "3 links in 1 s from 3 different networks",
      clicks([0, "a", "as1"], [0.4, "b", "as2"], [0.9, "c", "as3"]),
      [],
    ],
    [
      "a scanner burst and a person's later click",
      clicks([43, "a"], [43.1, "b"], [43.2, "c"], [3600, "b", HOME]),
      ["k0", "k1", "k2"],
    ],
    [
      "a scanner burst and the person clicking from home at the same moment",
      clicks([0, "a"], [0.1, "b"], [0.2, "c"], [0.1, "b", HOME]),
      ["k0", "k1", "k2"],
    ],
    [
      "unknown networks compare equal",
      clicks([0, "a", undefined], [0.2, "b", undefined]).map((c) => ({ ...c, network: null })),
      ["k0", "k1"],
    ],
  ] as const)("%s", (_name, input, expected) => {
    expect([...burstKeys(input)].sort()).toEqual([...expected].sort());
  });

  it("the same click given twice (a redelivery) is one click", () => {
    const [a] = clicks([0, "a"]);
    expect(burstKeys([a!, { ...a! }]).size).toBe(0);
  });

  it("a click continuing a burst that an earlier batch dropped is part of it", () => {
    const input: BurstClick[] = [
      { key: "old1", at: T0, link: "a", network: MS, dropped: true },
      { key: "old2", at: T0 + 100, link: "b", network: MS, dropped: true },
      { key: "new", at: T0 + 1500, link: "b", network: MS },
    ];
    expect(burstKeys(input).has("new")).toBe(true);
    // Past the gap it is a new run: one link, kept.
    expect(
      burstKeys([...input.slice(0, 2), { ...input[2]!, at: T0 + 100 + BURST_GAP_MS + 1 }]).has("new"),
    ).toBe(false);
  });

  it("thresholds are the documented ones", () => {
    expect(BURST_GAP_MS).toBe(2000);
    expect(HUMAN_MIN_GAP_MS).toBe(1000);
  });

  it("adding clicks never turns a burst back into clicks to keep (batches in any order)", () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let trial = 0; trial < 300; trial += 1) {
      const all: BurstClick[] = Array.from({ length: 2 + Math.floor(random() * 6) }, (_, i) => ({
        key: `c${i}`,
        at: T0 + Math.floor(random() * 6000),
        link: `l${Math.floor(random() * 4)}`,
        network: random() < 0.8 ? MS : HOME,
      }));
      const cut = 1 + Math.floor(random() * (all.length - 1));
      const before = burstKeys(all.slice(0, cut));
      const after = burstKeys(all);
      for (const key of before) expect(after.has(key)).toBe(true);
    }
  });
});

describe("planBursts", () => {
  const c = (key: string, seconds: number, link: string, network = MS): BurstClick => ({
    key,
    at: T0 + seconds * 1000,
    link,
    network,
    prefix: "ip4:40.94.89",
  });

  it("drops the arriving part of a burst, removes the stored part and marks both", () => {
    const plan = planBursts({
      stored: [{ click: c("s1", 0, "a"), item: "stored-1" }],
      arriving: [
        { click: c("n1", 0.2, "b"), item: "new-1" },
        { click: c("n2", 0.4, "c"), item: "new-2" },
      ],
      marked: [],
    });
    expect(plan.drop).toEqual(["new-1", "new-2"]);
    expect(plan.remove).toEqual(["stored-1"]);
    expect(plan.mark.map((m) => m.key).sort()).toEqual(["n1", "n2", "s1"]);
  });

  it("never removes a stored click more than a few seconds older than the arriving ones (finding 7)", () => {
    // A chained sweep: the stored click is 5.4 s before the batch's clicks; it stays, the rest drop.
    const plan = planBursts({
      stored: [
        { click: c("s0", 0, "a"), item: "old" },
        { click: c("s1", 1.8, "b"), item: "recent" },
      ],
      arriving: [
        { click: c("n1", 3.6, "c"), item: "new-1" },
        { click: c("n2", 5.4, "d"), item: "new-2" },
      ],
      marked: [],
    });
    expect(plan.drop).toEqual(["new-1", "new-2"]);
    expect(plan.remove).toEqual(["recent"]);
  });

  it("keeps a person's clicks and marks nothing", () => {
    const plan = planBursts({
      stored: [{ click: c("s1", 0, "a", HOME), item: 1 }],
      arriving: [{ click: c("n1", 20, "b", HOME), item: 2 }],
      marked: [],
    });
    expect(plan).toEqual({ drop: [], remove: [], mark: [] });
  });

  it("a redelivered click that an earlier batch dropped is dropped again and not marked twice", () => {
    const plan = planBursts({
      stored: [],
      arriving: [{ click: c("n1", 0, "a"), item: "again" }],
      marked: [c("n1", 0, "a"), c("n2", 0.1, "b"), c("n3", 0.2, "c")],
    });
    expect(plan.drop).toEqual(["again"]);
    expect(plan.mark).toEqual([]);
  });
});

describe("networkOf", () => {
  it.each([
    [8075, "40.94.89.12", "as8075"],
    [null, "40.94.89.12", "ip4:40.94.89"],
    [undefined, "2001:db8:abcd:12::1", "ip6:2001:db8:abcd"],
    [null, "2001:0db8:0000::1", "ip6:2001:db8:0"],
    [null, "::1", "ip6:0:0:0"],
    [0, "198.51.100.7", "ip4:198.51.100"],
    [null, null, null],
    [null, "not an address", null],
    [null, "1:2:3:4:5:6:7:8:9", null],
  ] as const)("asn %s, ip %s → %s", (asn, ip, expected) => {
    expect(networkOf(asn, ip)).toBe(expected);
  });
});

describe("linkOf", () => {
  it("tells links apart by target and name", () => {
    expect(linkOf("https://a.example/", null)).toBe(linkOf("https://a.example/", undefined));
    expect(linkOf("https://a.example/", "logo")).not.toBe(linkOf("https://a.example/", "cta"));
    expect(linkOf("https://a.example/", null)).not.toBe(linkOf("https://b.example/", null));
  });
});
