import { addCounters, type Counters, type RollupRow, zeroCounters } from "./query";

type Sums = {
  rows: RollupRow[];
  totals: Counters | null;
  rowsRead: number;
  /** Rollup rows one shard read (SPEC §18's budget holds per shard touched): the largest of the parts. */
  scanned: number;
};

/**
 * The rollup sums of several shards (an account's stripes, or a placement and its previous one,
 * SPEC §17) as one: rows of the same local bucket and group add up. An email lives on one shard, so
 * its unique counters are credited once whatever the number of shards.
 */
export function mergeRollupSums(parts: Sums[]): Sums {
  if (parts.length === 1 && parts[0]) return parts[0];
  const rows = new Map<string, RollupRow & { label?: unknown; label_offset?: unknown }>();
  let totals: Counters | null = null;
  let rowsRead = 0;
  let scanned = 0;
  for (const part of parts) {
    rowsRead += part.rowsRead;
    scanned = Math.max(scanned, part.scanned);
    if (part.totals) {
      totals ??= zeroCounters();
      addCounters(totals, part.totals);
    }
    for (const row of part.rows as (RollupRow & { label?: unknown; label_offset?: unknown })[]) {
      const key = JSON.stringify([row.label, row.label_offset, row.grp]);
      const seen = rows.get(key);
      if (!seen) rows.set(key, { ...row });
      else {
        addCounters(seen, row);
        seen.first = Math.min(seen.first, row.first);
      }
    }
  }
  return { rows: [...rows.values()], totals, rowsRead, scanned };
}
