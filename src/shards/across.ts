import type { Env } from "../env";
import { boundShards, shardDb } from "./bindings";
import { comparePositions, mergePages, type Position } from "./merge";
import { type AccountShards, shardOfEmail } from "./route";

/**
 * Reads that span an account's shards (SPEC §17): its stripes, and the previous placement while a
 * move drains. Each shard answers the same query with its own row budget (so a page reads at most
 * the shards' sum of one page's budget), and the answers are merged by (`occurred_at`, `id`).
 */

/** The shards a read of the account visits; an `email_id` filter needs only that email's stripe. */
export function shardsToRead(account: AccountShards, emailId?: string | null): number[] {
  if (emailId == null || account.shards.length === 1) return [...account.read];
  return [shardOfEmail(account, emailId), ...account.previous];
}

/** One shard's page, as the store's bounded scan answers it. */
export interface ScanLike<R> {
  rows: R[];
  hasMore: boolean;
  /** Where the scan stopped (exclusive) when `hasMore`. */
  next: { occurredAt: number; id: string } | null;
  rowsRead: number;
}

/**
 * Runs `scan` on every shard to read and merges the pages into one, the shape the scan itself
 * answers: on one shard, exactly its answer.
 */
export async function scanAcross<R extends { occurred_at: number; id: string }>(
  env: Env,
  shards: readonly number[],
  limit: number,
  scan: (db: D1Database, shard: number) => Promise<ScanLike<R>>,
): Promise<ScanLike<R>> {
  const pages = await Promise.all(shards.map((shard) => scan(shardDb(env, shard), shard)));
  if (pages.length === 1 && pages[0]) return pages[0];
  const merged = mergePages(
    pages.map((p) => ({
      rows: p.rows,
      scannedTo: p.hasMore && p.next ? { at: p.next.occurredAt, id: p.next.id } : null,
    })),
    limit,
    (row) => ({ at: row.occurred_at, id: row.id }),
  );
  const below = merged.continueBelow;
  return {
    rows: merged.rows,
    hasMore: below !== null,
    next: below ? { occurredAt: below.at, id: below.id } : null,
    rowsRead: pages.reduce((sum, p) => sum + p.rowsRead, 0),
  };
}

/** A count on every shard to read, summed (with the rows each read). */
export async function countAcross(
  env: Env,
  shards: readonly number[],
  count: (db: D1Database, shard: number) => Promise<{ total: number; rowsRead: number }>,
): Promise<{ total: number; rowsRead: number }> {
  const counts = await Promise.all(shards.map((shard) => count(shardDb(env, shard), shard)));
  return {
    total: counts.reduce((n, c) => n + c.total, 0),
    rowsRead: counts.reduce((n, c) => n + c.rowsRead, 0),
  };
}

/** Newest-first rows of several shards merged and cut to `take` (offset paging: page = offset + limit). */
export function mergeNewestFirst<R>(lists: R[][], take: number, positionOf: (row: R) => Position): R[] {
  const all = lists.flat().map((row) => ({ row, pos: positionOf(row) }));
  all.sort((a, b) => comparePositions(b.pos, a.pos));
  const out: R[] = [];
  let last: Position | null = null;
  for (const item of all) {
    if (last && comparePositions(last, item.pos) === 0) continue;
    out.push(item.row);
    last = item.pos;
    if (out.length === take) break;
  }
  return out;
}

/**
 * Runs `work` on every bound shard in parallel (the scheduled work: each shard's limits are its
 * own). Every shard runs even when another fails; the first failure is rethrown after all finished.
 */
export async function onEveryShard<T>(
  env: Env,
  work: (db: D1Database, shard: number) => Promise<T>,
): Promise<T[]> {
  const settled = await Promise.allSettled(boundShards(env).map((shard) => work(shardDb(env, shard), shard)));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}

/** Sums numeric fields of per-shard results (what the scheduled work logs). */
export function sumResults<T extends Record<string, unknown>>(results: T[]): T {
  const sum: Record<string, unknown> = {};
  for (const r of results) {
    for (const [k, v] of Object.entries(r)) {
      if (typeof v === "number") sum[k] = ((sum[k] as number | undefined) ?? 0) + v;
      // A flag such as `complete` holds when it holds on every shard.
      else if (typeof v === "boolean") sum[k] = ((sum[k] as boolean | undefined) ?? true) && v;
      else if (!(k in sum)) sum[k] = v;
    }
  }
  return sum as T;
}

/** How a streamed page scan ends (store/scan.ts ScanEnd): where the next page starts, and its cost. */
export interface StreamEnd {
  hasMore: boolean;
  next: { occurredAt: number; id: string } | null;
  rowsRead: number;
}

/**
 * A streamed page scan over several shards. One shard streams as it is; several are each read to
 * the end of their page (at most `limit` rows each, within their own budget), merged by
 * (`occurred_at`, `id`) and yielded as one chunk, ending where the merged page ends.
 */
export async function* streamAcross<R extends { occurred_at: number; id: string }>(
  env: Env,
  shards: readonly number[],
  limit: number,
  scan: (db: D1Database, shard: number) => AsyncGenerator<R[], StreamEnd>,
): AsyncGenerator<R[], StreamEnd> {
  if (shards.length === 1) return yield* scan(shardDb(env, shards[0] ?? 0), shards[0] ?? 0);
  const pages = await Promise.all(
    shards.map(async (shard) => {
      const generator = scan(shardDb(env, shard), shard);
      const rows: R[] = [];
      for (;;) {
        const step = await generator.next();
        if (step.done) return { rows, end: step.value };
        rows.push(...step.value);
      }
    }),
  );
  const merged = mergePages(
    pages.map((p) => ({
      rows: p.rows,
      scannedTo: p.end.next ? { at: p.end.next.occurredAt, id: p.end.next.id } : null,
    })),
    limit,
    (row) => ({ at: row.occurred_at, id: row.id }),
  );
  yield merged.rows;
  const below = merged.continueBelow;
  return {
    hasMore: below !== null,
    next: below ? { occurredAt: below.at, id: below.id } : null,
    rowsRead: pages.reduce((n, p) => n + p.end.rowsRead, 0),
  };
}
