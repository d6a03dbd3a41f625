import { and, count, desc, eq, gt, isNull, or, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { hashedKey, type SuppressionRow, suppressions } from "../db/suppressions";
import type { Env } from "../env";
import { describeError, log } from "../lib/log";
import { totalOnce } from "../lib/totals";
import type { SuppressionReason } from "../pipeline/messages";
import { createdChangeId, pushChangesLogged, recordCreated, recordDeleted } from "./changes";
import { erasureHashes } from "./erasure-hash";
import { type AddressRef, markPending, syncMirror } from "./mirror";

/**
 * The suppression list's own reads and writes (the table's one owner; every function is handed the
 * D1 database it works on, the account's event shard of SPEC §17). Adds and removes write D1
 * directly (a read right after sees them), with the mirror's journal row and the change record of
 * §14 in the same transaction, then the KV mirror and the webhook push; a mirror or push failure
 * leaves its journal or outbox row for the scheduled work and is never turned into an error after D1
 * has committed.
 *
 * Expiry: an entry past its expires_at is left out of every read here at once, and deleted (with its
 * `suppression.deleted`) by the next scheduled run (deleteExpired).
 */

export { EVERY_TOPIC, topicColumn } from "../db/suppressions";

/** Only entries that still suppress at `now`. */
const live = (now: number) => or(isNull(suppressions.expiresAt), gt(suppressions.expiresAt, now));

/**
 * The key columns an address is stored under: itself, and its hashed key when it was erased (§20)
 * and ERASURE_KEY is configured.
 */
export async function keysOf(env: Env, email: string): Promise<string[]> {
  const [hash] = await erasureHashes(env, [email]);
  return hash ? [email, hashedKey(hash)] : [email];
}

/** The live entries of an address (and of its hashed key, when erased), the every-topic one first. */
export async function entriesOf(
  env: Env,
  db: D1Database,
  accountId: string,
  email: string,
  now = Date.now(),
): Promise<SuppressionRow[]> {
  const rows: SuppressionRow[] = [];
  for (const key of await keysOf(env, email)) {
    rows.push(
      ...(await drizzle(db)
        .select()
        .from(suppressions)
        .where(and(eq(suppressions.accountId, accountId), eq(suppressions.email, key), live(now)))
        .orderBy(suppressions.topic)),
    );
  }
  return rows;
}

const EXPIRED = "expires_at IS NOT NULL AND expires_at <= ?4";

/**
 * Adds a manual entry. An address already suppressed for that topic keeps its entry (its original
 * reason and time); a given `expiresAt` (null: never) replaces the entry's expiry. An entry that had
 * expired but was not yet deleted is replaced by the new one (its deletion recorded first). One
 * round trip: the change records, the upsert, the read of the key and the journal row.
 */
export async function addManual(
  env: Env,
  db: D1Database,
  accountId: string,
  email: string,
  topic: string,
  expiresAt: number | null | undefined,
  now: number,
  /** The reason a new entry records (the Unosend surface lets a client name it); `manual` by default. */
  reason: SuppressionReason = "manual",
): Promise<{ entry: SuppressionRow; created: boolean }> {
  const key = "account_id = ?1 AND email = ?2 AND topic = ?3";
  const given = expiresAt !== undefined;
  const [, , inserted, current] = await db.batch<Record<string, unknown>>([
    recordDeleted(db, `${key} AND ${EXPIRED}`, [accountId, email, topic, now], now),
    db.prepare(`DELETE FROM suppressions WHERE ${key} AND ${EXPIRED}`).bind(accountId, email, topic, now),
    db
      .prepare(
        `INSERT INTO suppressions (account_id, email, topic, reason, email_id, suppressed_at, expires_at)
         VALUES (?1, ?2, ?3, ?7, NULL, ?4, ?5)
         ON CONFLICT DO UPDATE SET expires_at = excluded.expires_at WHERE ?6
         RETURNING suppressed_at`,
      )
      .bind(accountId, email, topic, now, expiresAt ?? null, given ? 1 : 0, reason),
    db
      .prepare(
        `SELECT account_id, email, topic, reason, email_id, suppressed_at, expires_at, email_hash FROM suppressions
          WHERE account_id = ?1 AND email = ?2 AND topic = ?3`,
      )
      .bind(accountId, email, topic),
    recordCreated(
      db,
      [
        {
          accountId,
          email,
          topic,
          suppressedAt: now,
          changeId: await createdChangeId(accountId, email, topic, String(now)),
        },
      ],
      now,
    ),
    // The journal row goes in the same transaction (see markPending); written even when the entry
    // existed, so a PUT also repairs a mirror that lost the address.
    markPending(db, [{ accountId, email }], now),
  ]);
  const row = current?.results[0] as
    | {
        account_id: string;
        email: string;
        topic: string;
        reason: string;
        email_id: string | null;
        suppressed_at: number;
        expires_at: number | null;
        email_hash: string | null;
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
    expiresAt: row.expires_at,
    emailHash: row.email_hash,
  };
  const created = (inserted?.results[0] as { suppressed_at?: number } | undefined)?.suppressed_at === now;
  await afterChange(env, db, [{ accountId, email }]);
  return { entry, created };
}

/**
 * Removes one topic's entry ('' is the every-topic one) or, with topic null, all of them, of the
 * address and of its hashed key when it was erased. Returns how many live entries went.
 */
export async function removeEntries(
  env: Env,
  db: D1Database,
  accountId: string,
  email: string,
  topic: string | null,
): Promise<number> {
  const now = Date.now();
  const keys = await keysOf(env, email);
  const where =
    "account_id = ?1 AND email IN (SELECT value FROM json_each(?2)) AND (?3 IS NULL OR topic = ?3)";
  const binds = [accountId, JSON.stringify(keys), topic];
  const [, removed] = await db.batch([
    recordDeleted(db, where, binds, now),
    db.prepare(`DELETE FROM suppressions WHERE ${where} RETURNING expires_at`).bind(...binds),
    markPending(
      db,
      keys.map((key) => ({ accountId, email: key })),
      now,
    ),
  ]);
  await afterChange(
    env,
    db,
    keys.map((key) => ({ accountId, email: key })),
  );
  const rows = (removed?.results ?? []) as { expires_at: number | null }[];
  return rows.filter((r) => r.expires_at === null || r.expires_at > now).length;
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
  db: D1Database,
  accountId: string,
  filters: ListFilters,
  position: ListPosition | null,
  limit: number,
  now = Date.now(),
): Promise<SuppressionRow[]> {
  const where = [eq(suppressions.accountId, accountId), live(now)];
  if (filters.reason !== null) where.push(eq(suppressions.reason, filters.reason));
  if (filters.topic !== null) where.push(eq(suppressions.topic, filters.topic));
  if (position) {
    where.push(
      sql`(${suppressions.suppressedAt}, ${suppressions.email}, ${suppressions.topic}) < (${position.suppressedAt}, ${position.email}, ${position.topic})`,
    );
  }
  return drizzle(db)
    .select()
    .from(suppressions)
    .where(and(...where))
    .orderBy(desc(suppressions.suppressedAt), desc(suppressions.email), desc(suppressions.topic))
    .limit(limit);
}

/**
 * Offset paging for the compatibility routes (§16, at most offset + limit ≤ 10,000 rows) and the live
 * total; `reason` narrows both (Unosend's list filter). The total reads every entry of the account
 * (an import may hold a million), so with `totalKey` it is counted at most once a minute per account
 * and query (SPEC §18, lib/totals.ts) while the page itself is always read live.
 */
export async function offsetPage(
  db: D1Database,
  accountId: string,
  offset: number,
  limit: number,
  filters: { reason?: string | null; totalKey?: string | null } = {},
  now = Date.now(),
): Promise<{ rows: SuppressionRow[]; total: number }> {
  const d = drizzle(db);
  const mine = and(
    eq(suppressions.accountId, accountId),
    live(now),
    ...(filters.reason ? [eq(suppressions.reason, filters.reason)] : []),
  );
  const countLive = async () =>
    (await d.select({ total: count() }).from(suppressions).where(mine))[0]?.total ?? 0;
  const [rows, total] = await Promise.all([
    d
      .select()
      .from(suppressions)
      .where(mine)
      .orderBy(desc(suppressions.suppressedAt), desc(suppressions.email), desc(suppressions.topic))
      .limit(limit)
      .offset(offset),
    filters.totalKey ? totalOnce(filters.totalKey, countLive) : countLive(),
  ]);
  return { rows, total };
}

/**
 * One chunk of the export, in primary-key order (email, topic) after `after`: a range read of the
 * account's rows, however large the list (the export streams chunk by chunk in constant memory).
 */
export async function exportChunk(
  db: D1Database,
  accountId: string,
  after: { email: string; topic: string } | null,
  limit: number,
  now = Date.now(),
): Promise<SuppressionRow[]> {
  const where = [eq(suppressions.accountId, accountId), live(now)];
  if (after)
    where.push(sql`(${suppressions.email}, ${suppressions.topic}) > (${after.email}, ${after.topic})`);
  return drizzle(db)
    .select()
    .from(suppressions)
    .where(and(...where))
    .orderBy(suppressions.email, suppressions.topic)
    .limit(limit);
}

/** Expired entries deleted per statement by the scheduled work. */
const EXPIRY_CHUNK = 500;

/**
 * The scheduled work's expiry (SPEC §10): deletes entries whose expires_at has passed, each with its
 * `suppression.deleted` change and its journal row in the same transaction, then mirrors and pushes.
 * Reads only the expired rows, through the partial suppressions_expiry_idx.
 */
export async function deleteExpired(
  env: Env,
  db: D1Database,
  now: number,
  maxRows = 10_000,
): Promise<{ deleted: number }> {
  let deleted = 0;
  while (deleted < maxRows) {
    const { results } = await db
      .prepare(
        `SELECT account_id, email, topic FROM suppressions INDEXED BY suppressions_expiry_idx
          WHERE expires_at IS NOT NULL AND expires_at <= ?1 LIMIT ?2`,
      )
      .bind(now, EXPIRY_CHUNK)
      .all<{ account_id: string; email: string; topic: string }>();
    if (results.length === 0) break;
    const keys = JSON.stringify(results.map((r) => [r.account_id, r.email, r.topic]));
    const where = `(account_id, email, topic) IN (SELECT value->>0, value->>1, value->>2 FROM json_each(?1))
                   AND expires_at IS NOT NULL AND expires_at <= ?2`;
    const refs = results.map((r) => ({ accountId: r.account_id, email: r.email }));
    const [, removed] = await db.batch([
      recordDeleted(db, where, [keys, now], now),
      db.prepare(`DELETE FROM suppressions WHERE ${where}`).bind(keys, now),
      markPending(db, refs, now),
    ]);
    deleted += removed?.meta.changes ?? 0;
    await afterChange(env, db, refs);
    if (results.length < EXPIRY_CHUNK) break;
  }
  return { deleted };
}

/** After a committed change: the KV mirror, then the webhook push; failures are left to the scheduled work. */
export async function afterChange(env: Env, db: D1Database, refs: AddressRef[]): Promise<void> {
  try {
    await syncMirror(env, refs);
  } catch (err) {
    // syncMirror already absorbs KV failures; this is its D1 read. D1 holds the change either way.
    log("warn", "suppression mirror update failed; the reconcile will repair it", describeError(err));
  }
  await pushChangesLogged(env, db);
}

/**
 * The suppression half of an erasure (SPEC §20): every entry of the address is replaced by a hashed
 * one (reason, topic, time and expiry kept; `email: null`, `email_hash` set), and when the address
 * has neither entries nor hashed ones yet, a hashed `manual` every-topic entry is recorded. The
 * address's change records are rewritten to the hashed key, and the deleted changes are recorded
 * under it, so no row keeps the address. One transaction; then the mirror (the address's key goes,
 * the hashed key is written) and the push. A second erasure finds nothing to replace and a hashed
 * entry in place: it changes nothing. Returns how many entries of the address were replaced.
 */
export async function replaceWithHashed(
  env: Env,
  db: D1Database,
  accountId: string,
  email: string,
  emailHash: string,
  now: number,
): Promise<number> {
  const hashed = hashedKey(emailHash);
  const { results: existing } = await db
    .prepare("SELECT topic, suppressed_at FROM suppressions WHERE account_id = ?1 AND email = ?2")
    .bind(accountId, email)
    .all<{ topic: string; suppressed_at: number }>();
  const created: Parameters<typeof recordCreated>[1] = await Promise.all(
    existing.map(async (r) => ({
      accountId,
      email: hashed,
      topic: r.topic,
      suppressedAt: r.suppressed_at,
      changeId: await createdChangeId(accountId, hashed, r.topic, String(r.suppressed_at)),
    })),
  );
  created.push({
    accountId,
    email: hashed,
    topic: "",
    suppressedAt: now,
    changeId: await createdChangeId(accountId, hashed, "", String(now)),
  });
  const [, , , removed] = await db.batch([
    db
      .prepare(
        `INSERT INTO suppressions (account_id, email, topic, reason, email_id, suppressed_at, expires_at, email_hash)
         SELECT account_id, ?3, topic, reason, NULL, suppressed_at, expires_at, ?4
           FROM suppressions WHERE account_id = ?1 AND email = ?2
         ON CONFLICT DO NOTHING`,
      )
      .bind(accountId, email, hashed, emailHash),
    db
      .prepare(
        `INSERT INTO suppressions (account_id, email, topic, reason, email_id, suppressed_at, expires_at, email_hash)
         SELECT ?1, ?2, '', 'manual', NULL, ?3, NULL, ?4
          WHERE NOT EXISTS (SELECT 1 FROM suppressions WHERE account_id = ?1 AND email = ?2)
         ON CONFLICT DO NOTHING`,
      )
      .bind(accountId, hashed, now, emailHash),
    recordDeleted(db, "account_id = ?1 AND email = ?2", [accountId, email], now, {
      email: hashed,
      emailHash,
    }),
    db.prepare("DELETE FROM suppressions WHERE account_id = ?1 AND email = ?2").bind(accountId, email),
    recordCreated(db, created, now),
    db
      .prepare(
        "UPDATE suppression_changes SET email = ?3, email_hash = ?4 WHERE account_id = ?1 AND email = ?2",
      )
      .bind(accountId, email, hashed, emailHash),
    markPending(
      db,
      [
        { accountId, email },
        { accountId, email: hashed },
      ],
      now,
    ),
  ]);
  await afterChange(env, db, [
    { accountId, email },
    { accountId, email: hashed },
  ]);
  return removed?.meta.changes ?? 0;
}

/** A validated import row (suppressions/import-format.ts ImportRow), as the store writes it. */
export interface ImportedEntry {
  email: string;
  emailHash: string | null;
  reason: string;
  topic: string;
  expiresAt: number | null;
  suppressedAt: number;
  emailId: string | null;
}

/**
 * One chunk of an import (keys unique within the chunk): inserts what is new, leaves every existing
 * entry as it is (so importing the same rows again changes nothing). One transaction whose first two
 * statements run before the insert and see the same state: the `suppression.created` change and the
 * mirror journal row are recorded for exactly the rows whose key is not there yet, however often
 * the chunk runs. Then the mirror and the push for the new rows. Returns how many were new.
 */
export async function importEntries(
  env: Env,
  db: D1Database,
  accountId: string,
  entries: ImportedEntry[],
  now: number,
): Promise<number> {
  if (entries.length === 0) return 0;
  const rows = await Promise.all(
    entries.map(async (e) => ({
      e: e.email,
      h: e.emailHash,
      r: e.reason,
      t: e.topic,
      x: e.expiresAt,
      s: e.suppressedAt,
      i: e.emailId,
      c: await createdChangeId(accountId, e.email, e.topic, String(e.suppressedAt)),
    })),
  );
  const json = JSON.stringify(rows);
  const fresh = `NOT EXISTS (SELECT 1 FROM suppressions AS s
                    WHERE s.account_id = ?1 AND s.email = p.value->>'e' AND s.topic = p.value->>'t')`;
  const [, , inserted] = await db.batch([
    db
      .prepare(
        `INSERT INTO suppression_changes (account_id, id, occurred_at, type, email, email_hash, topic, reason, email_id,
           suppressed_at, expires_at, pending)
         SELECT ?1, p.value->>'c', ?3, 'suppression.created', p.value->>'e', p.value->>'h', p.value->>'t', p.value->>'r',
                p.value->>'i', p.value->>'s', p.value->>'x', 1
           FROM json_each(?2) AS p WHERE ${fresh}
         ON CONFLICT DO NOTHING`,
      )
      .bind(accountId, json, now),
    db
      .prepare(
        `INSERT INTO mirror_pending (account_id, email, token, since)
         SELECT DISTINCT ?1, p.value->>'e', lower(hex(randomblob(8))), ?3 FROM json_each(?2) AS p
          WHERE ${fresh}
         ON CONFLICT (account_id, email) DO UPDATE SET token = excluded.token`,
      )
      .bind(accountId, json, now),
    db
      .prepare(
        `INSERT INTO suppressions (account_id, email, topic, reason, email_id, suppressed_at, expires_at, email_hash)
         SELECT ?1, p.value->>'e', p.value->>'t', p.value->>'r', p.value->>'i', p.value->>'s', p.value->>'x', p.value->>'h'
           FROM json_each(?2) AS p WHERE true
         ON CONFLICT DO NOTHING
         RETURNING email`,
      )
      .bind(accountId, json),
  ]);
  const added = [...new Set(((inserted?.results ?? []) as { email: string }[]).map((r) => r.email))];
  if (added.length > 0) {
    await afterChange(
      env,
      db,
      added.map((email) => ({ accountId, email })),
    );
  }
  return inserted?.results.length ?? 0;
}
