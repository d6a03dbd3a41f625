/**
 * Merging one page read from several shards (stripes, or a placement and its previous one), newest
 * first by (`occurred_at`, `id`) (SPEC §17). Each shard answers the same page query with the same
 * keyset bound and its own row budget, and says how far down it has looked. A row below the highest
 * point some unfinished shard stopped at is held back (that shard has not looked there yet): the
 * merged page is exact, the cursor continues from that point, and nothing is repeated or skipped.
 * A row stored twice (a redelivery written on both sides of a move) is shown once.
 */

export interface Position {
  at: number;
  id: string;
}

export interface ShardPage<R> {
  /** Matches, newest first, at most `limit` of them. */
  rows: R[];
  /** null: the shard has nothing more in the window. Otherwise every row at or above this position was looked at. */
  scannedTo: Position | null;
}

export const comparePositions = (a: Position, b: Position): number =>
  a.at !== b.at ? a.at - b.at : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;

export interface MergedPage<R> {
  rows: R[];
  /** Where the next page continues (strictly below), or null when every shard is done. */
  continueBelow: Position | null;
}

export function mergePages<R>(
  pages: ShardPage<R>[],
  limit: number,
  positionOf: (row: R) => Position,
): MergedPage<R> {
  let horizon: Position | null = null;
  for (const page of pages) {
    if (page.scannedTo && (!horizon || comparePositions(page.scannedTo, horizon) > 0))
      horizon = page.scannedTo;
  }
  const all = pages.flatMap((p) => p.rows.map((row) => ({ row, pos: positionOf(row) })));
  all.sort((a, b) => comparePositions(b.pos, a.pos));
  const kept: { row: R; pos: Position }[] = [];
  for (const item of all) {
    if (horizon && comparePositions(item.pos, horizon) < 0) break;
    const last = kept[kept.length - 1];
    if (last && comparePositions(last.pos, item.pos) === 0) continue;
    kept.push(item);
  }
  if (kept.length > limit) {
    const shown = kept.slice(0, limit);
    return { rows: shown.map((k) => k.row), continueBelow: shown[shown.length - 1]?.pos ?? null };
  }
  return { rows: kept.map((k) => k.row), continueBelow: horizon };
}
