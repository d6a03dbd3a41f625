import { columnOf, DIMENSIONS } from "../db/event-record";

/**
 * The event store's part in placements (SPEC §17): whether a shard still holds anything of an
 * account, moving what lives with the account rather than with an email, and a shard's load.
 * Handed the databases it works on, like the rest of the store.
 */

/** Tables whose rows tie an account to a shard until they expire (deliveries go with their events). */
const ACCOUNT_HOLDING_TABLES = [
  "events",
  "messages",
  "message_ids",
  "metric_rollups",
  "metric_rollups_day",
  "metric_rollups_day_domains",
  "metric_rollups_hour",
  "rollup_folds",
  "link_rollups",
  "suppressions",
  "mirror_pending",
  // The account's suppression change outbox (kept 7 days) stays where it was recorded and is pushed from there.
  "suppression_changes",
];

export async function holdsAccount(db: D1Database, accountId: string): Promise<boolean> {
  const found = await db.batch(
    ACCOUNT_HOLDING_TABLES.map((t) =>
      db.prepare(`SELECT 1 AS found FROM ${t} WHERE account_id = ? LIMIT 1`).bind(accountId),
    ),
  );
  return found.some((r) => (r.results?.length ?? 0) > 0);
}

/**
 * What lives with the account rather than with an email, and moves whole to its new home when its
 * placement changes (few rows): its suppressions, their mirror journal, its sending domains. Each
 * with the columns after account_id that make its key.
 */
const ACCOUNT_TABLES = {
  suppressions: ["email", "topic"],
  mirror_pending: ["email"],
  sending_domains: ["domain"],
} as const;
const MOVE_CHUNK = 2_000;

/**
 * Moves the account's rows of ACCOUNT_TABLES from `source` to `target`: written on the target first
 * (a row already there wins), then removed from the source, a chunk at a time. A failure between the
 * two leaves a copy that the next move takes again, never a loss. Whatever columns the tables have.
 */
export async function moveAccountRows(
  source: D1Database,
  target: D1Database,
  accountId: string,
): Promise<number> {
  let moved = 0;
  for (const [table, keys] of Object.entries(ACCOUNT_TABLES)) {
    for (;;) {
      const { results } = await source
        .prepare(`SELECT * FROM ${table} WHERE account_id = ? LIMIT ${MOVE_CHUNK}`)
        .bind(accountId)
        .all<Record<string, unknown>>();
      const first = results[0];
      if (!first) break;
      const columns = Object.keys(first);
      const rows = JSON.stringify(results);
      await target
        .prepare(
          `INSERT INTO ${table} (${columns.join(", ")})
           SELECT ${columns.map((c) => `json_extract(value, '$.${c}')`).join(", ")} FROM json_each(?1) WHERE true
           ON CONFLICT DO NOTHING`,
        )
        .bind(rows)
        .run();
      await source
        .prepare(
          `DELETE FROM ${table} WHERE account_id = ?1 AND (${keys.join(", ")}) IN
             (SELECT ${keys.map((c) => `json_extract(value, '$.${c}')`).join(", ")} FROM json_each(?2))`,
        )
        .bind(accountId, rows)
        .run();
      moved += results.length;
      if (results.length < MOVE_CHUNK) break;
    }
  }
  return moved;
}

export interface ShardLoad {
  /** Events counted, up to `cap` + 1. */
  events: number;
  /** Distinct accounts with events, counted up to `accountCap` + 1 by skipping along the key. */
  accounts: number;
  /** D1's size of the database, when the runtime reports it (`meta.size_after`). */
  sizeAfter: number | null;
}

/** A shard's load within a budget: at most cap + 1 + (accountCap + 1) × 2 rows read. */
export async function shardLoad(db: D1Database, cap: number, accountCap: number): Promise<ShardLoad> {
  const [counted, accounts] = await db.batch<{ n: number }>([
    db.prepare(`SELECT COUNT(*) AS n FROM (SELECT 1 FROM events LIMIT ${cap + 1})`),
    db.prepare(
      `WITH RECURSIVE a(id) AS (
         SELECT (SELECT account_id FROM events ORDER BY account_id LIMIT 1)
         UNION ALL
         SELECT (SELECT account_id FROM events WHERE account_id > a.id ORDER BY account_id LIMIT 1)
         FROM a WHERE a.id IS NOT NULL LIMIT ${accountCap + 1})
       SELECT COUNT(id) AS n FROM a`,
    ),
  ]);
  const size = (counted?.meta as (D1Meta & { size_after?: number }) | undefined)?.size_after;
  return {
    events: counted?.results[0]?.n ?? 0,
    accounts: accounts?.results[0]?.n ?? 0,
    sizeAfter: typeof size === "number" && size > 0 ? size : null,
  };
}

/**
 * Registrations of these emails as stored on `db` (an account's previous shard during a move), in
 * the shape the consumer's registration statements take: every column under its field's name.
 */
export async function registrationsOf(
  db: D1Database,
  accountId: string,
  emailIds: readonly string[],
): Promise<Record<string, unknown>[]> {
  if (emailIds.length === 0) return [];
  const { results } = await db
    .prepare(
      `SELECT account_id, email_id, registered_at, ${DIMENSIONS.map((k) => `${columnOf(k)} AS "${k}"`).join(", ")}
         FROM messages WHERE account_id = ?1 AND email_id IN (SELECT value FROM json_each(?2))`,
    )
    .bind(accountId, JSON.stringify([...new Set(emailIds)]))
    .all<Record<string, unknown>>();
  return results;
}
