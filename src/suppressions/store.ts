import { and, desc, eq, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { type SuppressionRow, suppressions } from "../db/suppressions";
import type { Env } from "../env";
import { describeError, log } from "../lib/log";
import { syncMirror } from "./mirror";

/**
 * The suppression API's own reads and writes. Adds and removes write D1 directly (a read right after
 * sees them) and then the KV mirror; a mirror failure is logged and left to the reconcile, never
 * turned into an error after D1 has committed.
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
): Promise<{ entry: SuppressionRow; created: boolean }> {
  const db = drizzle(env.DB);
  const key = and(
    eq(suppressions.accountId, accountId),
    eq(suppressions.email, email),
    eq(suppressions.topic, topic),
  );
  const [inserted, current] = await db.batch([
    db
      .insert(suppressions)
      .values({ accountId, email, topic, reason: "manual", emailId: null, suppressedAt: now })
      .onConflictDoNothing()
      .returning({ email: suppressions.email }),
    db.select().from(suppressions).where(key),
  ]);
  const entry = current[0];
  if (!entry) throw new Error("suppression row missing right after its insert");
  const created = inserted.length > 0;
  if (created) await updateMirror(env, accountId, email);
  return { entry, created };
}

/** Removes one topic's entry ('' is the every-topic one) or, with topic null, all of them. Returns how many. */
export async function removeEntries(
  env: Env,
  accountId: string,
  email: string,
  topic: string | null,
): Promise<number> {
  const where = [eq(suppressions.accountId, accountId), eq(suppressions.email, email)];
  if (topic !== null) where.push(eq(suppressions.topic, topic));
  const removed = await drizzle(env.DB)
    .delete(suppressions)
    .where(and(...where))
    .returning({ topic: suppressions.topic });
  if (removed.length > 0) await updateMirror(env, accountId, email);
  return removed.length;
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
