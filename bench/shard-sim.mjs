#!/usr/bin/env node
// Simulates placing accounts on several D1 databases ("shards") and shows how evenly each routing
// scheme spreads a Zipf-skewed set of accounts, and how many accounts move when a shard is added.
//
//   node bench/shard-sim.mjs [--accounts 2000] [--shards 8] [--skew 1.1] [--json]
//
// Schemes:
// - rendezvous: highest-random-weight hashing of account_id over the shard list. No table, stable
//   under growth (adding a shard moves only the accounts that now rank it first, about 1/(n+1)).
// - jump: Lamping & Veach's jump consistent hash over a shard count. Also table-free and minimal-move,
//   but shards can only be appended, never removed from the middle.
// - rendezvous + placement table: accounts whose volume exceeds a share of a shard's fair load are
//   placed explicitly (largest first, onto the least-loaded shard); everyone else hashes. The table
//   holds a handful of rows and is what the Worker reads (cached) before routing.
import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { coefficientOfVariation, round, zipfWeights } from "./lib/stats.mjs";

const hash64 = (text) => createHash("sha256").update(text).digest().readBigUInt64BE(0);

export function rendezvous(accountId, shards) {
  let best = 0;
  let bestScore = -1n;
  for (let i = 0; i < shards; i++) {
    const score = hash64(`${accountId}\u0000shard-${i}`);
    if (score > bestScore) {
      bestScore = score;
      best = i;
    }
  }
  return best;
}

/** Jump consistent hash (Lamping & Veach 2014) of a 64-bit key into [0, buckets). */
export function jump(accountId, buckets) {
  let key = hash64(accountId);
  let b = -1n;
  let j = 0n;
  const n = BigInt(buckets);
  while (j < n) {
    b = j;
    key = (key * 2862933555777941757n + 1n) & 0xffffffffffffffffn;
    j = BigInt(Math.floor((Number(b + 1n) * 2 ** 31) / Number((key >> 33n) + 1n)));
  }
  return Number(b);
}

/**
 * Placement table for the heavy accounts. Every account above `threshold` of a shard's fair share is
 * placed explicitly; one above `stripeAbove` of it is also split into stripes (its events spread over
 * several shards by a hash of email_id, so no single database holds a whale). Items are placed
 * greedily, largest first, on the shard with the least load so far, counting what the hashed tail
 * already puts there. Returns account id -> list of shards.
 */
export function placementTable(accounts, shards, { threshold = 0.05, stripeAbove = 0.5 } = {}) {
  const total = accounts.reduce((s, a) => s + a.volume, 0);
  const fair = total / shards;
  const heavy = accounts.filter((a) => a.volume > threshold * fair);
  const heavyIds = new Set(heavy.map((a) => a.id));
  const load = new Array(shards).fill(0);
  for (const a of accounts) if (!heavyIds.has(a.id)) load[rendezvous(a.id, shards)] += a.volume;
  const items = heavy.flatMap((a) => {
    const stripes =
      a.volume > stripeAbove * fair ? Math.min(shards, Math.ceil(a.volume / (stripeAbove * fair))) : 1;
    return Array.from({ length: stripes }, () => ({ id: a.id, volume: a.volume / stripes }));
  });
  items.sort((x, y) => y.volume - x.volume);
  const table = new Map();
  for (const item of items) {
    const taken = table.get(item.id) ?? [];
    // A stripe goes to the least-loaded shard that does not already hold one of its account's stripes.
    let target = -1;
    for (let i = 0; i < shards; i++) {
      if (taken.includes(i)) continue;
      if (target === -1 || load[i] < load[target]) target = i;
    }
    taken.push(target);
    table.set(item.id, taken);
    load[target] += item.volume;
  }
  return table;
}

/** Load per shard when each account's volume is split evenly over the shards `route` gives it. */
function loads(accounts, shards, route) {
  const load = new Array(shards).fill(0);
  for (const a of accounts) {
    const targets = [route(a)].flat();
    for (const t of targets) load[t] += a.volume / targets.length;
  }
  return load;
}

function describe(name, accounts, shards, route, routeGrown) {
  const load = loads(accounts, shards, route);
  const total = load.reduce((a, b) => a + b, 0);
  const mean = total / shards;
  const key = (a) => [route(a)].flat().join(",");
  const moved = accounts.filter((a) => [routeGrown(a)].flat().join(",") !== key(a));
  return {
    scheme: name,
    max_over_mean: round(Math.max(...load) / mean),
    min_over_mean: round(Math.min(...load) / mean),
    cv: round(coefficientOfVariation(load)),
    moved_accounts_on_adding_a_shard: round(moved.length / accounts.length),
    moved_volume_on_adding_a_shard: round(moved.reduce((s, a) => s + a.volume, 0) / total),
  };
}

/** Runs the schemes on `count` accounts with Zipf(skew) volumes over `shards` databases. */
export function simulate({ count = 2000, shards = 8, skew = 1.1 } = {}) {
  const weights = zipfWeights(count, skew);
  const accounts = weights.map((w, i) => ({
    id: `acct_${i.toString(36)}_${hash64(`a${i}`).toString(36).slice(0, 6)}`,
    volume: w,
  }));
  const placedOnly = placementTable(accounts, shards, { stripeAbove: Number.POSITIVE_INFINITY });
  const table = placementTable(accounts, shards);
  const viaTable = (t, n) => (a) => t.get(a.id) ?? rendezvous(a.id, n);
  const results = [
    describe(
      "rendezvous hash",
      accounts,
      shards,
      (a) => rendezvous(a.id, shards),
      (a) => rendezvous(a.id, shards + 1),
    ),
    describe(
      "jump hash",
      accounts,
      shards,
      (a) => jump(a.id, shards),
      (a) => jump(a.id, shards + 1),
    ),
    // Growing keeps existing placements: the table changes only when an operator moves an account.
    describe(
      "rendezvous + placement table",
      accounts,
      shards,
      viaTable(placedOnly, shards),
      viaTable(placedOnly, shards + 1),
    ),
    describe(
      "rendezvous + placement table + whale stripes",
      accounts,
      shards,
      viaTable(table, shards),
      viaTable(table, shards + 1),
    ),
  ];
  return {
    accounts: count,
    shards,
    skew,
    largest_account_share: round(weights[0]),
    largest_account_over_fair_share: round(weights[0] * shards),
    placed_accounts: table.size,
    striped_accounts: [...table.values()].filter((t) => t.length > 1).map((t) => t.length),
    results,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      accounts: { type: "string", default: "2000" },
      shards: { type: "string", default: "8" },
      skew: { type: "string", default: "1.1" },
      json: { type: "boolean", default: false },
    },
  });
  const out = simulate({
    count: Number(values.accounts),
    shards: Number(values.shards),
    skew: Number(values.skew),
  });
  if (values.json) {
    console.log(JSON.stringify(out, null, 2));
  } else {
    console.log(
      `${out.accounts} accounts, Zipf skew ${out.skew}, ${out.shards} shards; the largest account is ` +
        `${(out.largest_account_share * 100).toFixed(1)}% of all volume (${out.largest_account_over_fair_share}x a shard's fair share); ` +
        `${out.placed_accounts} accounts in the placement table, ${out.striped_accounts.length} of them striped ` +
        `over ${out.striped_accounts.join(", ") || "-"} shards`,
    );
    console.table(out.results);
  }
}
