import { and, desc, eq, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { type SuppressionRow, suppressions } from "../db/suppressions";
import type { Env } from "../env";
import { describeError, log } from "../lib/log";
import type { SuppressionReason } from "../pipeline/messages";
import { markPending, syncMirror } from "./mirror";

/**
 * The suppression API's own reads and writes. Adds and removes write D1 directly (a read right after
 * sees them), with the mirror's journal row in the same transaction, and then the KV mirror; a mirror
 * failure leaves the journal row for the reconcile and is never turned into an error after D1 has
 * committed.
 */

export { EVERY_TOPIC, topicColumn } from "../db/suppressions";

export async function entriesOf(env: Env, accountId: string, email: string): Promise<SuppressionRow[]> {
  return drizzle(env.DB)
    .select()
    .from(suppressions)
    .where(and(eq(suppressions.accountId, accountId), eq(suppressions.email, email)))
    .orderBy(suppressions.topic);
}

/**
 * Adds a manual entry. An address already suppressed for that topic keeps its entry unchanged (its
 * original reason and time): the insert and the read of the key run in one batch, one round trip.
 */
export async function addManual(
  env: Env,
  accountId: string,
  email: string,
  topic: string,
  now: number,
  /** The reason a new entry records (the Unosend surface lets a client name it); `manual` by default. */
  reason: SuppressionReason = "manual",
): Promise<{ entry: SuppressionRow; created: boolean }> {
  // The journal row goes in the same transaction as the change (see markPending); it is written
  // even when the entry existed, so a PUT also repairs a mirror that lost the address.
  const [inserted, current] = await env.DB.batch<Record<string, unknown>>([
    env.DB.prepare(
      `INSERT INTO suppressions (account_id, email, topic, reason, email_id, suppressed_at)
       VALUES (?1, ?2, ?3, ?5, NULL, ?4) ON CONFLICT DO NOTHING RETURNING email`,
    ).bind(accountId, email, topic, now, reason),
    env.DB.prepare(
      `SELECT account_id, email, topic, reason, email_id, suppressed_at FROM suppressions
        WHERE account_id = ?1 AND email = ?2 AND topic = ?3`,
    ).bind(accountId, email, topic),
    markPending(env, [{ accountId, email }], now),
  ]);
  const row = current?.results[0] as
    | {
        account_id: string;
        email: string;
        topic: string;
        reason: string;
        email_id: string | null;
        suppressed_at: number;
      }
    | undefined;
  if (!row) throw new Error("suppression row missing right after its insert");
  const entry: SuppressionRow = {
    accountId: row.account_id,
    email: row.email,
    topic: row.topic,
    reason: row.reason,
    emailId: row.email_id,
    suppressedAt: row.suppressed_at,
  };
  await updateMirror(env, accountId, email);
  return { entry, created: (inserted?.results.length ?? 0) > 0 };
}

/** Removes one topic's entry ('' is the every-topic one) or, with topic null, all of them. Returns how many. */
export async function removeEntries(
  env: Env,
  accountId: string,
  email: string,
  topic: string | null,
): Promise<number> {
  const [removed] = await env.DB.batch([
    env.DB.prepare(
      `DELETE FROM suppressions WHERE account_id = ?1 AND email = ?2 AND (?3 IS NULL OR topic = ?3)
       RETURNING topic`,
    ).bind(accountId, email, topic),
    markPending(env, [{ accountId, email }], Date.now()),
  ]);
  await updateMirror(env, accountId, email);
  return removed?.results.length ?? 0;
}

export interface ListFilters {
  reason: string | null;
  topic: string | null;
}

/** A position in the newest-first order: the last entry a page returned. */
export interface ListPosition {
  suppressedAt: number;
  email: string;
  topic: string;
}

/**
 * One page, newest first. suppressions_recent_idx is (account_id, suppressed_at) and, the table
 * being WITHOUT ROWID, carries the rest of the key (email, topic): the order and the row-value
 * keyset both come from that index, so a page reads the rows it returns (plus those the filters skip).
 */
export async function listPage(
  env: Env,
  accountId: string,
  filters: ListFilters,
  position: ListPosition | null,
  limit: number,
): Promise<SuppressionRow[]> {
  const where = [eq(suppressions.accountId, accountId)];
  if (filters.reason !== null) where.push(eq(suppressions.reason, filters.reason));
  if (filters.topic !== null) where.push(eq(suppressions.topic, filters.topic));
  if (position) {
    where.push(
      sql`(${suppressions.suppressedAt}, ${suppressions.email}, ${suppressions.topic}) < (${position.suppressedAt}, ${position.email}, ${position.topic})`,
    );
  }
  return drizzle(env.DB)
    .select()
    .from(suppressions)
    .where(and(...where))
    .orderBy(desc(suppressions.suppressedAt), desc(suppressions.email), desc(suppressions.topic))
    .limit(limit);
}

async function updateMirror(env: Env, accountId: string, email: string): Promise<void> {
  try {
    await syncMirror(env, [{ accountId, email }]);
  } catch (err) {
    // syncMirror already absorbs KV failures; this is its D1 read. D1 holds the change either way.
    log("warn", "suppression mirror update failed; the reconcile will repair it", {
      account_id: accountId,
      ...describeError(err),
    });
  }
}
