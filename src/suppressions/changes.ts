import { hashedKey, type SuppressionChangeRow } from "../db/suppressions";
import type { Env } from "../env";
import { hashId } from "../lib/ids";
import { describeError, log } from "../lib/log";
import { DAY_MS } from "../lib/params";
import { groupByHome } from "../shards/route";
import { type Delivery, sendDeliveries } from "../webhooks/enqueue";
import { matches } from "../webhooks/match";
import { endpointsOf } from "../webhooks/store";

/**
 * Pushed suppression changes (SPEC §10, §14): every add and remove of an entry, whatever caused it,
 * becomes one `suppression.created` or `suppression.deleted` webhook, whose webhook-id is the change
 * id (`sch_…`).
 *
 * An outbox (db/suppressions.ts, suppression_changes): each writer records the change in the same
 * D1 transaction as the change itself (recordCreated / recordDeleted below, statements for its
 * batch), so no committed change can go unpushed. After the commit the writer calls
 * pushPendingChanges, which fans the pending changes out to WEBHOOKS_QUEUE and clears their flag; a
 * writer that died or whose queue send failed leaves them pending, and the scheduled work pushes
 * them on its next run. Pushing twice is harmless: the delivery consumer drops a first-run message
 * for a pair that already has a delivery row, and receivers deduplicate by webhook-id anyway.
 */

export const SUPPRESSION_CHANGE_TYPES = ["suppression.created", "suppression.deleted"] as const;
export type SuppressionChangeType = (typeof SUPPRESSION_CHANGE_TYPES)[number];

/** Changes are kept this long: past the 72-hour retry window of their deliveries, with room. */
export const CHANGE_RETENTION_MS = 7 * DAY_MS;

const CHANGE_COLUMNS =
  "account_id, id, occurred_at, type, email, email_hash, topic, reason, email_id, suppressed_at, expires_at, pending";

/**
 * The id of the change that created an entry: deterministic in what identifies the creation (the
 * account and a key of the cause), so a writer that runs again (a redelivered queue batch, a
 * re-import) names the same change and `ON CONFLICT DO NOTHING` records it once.
 */
export const createdChangeId = async (...parts: string[]) => `sch_${await hashId("created", ...parts)}`;

/** What recordCreated matches: an entry that exists with exactly this creation time. */
export interface CreatedRef {
  accountId: string;
  /** The entry's key column (the address, or an erased address's hashed key). */
  email: string;
  /** The topic column ('' every topic), or null: whichever topic the entry got (the consumer's inherited topics). */
  topic: string | null;
  suppressedAt: number;
  changeId: string;
}

/**
 * A statement for the writer's batch, after its insert: records `suppression.created` for each entry
 * that exists with the given creation time (one the batch inserted, or inserted by an earlier run of
 * the same writer, whose change id is then the same and records nothing). An entry that existed
 * before with another time is not a change.
 */
export function recordCreated(db: D1Database, refs: CreatedRef[], now: number): D1PreparedStatement {
  const rows = refs.map((r) => [r.accountId, r.email, r.topic, r.suppressedAt, r.changeId]);
  return db
    .prepare(
      `INSERT INTO suppression_changes (${CHANGE_COLUMNS})
       SELECT s.account_id, p.value->>4, ?2, 'suppression.created', s.email, s.email_hash, s.topic, s.reason,
              s.email_id, s.suppressed_at, s.expires_at, 1
         FROM json_each(?1) AS p
         JOIN suppressions AS s ON s.account_id = p.value->>0 AND s.email = p.value->>1
                               AND (p.value->>2 IS NULL OR s.topic = p.value->>2)
                               AND s.suppressed_at = p.value->>3
       WHERE true
       ON CONFLICT DO NOTHING`,
    )
    .bind(JSON.stringify(rows), now);
}

/**
 * A statement for the writer's batch, before its DELETE with the same condition: records
 * `suppression.deleted` for every entry about to go. `where` is a condition on `suppressions` with
 * placeholders ?1…?n bound from `binds`. `as` rewrites the recorded key (an erasure records the
 * change under the hashed key, so no change row keeps the address).
 */
export function recordDeleted(
  db: D1Database,
  where: string,
  binds: unknown[],
  now: number,
  as?: { email: string; emailHash: string },
): D1PreparedStatement {
  const n = binds.length;
  const email = as ? `?${n + 2}` : "email";
  const emailHash = as ? `?${n + 3}` : "email_hash";
  return db
    .prepare(
      `INSERT INTO suppression_changes (${CHANGE_COLUMNS})
       SELECT account_id, 'sch_' || lower(hex(randomblob(16))), ?${n + 1}, 'suppression.deleted', ${email},
              ${emailHash}, topic, reason, email_id, suppressed_at, expires_at, 1
         FROM suppressions WHERE ${where}`,
    )
    .bind(...binds, now, ...(as ? [as.email, as.emailHash] : []));
}

interface ChangeDbRow {
  account_id: string;
  id: string;
  occurred_at: number;
  type: string;
  email: string;
  email_hash: string | null;
  topic: string;
  reason: string;
  email_id: string | null;
  suppressed_at: number;
  expires_at: number | null;
}

/** A stored change as the Drizzle row shape (for toSuppression). */
export const changeRowOf = (r: ChangeDbRow): Omit<SuppressionChangeRow, "pending"> => ({
  accountId: r.account_id,
  id: r.id,
  occurredAt: r.occurred_at,
  type: r.type,
  email: r.email,
  emailHash: r.email_hash,
  topic: r.topic,
  reason: r.reason,
  emailId: r.email_id,
  suppressedAt: r.suppressed_at,
  expiresAt: r.expires_at,
});

/** The stored changes named by (account, id), for the delivery consumer; missing ones are left out. */
export async function loadChanges(
  db: D1Database,
  keys: { accountId: string; id: string }[],
): Promise<Map<string, Omit<SuppressionChangeRow, "pending">>> {
  const out = new Map<string, Omit<SuppressionChangeRow, "pending">>();
  if (keys.length === 0) return out;
  const { results } = await db
    .prepare(
      `SELECT c.* FROM json_each(?1) AS k JOIN suppression_changes AS c
         ON c.account_id = k.value->>0 AND c.id = k.value->>1`,
    )
    .bind(JSON.stringify(keys.map((k) => [k.accountId, k.id])))
    .all<ChangeDbRow>();
  for (const r of results) out.set(`${r.account_id}\u0000${r.id}`, changeRowOf(r));
  return out;
}

/**
 * The account's stored changes among `ids` (a webhook replay by id; SPEC §14), kept CHANGE_RETENTION_MS:
 * each one's key, type and topic (what an endpoint's subscription looks at). Seeks on (account_id, id).
 */
export async function changesByIds(
  db: D1Database,
  accountId: string,
  ids: readonly string[],
): Promise<{ id: string; occurred_at: number; type: string; topic: string }[]> {
  if (ids.length === 0) return [];
  const { results } = await db
    .prepare(
      `SELECT id, occurred_at, type, topic FROM suppression_changes
        WHERE account_id = ?1 AND id IN (SELECT value FROM json_each(?2))`,
    )
    .bind(accountId, JSON.stringify(ids))
    .all<{ id: string; occurred_at: number; type: string; topic: string }>();
  return results;
}

/** Pending changes pushed per round (a D1 read, the queue sends, one update). */
const PUSH_CHUNK = 500;

/**
 * Fans pending changes out to every enabled endpoint that subscribes to their type (and whose
 * `topic` filter, if any, is the entry's topic; an endpoint filtered on campaign, domain or tags
 * takes no suppression change, which has none of them), then clears them. Returns how many changes
 * were pushed. Throws when D1 or the queue fails; what was not cleared stays pending.
 */
export async function pushPendingChanges(
  env: Env,
  db: D1Database,
  options: { maxChanges?: number; now?: number } = {},
): Promise<number> {
  const max = options.maxChanges ?? 5_000;
  let pushed = 0;
  while (pushed < max) {
    const { results } = await db
      .prepare(
        `SELECT account_id, id, occurred_at, type, topic FROM suppression_changes INDEXED BY suppression_changes_pending_idx
          WHERE pending = 1 LIMIT ?1`,
      )
      .bind(Math.min(PUSH_CHUNK, max - pushed))
      .all<{ account_id: string; id: string; occurred_at: number; type: string; topic: string }>();
    if (results.length === 0) break;
    const endpoints = await endpointsOf(
      env,
      results.map((r) => r.account_id),
      options.now ?? Date.now(),
    );
    const deliveries: Delivery[] = [];
    for (const change of results) {
      const matchable = {
        type: change.type,
        topic: change.topic === "" ? null : change.topic,
        campaign: null,
        from_domain: null,
        tags: [],
      };
      for (const { row, sub } of endpoints.get(change.account_id) ?? []) {
        if (row.status !== "enabled" || !matches(sub, matchable)) continue;
        deliveries.push({
          body: {
            type: "deliver",
            account_id: change.account_id,
            endpoint_id: row.id,
            event_id: change.id,
            occurred_at: change.occurred_at,
          },
        });
      }
    }
    await sendDeliveries(env, deliveries);
    await db
      .prepare(
        `UPDATE suppression_changes SET pending = 0
          WHERE (account_id, id) IN (SELECT value->>0, value->>1 FROM json_each(?1))`,
      )
      .bind(JSON.stringify(results.map((r) => [r.account_id, r.id])))
      .run();
    pushed += results.length;
    if (results.length < PUSH_CHUNK) break;
  }
  return pushed;
}

/** pushPendingChanges for a writer that has committed: a failure is logged, the scheduled work retries. */
export async function pushChangesLogged(env: Env, db: D1Database): Promise<void> {
  try {
    await pushPendingChanges(env, db);
  } catch (err) {
    log("warn", "suppression changes not pushed yet; the scheduled work will push them", describeError(err));
  }
}

/**
 * An erased address's change records on a shard other than its entries' (an account's previous home,
 * SPEC §17, §20): rewritten to the hashed key, as replaceWithHashed does beside the entries.
 */
export async function hashChangesOf(
  db: D1Database,
  accountId: string,
  email: string,
  emailHash: string,
): Promise<void> {
  await db
    .prepare(
      "UPDATE suppression_changes SET email = ?3, email_hash = ?4 WHERE account_id = ?1 AND email = ?2",
    )
    .bind(accountId, email, hashedKey(emailHash), emailHash)
    .run();
}

/**
 * pushChangesLogged on the home shard of each account whose suppressions changed (SPEC §17: its
 * changes are recorded there, beside its entries), for a writer that touched several accounts.
 */
export async function pushChangesOfLogged(env: Env, refs: { accountId: string }[]): Promise<void> {
  let groups: { db: D1Database }[];
  try {
    groups = await groupByHome(env, refs, (ref) => ref.accountId);
  } catch (err) {
    log("warn", "suppression changes not pushed yet; the scheduled work will push them", describeError(err));
    return;
  }
  await Promise.all(groups.map((g) => pushChangesLogged(env, g.db)));
}

/** Deletes changes older than CHANGE_RETENTION_MS, in bounded chunks through the time index. */
export async function purgeOldChanges(
  db: D1Database,
  now: number,
  maxRows = 50_000,
): Promise<{ deleted: number }> {
  let deleted = 0;
  while (deleted < maxRows) {
    const { meta } = await db
      .prepare(
        `DELETE FROM suppression_changes WHERE (account_id, id) IN (
           SELECT account_id, id FROM suppression_changes INDEXED BY suppression_changes_time_idx
            WHERE occurred_at < ?1 AND pending = 0 ORDER BY occurred_at LIMIT 1000)`,
      )
      .bind(now - CHANGE_RETENTION_MS)
      .run();
    deleted += meta.changes;
    if (meta.changes < 1000) break;
  }
  return { deleted };
}
