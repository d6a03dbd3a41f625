/**
 * SPEC §18: totals (`count=true`, SparkPost `total_count`, Numonic and Unosend `total`) are counted
 * at most once a minute per account and query. A count reads every matching row of the window, so
 * a client that asks for it on every page (or polls the first page) would repeat whole-window work.
 * This keeps each total for TOTAL_TTL_MS per isolate, keyed by the account and the query's
 * fingerprint (its parameters without the paging ones); a concurrent second request waits for the
 * first's count instead of running its own. Bounded: past MAX_ENTRIES the oldest go first. Paged
 * chains with a cursor carry their total in it instead (src/events/list.ts), so they count once.
 */

export const TOTAL_TTL_MS = 60_000;
const MAX_ENTRIES = 2_000;

interface Entry {
  at: number;
  value: Promise<number>;
}

const entries = new Map<string, Entry>();

/** The total for `key`, counted by `count` at most once per TOTAL_TTL_MS (a failed count is not kept). */
export function totalOnce(key: string, count: () => Promise<number>, now = Date.now()): Promise<number> {
  const hit = entries.get(key);
  if (hit && now - hit.at < TOTAL_TTL_MS && now >= hit.at) return hit.value;
  if (entries.size >= MAX_ENTRIES) {
    let drop = Math.ceil(MAX_ENTRIES / 10);
    for (const old of entries.keys()) {
      entries.delete(old);
      if (--drop === 0) break;
    }
  }
  const value = count();
  entries.set(key, { at: now, value });
  value.catch(() => {
    if (entries.get(key)?.value === value) entries.delete(key);
  });
  return value;
}

/** A key for totalOnce: the account, the surface and the query's parameters in a stable order. */
export function totalKey(accountId: string, surface: string, params: Iterable<[string, string]>): string {
  const kept = [...params].sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0));
  return JSON.stringify([accountId, surface, kept]);
}
